package server

import (
	"net/http"
	"strings"

	"github.com/tidepool-dev/tidepool/internal/arm"
	"github.com/tidepool-dev/tidepool/internal/dataplane"
	"github.com/tidepool-dev/tidepool/internal/directory"
)

// routes returns the root handler. It dispatches on path segments itself
// rather than through http.ServeMux, which would redirect the "//" paths
// some clients send (LlamaIndex) instead of serving them.
func (s *Server) routes(mgmt http.Handler) http.Handler {
	jwks := s.issuer.JWKSHandler()
	openid := s.issuer.OpenIDConfigHandler()
	token := s.issuer.TokenHandler(principals{st: s.st, authz: s.authz})
	dp := s.dataPlaneHandler()
	dir := directory.New(s.st, s.issuer, s.authz, s.id.admin.ObjectID)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		segs := strings.FieldsFunc(r.URL.Path, func(c rune) bool { return c == '/' })
		switch {
		case len(segs) == 1 && segs[0] == "healthz":
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Write([]byte("ok\n"))
		case len(segs) == 1 && segs[0] == "readyz":
			s.readyz(w, r)
		case len(segs) == 2 && segs[0] == ".well-known" && segs[1] == "jwks.json",
			len(segs) == 4 && segs[1] == "discovery" && segs[2] == "v2.0" && segs[3] == "keys":
			jwks.ServeHTTP(w, r)
		case len(segs) == 4 && segs[1] == "v2.0" && segs[2] == ".well-known" && segs[3] == "openid-configuration":
			openid.ServeHTTP(w, r)
		case len(segs) == 4 && segs[1] == "oauth2" && segs[2] == "v2.0" && segs[3] == "token":
			token.ServeHTTP(w, r)
		case len(segs) >= 2 && segs[0] == "v1.0":
			dir.ServeHTTP(w, withRequestID(w, r))
		case isDataPlane(segs) && dp != nil:
			dp.ServeHTTP(w, withRequestID(w, r))
		case isDataPlane(segs):
			s.dataPlane(w, r)
		case len(segs) > 0 && (strings.EqualFold(segs[0], "subscriptions") || strings.EqualFold(segs[0], "providers")):
			mgmt.ServeHTTP(w, withRequestID(w, r))
		default:
			arm.SetRequestHeaders(w, r)
			arm.WriteError(w, &arm.Error{Status: http.StatusNotFound, Code: "NotFound",
				Message: "No route matches this path. The management API is under /subscriptions; see docs/api.md."})
		}
	})
}

// isDataPlane reports whether the path is under a pool's data-plane base:
// /subscriptions/{s}/resourceGroups/{rg}/sessionPools/{pool}/...
func isDataPlane(segs []string) bool {
	return len(segs) >= 6 && strings.EqualFold(segs[0], "subscriptions") &&
		strings.EqualFold(segs[2], "resourceGroups") && strings.EqualFold(segs[4], "sessionPools")
}

// dataPlane answers the data-plane routes when the server has no sessions
// to serve (no Config.Sessions, no runtime): 501 after authentication.
func (s *Server) dataPlane(w http.ResponseWriter, r *http.Request) {
	arm.SetRequestHeaders(w, r)
	claims, err := s.issuer.Authenticate(r, s.dataPlaneAudiences()...)
	if err != nil {
		arm.WriteError(w, arm.AuthError(err))
		return
	}
	segs := strings.FieldsFunc(r.URL.Path, func(c rune) bool { return c == '/' })
	poolID := arm.PoolID(segs[1], segs[3], segs[5])
	if err := s.authorizeDataPlane(r, claims, poolID, dataplane.ActionExecute); err != nil {
		ae, ok := err.(*arm.Error)
		if !ok {
			s.log.ErrorContext(r.Context(), "authorize", "err", err)
			ae = &arm.Error{Status: http.StatusInternalServerError, Code: "InternalServerError", Message: "The server could not check the caller's access."}
		}
		arm.WriteError(w, ae)
		return
	}
	arm.WriteError(w, &arm.Error{Status: http.StatusNotImplemented, Code: "NotImplemented",
		Message: "The session data-plane API is not implemented by this server yet."})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.st.Ping(r.Context()); err != nil {
		s.log.WarnContext(r.Context(), "not ready", "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("store unavailable\n"))
		return
	}
	w.Write([]byte("ok\n"))
}
