package pool

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidepool-dev/tidepool/internal/model"
	"github.com/tidepool-dev/tidepool/internal/sandbox"
)

func customPool(mut func(*model.SessionPool)) *model.SessionPool {
	cpu := 0.5
	p := &model.SessionPool{Properties: &model.PoolProperties{
		ContainerType: model.ContainerTypeCustomContainer,
		Secrets:       []model.Secret{{Name: "pw", Value: "hunter2"}, {Name: "Key", Value: "k1"}},
		CustomContainerTemplate: &model.CustomContainerTemplate{
			RegistryCredentials: &model.RegistryCredentials{Server: "r.example", Username: "u", PasswordSecretRef: "pw"},
			Containers: []model.SessionContainer{{
				Image: "r.example/app:1", Command: []string{"app"}, Args: []string{"--serve"},
				Env:       []model.EnvironmentVar{{Name: "MODE", Value: "x"}, {Name: "API_KEY", SecretRef: "key"}},
				Resources: &model.ContainerResources{CPU: &cpu, Memory: "1Gi"},
			}},
			Ingress: &model.SessionIngress{TargetPort: model.Int32(8080)},
		},
		SessionNetworkConfiguration: &model.SessionNetworkConfiguration{Status: model.EgressEnabled},
	}}
	if mut != nil {
		mut(p)
	}
	p.Normalize()
	return p
}

func TestNewPoolConfig(t *testing.T) {
	base, err := newPoolConfig(poolID, customPool(nil), builtinDefaults{})
	if err != nil {
		t.Fatal(err)
	}
	s := base.spec
	if s.Kind != sandbox.KindCustom || s.Image != "r.example/app:1" || s.TargetPort != 8080 || !s.EgressEnabled ||
		s.CPU != 0.5 || s.MemoryBytes != 1<<30 || s.Env["API_KEY"] != "k1" || s.Env["MODE"] != "x" ||
		s.RegistryAuth == nil || s.RegistryAuth.Password != "hunter2" || s.RegistryAuth.Username != "u" {
		t.Errorf("custom spec = %+v", s)
	}
	if base.initSecrets["API_KEY"] != "k1" || base.initEnv["MODE"] != "x" || base.initEnv["API_KEY"] != "" {
		t.Errorf("init env = %v, secrets = %v", base.initEnv, base.initSecrets)
	}
	if base.cooldown != model.DefaultCooldownSeconds*time.Second {
		t.Errorf("cooldown = %v", base.cooldown)
	}

	tests := []struct {
		name     string
		mut      func(*model.SessionPool)
		sameHash bool
		wantErr  string
	}{
		{"scale only", func(p *model.SessionPool) {
			p.Properties.ScaleConfiguration = &model.ScaleConfiguration{MaxConcurrentSessions: model.Int32(50), ReadySessionInstances: model.Int32(1)}
		}, true, ""},
		{"lifecycle only", func(p *model.SessionPool) {
			p.Properties.DynamicPoolConfiguration = &model.DynamicPoolConfiguration{LifecycleConfiguration: &model.LifecycleConfiguration{CooldownPeriodInSeconds: model.Int32(30)}}
		}, true, ""},
		{"image", func(p *model.SessionPool) {
			p.Properties.CustomContainerTemplate.Containers[0].Image = "r.example/app:2"
		}, false, ""},
		{"env", func(p *model.SessionPool) { p.Properties.CustomContainerTemplate.Containers[0].Env[0].Value = "y" }, false, ""},
		{"secret value", func(p *model.SessionPool) { p.Properties.Secrets[1].Value = "k2" }, false, ""},
		{"network", func(p *model.SessionPool) { p.Properties.SessionNetworkConfiguration = nil }, false, ""},
		{"missing secret", func(p *model.SessionPool) { p.Properties.Secrets = p.Properties.Secrets[:1] }, false, "secret 'key'"},
		{"bad memory", func(p *model.SessionPool) {
			p.Properties.CustomContainerTemplate.Containers[0].Resources.Memory = "lots"
		}, false, "invalid quantity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := newPoolConfig(poolID, customPool(tt.mut), builtinDefaults{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("newPoolConfig = %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if same := cfg.hash == base.hash; same != tt.sameHash {
				t.Errorf("same hash = %v, want %v", same, tt.sameHash)
			}
		})
	}
}

func TestNewPoolConfigBuiltin(t *testing.T) {
	tests := []struct{ containerType, kind string }{
		{model.ContainerTypePythonLTS, sandbox.KindPython},
		{model.ContainerTypeNodeLTS, sandbox.KindNode},
		{model.ContainerTypeShell, sandbox.KindShell},
		{"", sandbox.KindPython},
	}
	for _, tt := range tests {
		p := &model.SessionPool{Properties: &model.PoolProperties{ContainerType: tt.containerType}}
		p.Normalize()
		cfg, err := newPoolConfig(poolID, p, builtinDefaults{})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.spec.Kind != tt.kind || cfg.spec.EgressEnabled || cfg.spec.CPU != defaultBuiltinCPU || cfg.max != model.DefaultMaxConcurrentSessions || cfg.ready != model.DefaultReadySessionInstances {
			t.Errorf("%q: config = %+v", tt.containerType, cfg)
		}
	}
}

func TestParseMemory(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"0.5Gi", 512 << 20}, {"512Mi", 512 << 20}, {"250Mb", 250e6}, {"1G", 1e9}, {"2048", 2048}, {"1gi", 1 << 30},
	}
	for _, tt := range tests {
		if got, err := parseMemory(tt.in); err != nil || got != tt.want {
			t.Errorf("parseMemory(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "Gi", "-1Gi", "lots"} {
		if _, err := parseMemory(bad); err == nil {
			t.Errorf("parseMemory(%q) succeeded", bad)
		}
	}
}

// TestNewPoolConfigPreImport: the server's pre-import list reaches Python
// sandboxes only, and is part of the template (changing it rolls the
// ready set).
func TestNewPoolConfigPreImport(t *testing.T) {
	mods := []string{"numpy", "pandas"}
	for _, tt := range []struct {
		containerType string
		want          []string
	}{
		{model.ContainerTypePythonLTS, mods},
		{model.ContainerTypeNodeLTS, nil},
		{model.ContainerTypeShell, nil},
	} {
		p := &model.SessionPool{Properties: &model.PoolProperties{ContainerType: tt.containerType}}
		p.Normalize()
		with, err := newPoolConfig(poolID, p, builtinDefaults{preImport: mods})
		if err != nil {
			t.Fatal(err)
		}
		without, err := newPoolConfig(poolID, p, builtinDefaults{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(with.spec.PreImport, tt.want) {
			t.Errorf("%s: PreImport = %q, want %q", tt.containerType, with.spec.PreImport, tt.want)
		}
		if changed := with.hash != without.hash; changed != (tt.want != nil) {
			t.Errorf("%s: template hash changed = %v, want %v", tt.containerType, changed, tt.want != nil)
		}
	}
}

// TestBuiltinImages: a server-configured image replaces the host's root
// for its built-in kind only, and is part of the template (changing it
// rolls the warm set).
func TestBuiltinImages(t *testing.T) {
	d := builtinDefaults{images: map[string]string{sandbox.KindPython: "oci-layout:/srv/python"}}
	for _, tt := range []struct {
		containerType, want string
	}{
		{model.ContainerTypePythonLTS, "oci-layout:/srv/python"},
		{model.ContainerTypeShell, ""},
	} {
		p := &model.SessionPool{Properties: &model.PoolProperties{ContainerType: tt.containerType}}
		p.Normalize()
		with, err := newPoolConfig(poolID, p, d)
		if err != nil {
			t.Fatal(err)
		}
		without, _ := newPoolConfig(poolID, p, builtinDefaults{})
		if with.spec.Image != tt.want {
			t.Errorf("%s: Image = %q, want %q", tt.containerType, with.spec.Image, tt.want)
		}
		if (with.hash != without.hash) != (tt.want != "") {
			t.Errorf("%s: the image does not decide the template hash", tt.containerType)
		}
	}
}
