package arm

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/tidepool-dev/tidepool/internal/auth"
	"github.com/tidepool-dev/tidepool/internal/rbac"
)

// Authorizer answers access checks; *rbac.Authorizer implements it.
type Authorizer interface {
	// Allowed reports whether the principal may perform action (a data
	// action when data is true) at scope.
	Allowed(ctx context.Context, principalID, scope, action string, data bool) (bool, error)
	// Related reports whether the principal holds any assignment at, above
	// or below scope.
	Related(ctx context.Context, principalID, scope string) (bool, error)
	// Invalidate tells the authorizer that assignments changed.
	Invalidate()
}

// access says what a route asks of its caller.
type access struct {
	// scope is where the check applies: the resource for item routes, the
	// parent for lists.
	scope string
	// typ is the resource type whose actions guard the route: typ+"/read"
	// for GET and HEAD, "/write" for PUT and PATCH, "/delete" for DELETE.
	typ string
	// action, when set, is the whole action a POST needs.
	action string
	// list marks a collection: a caller who may not read at scope still
	// lists, and sees only the items it may read, when scope is a
	// subscription (as ARM filters subscription-wide lists).
	list bool
	// open routes need only an authenticated caller; their handlers check
	// anything more themselves.
	open bool
}

type listFilterKey struct{}

// check authorizes r for a route. For a filtered list it returns the
// request to serve, which carries the filter listPage applies.
func (s *Server) check(r *http.Request, a access) (*http.Request, error) {
	if a.open {
		return r, nil
	}
	action := a.action
	if action == "" {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			action = a.typ + "/read"
		case http.MethodPut, http.MethodPatch:
			action = a.typ + "/write"
		case http.MethodDelete:
			action = a.typ + "/delete"
		default:
			return r, nil // methods answers 405
		}
	}
	err := s.authorize(r.Context(), a.scope, action)
	if err == nil || !a.list || !isSubscriptionScope(a.scope) {
		return r, err
	}
	if ok, rerr := s.related(r.Context(), a.scope); rerr != nil {
		return r, rerr
	} else if !ok {
		return r, err
	}
	return r.WithContext(context.WithValue(r.Context(), listFilterKey{}, action)), nil
}

// listFilter returns the read action a list must check per item, or "".
func listFilter(ctx context.Context) string {
	a, _ := ctx.Value(listFilterKey{}).(string)
	return a
}

func isSubscriptionScope(scope string) bool {
	segs := splitPath(scope)
	return len(segs) == 2 && eq(segs[0], "subscriptions")
}

// authorize returns nil if the caller may perform action at scope, and a 403
// AuthorizationFailed naming the caller, the action and the scope if not.
func (s *Server) authorize(ctx context.Context, scope, action string) error {
	c := claimsFrom(ctx)
	if c == nil {
		return errorf(http.StatusUnauthorized, "AuthenticationFailed", "Authentication failed: the request carries no verified token.")
	}
	ok, err := s.authz.Allowed(ctx, c.ObjectID, scope, action, false)
	if err != nil {
		return fmt.Errorf("authorize %s at %s: %w", action, scope, err)
	}
	if !ok {
		return Forbidden(c, action, scope)
	}
	return nil
}

// related reports whether the caller holds any assignment at, above or
// below scope.
func (s *Server) related(ctx context.Context, scope string) (bool, error) {
	c := claimsFrom(ctx)
	if c == nil {
		return false, nil
	}
	ok, err := s.authz.Related(ctx, c.ObjectID, scope)
	if err != nil {
		return false, fmt.Errorf("authorize at %s: %w", scope, err)
	}
	return ok, nil
}

// Forbidden is ARM's 403 for a caller without the action at scope, in
// ARM's words.
func Forbidden(c *auth.Claims, action, scope string) *Error {
	if c == nil {
		c = &auth.Claims{}
	}
	client := c.AppID
	if client == "" {
		client = c.ObjectID
	}
	return errorf(http.StatusForbidden, "AuthorizationFailed",
		"The client '%s' with object id '%s' does not have authorization to perform action '%s' over scope '%s' or the scope is invalid. If access was recently granted, please refresh your credentials.",
		client, c.ObjectID, action, rbac.CleanScope(scope))
}

// cleanPath is the request path as a scope: no empty segments, no
// trailing slash.
func cleanPath(r *http.Request) string {
	return rbac.CleanScope(r.URL.Path)
}

// parentScope drops the last n segments of a clean scope.
func parentScope(scope string, n int) string {
	segs := splitPath(scope)
	if n > len(segs) {
		n = len(segs)
	}
	return rbac.CleanScope(strings.Join(segs[:len(segs)-n], "/"))
}
