package arm

import (
	"net/http"
	"strings"

	"github.com/tidepool-dev/tidepool/internal/model"
)

// route dispatches by path and checks the caller's access before any
// handler runs. Keywords, namespaces and types match case-insensitively;
// empty segments ("//") and a trailing slash are ignored.
func (s *Server) route(w http.ResponseWriter, r *http.Request) error {
	segs := splitPath(r.URL.Path)
	switch {
	case len(segs) == 1 && eq(segs[0], "subscriptions"):
		// Lists the subscriptions the caller has any access in.
		return s.methods(w, r, access{open: true}, handlers{get: s.listSubscriptions})
	case len(segs) == 3 && eq(segs[0], "providers") && eq(segs[2], "operations"):
		return s.methods(w, r, access{open: true}, handlers{get: s.listOperations})
	case len(segs) == 3 && eq(segs[0], "subscriptions") && eq(segs[2], "resourceGroups"):
		return s.methods(w, r, access{scope: "/subscriptions/" + segs[1], typ: groupActions, list: true}, handlers{get: s.listResourceGroups})
	case len(segs) == 3 && eq(segs[0], "subscriptions") && eq(segs[2], "providers"):
		return s.methods(w, r, access{open: true}, handlers{get: s.listProviders})
	}
	if k := authorizationSegment(segs); k >= 0 {
		return s.routeAuthorization(w, r, segs[:k], segs[k+2:])
	}
	id, err := model.ParseResourceID(r.URL.Path)
	if err != nil {
		return unknownRoute(r)
	}
	if id.Namespace == "" {
		if id.ResourceGroup == "" {
			return s.methods(w, r, access{open: true}, handlers{get: s.getSubscription})
		}
		return s.methods(w, r, access{scope: cleanPath(r), typ: groupActions}, handlers{
			get: s.getResourceGroup, head: s.headResourceGroup, put: s.putResourceGroup,
			patch: s.patchResourceGroup, del: s.deleteResourceGroup,
		})
	}
	types := id.Types
	switch {
	case len(types) == 0 && id.ResourceGroup == "":
		return s.methods(w, r, access{open: true}, handlers{get: s.getProvider})
	case len(types) == 1 && eq(types[0], "register") && len(id.Names) == 0 && id.ResourceGroup == "":
		return s.methods(w, r, access{scope: id.SubscriptionID(), action: id.Namespace + "/register/action"}, handlers{post: s.getProvider})
	case len(types) == 2 && eq(types[0], "locations") && len(id.Names) == 2 && id.ResourceGroup == "" &&
		(eq(types[1], "operationStatuses") || eq(types[1], "operationResults")):
		// getOperation checks access to the operation's resource.
		return s.methods(w, r, access{open: true}, handlers{get: s.getOperation})
	}
	switch {
	case eq(id.Namespace, "Microsoft.Resources") && len(types) > 0 && eq(types[0], "deployments") && id.ResourceGroup != "":
		return s.routeDeployment(w, r, id)
	case eq(id.Namespace, "Microsoft.App") && len(types) > 0:
		return s.routeApp(w, r, id)
	case eq(id.Namespace, "Microsoft.ManagedIdentity") && len(types) == 1 && eq(types[0], "userAssignedIdentities"):
		return s.routeIdentities(w, r, id)
	}
	return unknownRoute(r)
}

func (s *Server) routeApp(w http.ResponseWriter, r *http.Request, id *model.ResourceID) error {
	types := id.Types
	list := access{scope: listParent(id), list: true}
	item := access{scope: cleanPath(r)}
	switch {
	case eq(types[0], "sessionPools") && len(types) == 1 && id.IsCollection():
		list.typ = model.SessionPoolType
		return s.methods(w, r, list, handlers{get: s.listSessionPools})
	case eq(types[0], "sessionPools") && len(types) == 1 && id.ResourceGroup != "":
		item.typ = model.SessionPoolType
		return s.methods(w, r, item, handlers{get: s.getSessionPool, put: s.putSessionPool, patch: s.patchSessionPool, del: s.deleteSessionPool})
	case eq(types[0], "sessionPools") && len(types) == 2 && len(id.Names) == 1 && id.ResourceGroup != "":
		a := access{scope: parentScope(cleanPath(r), 1), action: model.SessionPoolType + "/" + types[1] + "/action"}
		return s.methods(w, r, a, handlers{post: s.sessionPoolAction})
	case eq(types[0], "managedEnvironments") && len(types) == 1 && id.IsCollection():
		list.typ = model.ManagedEnvironmentType
		return s.methods(w, r, list, handlers{get: s.listManagedEnvironments})
	case eq(types[0], "managedEnvironments") && len(types) == 1 && id.ResourceGroup != "":
		item.typ = model.ManagedEnvironmentType
		return s.methods(w, r, item, handlers{get: s.getManagedEnvironment, put: s.putManagedEnvironment, del: s.deleteManagedEnvironment})
	}
	return unknownRoute(r)
}

// listParent is the scope of a list: its resource group or subscription.
func listParent(id *model.ResourceID) string {
	if id.ResourceGroup != "" {
		return id.ResourceGroupID()
	}
	return id.SubscriptionID()
}

// groupActions is the prefix of Azure's actions on resource groups.
const groupActions = "Microsoft.Resources/subscriptions/resourceGroups"

type handlerFunc func(http.ResponseWriter, *http.Request) error

// handlers maps methods to the handlers of one route.
type handlers struct {
	get, head, put, patch, del, post handlerFunc
}

// methods picks the handler for r's method, checks the caller's access
// and calls it.
func (s *Server) methods(w http.ResponseWriter, r *http.Request, a access, h handlers) error {
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
	r, err := s.check(r, a)
	if err != nil {
		return err
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
