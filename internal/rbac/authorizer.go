package rbac

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/tidepool-dev/tidepool/internal/store"
)

// AssignmentType is the store type of role assignments.
const AssignmentType = "Microsoft.Authorization/roleAssignments"

// Assignment grants a principal a role at a scope. It is stored as the
// body of a store.Resource of AssignmentType whose Scope is the
// assignment's scope, so that deleting a resource group finds the
// assignments inside it.
type Assignment struct {
	ID          string    `json:"id"`   // {scope}/providers/Microsoft.Authorization/roleAssignments/{name}
	Name        string    `json:"name"` // a GUID
	Scope       string    `json:"scope"`
	RoleID      string    `json:"roleId"` // the role definition's GUID
	PrincipalID string    `json:"principalId"`
	Type        string    `json:"principalType"`
	Description string    `json:"description,omitempty"`
	CreatedBy   string    `json:"createdBy,omitempty"`
	Created     time.Time `json:"created"`
}

// Lister is the part of the store the Authorizer reads.
type Lister interface {
	ListResources(ctx context.Context, opts store.ListOptions) (store.ListResult, error)
}

// ListAssignments returns every role assignment in st.
func ListAssignments(ctx context.Context, st Lister) ([]Assignment, error) {
	var out []Assignment
	opts := store.ListOptions{Type: AssignmentType, Limit: 500}
	for {
		page, err := st.ListResources(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list role assignments: %w", err)
		}
		for _, res := range page.Items {
			var a Assignment
			if err := json.Unmarshal(res.Body, &a); err != nil {
				return nil, fmt.Errorf("decode role assignment %s: %w", res.ID, err)
			}
			out = append(out, a)
		}
		if page.Next == "" {
			return out, nil
		}
		opts.After = page.Next
	}
}

// maxAge bounds how stale the Authorizer's view may be when it is not
// told of a change (another server process wrote, or a resource group's
// deletion took assignments with it).
const maxAge = 2 * time.Second

// Authorizer answers access checks from an in-memory copy of the role
// assignments, loaded from the store when older than maxAge or after
// Invalidate. A check costs a map lookup and a few comparisons, so the data
// plane can make one per request.
type Authorizer struct {
	st  Lister
	now func() time.Time

	mu       sync.Mutex
	byPrin   map[string][]Assignment // by lower-cased principal id, scopes clean
	loaded   time.Time
	gen      uint64 // bumped by Invalidate
	loadedAt uint64 // gen of the loaded copy
}

// NewAuthorizer returns an Authorizer reading assignments from st.
func NewAuthorizer(st Lister) *Authorizer {
	return &Authorizer{st: st, now: time.Now}
}

// Invalidate makes the next check reload the assignments. Call it after
// writing or deleting one.
func (a *Authorizer) Invalidate() {
	a.mu.Lock()
	a.gen++
	a.mu.Unlock()
}

func (a *Authorizer) assignments(ctx context.Context, principalID string) ([]Assignment, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	if a.byPrin == nil || a.loadedAt != a.gen || now.Sub(a.loaded) > maxAge {
		gen := a.gen
		all, err := ListAssignments(ctx, a.st)
		if err != nil {
			return nil, err
		}
		by := make(map[string][]Assignment, len(all))
		for _, as := range all {
			as.Scope = CleanScope(as.Scope)
			k := strings.ToLower(as.PrincipalID)
			by[k] = append(by[k], as)
		}
		a.byPrin, a.loaded, a.loadedAt = by, now, gen
	}
	return a.byPrin[strings.ToLower(principalID)], nil
}

// Allowed reports whether principalID may perform action (a data action
// when data is true) at scope, through an assignment at scope or above it.
func (a *Authorizer) Allowed(ctx context.Context, principalID, scope, action string, data bool) (bool, error) {
	if principalID == "" {
		return false, nil
	}
	list, err := a.assignments(ctx, principalID)
	if err != nil {
		return false, err
	}
	scope = CleanScope(scope)
	for _, as := range list {
		if !Covers(as.Scope, scope) {
			continue
		}
		if r, ok := RoleByID(as.RoleID); ok && r.Allows(action, data) {
			return true, nil
		}
	}
	return false, nil
}

// Related reports whether principalID holds any assignment at, above or
// below scope: enough to see that the scope exists (a subscription the
// caller has access to somewhere inside, say).
func (a *Authorizer) Related(ctx context.Context, principalID, scope string) (bool, error) {
	if principalID == "" {
		return false, nil
	}
	list, err := a.assignments(ctx, principalID)
	if err != nil {
		return false, err
	}
	scope = CleanScope(scope)
	for _, as := range list {
		if Covers(as.Scope, scope) || Covers(scope, as.Scope) {
			return true, nil
		}
	}
	return false, nil
}

// Putter is the part of the store Assign writes to.
type Putter interface {
	PutResource(ctx context.Context, r *store.Resource) error
}

// Assign stores a new assignment. It returns an error wrapping
// store.ErrExists if one with the same id exists.
func Assign(ctx context.Context, st Putter, a Assignment) error {
	a.Scope = CleanScope(a.Scope)
	body, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode role assignment: %w", err)
	}
	if err := st.PutResource(ctx, &store.Resource{ID: a.ID, Type: AssignmentType, Scope: a.Scope, Body: body}); err != nil {
		return fmt.Errorf("store role assignment %s: %w", a.ID, err)
	}
	return nil
}

// AssignmentID is the resource id of the assignment name at scope.
func AssignmentID(scope, name string) string {
	scope = CleanScope(scope)
	if scope == "/" {
		scope = ""
	}
	return scope + "/providers/" + AssignmentType + "/" + name
}
