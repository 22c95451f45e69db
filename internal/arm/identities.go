package arm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/google/uuid"

	"github.com/tidepool-dev/tidepool/internal/model"
	"github.com/tidepool-dev/tidepool/internal/store"
)

// Managed identities are principals without secrets: a user-assigned
// identity is a resource of its own, a system-assigned one lives and dies
// with its session pool. Neither is copied into the store's principals:
// they are found from the resources (FindPrincipal), so deleting the
// resource deletes the principal with nothing left behind.

var identityNameRule = regexp.MustCompile(`^[a-zA-Z0-9][-a-zA-Z0-9_]{2,127}$`)

// IdentityID returns the canonical id of a user-assigned identity.
func IdentityID(sub, group, name string) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/%s/%s", sub, group, model.UserAssignedIdentityType, name)
}

func (s *Server) routeIdentities(w http.ResponseWriter, r *http.Request, id *model.ResourceID) error {
	if id.IsCollection() {
		a := access{scope: listParent(id), typ: model.UserAssignedIdentityType, list: true}
		return s.methods(w, r, a, handlers{get: s.listIdentities})
	}
	if id.ResourceGroup == "" {
		return unknownRoute(r)
	}
	a := access{scope: cleanPath(r), typ: model.UserAssignedIdentityType}
	return s.methods(w, r, a, handlers{get: s.getIdentity, put: s.putIdentity, patch: s.patchIdentity, del: s.deleteIdentity})
}

func (s *Server) identityRequest(r *http.Request, forWrite bool) (*model.ResourceID, string, error) {
	if _, err := apiVersion(r, nil); err != nil {
		return nil, "", err
	}
	id, err := model.ParseResourceID(r.URL.Path)
	if err != nil {
		return nil, "", unknownRoute(r)
	}
	if _, err := s.requireGroup(r.Context(), id, forWrite); err != nil {
		return nil, "", err
	}
	return id, IdentityID(id.Subscription, id.ResourceGroup, id.Names[0]), nil
}

// loadIdentity returns the stored identity and its version, or nil.
func (s *Server) loadIdentity(ctx context.Context, iid string) (*model.ManagedIdentity, int64, error) {
	res, err := s.st.GetResource(ctx, iid)
	if errors.Is(err, store.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("get managed identity %s: %w", iid, err)
	}
	var m model.ManagedIdentity
	if err := json.Unmarshal(res.Body, &m); err != nil {
		return nil, 0, fmt.Errorf("decode managed identity %s: %w", iid, err)
	}
	return &m, res.Version, nil
}

func (s *Server) getIdentity(w http.ResponseWriter, r *http.Request) error {
	id, iid, err := s.identityRequest(r, false)
	if err != nil {
		return err
	}
	m, _, err := s.loadIdentity(r.Context(), iid)
	if err != nil {
		return err
	}
	if m == nil {
		return notFound(model.UserAssignedIdentityType, id.Names[0], id.ResourceGroup)
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}

// putIdentity creates an identity (new principal and client ids) or
// replaces its tags; the ids never change.
func (s *Server) putIdentity(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id, iid, err := s.identityRequest(r, true)
	if err != nil {
		return err
	}
	name := id.Names[0]
	if !identityNameRule.MatchString(name) {
		return &Error{Status: http.StatusBadRequest, Code: "InvalidResourceName", Target: "name",
			Message: fmt.Sprintf("The managed identity name '%s' is invalid: use 3 to 128 letters, digits, '-' and '_', starting with a letter or digit.", clip(name))}
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	m, err := model.DecodeManagedIdentity(body)
	if err != nil {
		return err
	}
	if err := checkTracked(m.Location, m.Tags); err != nil {
		return err
	}
	var old *model.ManagedIdentity
	err = retryConflicts(func() error {
		var version int64
		var err error
		if old, version, err = s.loadIdentity(ctx, iid); err != nil {
			return err
		}
		m.ID, m.Name, m.Type = iid, name, model.UserAssignedIdentityType
		m.Properties = &model.ManagedIdentityProperties{TenantID: s.tenantID, PrincipalID: uuid.NewString(), ClientID: uuid.NewString()}
		var prev *model.SystemData
		if old != nil {
			if !model.SameLocation(old.Location, m.Location) {
				return &Error{Status: http.StatusBadRequest, Code: "InvalidResourceLocation", Target: "location",
					Message: fmt.Sprintf("The resource '%s' already exists in location '%s' in resource group '%s'. A resource with the same name cannot be created in location '%s'.", name, old.Location, id.ResourceGroup, clip(m.Location))}
			}
			m.Properties, prev = old.Properties, old.SystemData
		}
		m.SystemData = s.systemData(ctx, prev)
		return s.putResource(ctx, iid, model.UserAssignedIdentityType, id.ResourceGroupID(), version, m)
	})
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if old != nil {
		status = http.StatusOK
	}
	writeJSON(w, status, m)
	return nil
}

// patchIdentity replaces the tags.
func (s *Server) patchIdentity(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id, iid, err := s.identityRequest(r, true)
	if err != nil {
		return err
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	patch, err := model.DecodeManagedIdentity(body)
	if err != nil {
		return err
	}
	if err := model.ValidateTags(patch.Tags); err != nil {
		return err
	}
	var m *model.ManagedIdentity
	err = retryConflicts(func() error {
		var version int64
		var err error
		if m, version, err = s.loadIdentity(ctx, iid); err != nil {
			return err
		}
		if m == nil {
			return notFound(model.UserAssignedIdentityType, id.Names[0], id.ResourceGroup)
		}
		if patch.Tags != nil {
			m.Tags = patch.Tags
		}
		m.SystemData = s.systemData(ctx, m.SystemData)
		return s.putResource(ctx, iid, model.UserAssignedIdentityType, id.ResourceGroupID(), version, m)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}

func (s *Server) deleteIdentity(w http.ResponseWriter, r *http.Request) error {
	_, iid, err := s.identityRequest(r, false)
	if err != nil {
		return err
	}
	err = s.st.DeleteResource(r.Context(), iid, 0)
	if errors.Is(err, store.ErrNotFound) {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete managed identity %s: %w", iid, err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) listIdentities(w http.ResponseWriter, r *http.Request) error {
	return s.listStored(w, r, model.UserAssignedIdentityType)
}

// checkPoolIdentities resolves the user-assigned identities a pool names:
// each must exist, and the caller must be allowed to assign it (as ARM
// requires Microsoft.ManagedIdentity/userAssignedIdentities/assign/action),
// since code in the pool's sessions may act as it. It fills in their ids.
func (s *Server) checkPoolIdentities(ctx context.Context, p *model.SessionPool) error {
	if p.Identity == nil {
		return nil
	}
	for key := range p.Identity.UserAssignedIdentities {
		target := "identity.userAssignedIdentities['" + clipPath(key) + "']"
		iid, err := model.ParseResourceID(key)
		if err != nil || !eq(iid.ResourceType(), model.UserAssignedIdentityType) || iid.IsCollection() || iid.ResourceGroup == "" {
			return &Error{Status: http.StatusBadRequest, Code: "InvalidIdentity", Target: target,
				Message: fmt.Sprintf("'%s' is not the resource id of a Microsoft.ManagedIdentity/userAssignedIdentities resource.", clipPath(key))}
		}
		m, _, err := s.loadIdentity(ctx, IdentityID(iid.Subscription, iid.ResourceGroup, iid.Names[0]))
		if err != nil {
			return err
		}
		if m == nil {
			return &Error{Status: http.StatusBadRequest, Code: "FailedIdentityOperation", Target: target,
				Message: fmt.Sprintf("The user-assigned identity '%s' was not found; create it first.", clipPath(key))}
		}
		if err := s.authorize(ctx, m.ID, model.UserAssignedIdentityType+"/assign/action"); err != nil {
			return err
		}
		p.Identity.UserAssignedIdentities[key] = &model.UserAssignedIdentity{PrincipalID: m.Properties.PrincipalID, ClientID: m.Properties.ClientID}
	}
	return nil
}

// Principal kinds of managed identities.
const (
	KindManagedIdentity = "ManagedIdentity"
)

// Principal is a managed identity found by FindPrincipal.
type Principal struct {
	store.Principal
	// ResourceID is the identity's resource: the user-assigned identity,
	// or the session pool of a system-assigned one.
	ResourceID string
}

// FindPrincipal returns the principal with the object id: a stored one
// (service principal or user), else a managed identity (with its
// ResourceID); nil when there is none.
func FindPrincipal(ctx context.Context, st store.Store, objectID string) (*Principal, error) {
	p, err := st.GetPrincipal(ctx, objectID)
	if err == nil {
		return &Principal{Principal: *p}, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("get principal %s: %w", objectID, err)
	}
	mi, err := FindManagedIdentity(ctx, st, objectID)
	if err != nil || mi == nil || !strings.EqualFold(mi.ObjectID, objectID) {
		return nil, err
	}
	return mi, nil
}

// FindManagedIdentity returns the managed identity whose object id or
// client id is id, or nil: a user-assigned identity, or the
// system-assigned identity of a session pool.
func FindManagedIdentity(ctx context.Context, st store.Store, id string) (*Principal, error) {
	if id == "" {
		return nil, nil
	}
	var found *Principal
	err := eachManagedIdentity(ctx, st, func(mi Principal) bool {
		if strings.EqualFold(mi.ObjectID, id) || strings.EqualFold(mi.ClientID, id) {
			found = &mi
		}
		return found != nil
	})
	return found, err
}

// ManagedIdentities returns every managed identity: the user-assigned
// ones, then the session pools' system-assigned ones.
func ManagedIdentities(ctx context.Context, st store.Store) ([]Principal, error) {
	var all []Principal
	err := eachManagedIdentity(ctx, st, func(mi Principal) bool {
		all = append(all, mi)
		return false
	})
	return all, err
}

// eachManagedIdentity calls fn with each managed identity the stored
// resources define until it returns true.
func eachManagedIdentity(ctx context.Context, st store.Store, fn func(Principal) bool) error {
	done := false
	err := eachResource(ctx, st, model.UserAssignedIdentityType, func(res store.Resource) (bool, error) {
		var m model.ManagedIdentity
		if err := json.Unmarshal(res.Body, &m); err != nil || m.Properties == nil {
			return false, err
		}
		done = fn(Principal{Principal: store.Principal{ObjectID: m.Properties.PrincipalID, ClientID: m.Properties.ClientID,
			DisplayName: m.Name, Kind: KindManagedIdentity}, ResourceID: m.ID})
		return done, nil
	})
	if err != nil || done {
		return err
	}
	return eachResource(ctx, st, model.SessionPoolType, func(res store.Resource) (bool, error) {
		p, err := decodeStoredPool(res.Body)
		if err != nil || p.Identity == nil || p.Identity.PrincipalID == "" {
			return false, err
		}
		pid := p.Identity.PrincipalID
		return fn(Principal{Principal: store.Principal{ObjectID: pid, ClientID: model.SystemIdentityClientID(pid),
			DisplayName: p.Name, Kind: KindManagedIdentity}, ResourceID: p.ID}), nil
	})
}

// eachResource calls fn for every stored resource of typ until it returns
// true or an error.
func eachResource(ctx context.Context, st store.Store, typ string, fn func(store.Resource) (bool, error)) error {
	opts := store.ListOptions{Type: typ, Limit: 500}
	for {
		page, err := st.ListResources(ctx, opts)
		if err != nil {
			return fmt.Errorf("list %s: %w", typ, err)
		}
		for _, res := range page.Items {
			if done, err := fn(res); err != nil || done {
				return err
			}
		}
		if page.Next == "" {
			return nil
		}
		opts.After = page.Next
	}
}
