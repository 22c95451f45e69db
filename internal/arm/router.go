package arm

import (
	"net/http"
	"strings"

	"github.com/tidepool-dev/tidepool/internal/model"
)

// route dispatches by path. Keywords, namespaces and types match
// case-insensitively; empty segments ("//") and a trailing slash are ignored.
func (s *Server) route(w http.ResponseWriter, r *http.Request) error {
	segs := splitPath(r.URL.Path)
	switch {
	case len(segs) == 1 && eq(segs[0], "subscriptions"):
		return s.methods(w, r, handlers{get: s.listSubscriptions})
	case len(segs) == 3 && eq(segs[0], "providers") && eq(segs[1], "Microsoft.App") && eq(segs[2], "operations"):
		return s.methods(w, r, handlers{get: s.listOperations})
	case len(segs) == 3 && eq(segs[0], "subscriptions") && eq(segs[2], "resourceGroups"):
		return s.methods(w, r, handlers{get: s.listResourceGroups})
	case len(segs) == 3 && eq(segs[0], "subscriptions") && eq(segs[2], "providers"):
		return s.methods(w, r, handlers{get: s.listProviders})
	}
	id, err := model.ParseResourceID(r.URL.Path)
	if err != nil {
		return unknownRoute(r)
	}
	if id.Namespace == "" {
		if id.ResourceGroup == "" {
			return s.methods(w, r, handlers{get: s.getSubscription})
		}
		return s.methods(w, r, handlers{
			get: s.getResourceGroup, head: s.headResourceGroup, put: s.putResourceGroup,
			patch: s.patchResourceGroup, del: s.deleteResourceGroup,
		})
	}
	types := id.Types
	switch {
	case len(types) == 0 && id.ResourceGroup == "":
		return s.methods(w, r, handlers{get: s.getProvider})
	case len(types) == 1 && eq(types[0], "register") && len(id.Names) == 0 && id.ResourceGroup == "":
		return s.methods(w, r, handlers{post: s.getProvider})
	case len(types) == 2 && eq(types[0], "locations") && len(id.Names) == 2 && id.ResourceGroup == "" &&
		(eq(types[1], "operationStatuses") || eq(types[1], "operationResults")):
		return s.methods(w, r, handlers{get: s.getOperation})
	}
	if eq(id.Namespace, "Microsoft.Resources") && len(types) > 0 && eq(types[0], "deployments") && id.ResourceGroup != "" {
		return s.routeDeployment(w, r, id)
	}
	if !eq(id.Namespace, "Microsoft.App") || len(types) == 0 {
		return unknownRoute(r)
	}
	switch {
	case eq(types[0], "sessionPools") && len(types) == 1 && id.IsCollection():
		return s.methods(w, r, handlers{get: s.listSessionPools})
	case eq(types[0], "sessionPools") && len(types) == 1 && id.ResourceGroup != "":
		return s.methods(w, r, handlers{get: s.getSessionPool, put: s.putSessionPool, patch: s.patchSessionPool, del: s.deleteSessionPool})
	case eq(types[0], "sessionPools") && len(types) == 2 && len(id.Names) == 1 && id.ResourceGroup != "":
		return s.methods(w, r, handlers{post: s.sessionPoolAction})
	case eq(types[0], "managedEnvironments") && len(types) == 1 && id.IsCollection():
		return s.methods(w, r, handlers{get: s.listManagedEnvironments})
	case eq(types[0], "managedEnvironments") && len(types) == 1 && id.ResourceGroup != "":
		return s.methods(w, r, handlers{get: s.getManagedEnvironment, put: s.putManagedEnvironment, del: s.deleteManagedEnvironment})
	}
	return unknownRoute(r)
}

type handlerFunc func(http.ResponseWriter, *http.Request) error

// handlers maps methods to the handlers of one route.
type handlers struct {
	get, head, put, patch, del, post handlerFunc
}

func (s *Server) methods(w http.ResponseWriter, r *http.Request, h handlers) error {
	var f handlerFunc
	switch r.Method {
	case http.MethodGet:
		f = h.get
	case http.MethodHead:
		f = h.head
	case http.MethodPut:
		f = h.put
	case http.MethodPatch:
		f = h.patch
	case http.MethodDelete:
		f = h.del
	case http.MethodPost:
		f = h.post
	}
	if f == nil {
		return errorf(http.StatusMethodNotAllowed, "MethodNotAllowed", "The HTTP method '%s' is not supported for the path '%s'.", clip(r.Method), clipPath(r.URL.Path))
	}
	return f(w, r)
}

func unknownRoute(r *http.Request) error {
	return errorf(http.StatusNotFound, "InvalidResourceType", "The path '%s' does not name a resource type or action this server provides. See docs/api.md for the supported routes.", clipPath(r.URL.Path))
}

func splitPath(p string) []string {
	var segs []string
	for seg := range strings.SplitSeq(p, "/") {
		if seg != "" {
			segs = append(segs, seg)
		}
	}
	return segs
}

func eq(a, b string) bool { return strings.EqualFold(a, b) }

func clipPath(p string) string {
	if len(p) > 256 {
		return p[:256] + "…"
	}
	return p
}
