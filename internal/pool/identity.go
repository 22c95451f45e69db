package pool

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/tidepool-dev/tidepool/internal/agent/wire"
	"github.com/tidepool-dev/tidepool/internal/auth"
	"github.com/tidepool-dev/tidepool/internal/model"
	"github.com/tidepool-dev/tidepool/internal/sandbox"
	"github.com/tidepool-dev/tidepool/internal/store"
)

// TokenIssuer mints access tokens; *auth.Issuer implements it.
type TokenIssuer interface {
	Issue(p *store.Principal, audience string) (token string, expires time.Time, err error)
}

// WithTokenIssuer lets sessions of pools with a managed identity of
// lifecycle Main get tokens for it (IDENTITY_ENDPOINT in the sandbox).
// Without it, no token reaches a session.
func WithTokenIssuer(i TokenIssuer) Option { return func(c *Controller) { c.tokens = i } }

// sessionIdentity is a managed identity the pool's sessions act as.
type sessionIdentity struct {
	principal  store.Principal
	resourceID string // the user-assigned identity; "" for the system one
}

// identityResources are the resources a session's tokens are for: the
// audiences this server issues, under each name clients ask for them by.
var identityResources = []struct{ resource, audience string }{
	{"https://management.azure.com/", auth.AudienceManagement},
	{"https://management.core.windows.net/", auth.AudienceManagement},
	{"https://dynamicsessions.io", auth.AudienceDataPlane},
	{"https://acasessions.io", auth.AudienceDataPlaneLegacy},
}

// identityRefresh is how long before their expiry a session's tokens are
// replaced.
const identityRefresh = 20 * time.Minute

// sessionIdentities returns the identities with lifecycle Main: the ones
// code in a session may act as. Lifecycle None (image pulls only) gives
// sessions nothing.
func sessionIdentities(p *model.SessionPool) []sessionIdentity {
	if p.Properties == nil {
		return nil
	}
	var out []sessionIdentity
	for _, m := range p.Properties.ManagedIdentitySettings {
		if id := poolIdentity(p, m.Identity); id != nil && strings.EqualFold(m.Lifecycle, "Main") {
			out = append(out, *id)
		}
	}
	return out
}

// poolIdentity resolves a reference to one of the pool's identities
// ("system" or a user-assigned identity's resource id) to its principal,
// or nil when the pool does not hold it.
func poolIdentity(p *model.SessionPool, ref string) *sessionIdentity {
	if p.Identity == nil {
		return nil
	}
	if ref == "system" {
		if pid := p.Identity.PrincipalID; pid != "" {
			return &sessionIdentity{principal: store.Principal{ObjectID: pid, ClientID: model.SystemIdentityClientID(pid), Kind: "ManagedIdentity"}}
		}
		return nil
	}
	for k, v := range p.Identity.UserAssignedIdentities {
		if strings.EqualFold(k, ref) && v != nil && v.PrincipalID != "" {
			return &sessionIdentity{principal: store.Principal{ObjectID: v.PrincipalID, ClientID: v.ClientID, Kind: "ManagedIdentity"}, resourceID: k}
		}
	}
	return nil
}

// pushIdentities mints fresh tokens for ids and hands them to the
// sandbox's agent. It returns when the earliest of them expires.
func (c *Controller) pushIdentities(ctx context.Context, sb *sandboxRef, ids []sessionIdentity) (time.Time, error) {
	var req wire.IdentityRequest
	var earliest time.Time
	for i, id := range ids {
		wi := wire.Identity{ClientID: id.principal.ClientID, PrincipalID: id.principal.ObjectID, ResourceID: id.resourceID,
			Default: id.resourceID == "" || (i == 0 && len(ids) == 1)}
		minted := map[string]wire.Token{}
		for _, r := range identityResources {
			t, ok := minted[r.audience]
			if !ok {
				tok, exp, err := c.tokens.Issue(&id.principal, r.audience)
				if err != nil {
					return time.Time{}, fmt.Errorf("mint a token for identity %s: %w", id.principal.ObjectID, err)
				}
				t = wire.Token{AccessToken: tok, ExpiresOn: exp.Unix()}
				minted[r.audience] = t
				if earliest.IsZero() || exp.Before(earliest) {
					earliest = exp
				}
			}
			t.Resource = r.resource
			wi.Tokens = append(wi.Tokens, t)
		}
		req.Identities = append(req.Identities, wi)
	}
	ictx, cancel := context.WithTimeout(ctx, initTimeout)
	defer cancel()
	if _, err := sb.agent.SetIdentity(ictx, req); err != nil {
		return time.Time{}, fmt.Errorf("give the sandbox its identities: %w", err)
	}
	return earliest, nil
}

// refreshIdentities replaces the tokens of claimed sessions that expire
// soon (or that this process has not given any yet: sessions adopted
// after a restart).
func (c *Controller) refreshIdentities(ctx context.Context) {
	if c.tokens == nil {
		return
	}
	type due struct {
		sb  *sandboxRef
		ids []sessionIdentity
	}
	var list []due
	now := time.Now()
	c.mu.Lock()
	for _, ps := range c.pools {
		if ps.cfg == nil || len(ps.cfg.identities) == 0 {
			continue
		}
		for _, s := range ps.claimed {
			if s.sb.identityExpires.IsZero() || s.sb.identityExpires.Sub(now) < identityRefresh {
				list = append(list, due{s.sb, ps.cfg.identities})
			}
		}
	}
	c.mu.Unlock()
	for _, d := range list {
		exp, err := c.pushIdentities(ctx, d.sb, d.ids)
		if err != nil {
			c.log.WarnContext(ctx, "refresh session identity", "sandbox", d.sb.id, "err", err)
			continue
		}
		c.mu.Lock()
		d.sb.identityExpires = exp
		c.mu.Unlock()
	}
}

// registryPull is a registry that image pulls authenticate to with a
// managed identity's token.
type registryPull struct {
	identity sessionIdentity
	audience string // https://{server}
}

// registryIdentity resolves registryCredentials.identity ("system" or a
// user-assigned identity's id) to a principal, or nil when the pool does
// not hold it.
func registryIdentity(p *model.SessionPool, identity, server string) *registryPull {
	id := poolIdentity(p, identity)
	if id == nil || server == "" {
		return nil
	}
	aud := "https://" + strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(server, "https://"), "http://"), "/")
	return &registryPull{*id, aud}
}

// withRegistryToken returns spec with a fresh bearer token for the pool's
// registry identity, when it has one.
func (c *Controller) withRegistryToken(cfg *poolConfig, spec sandbox.Spec) (sandbox.Spec, error) {
	if cfg.registry == nil || c.tokens == nil {
		return spec, nil
	}
	tok, _, err := c.tokens.Issue(&cfg.registry.identity.principal, cfg.registry.audience)
	if err != nil {
		return spec, fmt.Errorf("mint a registry token: %w", err)
	}
	spec.RegistryAuth = &sandbox.RegistryAuth{Token: tok}
	return spec, nil
}
