package arm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tidepool-dev/tidepool/internal/auth"
	"github.com/tidepool-dev/tidepool/internal/model"
	"github.com/tidepool-dev/tidepool/internal/rbac"
	"github.com/tidepool-dev/tidepool/internal/store"
)

// Role definitions and role assignments (Microsoft.Authorization) are
// extension resources: they hang below any scope, as
// {scope}/providers/Microsoft.Authorization/roleAssignments/{guid}.

const roleDefinitionType = "Microsoft.Authorization/roleDefinitions"

// authorizationSegment returns the index of the last "providers" segment
// followed by "Microsoft.Authorization", or -1.
func authorizationSegment(segs []string) int {
	for k := len(segs) - 2; k >= 0; k-- {
		if eq(segs[k], "providers") && eq(segs[k+1], "Microsoft.Authorization") {
			return k
		}
	}
	return -1
}

func (s *Server) routeAuthorization(w http.ResponseWriter, r *http.Request, scopeSegs, rest []string) error {
	scope := rbac.CleanScope(strings.Join(scopeSegs, "/"))
	if scope != "/" {
		id, err := model.ParseResourceID(scope)
		if err != nil || id.IsCollection() {
			return badRequest("InvalidScope", "The scope '%s' is not valid: use '/', a subscription, a resource group or a resource id.", clipPath(scope))
		}
	}
	switch {
	case len(rest) == 1 && eq(rest[0], "roleAssignments"):
		// listRoleAssignments checks access: a caller may always list its own.
		return s.methods(w, r, access{open: true}, handlers{get: func(w http.ResponseWriter, r *http.Request) error {
			return s.listRoleAssignments(w, r, scope)
		}})
	case len(rest) == 2 && eq(rest[0], "roleAssignments"):
		name := rest[1]
		return s.methods(w, r, access{scope: scope, typ: rbac.AssignmentType}, handlers{
			get: func(w http.ResponseWriter, r *http.Request) error { return s.getRoleAssignment(w, r, scope, name) },
			put: func(w http.ResponseWriter, r *http.Request) error { return s.putRoleAssignment(w, r, scope, name) },
			del: func(w http.ResponseWriter, r *http.Request) error { return s.deleteRoleAssignment(w, r, scope, name) },
		})
	case len(rest) == 1 && eq(rest[0], "roleDefinitions"):
		// The built-in definitions are public knowledge: any caller reads them.
		return s.methods(w, r, access{open: true}, handlers{get: func(w http.ResponseWriter, r *http.Request) error {
			return s.listRoleDefinitions(w, r, scope)
		}})
	case len(rest) == 2 && eq(rest[0], "roleDefinitions"):
		id := rest[1]
		return s.methods(w, r, access{open: true}, handlers{get: func(w http.ResponseWriter, r *http.Request) error {
			return s.getRoleDefinition(w, r, scope, id)
		}})
	}
	return unknownRoute(r)
}

// roleDefinitionID is a role's resource id as seen from scope: below a
// subscription it names the subscription, as ARM writes it.
func roleDefinitionID(scope, roleID string) string {
	prefix := ""
	if segs := splitPath(scope); len(segs) >= 2 && eq(segs[0], "subscriptions") {
		prefix = "/subscriptions/" + segs[1]
	}
	return prefix + "/providers/" + roleDefinitionType + "/" + roleID
}

type roleDefinitionJSON struct {
	ID         string                   `json:"id"`
	Name       string                   `json:"name"`
	Type       string                   `json:"type"`
	Properties roleDefinitionProperties `json:"properties"`
}

type roleDefinitionProperties struct {
	RoleName         string           `json:"roleName"`
	Type             string           `json:"type"`
	Description      string           `json:"description"`
	AssignableScopes []string         `json:"assignableScopes"`
	Permissions      []rolePermission `json:"permissions"`
	CreatedOn        string           `json:"createdOn"`
	UpdatedOn        string           `json:"updatedOn"`
	CreatedBy        *string          `json:"createdBy"`
	UpdatedBy        *string          `json:"updatedBy"`
}

type rolePermission struct {
	Actions        []string `json:"actions"`
	NotActions     []string `json:"notActions"`
	DataActions    []string `json:"dataActions"`
	NotDataActions []string `json:"notDataActions"`
}

func renderRole(scope string, r *rbac.Role) roleDefinitionJSON {
	orEmpty := func(s []string) []string {
		if s == nil {
			return []string{}
		}
		return s
	}
	return roleDefinitionJSON{
		ID: roleDefinitionID(scope, r.ID), Name: r.ID, Type: roleDefinitionType,
		Properties: roleDefinitionProperties{
			RoleName: r.Name, Type: "BuiltInRole", Description: r.Description, AssignableScopes: []string{"/"},
			Permissions: []rolePermission{{
				Actions: orEmpty(r.Actions), NotActions: orEmpty(r.NotActions),
				DataActions: orEmpty(r.DataActions), NotDataActions: orEmpty(r.NotDataActions),
			}},
			CreatedOn: "2015-02-02T21:55:09.8806423Z", UpdatedOn: "2025-01-01T00:00:00.0000000Z",
		},
	}
}

func (s *Server) getRoleDefinition(w http.ResponseWriter, r *http.Request, scope, id string) error {
	if _, err := apiVersion(r, nil); err != nil {
		return err
	}
	role, ok := rbac.RoleByID(id)
	if !ok {
		return errorf(http.StatusNotFound, "RoleDefinitionDoesNotExist", "The specified role definition with ID '%s' does not exist.", clip(id))
	}
	writeJSON(w, http.StatusOK, renderRole(scope, role))
	return nil
}

// roleNameFilter matches the filters az role definition list sends.
var (
	roleNameFilter = regexp.MustCompile(`(?i)^\s*roleName\s+eq\s+'([^']*)'\s*$`)
	roleTypeFilter = regexp.MustCompile(`(?i)^\s*type\s+eq\s+'([^']*)'\s*$`)
)

func (s *Server) listRoleDefinitions(w http.ResponseWriter, r *http.Request, scope string) error {
	if _, err := apiVersion(r, nil); err != nil {
		return err
	}
	keep := func(*rbac.Role) bool { return true }
	if f := r.URL.Query().Get("$filter"); f != "" {
		switch {
		case roleNameFilter.MatchString(f):
			name := roleNameFilter.FindStringSubmatch(f)[1]
			keep = func(role *rbac.Role) bool { return strings.EqualFold(role.Name, name) }
		case roleTypeFilter.MatchString(f):
			typ := roleTypeFilter.FindStringSubmatch(f)[1]
			keep = func(*rbac.Role) bool { return strings.EqualFold(typ, "BuiltInRole") }
		default:
			return badRequest("InvalidFilter", "The $filter '%s' is not supported: use roleName eq '{name}' or type eq 'BuiltInRole'.", clip(f))
		}
	}
	out := []roleDefinitionJSON{}
	for i := range rbac.BuiltIn {
		if keep(&rbac.BuiltIn[i]) {
			out = append(out, renderRole(scope, &rbac.BuiltIn[i]))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}

type roleAssignmentJSON struct {
	ID         string                   `json:"id"`
	Name       string                   `json:"name"`
	Type       string                   `json:"type"`
	Properties roleAssignmentProperties `json:"properties"`
}

type roleAssignmentProperties struct {
	RoleDefinitionID string  `json:"roleDefinitionId"`
	PrincipalID      string  `json:"principalId"`
	PrincipalType    string  `json:"principalType,omitempty"`
	Scope            string  `json:"scope"`
	Description      *string `json:"description"`
	Condition        *string `json:"condition"`
	ConditionVersion *string `json:"conditionVersion"`
	CreatedOn        string  `json:"createdOn,omitempty"`
	UpdatedOn        string  `json:"updatedOn,omitempty"`
	CreatedBy        string  `json:"createdBy,omitempty"`
	UpdatedBy        string  `json:"updatedBy,omitempty"`
}

func renderAssignment(a *rbac.Assignment) roleAssignmentJSON {
	var desc *string
	if a.Description != "" {
		desc = &a.Description
	}
	when := a.Created.UTC().Format(time.RFC3339Nano)
	return roleAssignmentJSON{
		ID: a.ID, Name: a.Name, Type: rbac.AssignmentType,
		Properties: roleAssignmentProperties{
			RoleDefinitionID: roleDefinitionID(a.Scope, a.RoleID), PrincipalID: a.PrincipalID,
			PrincipalType: a.Type, Scope: a.Scope, Description: desc,
			CreatedOn: when, UpdatedOn: when, CreatedBy: a.CreatedBy, UpdatedBy: a.CreatedBy,
		},
	}
}

func (s *Server) loadAssignment(ctx context.Context, id string) (*rbac.Assignment, error) {
	res, err := s.st.GetResource(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get role assignment %s: %w", id, err)
	}
	var a rbac.Assignment
	if err := json.Unmarshal(res.Body, &a); err != nil {
		return nil, fmt.Errorf("decode role assignment %s: %w", id, err)
	}
	return &a, nil
}

func assignmentNotFound(name string) *Error {
	return errorf(http.StatusNotFound, "RoleAssignmentNotFound", "The role assignment '%s' is not found.", clip(name))
}

func (s *Server) getRoleAssignment(w http.ResponseWriter, r *http.Request, scope, name string) error {
	if _, err := apiVersion(r, nil); err != nil {
		return err
	}
	a, err := s.loadAssignment(r.Context(), rbac.AssignmentID(scope, name))
	if err != nil {
		return err
	}
	if a == nil {
		return assignmentNotFound(name)
	}
	writeJSON(w, http.StatusOK, renderAssignment(a))
	return nil
}

type roleAssignmentRequest struct {
	Properties *struct {
		RoleDefinitionID string `json:"roleDefinitionId"`
		PrincipalID      string `json:"principalId"`
		PrincipalType    string `json:"principalType"`
		Description      string `json:"description"`
		Condition        string `json:"condition"`
	} `json:"properties"`
}

func (s *Server) putRoleAssignment(w http.ResponseWriter, r *http.Request, scope, name string) error {
	ctx := r.Context()
	if _, err := apiVersion(r, nil); err != nil {
		return err
	}
	if _, err := uuid.Parse(name); err != nil || len(name) != 36 {
		return badRequest("InvalidRoleAssignmentId", "The role assignment ID '%s' is not valid. The role assignment ID must be a GUID.", clip(name))
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	var req roleAssignmentRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return badRequest("InvalidRequestContent", "The request content was invalid and could not be deserialized: %v.", err)
	}
	if req.Properties == nil {
		return &Error{Status: http.StatusBadRequest, Code: "InvalidRequestContent", Target: "properties", Message: "The request must have properties with roleDefinitionId and principalId."}
	}
	in := req.Properties
	if in.Condition != "" {
		return errorf(http.StatusNotImplemented, "NotImplemented", "Role assignment conditions are not supported by this server.")
	}
	role, ok := rbac.RoleByID(in.RoleDefinitionID)
	if in.RoleDefinitionID == "" || !ok {
		return &Error{Status: http.StatusBadRequest, Code: "RoleDefinitionDoesNotExist", Target: "properties.roleDefinitionId",
			Message: fmt.Sprintf("The specified role definition with ID '%s' does not exist.", clipPath(in.RoleDefinitionID))}
	}
	if _, err := uuid.Parse(in.PrincipalID); err != nil {
		return &Error{Status: http.StatusBadRequest, Code: "InvalidPrincipalId", Target: "properties.principalId",
			Message: fmt.Sprintf("The principal ID '%s' is not valid. Principal ID must be a GUID.", clip(in.PrincipalID))}
	}
	if err := s.requireScope(ctx, scope); err != nil {
		return err
	}
	ptype, err := s.principalType(ctx, in.PrincipalID)
	if err != nil {
		return err
	}
	if ptype == "" {
		return &Error{Status: http.StatusBadRequest, Code: "PrincipalNotFound", Target: "properties.principalId",
			Message: fmt.Sprintf("Principal %s does not exist in the directory %s. Check that you have the correct principal ID.", in.PrincipalID, s.tenantID)}
	}
	id := rbac.AssignmentID(scope, name)
	a := &rbac.Assignment{
		ID: id, Name: strings.ToLower(name), Scope: scope, RoleID: role.ID, PrincipalID: strings.ToLower(in.PrincipalID),
		Type: ptype, Description: in.Description, Created: s.now().UTC(),
	}
	if c := claimsFrom(ctx); c != nil {
		a.CreatedBy = c.ObjectID
	}
	existing, err := s.assignmentsAt(ctx, scope)
	if err != nil {
		return err
	}
	for _, e := range existing {
		same := strings.EqualFold(e.PrincipalID, a.PrincipalID) && strings.EqualFold(e.RoleID, a.RoleID)
		switch {
		case strings.EqualFold(e.ID, id) && same:
			writeJSON(w, http.StatusCreated, renderAssignment(&e)) // ARM answers a repeated PUT alike
			return nil
		case strings.EqualFold(e.ID, id):
			return badRequest("RoleAssignmentUpdateNotPermitted", "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.")
		case same:
			return errorf(http.StatusConflict, "RoleAssignmentExists", "The role assignment already exists.")
		}
	}
	if err := s.putResource(ctx, id, rbac.AssignmentType, scope, 0, a); err != nil {
		return err
	}
	s.authz.Invalidate()
	writeJSON(w, http.StatusCreated, renderAssignment(a))
	return nil
}

// requireScope checks that scope names something that exists.
func (s *Server) requireScope(ctx context.Context, scope string) error {
	if scope == "/" {
		return nil
	}
	id, err := model.ParseResourceID(scope)
	if err != nil {
		return badRequest("InvalidScope", "The scope '%s' is not valid.", clipPath(scope))
	}
	if id.ResourceGroup == "" && id.Namespace == "" {
		return s.requireSubscription(ctx, id.Subscription)
	}
	if _, err := s.requireGroup(ctx, id, false); err != nil || id.Namespace == "" {
		return err
	}
	if _, err := s.st.GetResource(ctx, scope); errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, "ResourceNotFound", "The Resource '%s' was not found.", clipPath(scope))
	} else if err != nil {
		return fmt.Errorf("get %s: %w", scope, err)
	}
	return nil
}

// assignmentsAt returns the assignments exactly at scope.
func (s *Server) assignmentsAt(ctx context.Context, scope string) ([]rbac.Assignment, error) {
	all, err := rbac.ListAssignments(ctx, s.st)
	if err != nil {
		return nil, err
	}
	var out []rbac.Assignment
	for _, a := range all {
		if strings.EqualFold(rbac.CleanScope(a.Scope), scope) {
			out = append(out, a)
		}
	}
	return out, nil
}

func (s *Server) deleteRoleAssignment(w http.ResponseWriter, r *http.Request, scope, name string) error {
	ctx := r.Context()
	if _, err := apiVersion(r, nil); err != nil {
		return err
	}
	id := rbac.AssignmentID(scope, name)
	a, err := s.loadAssignment(ctx, id)
	if err != nil {
		return err
	}
	if a == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err := s.st.DeleteResource(ctx, id, 0); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("delete role assignment %s: %w", id, err)
	}
	s.authz.Invalidate()
	writeJSON(w, http.StatusOK, renderAssignment(a))
	return nil
}

// The filters of a role assignment list, as az role assignment list sends
// them, joined by "and".
var (
	atScopeFilter    = regexp.MustCompile(`(?i)^atScope\(\)$`)
	principalFilter  = regexp.MustCompile(`(?i)^principalId\s+eq\s+'([^']*)'$`)
	assignedToFilter = regexp.MustCompile(`(?i)^assignedTo\('([^']*)'\)$`)
	andSplit         = regexp.MustCompile(`(?i)\s+and\s+`)
)

// listRoleAssignments lists the assignments that apply at scope (at it
// and above) and, unless $filter says atScope(), those below it.
// $filter=principalId eq '{id}' or assignedTo('{id}') narrows to one
// principal. A caller without read access at scope may still list its
// own assignments.
func (s *Server) listRoleAssignments(w http.ResponseWriter, r *http.Request, scope string) error {
	ctx := r.Context()
	if _, err := apiVersion(r, nil); err != nil {
		return err
	}
	atScope, principal := false, ""
	if f := strings.TrimSpace(r.URL.Query().Get("$filter")); f != "" {
		for term := range strings.SplitSeq(andSplit.ReplaceAllString(f, "\x00"), "\x00") {
			term = strings.TrimSpace(term)
			switch {
			case atScopeFilter.MatchString(term):
				atScope = true
			case principalFilter.MatchString(term):
				principal = principalFilter.FindStringSubmatch(term)[1]
			case assignedToFilter.MatchString(term):
				principal = assignedToFilter.FindStringSubmatch(term)[1]
			default:
				return badRequest("InvalidFilter", "The $filter term '%s' is not supported: use atScope(), principalId eq '{id}' or assignedTo('{id}'), joined by 'and'.", clip(term))
			}
		}
	}
	if err := s.authorize(ctx, scope, rbac.AssignmentType+"/read"); err != nil {
		c := claimsFrom(ctx)
		if c == nil || principal == "" || !strings.EqualFold(principal, c.ObjectID) {
			return err
		}
	}
	if err := s.requireScope(ctx, scope); err != nil {
		return err
	}
	all, err := rbac.ListAssignments(ctx, s.st)
	if err != nil {
		return err
	}
	out := []roleAssignmentJSON{}
	for i := range all {
		a := &all[i]
		as := rbac.CleanScope(a.Scope)
		applies := rbac.Covers(as, scope) || (!atScope && rbac.Covers(scope, as))
		if applies && (principal == "" || strings.EqualFold(principal, a.PrincipalID)) {
			out = append(out, renderAssignment(a))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": out})
	return nil
}

// principalType returns the principalType of a role assignment to the
// principal ("User", "ServicePrincipal"), or "" when there is none.
// Managed identities are service principals, as in Entra.
func (s *Server) principalType(ctx context.Context, objectID string) (string, error) {
	p, err := FindPrincipal(ctx, s.st, objectID)
	switch {
	case err != nil || p == nil:
		return "", err
	case p.Kind == auth.KindUser:
		return "User", nil
	}
	return "ServicePrincipal", nil
}
