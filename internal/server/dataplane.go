package server

import (
	"fmt"
	"net/http"
	"time"

	"github.com/tidepool-dev/tidepool/internal/arm"
	"github.com/tidepool-dev/tidepool/internal/auth"

	"github.com/tidepool-dev/tidepool/internal/dataplane"
	"github.com/tidepool-dev/tidepool/internal/mcpkeys"
	"github.com/tidepool-dev/tidepool/internal/pool"
)

// The pool controller serves the data plane's sessions.
var _ dataplane.Sessions = (*pool.Controller)(nil)

// dataPlaneHandler returns the data-plane handler, or nil when the server
// has no sessions to serve: Config.Sessions, else the pool controller when
// it implements dataplane.Sessions and has a runtime to run sandboxes on.
func (s *Server) dataPlaneHandler() http.Handler {
	sessions := s.cfg.Sessions
	if sessions == nil && s.cfg.Runtime != nil {
		sessions, _ = any(s.ctl).(dataplane.Sessions)
	}
	if sessions == nil {
		return nil
	}
	return dataplane.New(dataplane.Config{
		Sessions:  sessions,
		Pools:     dataplane.CachedPools(dataplane.StorePools(s.st), time.Second),
		Auth:      s.issuer,
		Audiences: s.dataPlaneAudiences(),
		Authorize: s.authorizeDataPlane,
		PublicURL: s.publicURL,
		Logger:    s.log,
		Metrics:   s.dpMetrics,
		MCPKeys:   mcpkeys.New(s.st),
	})
}

// dataPlaneAudiences are the token audiences that open the data plane: the
// data plane's two names and, unless the audiences are strict, the
// management API's (the seed tutorial sends a plain get-access-token).
func (s *Server) dataPlaneAudiences() []string {
	if s.cfg.StrictAudiences {
		return []string{auth.AudienceDataPlane, auth.AudienceDataPlaneLegacy}
	}
	return []string{auth.AudienceDataPlane, auth.AudienceDataPlaneLegacy, auth.AudienceManagement}
}

// authorizeDataPlane is the data plane's one authorization check: the
// caller needs the data action on the pool, through a role assigned at the
// pool or above (Session Executor, Contributor, Owner).
func (s *Server) authorizeDataPlane(r *http.Request, claims *auth.Claims, poolID, action string) error {
	ok, err := s.authz.Allowed(r.Context(), claims.ObjectID, poolID, action, true)
	if err != nil {
		return fmt.Errorf("authorize %s on %s: %w", action, poolID, err)
	}
	if !ok {
		return arm.Forbidden(claims, action, poolID)
	}
	return nil
}
