package pool

import (
	"fmt"
	"testing"
	"time"

	"github.com/tidepool-dev/tidepool/internal/model"
	"github.com/tidepool-dev/tidepool/internal/store"
)

// stubIssuer mints tokens that name their principal and audience.
type stubIssuer struct{ n int }

func (s *stubIssuer) Issue(p *store.Principal, audience string) (string, time.Time, error) {
	s.n++
	return fmt.Sprintf("%s|%s|%d", p.ObjectID, audience, s.n), time.Now().Add(time.Hour), nil
}

func TestRegistryIdentityPull(t *testing.T) {
	uami := "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/puller"
	pool := func(registryIdentity string) *model.SessionPool {
		return &model.SessionPool{
			Identity: &model.Identity{Type: "SystemAssigned,UserAssigned", PrincipalID: "system-principal",
				UserAssignedIdentities: map[string]*model.UserAssignedIdentity{uami: {PrincipalID: "uami-principal", ClientID: "uami-client"}}},
			Properties: &model.PoolProperties{ContainerType: model.ContainerTypeCustomContainer, CustomContainerTemplate: &model.CustomContainerTemplate{
				Containers:          []model.SessionContainer{{Image: "registry.test/app:1"}},
				RegistryCredentials: &model.RegistryCredentials{Server: "registry.test", Identity: registryIdentity},
			}},
		}
	}
	for _, tt := range []struct{ identity, wantPrincipal string }{
		{uami, "uami-principal"},
		{"system", "system-principal"},
	} {
		cfg, err := newPoolConfig("/p", pool(tt.identity), builtinDefaults{})
		if err != nil {
			t.Fatal(err)
		}
		c := &Controller{tokens: &stubIssuer{}}
		spec, err := c.withRegistryToken(cfg, cfg.specFor("sb1", "k"))
		if err != nil {
			t.Fatal(err)
		}
		if spec.RegistryAuth == nil || spec.RegistryAuth.Token != tt.wantPrincipal+"|https://registry.test|1" {
			t.Errorf("registry identity %s: auth = %+v", tt.identity, spec.RegistryAuth)
		}
		// A fresh token per start does not change the template.
		again, _ := newPoolConfig("/p", pool(tt.identity), builtinDefaults{})
		if again.hash != cfg.hash {
			t.Errorf("template hash changed between configs")
		}
	}
	// Without a token issuer, or with username/password, no token.
	cfg, _ := newPoolConfig("/p", pool(uami), builtinDefaults{})
	if spec, _ := (&Controller{}).withRegistryToken(cfg, cfg.specFor("sb", "k")); spec.RegistryAuth != nil {
		t.Errorf("token without an issuer: %+v", spec.RegistryAuth)
	}
}
