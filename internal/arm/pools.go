package arm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/uuid"

	"github.com/tidepool-dev/tidepool/internal/model"
	"github.com/tidepool-dev/tidepool/internal/store"
)

// PoolID returns the canonical id of a session pool.
func PoolID(sub, group, name string) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/%s/%s", sub, group, model.SessionPoolType, name)
}

// PoolEndpoint returns a pool's poolManagementEndpoint: the data-plane base URL.
func PoolEndpoint(publicURL, sub, group, name string) string {
	return fmt.Sprintf("%s/subscriptions/%s/resourceGroups/%s/sessionPools/%s", publicURL, sub, group, name)
}

// loadPool returns the stored pool, or nil and no error when there is none.
func (s *Server) loadPool(ctx context.Context, id string) (*model.SessionPool, int64, error) {
	res, err := s.st.GetResource(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("get session pool %s: %w", id, err)
	}
	p, err := decodeStoredPool(res.Body)
	if err != nil {
		return nil, 0, err
	}
	return p, res.Version, nil
}

func decodeStoredPool(body []byte) (*model.SessionPool, error) {
	var p model.SessionPool
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("decode stored session pool: %w", err)
	}
	if p.Properties == nil {
		p.Properties = &model.PoolProperties{}
	}
	return &p, nil
}

func poolVersion(r *http.Request) (model.APIVersion, error) {
	v, err := apiVersion(r, model.SessionPoolVersions)
	return model.APIVersion(v), err
}

// poolRequest is what every item route parses first.
func (s *Server) poolRequest(r *http.Request, forWrite bool) (model.APIVersion, *model.ResourceID, error) {
	v, err := poolVersion(r)
	if err != nil {
		return "", nil, err
	}
	id, err := model.ParseResourceID(r.URL.Path)
	if err != nil {
		return "", nil, unknownRoute(r)
	}
	if _, err := s.requireGroup(r.Context(), id, forWrite); err != nil {
		return "", nil, err
	}
	return v, id, nil
}

func (s *Server) getSessionPool(w http.ResponseWriter, r *http.Request) error {
	v, id, err := s.poolRequest(r, false)
	if err != nil {
		return err
	}
	p, _, err := s.loadPool(r.Context(), PoolID(id.Subscription, id.ResourceGroup, id.Names[0]))
	if err != nil {
		return err
	}
	if p == nil {
		return notFound(model.SessionPoolType, id.Names[0], id.ResourceGroup)
	}
	writeJSON(w, http.StatusOK, p.ForVersion(v))
	return nil
}

func (s *Server) putSessionPool(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	v, id, err := s.poolRequest(r, true)
	if err != nil {
		return err
	}
	name := id.Names[0]
	if err := model.ValidatePoolName(name, s.hyphens); err != nil {
		return err
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	pid := PoolID(id.Subscription, id.ResourceGroup, name)
	var p, old *model.SessionPool
	err = retryConflicts(func() (err error) {
		p, old, err = s.replacePool(ctx, v, id, body)
		return err
	})
	if err != nil {
		return err
	}
	op, err := s.startOperation(ctx, "put", pid)
	if err != nil {
		return err
	}
	s.rec.Enqueue(pid)
	w.Header().Set("Azure-AsyncOperation", s.operationURL(id.Subscription, "Microsoft.App", p.Location, "operationStatuses", op.ID, string(v)))
	status := http.StatusCreated
	if old != nil {
		status = http.StatusOK
	}
	writeJSON(w, status, p.ForVersion(v))
	return nil
}

// replacePool is the read-modify-write of a PUT: it stores the pool body
// describes in place of the stored one, if any, and returns both.
func (s *Server) replacePool(ctx context.Context, v model.APIVersion, id *model.ResourceID, body []byte) (p, old *model.SessionPool, err error) {
	name := id.Names[0]
	pid := PoolID(id.Subscription, id.ResourceGroup, name)
	if p, err = model.DecodeSessionPool(body); err != nil {
		return nil, nil, err
	}
	old, version, err := s.loadPool(ctx, pid)
	if err != nil {
		return nil, nil, err
	}
	if old != nil && old.Properties.ProvisioningState == model.StateDeleting {
		return nil, nil, beingDeleted(name)
	}
	if p.Properties != nil && p.Properties.ProvisioningState != "" && old != nil &&
		!strings.EqualFold(p.Properties.ProvisioningState, old.Properties.ProvisioningState) {
		return nil, nil, &Error{Status: http.StatusBadRequest, Code: "InvalidParameter", Target: "properties.provisioningState",
			Message: fmt.Sprintf("provisioningState is read-only: the request says '%s' but the pool is '%s'. Omit it.", clip(p.Properties.ProvisioningState), old.Properties.ProvisioningState)}
	}
	p.KeepUnversioned(old, v)
	p.Normalize()
	if err := p.Validate(); err != nil {
		return nil, nil, err
	}
	if old != nil {
		if !model.SameLocation(p.Location, old.Location) {
			return nil, nil, &Error{Status: http.StatusBadRequest, Code: "InvalidResourceLocation", Target: "location",
				Message: fmt.Sprintf("The resource '%s' already exists in location '%s' in resource group '%s'. A resource with the same name cannot be created in location '%s'.", name, old.Location, id.ResourceGroup, clip(p.Location))}
		}
		if !sameID(deref(p.Properties.EnvironmentID), deref(old.Properties.EnvironmentID)) {
			return nil, nil, &Error{Status: http.StatusBadRequest, Code: "InvalidParameter", Target: "properties.environmentId",
				Message: fmt.Sprintf("environmentId cannot be changed after the session pool '%s' is created.", name)}
		}
	}
	if err := s.checkEnvironment(ctx, id, p); err != nil {
		return nil, nil, err
	}
	s.fillPool(ctx, p, id, old)
	if err := s.checkPoolIdentities(ctx, p); err != nil {
		return nil, nil, err
	}
	if err := s.putResource(ctx, pid, model.SessionPoolType, id.ResourceGroupID(), version, p); err != nil {
		return nil, nil, err
	}
	return p, old, nil
}

func (s *Server) patchSessionPool(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	v, id, err := s.poolRequest(r, true)
	if err != nil {
		return err
	}
	name := id.Names[0]
	pid := PoolID(id.Subscription, id.ResourceGroup, name)
	var p *model.SessionPool
	var body []byte
	err = retryConflicts(func() error {
		old, version, err := s.loadPool(ctx, pid)
		if err != nil {
			return err
		}
		if old == nil {
			return notFound(model.SessionPoolType, name, id.ResourceGroup)
		}
		if old.Properties.ProvisioningState == model.StateDeleting {
			return beingDeleted(name)
		}
		if body == nil {
			if body, err = s.readBody(w, r); err != nil {
				return err
			}
		}
		if p, err = old.Patch(body); err != nil {
			return err
		}
		if err := p.Validate(); err != nil {
			return err
		}
		s.fillPool(ctx, p, id, old)
		if err := s.checkPoolIdentities(ctx, p); err != nil {
			return err
		}
		return s.putResource(ctx, pid, model.SessionPoolType, id.ResourceGroupID(), version, p)
	})
	if err != nil {
		return err
	}
	return s.acceptPoolOperation(w, r, "patch", id, p.Location, v)
}

func (s *Server) deleteSessionPool(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	v, err := poolVersion(r)
	if err != nil {
		return err
	}
	id, err := model.ParseResourceID(r.URL.Path)
	if err != nil {
		return unknownRoute(r)
	}
	if _, err := s.requireGroup(ctx, id, false); err != nil {
		return err
	}
	pid := PoolID(id.Subscription, id.ResourceGroup, id.Names[0])
	var p *model.SessionPool
	err = retryConflicts(func() error {
		var version int64
		var err error
		if p, version, err = s.loadPool(ctx, pid); err != nil || p == nil {
			return err
		}
		if p.Properties.ProvisioningState == model.StateDeleting {
			return nil
		}
		p.Properties.ProvisioningState = model.StateDeleting
		return s.putResource(ctx, pid, model.SessionPoolType, id.ResourceGroupID(), version, p)
	})
	if err != nil {
		return err
	}
	if p == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	s.dropMcpKey(r, pid)
	return s.acceptPoolOperation(w, r, "delete", id, p.Location, v)
}

// acceptPoolOperation records an operation of kind on the pool of id, hands
// the pool to the controller, and answers 202 with the Location and
// Azure-AsyncOperation URLs clients poll.
func (s *Server) acceptPoolOperation(w http.ResponseWriter, r *http.Request, kind string, id *model.ResourceID, location string, v model.APIVersion) error {
	pid := PoolID(id.Subscription, id.ResourceGroup, id.Names[0])
	op, err := s.startOperation(r.Context(), kind, pid)
	if err != nil {
		return err
	}
	s.rec.Enqueue(pid)
	w.Header().Set("Location", s.operationURL(id.Subscription, "Microsoft.App", location, "operationResults", op.ID, string(v)))
	w.Header().Set("Azure-AsyncOperation", s.operationURL(id.Subscription, "Microsoft.App", location, "operationStatuses", op.ID, string(v)))
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func (s *Server) listSessionPools(w http.ResponseWriter, r *http.Request) error {
	v, err := poolVersion(r)
	if err != nil {
		return err
	}
	opts, err := s.listScope(r, model.SessionPoolType)
	if err != nil {
		return err
	}
	return s.listPage(w, r, opts, func(res store.Resource) (any, error) {
		p, err := decodeStoredPool(res.Body)
		if err != nil {
			return nil, err
		}
		return p.ForVersion(v), nil
	})
}

func (s *Server) sessionPoolAction(w http.ResponseWriter, r *http.Request) error {
	_, id, err := s.poolRequest(r, false)
	if err != nil {
		return err
	}
	action := id.Types[1]
	if !eq(action, "fetchMcpServerCredentials") && !eq(action, "rotateMcpServerCredentials") {
		return unknownRoute(r)
	}
	p, _, err := s.loadPool(r.Context(), PoolID(id.Subscription, id.ResourceGroup, id.Names[0]))
	if err != nil {
		return err
	}
	if p == nil {
		return notFound(model.SessionPoolType, id.Names[0], id.ResourceGroup)
	}
	if m := p.Properties.McpServerSettings; m == nil || m.IsMcpServerEnabled == nil || !*m.IsMcpServerEnabled {
		return badRequest("SessionMCPServerNotEnabled", "The MCP server is not enabled on session pool '%s'; set properties.mcpServerSettings.isMcpServerEnabled to true.", p.Name)
	}
	return s.mcpCredentials(w, r, id, p, eq(action, "rotateMcpServerCredentials"))
}

// checkEnvironment requires a CustomContainer pool's environmentId to name an
// existing managed environment of the same subscription.
func (s *Server) checkEnvironment(ctx context.Context, id *model.ResourceID, p *model.SessionPool) error {
	env := deref(p.Properties.EnvironmentID)
	if p.Properties.ContainerType != model.ContainerTypeCustomContainer || env == "" {
		return nil
	}
	const target = "properties.environmentId"
	eid, err := model.ParseResourceID(env)
	if err != nil || !eq(eid.ResourceType(), model.ManagedEnvironmentType) || eid.IsCollection() {
		return &Error{Status: http.StatusBadRequest, Code: "InvalidParameter", Target: target,
			Message: fmt.Sprintf("environmentId '%s' is not the id of a Microsoft.App/managedEnvironments resource.", clipPath(env))}
	}
	if !eq(eid.Subscription, id.Subscription) {
		return &Error{Status: http.StatusBadRequest, Code: "InvalidParameter", Target: target,
			Message: "environmentId must name a managed environment in the session pool's subscription."}
	}
	_, err = s.st.GetResource(ctx, EnvironmentID(eid.Subscription, eid.ResourceGroup, eid.Names[0]))
	if errors.Is(err, store.ErrNotFound) {
		return &Error{Status: http.StatusBadRequest, Code: "ManagedEnvironmentNotFound", Target: target,
			Message: fmt.Sprintf("The managed environment '%s' was not found; create it first.", clipPath(env))}
	}
	if err != nil {
		return fmt.Errorf("get managed environment %s: %w", env, err)
	}
	return nil
}

// fillPool sets the fields the server owns: identity of the resource, the
// endpoints, provisioning state, system identity ids and systemData.
func (s *Server) fillPool(ctx context.Context, p *model.SessionPool, id *model.ResourceID, old *model.SessionPool) {
	name := id.Names[0]
	p.ID = PoolID(id.Subscription, id.ResourceGroup, name)
	p.Name = name
	p.Type = model.SessionPoolType
	pr := p.Properties
	pr.ProvisioningState = model.StateInProgress
	pr.ProvisioningError = nil
	pr.NodeCount = nil
	var prevTemplate *model.TemplateUpdateStatus
	if old != nil {
		pr.NodeCount = old.Properties.NodeCount
		prevTemplate = old.Properties.TemplateUpdateStatus
	}
	p.NoteTemplate(prevTemplate, s.now().UTC())
	pr.PoolManagementEndpoint = PoolEndpoint(s.publicURL, id.Subscription, id.ResourceGroup, name)
	if m := pr.McpServerSettings; m != nil {
		m.McpServerEndpoint = ""
		if m.IsMcpServerEnabled != nil && *m.IsMcpServerEnabled {
			m.McpServerEndpoint = pr.PoolManagementEndpoint + "/mcp"
		}
	}
	if ident := p.Identity; ident != nil {
		ident.PrincipalID, ident.TenantID = "", ""
		if strings.HasPrefix(ident.Type, model.IdentitySystemAssigned) {
			ident.TenantID = s.tenantID
			if old != nil && old.Identity != nil && old.Identity.PrincipalID != "" {
				ident.PrincipalID = old.Identity.PrincipalID
			} else {
				ident.PrincipalID = uuid.NewString()
			}
		}
		for k := range ident.UserAssignedIdentities {
			ident.UserAssignedIdentities[k] = &model.UserAssignedIdentity{}
		}
	}
	var prev *model.SystemData
	if old != nil {
		prev = old.SystemData
	}
	p.SystemData = s.systemData(ctx, prev)
}

func beingDeleted(name string) error {
	return errorf(http.StatusConflict, "Conflict", "The session pool '%s' is being deleted; wait for the deletion to finish.", name)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
