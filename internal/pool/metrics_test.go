package pool

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tidepool-dev/tidepool/internal/model"
)

// TestMetrics: the gauges read the controller's state at scrape time, the
// counters and histograms move with claims, cold starts and session ends,
// and every series names the pool by its lower-cased id, never an
// identifier.
func TestMetrics(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewPedanticRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Error("NewMetrics registered twice on one registry: no error")
	}
	st := newStore(t)
	rt, _ := newRuntime(t)
	c := startController(t, st, rt, WithMetrics(m))
	id := putPoolSpec(t, st, c, poolSpec{name: "MetricsPool", containerType: model.ContainerTypeShell, max: 3, ready: 2}, "op")
	waitOp(t, st, "op")
	label := strings.ToLower(id)

	gauge := func(name string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatalf("Gather: %v", err)
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, met := range mf.GetMetric() {
				if len(met.GetLabel()) == 1 && met.GetLabel()[0].GetValue() == label {
					return met.GetGauge().GetValue()
				}
			}
		}
		t.Fatalf("no %s{pool=%q}", name, label)
		return 0
	}
	// waitIdle makes the gauges comparable with the in-memory state.
	settle := func() {
		t.Helper()
		waitFor(t, "refill", func() bool { n := c.counts(id); return n.ready == min(2, 3-n.claimed) && n.starting == 0 })
	}

	settle()
	if got, want := gauge("tidepool_pool_ready_sandboxes"), float64(c.counts(id).ready); got != want || got != 2 {
		t.Errorf("ready gauge = %v, want %v (the warm set) = 2", got, want)
	}
	secret := "metrics-secret-identifier-7f3a"
	if _, err := c.Acquire(ctx, id, secret); err != nil {
		t.Fatal(err)
	}
	settle()
	if got := testutil.ToFloat64(m.claims.WithLabelValues(label, AllocationClaimed)); got != 1 {
		t.Errorf("claims{claimed} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.claims.WithLabelValues(label, AllocationCold)); got != 0 {
		t.Errorf("claims{cold} = %v, want 0", got)
	}
	if got := gauge("tidepool_pool_claimed_sessions"); got != 1 {
		t.Errorf("claimed gauge = %v, want 1", got)
	}
	if got, want := gauge("tidepool_pool_ready_sandboxes"), float64(c.counts(id).ready); got != want || got != 2 {
		t.Errorf("ready gauge after the claim = %v, want %v (the warm set) = 2", got, want)
	}
	if got := gauge("tidepool_pool_max_sessions"); got != 3 {
		t.Errorf("max sessions gauge = %v, want 3", got)
	}
	if got := testutil.CollectAndCount(m.startSeconds); got != 1 {
		t.Errorf("start duration series = %d, want 1 (warm)", got)
	}

	// Fill the pool (the warm set shrinks to max − claimed, so every
	// claim finds a ready sandbox).
	for _, ident := range []string{"second", "third"} {
		if _, err := c.Acquire(ctx, id, ident); err != nil {
			t.Fatal(err)
		}
	}
	if got := testutil.ToFloat64(m.claims.WithLabelValues(label, AllocationClaimed)); got != 3 {
		t.Errorf("claims{claimed} = %v, want 3", got)
	}
	if err := c.Stop(ctx, id, secret); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.ended.WithLabelValues(label, EndStopped)); got != 1 {
		t.Errorf("sessions ended{stopped} = %v, want 1", got)
	}
	settle()
	if got, want := gauge("tidepool_pool_ready_sandboxes"), float64(c.counts(id).ready); got != want {
		t.Errorf("ready gauge = %v, want %v (the warm set)", got, want)
	}

	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	out := rec.Body.String()
	if strings.Contains(out, secret) {
		t.Errorf("an identifier appears in the metrics:\n%s", out)
	}
	if !strings.Contains(out, `pool="`+label+`"`) {
		t.Errorf("no series labelled pool=%q:\n%s", label, out)
	}
}

// TestMetricsCold: a claim on an empty warm set counts a cold claim and a
// cold start.
func TestMetricsCold(t *testing.T) {
	m, err := NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	st := newStore(t)
	rt, _ := newRuntime(t)
	c := startController(t, st, rt, WithMetrics(m))
	id := putPoolSpec(t, st, c, poolSpec{name: "cold", containerType: model.ContainerTypeShell, max: 2, ready: 0}, "op")
	waitOp(t, st, "op")
	s, err := c.Acquire(context.Background(), id, "someone")
	if err != nil {
		t.Fatal(err)
	}
	label := strings.ToLower(id)
	if s.Allocation != AllocationCold {
		t.Fatalf("Allocation = %q, want cold", s.Allocation)
	}
	if got := testutil.ToFloat64(m.claims.WithLabelValues(label, AllocationCold)); got != 1 {
		t.Errorf("claims{cold} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.coldStarts.WithLabelValues(label)); got != 1 {
		t.Errorf("cold starts = %v, want 1", got)
	}
}

func TestExpiryReason(t *testing.T) {
	created := newFakeClock().Now()
	for _, tt := range []struct {
		name  string
		cfg   poolConfig
		after int // seconds after created
		want  string
	}{
		{"cooldown only", poolConfig{cooldown: 10e9}, 10, EndCooldown},
		{"maxAlive reached", poolConfig{cooldown: 10e9, maxAlive: 5e9}, 5, EndMaxAlive},
		{"cooldown first", poolConfig{cooldown: 10e9, maxAlive: 60e9}, 10, EndCooldown},
		{"maxAlive only", poolConfig{maxAlive: 5e9}, 5, EndMaxAlive},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.cfg.expiryReason(created, created.Add(time.Duration(tt.after)*time.Second)); got != tt.want {
				t.Errorf("expiryReason = %q, want %q", got, tt.want)
			}
		})
	}
}
