package server

import (
	"net/http"
	"time"

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
		PublicURL: s.publicURL,
		Logger:    s.log,
		Metrics:   s.dpMetrics,
		MCPKeys:   mcpkeys.New(s.st),
	})
}
