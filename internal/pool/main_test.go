package pool

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidepool-dev/tidepool/internal/model"
	"github.com/tidepool-dev/tidepool/internal/sandbox"
	"github.com/tidepool-dev/tidepool/internal/sandbox/sandboxtest"
	"github.com/tidepool-dev/tidepool/internal/store"
)

// agentBinary is a tidepool binary built once for the tests that run real
// agents (through sandboxtest.ProcessRuntime).
var agentBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tidepool-pool-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agentBinary = filepath.Join(dir, "tidepool")
	build := exec.Command("go", "build", "-o", agentBinary, "github.com/tidepool-dev/tidepool/cmd/tidepool")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build the agent:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// newRuntime returns a ProcessRuntime under a fresh short directory; every
// sandbox left is destroyed at cleanup.
func newRuntime(t testing.TB) (*sandboxtest.ProcessRuntime, string) {
	t.Helper()
	root, err := os.MkdirTemp("", "tpp")
	if err != nil {
		t.Fatal(err)
	}
	rt := sandboxtest.NewProcessRuntime(agentBinary, root)
	t.Cleanup(func() {
		if err := rt.Close(); err != nil {
			t.Errorf("destroy leftover sandboxes: %v", err)
		}
		os.RemoveAll(root)
	})
	return rt, root
}

// fakeClock is a Clock that moves only when told.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []fakeTimer
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- f.now
		return ch
	}
	f.timers = append(f.timers, fakeTimer{f.now.Add(d), ch})
	return ch
}

// Advance moves the clock and fires the timers that are due.
func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	kept := f.timers[:0]
	for _, tm := range f.timers {
		if !tm.at.After(f.now) {
			tm.ch <- f.now
		} else {
			kept = append(kept, tm)
		}
	}
	f.timers = kept
}

// running is a controller whose Run goroutine a test owns.
type running struct {
	*Controller
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// stop ends Run and waits for it.
func (r *running) stop(t testing.TB) {
	r.once.Do(func() {
		r.cancel()
		if err := <-r.done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}

func startController(t testing.TB, st store.Store, rt sandbox.Runtime, opts ...Option) *running {
	t.Helper()
	opts = append([]Option{WithRuntime(rt), WithRetry(20 * time.Millisecond)}, opts...)
	c := New(st, opts...)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Controller: c, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func poolIDOf(name string) string {
	return groupID + "/providers/Microsoft.App/sessionPools/" + name
}

// poolSpec is what a test pool varies.
type poolSpec struct {
	name          string
	containerType string
	max, ready    int32
	cooldown      int32
	lifecycle     string
	maxAlive      int32
	egress        bool
	custom        *model.CustomContainerTemplate
	secrets       []model.Secret
}

// putPoolSpec stores the pool (as the management API does: normalized,
// InProgress), starts operation opID on it and enqueues it.
func putPoolSpec(t testing.TB, st store.Store, c *running, ps poolSpec, opID string) string {
	t.Helper()
	ctx := context.Background()
	id := poolIDOf(ps.name)
	p := &model.SessionPool{ID: id, Name: ps.name, Location: "eastus", Type: model.SessionPoolType, Properties: &model.PoolProperties{
		ContainerType:      ps.containerType,
		ScaleConfiguration: &model.ScaleConfiguration{MaxConcurrentSessions: model.Int32(ps.max), ReadySessionInstances: model.Int32(ps.ready)},
		DynamicPoolConfiguration: &model.DynamicPoolConfiguration{LifecycleConfiguration: &model.LifecycleConfiguration{
			LifecycleType: ps.lifecycle,
		}},
		CustomContainerTemplate: ps.custom,
		Secrets:                 ps.secrets,
	}}
	lc := p.Properties.DynamicPoolConfiguration.LifecycleConfiguration
	if ps.cooldown > 0 {
		lc.CooldownPeriodInSeconds = model.Int32(ps.cooldown)
	}
	if ps.maxAlive > 0 {
		lc.MaxAlivePeriodInSeconds = model.Int32(ps.maxAlive)
	}
	if ps.egress {
		p.Properties.SessionNetworkConfiguration = &model.SessionNetworkConfiguration{Status: model.EgressEnabled}
	}
	p.Normalize()
	p.Properties.ProvisioningState = model.StateInProgress
	body, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	res := &store.Resource{ID: id, Type: model.SessionPoolType, Scope: groupID, Body: body}
	if cur, err := st.GetResource(ctx, id); err == nil {
		res.Version = cur.Version
	}
	if err := st.PutResource(ctx, res); err != nil {
		t.Fatal(err)
	}
	if opID != "" {
		startOp(t, st, opID, "put", id)
	}
	if c != nil {
		c.Enqueue(id)
	}
	return id
}

// markDeleting stores the resource as Deleting, starts a delete operation
// and enqueues it, as the management API does.
func markDeleting(t testing.TB, st store.Store, c *running, id, opID string) {
	t.Helper()
	ctx := context.Background()
	res, err := st.GetResource(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(res.Body, &m); err != nil {
		t.Fatal(err)
	}
	props, _ := m["properties"].(map[string]any)
	if props == nil {
		props = map[string]any{}
		m["properties"] = props
	}
	props["provisioningState"] = model.StateDeleting
	if res.Body, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := st.PutResource(ctx, res); err != nil {
		t.Fatal(err)
	}
	startOp(t, st, opID, "delete", id)
	c.Enqueue(id)
}

// waitFor polls cond until it holds (the controller works in the
// background); it fails the test after a generous deadline.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitOp(t testing.TB, st store.Store, opID string) *store.Operation {
	t.Helper()
	var op *store.Operation
	waitFor(t, "operation "+opID, func() bool {
		op = opStatus(t, st, opID)
		return op.Status != store.OperationInProgress
	})
	return op
}

// counts reads a pool's in-memory counters.
type counts struct {
	ready, claimed, starting, stopping, highWater int
	state                                         string
}

func (c *Controller) counts(id string) counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	ps := c.pools[strings.ToLower(id)]
	if ps == nil {
		return counts{state: "gone"}
	}
	n := 0
	for _, v := range ps.startingBy {
		n += v
	}
	return counts{ready: len(ps.ready), claimed: len(ps.claimed), starting: n, stopping: ps.stopping, highWater: ps.highWater, state: ps.state}
}

// sandboxesOf lists the live sandboxes of pool id (all when id is "").
func sandboxesOf(t testing.TB, rt sandbox.Runtime, id string) []*sandbox.Sandbox {
	t.Helper()
	list, err := rt.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []*sandbox.Sandbox
	for _, sb := range list {
		if id == "" || sb.Labels[LabelPool] == strings.ToLower(id) {
			out = append(out, sb)
		}
	}
	return out
}

func sandboxIDs(list []*sandbox.Sandbox) []string {
	var ids []string
	for _, sb := range list {
		ids = append(ids, sb.ID)
	}
	sort.Strings(ids)
	return ids
}

// records counts the binding records of pool id.
func records(t testing.TB, st store.Store, id string) int {
	t.Helper()
	page, err := st.ListResources(context.Background(), store.ListOptions{Type: SessionRecordType, Scope: id})
	if err != nil {
		t.Fatal(err)
	}
	return len(page.Items)
}

// failingRuntime cannot pull any image.
type failingRuntime struct{ sandbox.Runtime }

func (failingRuntime) Create(_ context.Context, spec sandbox.Spec) (*sandbox.Sandbox, error) {
	return nil, fmt.Errorf("pull registry.invalid/nothing:latest: no such host: %w", sandbox.ErrImage)
}

func (failingRuntime) List(context.Context) ([]*sandbox.Sandbox, error) { return nil, nil }

func (failingRuntime) Destroy(context.Context, string) error { return sandbox.ErrNotFound }
