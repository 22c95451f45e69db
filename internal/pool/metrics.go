package pool

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Start kinds of the start-related metrics: a warm start refills the ready
// set, a cold start is made for a request that found it empty.
const (
	startWarm = "warm"
	startCold = "cold"
)

// Reasons a session ends, the reason label of
// tidepool_pool_sessions_ended_total.
const (
	EndCooldown      = "cooldown"
	EndMaxAlive      = "maxAlive"
	EndContainerExit = "containerExit"
	EndStopped       = "stopped"
	EndPoolDeleted   = "poolDeleted"
)

// Metrics are the pool controller's Prometheus metrics. Every series is
// labelled with pool, the pool's lower-cased ARM id; never with an
// identifier. Create them with NewMetrics and give them to one Controller
// with WithMetrics. A nil *Metrics records nothing.
//
// The gauges (ready, claimed, starting, stopping sandboxes, the ready
// target and maxConcurrentSessions) are read from the controller's
// in-memory state at scrape time (Controller.Stats), so they cost nothing
// on the request path.
type Metrics struct {
	claims        *prometheus.CounterVec   // pool, allocation
	coldStarts    *prometheus.CounterVec   // pool
	startFailures *prometheus.CounterVec   // pool, start
	ended         *prometheus.CounterVec   // pool, reason
	claimSeconds  *prometheus.HistogramVec // pool, allocation
	startSeconds  *prometheus.HistogramVec // pool, start

	// Descriptions of the gauges read at scrape time.
	ready, claimedSessions, starting, stopping, target, maxSessions *prometheus.Desc

	ctl atomic.Pointer[Controller] // set by WithMetrics; read by Collect
}

// NewMetrics creates the pool controller's metrics and registers them with
// reg (nil: not registered). It fails if reg already holds them.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	gauge := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{"pool"}, nil)
	}
	m := &Metrics{
		ready:           gauge("tidepool_pool_ready_sandboxes", "Warm, unclaimed sandboxes of the pool's current template."),
		claimedSessions: gauge("tidepool_pool_claimed_sessions", "Sessions bound to an identifier, claims in progress included."),
		starting:        gauge("tidepool_pool_starting_sandboxes", "Warm sandboxes being started, all templates."),
		stopping:        gauge("tidepool_pool_stopping_sandboxes", "Sandboxes being destroyed."),
		target:          gauge("tidepool_pool_ready_target", "Size the ready set converges to: min(readySessionInstances, maxConcurrentSessions - claimed)."),
		maxSessions:     gauge("tidepool_pool_max_sessions", "The pool's maxConcurrentSessions."),
	}
	// Claims take microseconds from the warm set, tens of milliseconds to
	// seconds cold; starts take milliseconds to a minute (image pulls).
	claimBuckets := prometheus.ExponentialBuckets(0.000025, 4, 12) // 25µs … ~105s
	startBuckets := prometheus.ExponentialBuckets(0.005, 2.5, 12)  // 5ms … ~300s
	m.claims = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tidepool_pool_claims_total",
		Help: "New identifiers bound to a sandbox, by allocation: claimed (from the warm set) or cold (started for the request).",
	}, []string{"pool", "allocation"})
	m.coldStarts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tidepool_pool_cold_starts_total",
		Help: "Sandboxes started for a request because the warm set was empty (failed attempts included).",
	}, []string{"pool"})
	m.startFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tidepool_pool_sandbox_start_failures_total",
		Help: "Sandbox starts that failed, by start: warm or cold.",
	}, []string{"pool", "start"})
	m.ended = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tidepool_pool_sessions_ended_total",
		Help: "Sessions ended, by reason: cooldown, maxAlive, containerExit, stopped (by a caller) or poolDeleted.",
	}, []string{"pool", "reason"})
	m.claimSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tidepool_pool_claim_duration_seconds",
		Help:    "Time to bind a new identifier (the session's allocation duration), by allocation: claimed or cold.",
		Buckets: claimBuckets,
	}, []string{"pool", "allocation"})
	m.startSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tidepool_pool_sandbox_start_duration_seconds",
		Help:    "Time to start a sandbox until its agent answers, by start: warm or cold. Successful starts only.",
		Buckets: startBuckets,
	}, []string{"pool", "start"})
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.claims, m.coldStarts, m.startFailures, m.ended, m.claimSeconds, m.startSeconds, (*statsCollector)(m)} {
		errs = append(errs, reg.Register(c))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
}

// WithMetrics records the controller's metrics in m (default: none). One
// Metrics serves one Controller.
func WithMetrics(m *Metrics) Option {
	return func(c *Controller) {
		c.metrics = m
		if m != nil {
			m.ctl.Store(c)
		}
	}
}

func (m *Metrics) claimed(pool, alloc string, d time.Duration) {
	if m == nil {
		return
	}
	m.claims.WithLabelValues(pool, alloc).Inc()
	m.claimSeconds.WithLabelValues(pool, alloc).Observe(d.Seconds())
}

func (m *Metrics) started(pool, start string, d time.Duration, err error) {
	if m == nil {
		return
	}
	if start == startCold {
		m.coldStarts.WithLabelValues(pool).Inc()
	}
	if err != nil {
		m.startFailures.WithLabelValues(pool, start).Inc()
		return
	}
	m.startSeconds.WithLabelValues(pool, start).Observe(d.Seconds())
}

func (m *Metrics) sessionsEnded(pool, reason string, n int) {
	if m == nil || n == 0 {
		return
	}
	m.ended.WithLabelValues(pool, reason).Add(float64(n))
}

// statsCollector exports Controller.Stats as gauges at scrape time.
type statsCollector Metrics

func (s *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{s.ready, s.claimedSessions, s.starting, s.stopping, s.target, s.maxSessions} {
		ch <- d
	}
}

func (s *statsCollector) Collect(ch chan<- prometheus.Metric) {
	c := s.ctl.Load()
	if c == nil {
		return
	}
	for _, p := range c.Stats() {
		for _, g := range []struct {
			d *prometheus.Desc
			v int
		}{{s.ready, p.Ready}, {s.claimedSessions, p.Claimed}, {s.starting, p.Starting}, {s.stopping, p.Stopping}, {s.target, p.ReadyTarget}, {s.maxSessions, p.MaxSessions}} {
			ch <- prometheus.MustNewConstMetric(g.d, prometheus.GaugeValue, float64(g.v), p.Pool)
		}
	}
}

// PoolStats is a snapshot of one pool's in-memory state.
type PoolStats struct {
	// Pool is the pool's ARM id, lower-cased.
	Pool string
	// Ready counts warm, unclaimed sandboxes of the current template;
	// Claimed the sessions, claims in progress included; Starting the warm
	// starts in flight (all templates); Stopping the sandboxes being
	// destroyed.
	Ready, Claimed, Starting, Stopping int
	// ReadyTarget is what Ready converges to; MaxSessions the pool's
	// maxConcurrentSessions (both 0 until the pool is loaded).
	ReadyTarget, MaxSessions int
}

// Stats returns a snapshot of every pool the controller holds in memory,
// in no particular order.
func (c *Controller) Stats() []PoolStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]PoolStats, 0, len(c.pools))
	for _, ps := range c.pools {
		st := PoolStats{
			Pool:        ps.key,
			Ready:       len(ps.ready),
			Claimed:     ps.boundLocked(),
			Stopping:    ps.stopping,
			ReadyTarget: ps.targetLocked(),
		}
		for _, n := range ps.startingBy {
			st.Starting += n
		}
		if ps.cfg != nil {
			st.MaxSessions = ps.cfg.max
		}
		out = append(out, st)
	}
	return out
}
