package arm

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/tidepool-dev/tidepool/internal/model"
	"github.com/tidepool-dev/tidepool/internal/store"
)

var environmentNameRule = regexp.MustCompile(`^[a-z][-a-z0-9]*[a-z0-9]$`)

// EnvironmentID returns the canonical id of a managed environment.
func EnvironmentID(sub, group, name string) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/%s/%s", sub, group, model.ManagedEnvironmentType, name)
}

func (s *Server) environmentRequest(r *http.Request, forWrite bool) (*model.ResourceID, string, error) {
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
	return id, EnvironmentID(id.Subscription, id.ResourceGroup, id.Names[0]), nil
}

func (s *Server) getManagedEnvironment(w http.ResponseWriter, r *http.Request) error {
	id, eid, err := s.environmentRequest(r, false)
	if err != nil {
		return err
	}
	res, err := s.st.GetResource(r.Context(), eid)
	if errors.Is(err, store.ErrNotFound) {
		return notFound(model.ManagedEnvironmentType, id.Names[0], id.ResourceGroup)
	}
	if err != nil {
		return fmt.Errorf("get managed environment %s: %w", eid, err)
	}
	writeJSON(w, http.StatusOK, json.RawMessage(res.Body))
	return nil
}

// putManagedEnvironment stores a minimal environment: it exists so that
// CustomContainer pools can name it. It is ready at once.
func (s *Server) putManagedEnvironment(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id, eid, err := s.environmentRequest(r, true)
	if err != nil {
		return err
	}
	name := id.Names[0]
	if len(name) < 2 || len(name) > 60 || !environmentNameRule.MatchString(name) {
		return &Error{Status: http.StatusBadRequest, Code: "InvalidResourceName", Target: "name",
			Message: fmt.Sprintf("The managed environment name '%s' is invalid: use 2 to 60 lower-case letters, digits and hyphens, starting with a letter and ending with a letter or digit.", clip(name))}
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	env, err := model.DecodeManagedEnvironment(body)
	if err != nil {
		return err
	}
	if err := checkTracked(env.Location, env.Tags); err != nil {
		return err
	}
	var old model.ManagedEnvironment
	var version int64
	res, err := s.st.GetResource(ctx, eid)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return fmt.Errorf("get managed environment %s: %w", eid, err)
	default:
		if err := json.Unmarshal(res.Body, &old); err != nil {
			return fmt.Errorf("decode managed environment %s: %w", eid, err)
		}
		version = res.Version
		if !model.SameLocation(old.Location, env.Location) {
			return &Error{Status: http.StatusBadRequest, Code: "InvalidResourceLocation", Target: "location",
				Message: fmt.Sprintf("The resource '%s' already exists in location '%s' in resource group '%s'. A resource with the same name cannot be created in location '%s'.", name, old.Location, id.ResourceGroup, clip(env.Location))}
		}
	}
	env.ID, env.Name, env.Type = eid, name, model.ManagedEnvironmentType
	if env.Properties == nil {
		env.Properties = map[string]any{}
	}
	env.Properties["provisioningState"] = model.StateSucceeded
	env.Properties["defaultDomain"] = strings.ToLower(name) + "." + model.NormalizeLocation(env.Location) + ".tidepool.local"
	if _, ok := env.Properties["workloadProfiles"]; !ok {
		env.Properties["workloadProfiles"] = []map[string]string{{"name": "Consumption", "workloadProfileType": "Consumption"}}
	}
	env.SystemData = s.systemData(ctx, old.SystemData)
	if err := s.putResource(ctx, eid, model.ManagedEnvironmentType, id.ResourceGroupID(), version, env); err != nil {
		return err
	}
	status := http.StatusCreated
	if version != 0 {
		status = http.StatusOK
	}
	writeJSON(w, status, env)
	return nil
}

// deleteManagedEnvironment refuses while a session pool names the environment.
func (s *Server) deleteManagedEnvironment(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id, eid, err := s.environmentRequest(r, false)
	if err != nil {
		return err
	}
	if _, err := s.st.GetResource(ctx, eid); errors.Is(err, store.ErrNotFound) {
		w.WriteHeader(http.StatusNoContent)
		return nil
	} else if err != nil {
		return fmt.Errorf("get managed environment %s: %w", eid, err)
	}
	pools, err := s.st.ListResources(ctx, store.ListOptions{Type: model.SessionPoolType, Scope: id.SubscriptionID(), Recursive: true})
	if err != nil {
		return fmt.Errorf("list session pools: %w", err)
	}
	for _, res := range pools.Items {
		p, err := decodeStoredPool(res.Body)
		if err != nil {
			return err
		}
		if sameID(deref(p.Properties.EnvironmentID), eid) {
			return errorf(http.StatusConflict, "ManagedEnvironmentInUse", "The managed environment '%s' is used by session pool '%s'; delete the pool first.", id.Names[0], p.Name)
		}
	}
	if err := s.st.DeleteResource(ctx, eid, 0); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("delete managed environment %s: %w", eid, err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) listManagedEnvironments(w http.ResponseWriter, r *http.Request) error {
	return s.listStored(w, r, model.ManagedEnvironmentType)
}

// listStored answers a list of resources of typ that are served as
// stored, at any api-version.
func (s *Server) listStored(w http.ResponseWriter, r *http.Request, typ string) error {
	if _, err := apiVersion(r, nil); err != nil {
		return err
	}
	opts, err := s.listScope(r, typ)
	if err != nil {
		return err
	}
	return s.listPage(w, r, opts, func(res store.Resource) (any, error) {
		return json.RawMessage(res.Body), nil
	})
}

// sameID reports whether two resource ids name the same resource: without
// case, and ignoring the empty segments and trailing slash that
// model.ParseResourceID ignores.
func sameID(a, b string) bool {
	ia, erra := model.ParseResourceID(a)
	ib, errb := model.ParseResourceID(b)
	if erra != nil || errb != nil {
		return strings.EqualFold(a, b)
	}
	return strings.EqualFold(ia.String(), ib.String())
}
