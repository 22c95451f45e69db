package dataplane

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the data plane's Prometheus metrics. No series carries an
// identifier. Create them with NewMetrics and set Config.Metrics; a nil
// *Metrics records nothing.
type Metrics struct {
	requests  *prometheus.CounterVec   // route, code
	execution *prometheus.HistogramVec // pool, kind
}

// NewMetrics creates the data plane's metrics and registers them with reg
// (nil: not registered). It fails if reg already holds them.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tidepool_dataplane_requests_total",
			Help: "Data-plane requests by route family (execute, executions, files, session, sessions, metadata, management, proxy, mcp, other) and HTTP status code.",
		}, []string{"route", "code"}),
		execution: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tidepool_dataplane_execution_duration_seconds",
			Help: "Time from an execution request's arrival until the agent's answer (session allocation included), by kind: python, node or shell.",
			// 1ms … ~10 min: the floor is well under a millisecond, the
			// longest shell timeout is 600 s.
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 15),
		}, []string{"pool", "kind"}),
	}
	if reg == nil {
		return m, nil
	}
	if err := errors.Join(reg.Register(m.requests), reg.Register(m.execution)); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Metrics) request(route string, status int) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
}

func (m *Metrics) executed(poolID, kind string, d time.Duration) {
	if m == nil {
		return
	}
	m.execution.WithLabelValues(strings.ToLower(poolID), kind).Observe(d.Seconds())
}

// routeFamily names the route of the path segments after a pool's base,
// for metrics: a small fixed set, whatever the path holds.
func routeFamily(rest []string, custom bool) string {
	if custom {
		if len(rest) == 2 && strings.EqualFold(rest[0], ".management") {
			return "management"
		}
		return "proxy"
	}
	if len(rest) == 0 {
		return "other"
	}
	switch s := strings.ToLower(rest[0]); {
	case s == ".management":
		return "management"
	case s == "execute" && len(rest) == 1, s == "python" && len(rest) == 2 && strings.EqualFold(rest[1], "execute"),
		s == "code" && len(rest) == 2 && strings.EqualFold(rest[1], "execute"):
		return "execute"
	case s == "executions" && len(rest) == 1:
		return "execute"
	case s == "executions", s == "execute":
		return "executions"
	case s == "files", s == "files:uploadfile", s == "python" && len(rest) == 2 && strings.EqualFold(rest[1], "uploadfile"):
		return "files"
	case s == "session":
		return "session"
	case s == "listsessions":
		return "sessions"
	case s == "metadata":
		return "metadata"
	case s == "mcp":
		return "mcp"
	}
	return "other"
}

// statusRecorder remembers the status a handler writes. Unwrap lets
// http.ResponseController (the proxy's flushes) reach the writer
// underneath.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Hijack counts a hijacked connection (the proxy's protocol upgrades,
// whose 101 goes straight to the connection) as 101.
func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err == nil && s.status == 0 {
		s.status = http.StatusSwitchingProtocols
	}
	return conn, brw, err
}
