package pool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidepool-dev/tidepool/internal/agent/wire"
	"github.com/tidepool-dev/tidepool/internal/model"
	"github.com/tidepool-dev/tidepool/internal/sandbox"
	"github.com/tidepool-dev/tidepool/internal/sandbox/sandboxtest"
	"github.com/tidepool-dev/tidepool/internal/store"
)

func TestProcessRuntimeConformance(t *testing.T) {
	sandboxtest.RuntimeSuite(t, func(t *testing.T) sandbox.Runtime {
		rt, _ := newRuntime(t)
		return rt
	})
}

// TestWarmSet: a new pool starts readySessionInstances sandboxes of its
// kind, then becomes Succeeded and completes its operation.
func TestWarmSet(t *testing.T) {
	tests := []struct {
		containerType, kind string
		ready               int32
	}{
		{model.ContainerTypeShell, sandbox.KindShell, 3},
		{model.ContainerTypePythonLTS, sandbox.KindPython, 2},
		{model.ContainerTypeNodeLTS, sandbox.KindNode, 1},
		{model.ContainerTypeShell, sandbox.KindShell, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d", tt.containerType, tt.ready), func(t *testing.T) {
			st := newStore(t)
			rt, _ := newRuntime(t)
			c := startController(t, st, rt)
			id := putPoolSpec(t, st, c, poolSpec{name: "p1", containerType: tt.containerType, max: 10, ready: tt.ready}, "op")
			if op := waitOp(t, st, "op"); op.Status != store.OperationSucceeded {
				t.Fatalf("operation = %s %s %s, want Succeeded", op.Status, op.ErrorCode, op.ErrorMsg)
			}
			res, err := st.GetResource(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if got := provisioningState(res.Body); got != model.StateSucceeded {
				t.Errorf("provisioningState = %q, want Succeeded", got)
			}
			if !strings.Contains(string(res.Body), `"nodeCount":1`) {
				t.Errorf("nodeCount not 1: %s", res.Body)
			}
			// Succeeded only once the ready set is up.
			if got := c.counts(id); got.ready != int(tt.ready) {
				t.Errorf("ready = %d at Succeeded, want %d", got.ready, tt.ready)
			}
			list := sandboxesOf(t, rt, id)
			if len(list) != int(tt.ready) {
				t.Errorf("runtime has %d sandboxes, want %d", len(list), tt.ready)
			}
			for _, sb := range list {
				if sb.Labels[LabelKind] != tt.kind || sb.Labels[LabelTemplate] == "" {
					t.Errorf("sandbox %s labels = %v, want kind %s and a template", sb.ID, sb.Labels, tt.kind)
				}
			}
		})
	}
}

// TestClaimFromWarmSet: a new identifier takes a ready sandbox, which the
// controller replaces; the same identifier then finds its session.
func TestClaimFromWarmSet(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	rt, _ := newRuntime(t)
	c := startController(t, st, rt)
	id := putPoolSpec(t, st, c, poolSpec{name: "p1", containerType: model.ContainerTypeShell, max: 10, ready: 2}, "op")
	waitOp(t, st, "op")
	warm := sandboxIDs(sandboxesOf(t, rt, id))

	s, err := c.Acquire(ctx, id, "user-1")
	if err != nil {
		t.Fatal(err)
	}
	if s.Allocation != AllocationClaimed {
		t.Errorf("Allocation = %q, want claimed", s.Allocation)
	}
	if !contains(warm, s.SandboxID) {
		t.Errorf("claimed sandbox %s is not one of the warm ones %v", s.SandboxID, warm)
	}
	if s.Kind != sandbox.KindShell || s.PoolID != id || s.Identifier != "user-1" {
		t.Errorf("session = %+v", s)
	}
	res, err := s.Agent.Exec(ctx, wire.ExecRequest{ShellCommand: "echo $((6*7))"})
	if err != nil || strings.TrimSpace(res.Stdout) != "42" {
		t.Fatalf("Exec = %+v, %v", res, err)
	}
	h, err := s.Agent.Health(ctx)
	if err != nil || h.Identifier != "user-1" {
		t.Errorf("agent identifier = %+v, %v; want user-1 (bound by /init)", h, err)
	}
	waitFor(t, "refill", func() bool { return c.counts(id).ready == 2 })
	if n := len(sandboxesOf(t, rt, id)); n != 3 {
		t.Errorf("sandboxes = %d, want 3 (2 ready + 1 claimed)", n)
	}

	again, err := c.Acquire(ctx, id, "user-1")
	if err != nil {
		t.Fatal(err)
	}
	if again.SandboxID != s.SandboxID || again.Allocation != AllocationExisting {
		t.Errorf("second Acquire = %s/%s, want %s/existing", again.SandboxID, again.Allocation, s.SandboxID)
	}
	got, err := c.Lookup(ctx, id, "user-1")
	if err != nil || got.SandboxID != s.SandboxID {
		t.Errorf("Lookup = %v, %v", got, err)
	}
	if _, err := c.Lookup(ctx, id, "nobody"); !errors.Is(err, ErrSessionNotFound) {
		t.Errorf("Lookup(unknown) = %v, want ErrSessionNotFound", err)
	}
	if _, err := c.Lookup(ctx, poolIDOf("nope"), "user-1"); !errors.Is(err, ErrPoolNotFound) {
		t.Errorf("Lookup(unknown pool) = %v, want ErrPoolNotFound", err)
	}
	if _, err := c.Acquire(ctx, poolIDOf("nope"), "user-1"); !errors.Is(err, ErrPoolNotFound) {
		t.Errorf("Acquire(unknown pool) = %v, want ErrPoolNotFound", err)
	}
	list, err := c.Sessions(ctx, id)
	if err != nil || len(list) != 1 || list[0].Identifier != "user-1" {
		t.Errorf("Sessions = %+v, %v", list, err)
	}
	waitFor(t, "binding stored", func() bool { return records(t, st, id) == 1 })

	if err := c.Stop(ctx, id, "user-1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx, id, "user-1"); !errors.Is(err, ErrSessionNotFound) {
		t.Errorf("second Stop = %v, want ErrSessionNotFound", err)
	}
	if contains(sandboxIDs(sandboxesOf(t, rt, id)), s.SandboxID) {
		t.Errorf("stopped session's sandbox %s still runs", s.SandboxID)
	}
	if n := records(t, st, id); n != 0 {
		t.Errorf("records after Stop = %d, want 0", n)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestColdStart: with no ready sandboxes a new identifier gets one started
// for it.
func TestColdStart(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	rt, _ := newRuntime(t)
	c := startController(t, st, rt)
	id := putPoolSpec(t, st, c, poolSpec{name: "p1", containerType: model.ContainerTypeShell, max: 3, ready: 0}, "op")
	waitOp(t, st, "op")
	s, err := c.Acquire(ctx, id, "cold-1")
	if err != nil {
		t.Fatal(err)
	}
	if s.Allocation != AllocationCold || s.AllocationDuration <= 0 {
		t.Errorf("Allocation = %q in %v, want cold", s.Allocation, s.AllocationDuration)
	}
}

// TestSameIdentifierBurst: many concurrent first requests for one
// identifier bind exactly one sandbox.
func TestSameIdentifierBurst(t *testing.T) {
	for _, ready := range []int32{0, 2} {
		t.Run(fmt.Sprintf("ready=%d", ready), func(t *testing.T) {
			ctx := context.Background()
			st := newStore(t)
			rt, _ := newRuntime(t)
			c := startController(t, st, rt)
			id := putPoolSpec(t, st, c, poolSpec{name: "p1", containerType: model.ContainerTypeShell, max: 10, ready: ready}, "op")
			waitOp(t, st, "op")
			const n = 50
			var wg sync.WaitGroup
			got := make([]*Session, n)
			errs := make([]error, n)
			for i := range n {
				wg.Go(func() { got[i], errs[i] = c.Acquire(ctx, id, "same") })
			}
			wg.Wait()
			fresh := 0
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("Acquire %d = %v", i, errs[i])
				}
				if got[i].SandboxID != got[0].SandboxID {
					t.Errorf("Acquire %d got sandbox %s, want %s", i, got[i].SandboxID, got[0].SandboxID)
				}
				if got[i].Allocation != AllocationExisting {
					fresh++
				}
			}
			// Waiters report the claim they joined as the leader did.
			waitFor(t, "refill", func() bool { return c.counts(id).ready == int(ready) })
			if cn := c.counts(id); cn.claimed != 1 || cn.highWater != 1 {
				t.Errorf("claimed = %d (high water %d), want 1", cn.claimed, cn.highWater)
			}
			if n := len(sandboxesOf(t, rt, id)); n != int(ready)+1 {
				t.Errorf("sandboxes = %d, want %d", n, ready+1)
			}
			if fresh < 1 {
				t.Errorf("no Acquire reported a claim")
			}
		})
	}
}

// TestManySessions: 200 identifiers at once on a pool of 200 with a small
// warm set; each runs 20 commands; nothing fails, the invariant holds, and
// deleting the pool leaves nothing behind.
func TestManySessions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts hundreds of agents")
	}
	tests := []struct {
		containerType string
		n, ready      int32
		runs          int
	}{
		{model.ContainerTypeShell, 200, 5, 20},
		{model.ContainerTypePythonLTS, 24, 3, 3}, // a kernel each: fewer
	}
	for _, tt := range tests {
		t.Run(tt.containerType, func(t *testing.T) { testManySessions(t, tt.containerType, int(tt.n), tt.ready, tt.runs) })
	}
}

func testManySessions(t *testing.T, containerType string, n int, ready int32, runs int) {
	ctx := context.Background()
	st := newStore(t)
	rt, _ := newRuntime(t)
	c := startController(t, st, rt, WithRefillConcurrency(4))
	id := putPoolSpec(t, st, c, poolSpec{name: "p1", containerType: containerType, max: int32(n), ready: ready}, "op")
	waitOp(t, st, "op")
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			ident := fmt.Sprintf("user-%03d", i)
			s, err := c.Acquire(ctx, id, ident)
			if err != nil {
				errs <- fmt.Errorf("Acquire %s: %w", ident, err)
				return
			}
			for j := range runs {
				want := fmt.Sprintf("%s-%d", ident, j)
				var got string
				if containerType == model.ContainerTypePythonLTS {
					res, err := s.Agent.Execute(ctx, wire.LangPython, wire.ExecuteRequest{Code: fmt.Sprintf("log = globals().get('log', []) + [%q]\nprint(log[-1], len(log))", want)})
					if err != nil {
						errs <- fmt.Errorf("Execute %s: %w", ident, err)
						return
					}
					got, want = strings.TrimSpace(res.Stdout), fmt.Sprintf("%s %d", want, j+1)
				} else {
					res, err := s.Agent.Exec(ctx, wire.ExecRequest{ShellCommand: fmt.Sprintf("echo %s >> log; tail -n1 log", want)})
					if err != nil {
						errs <- fmt.Errorf("Exec %s: %w", ident, err)
						return
					}
					got = strings.TrimSpace(res.Stdout)
				}
				if got != want {
					errs <- fmt.Errorf("run in %s: output %q, want %q", ident, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	cn := c.counts(id)
	if cn.claimed != n || cn.highWater > n {
		t.Errorf("claimed = %d, high water %d; want %d and ≤ %d", cn.claimed, cn.highWater, n, n)
	}
	if _, err := c.Acquire(ctx, id, "one-too-many"); !errors.Is(err, ErrPoolFull) {
		t.Errorf("Acquire beyond max = %v, want ErrPoolFull", err)
	}
	// max − claimed = 0: no ready sandboxes are kept.
	// Warm sandboxes beyond the target are trimmed: wait for their destruction too.
	waitFor(t, "ready set drained", func() bool {
		cn := c.counts(id)
		return cn.ready == 0 && cn.starting == 0 && cn.stopping == 0
	})
	if got := len(sandboxesOf(t, rt, id)); got != n {
		t.Errorf("sandboxes = %d, want %d", got, n)
	}
	sessions, err := c.Sessions(ctx, id)
	if err != nil || len(sessions) != n {
		t.Errorf("Sessions = %d, %v; want %d", len(sessions), err, n)
	}
	waitFor(t, "bindings stored", func() bool { return records(t, st, id) == n })

	markDeleting(t, st, c, id, "del")
	if op := waitOp(t, st, "del"); op.Status != store.OperationSucceeded {
		t.Fatalf("delete operation = %+v", op)
	}
	if left := sandboxesOf(t, rt, ""); len(left) != 0 {
		t.Errorf("%d sandboxes left after the pool's deletion", len(left))
	}
	if got := records(t, st, id); got != 0 {
		t.Errorf("%d records left after the pool's deletion", got)
	}
	if _, err := c.Acquire(ctx, id, "user-000"); !errors.Is(err, ErrPoolNotFound) {
		t.Errorf("Acquire on a deleted pool = %v, want ErrPoolNotFound", err)
	}
}

// TestPoolFull: a new identifier beyond maxConcurrentSessions is refused;
// known ones keep working; a stop frees room.
func TestPoolFull(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	rt, _ := newRuntime(t)
	c := startController(t, st, rt)
	id := putPoolSpec(t, st, c, poolSpec{name: "p1", containerType: model.ContainerTypeShell, max: 2, ready: 2}, "op")
	waitOp(t, st, "op")
	for _, ident := range []string{"a", "b"} {
		if _, err := c.Acquire(ctx, id, ident); err != nil {
			t.Fatalf("Acquire(%s) = %v", ident, err)
		}
	}
	if _, err := c.Acquire(ctx, id, "c"); !errors.Is(err, ErrPoolFull) {
		t.Fatalf("Acquire(c) = %v, want ErrPoolFull", err)
	}
	if s, err := c.Acquire(ctx, id, "a"); err != nil || s.Allocation != AllocationExisting {
		t.Errorf("Acquire(a) again = %v, %v", s, err)
	}
	if got := c.counts(id); got.ready != 0 {
		t.Errorf("ready = %d with the pool full, want 0", got.ready)
	}
	if err := c.Stop(ctx, id, "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Acquire(ctx, id, "c"); err != nil {
		t.Errorf("Acquire(c) after a stop = %v", err)
	}
}

// TestCooldown: a Timed session ends cooldownPeriodInSeconds after its last
// activity, on the controller's clock.
func TestCooldown(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	rt, _ := newRuntime(t)
	clk := newFakeClock()
	c := startController(t, st, rt, WithClock(clk), WithReapInterval(time.Second))
	id := putPoolSpec(t, st, c, poolSpec{name: "p1", containerType: model.ContainerTypeShell, max: 5, ready: 1, cooldown: 60}, "op")
	waitOp(t, st, "op")
	s, err := c.Acquire(ctx, id, "u")
	if err != nil {
		t.Fatal(err)
	}
	if want := clk.Now().Add(60 * time.Second); !s.Expires.Equal(want) {
		t.Errorf("Expires = %v, want %v", s.Expires, want)
	}
	steps := []struct {
		advance time.Duration
		touch   bool
		alive   bool
	}{
		{30 * time.Second, true, true},  // activity at 30s
		{59 * time.Second, false, true}, // 89s: 59s idle
		{2 * time.Second, false, false}, // 91s: 61s idle
	}
	for i, step := range steps {
		clk.Advance(step.advance)
		c.reap(ctx)
		// Sessions, unlike Lookup, is no activity.
		list, err := c.Sessions(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if alive := len(list) == 1; alive != step.alive {
			t.Fatalf("step %d: alive = %v, want %v", i, alive, step.alive)
		}
		if step.touch {
			if _, err := c.Acquire(ctx, id, "u"); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Run's reaper, woken by the same clock, may be the one ending the
	// session: then it may still be destroying the sandbox.
	waitFor(t, "the expired session's sandbox and record to go", func() bool {
		return !contains(sandboxIDs(sandboxesOf(t, rt, id)), s.SandboxID) && records(t, st, id) == 0
	})

	// The reaper loop of Run does the same when the clock moves.
	if _, err := c.Acquire(ctx, id, "v"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(61 * time.Second)
	waitFor(t, "reaper", func() bool {
		clk.Advance(time.Second)
		list, err := c.Sessions(ctx, id)
		return err == nil && len(list) == 0
	})
}

// TestMaxAlive: an OnContainerExit session ends maxAlivePeriodInSeconds
// after its creation, whatever its activity.
func TestMaxAlive(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	rt, _ := newRuntime(t)
	clk := newFakeClock()
	c := startController(t, st, rt, WithClock(clk))
	id := putPoolSpec(t, st, c, poolSpec{name: "p1", containerType: model.ContainerTypeShell, max: 5, ready: 1, lifecycle: model.LifecycleOnContainerExit, maxAlive: 100}, "op")
	waitOp(t, st, "op")
	if _, err := c.Acquire(ctx, id, "u"); err != nil {
		t.Fatal(err)
	}
	for range 9 {
		clk.Advance(10 * time.Second)
		c.reap(ctx)
		if _, err := c.Acquire(ctx, id, "u"); err != nil {
			t.Fatalf("Acquire before maxAlive: %v", err)
		}
	}
	clk.Advance(10 * time.Second)
	c.reap(ctx)
	if _, err := c.Lookup(ctx, id, "u"); !errors.Is(err, ErrSessionNotFound) {
		t.Errorf("Lookup after maxAlive = %v, want ErrSessionNotFound", err)
	}
}

// TestContainerExit: an OnContainerExit session of a custom container ends
// when the container's process exits.
func TestContainerExit(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	rt, _ := newRuntime(t)
	clk := newFakeClock()
	c := startController(t, st, rt, WithClock(clk))
	id := putPoolSpec(t, st, c, poolSpec{name: "p1", containerType: model.ContainerTypeCustomContainer, max: 5, ready: 1,
		lifecycle: model.LifecycleOnContainerExit, maxAlive: 3600,
		custom: &model.CustomContainerTemplate{Containers: []model.SessionContainer{{
			Image:   "example.invalid/app:1",
			Command: []string{"sh", "-c", `while [ ! -f stop ]; do sleep 0.02; done; echo "$GREETING"`},
			Env:     []model.EnvironmentVar{{Name: "GREETING", Value: "hi"}, {Name: "TOKEN", SecretRef: "tok"}},
		}}},
		secrets: []model.Secret{{Name: "tok", Value: "s3cret"}},
	}, "op")
	if op := waitOp(t, st, "op"); op.Status != store.OperationSucceeded {
		t.Fatalf("operation = %+v", op)
	}
	s, err := c.Acquire(ctx, id, "u")
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Agent.Exec(ctx, wire.ExecRequest{ShellCommand: `echo "$GREETING $TOKEN"`})
	if err != nil || strings.TrimSpace(res.Stdout) != "hi s3cret" {
		t.Errorf("Exec env = %+v, %v; want the pool's env and secret", res, err)
	}
	c.reap(ctx)
	if _, err := c.Lookup(ctx, id, "u"); err != nil {
		t.Fatalf("session ended while its container runs: %v", err)
	}
	if _, err := s.Agent.WriteFile(ctx, "stop", strings.NewReader(""), 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "container exit", func() bool {
		h, err := s.Agent.Health(ctx)
		return err == nil && h.ContainerExit != nil
	})
	c.reap(ctx)
	if _, err := c.Lookup(ctx, id, "u"); !errors.Is(err, ErrSessionNotFound) {
		t.Errorf("Lookup after the container exited = %v, want ErrSessionNotFound", err)
	}
}

// TestTemplateRoll: an update that changes the template replaces the ready
// set; a claimed session keeps its sandbox.
func TestTemplateRoll(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	rt, _ := newRuntime(t)
	c := startController(t, st, rt)
	spec := poolSpec{name: "p1", containerType: model.ContainerTypeShell, max: 10, ready: 2}
	id := putPoolSpec(t, st, c, spec, "op1")
	waitOp(t, st, "op1")
	s, err := c.Acquire(ctx, id, "old")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "refill", func() bool { return c.counts(id).ready == 2 })
	oldHash := sandboxesOf(t, rt, id)[0].Labels[LabelTemplate]

	spec.egress = true // a session-relevant change
	putPoolSpec(t, st, c, spec, "op2")
	if op := waitOp(t, st, "op2"); op.Status != store.OperationSucceeded {
		t.Fatalf("update operation = %+v", op)
	}
	waitFor(t, "old ready set gone", func() bool { return len(sandboxesOf(t, rt, id)) == 3 })
	var newHash string
	for _, sb := range sandboxesOf(t, rt, id) {
		switch {
		case sb.ID == s.SandboxID:
			if sb.Labels[LabelTemplate] != oldHash {
				t.Errorf("claimed sandbox template = %s, want the old %s", sb.Labels[LabelTemplate], oldHash)
			}
		case sb.Labels[LabelTemplate] == oldHash:
			t.Errorf("ready sandbox %s of the old template survived the roll", sb.ID)
		default:
			newHash = sb.Labels[LabelTemplate]
		}
	}
	if newHash == "" {
		t.Fatal("no sandbox of the new template")
	}
	if got, err := c.Acquire(ctx, id, "old"); err != nil || got.SandboxID != s.SandboxID {
		t.Errorf("claimed session after the roll = %v, %v; want sandbox %s", got, err, s.SandboxID)
	}
	fresh, err := c.Acquire(ctx, id, "new")
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Allocation != AllocationClaimed {
		t.Errorf("new identifier after the roll: Allocation %s, want claimed", fresh.Allocation)
	}

	// A change of scale alone keeps the ready set.
	before := sandboxIDs(sandboxesOf(t, rt, id))
	spec.max = 11
	putPoolSpec(t, st, c, spec, "op3")
	waitOp(t, st, "op3")
	waitFor(t, "refill", func() bool { return c.counts(id).ready == 2 })
	after := sandboxIDs(sandboxesOf(t, rt, id))
	for _, sbID := range before {
		if !contains(after, sbID) {
			t.Errorf("sandbox %s went in a scale-only update", sbID)
		}
	}
}

// TestScaleDown: lowering maxConcurrentSessions below the claimed count
// ends no session; the ready set goes, and new identifiers are refused.
func TestScaleDown(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	rt, _ := newRuntime(t)
	c := startController(t, st, rt)
	spec := poolSpec{name: "p1", containerType: model.ContainerTypeShell, max: 6, ready: 3}
	id := putPoolSpec(t, st, c, spec, "op1")
	waitOp(t, st, "op1")
	var claimed []string
	for _, ident := range []string{"a", "b", "c"} {
		s, err := c.Acquire(ctx, id, ident)
		if err != nil {
			t.Fatal(err)
		}
		claimed = append(claimed, s.SandboxID)
	}
	waitFor(t, "refill", func() bool { return c.counts(id).ready == 3 })
	spec.max, spec.ready = 2, 1
	putPoolSpec(t, st, c, spec, "op2")
	waitOp(t, st, "op2")
	waitFor(t, "ready set drained", func() bool {
		return c.counts(id).ready == 0 && len(sandboxesOf(t, rt, id)) == 3
	})
	for _, ident := range []string{"a", "b", "c"} {
		if _, err := c.Lookup(ctx, id, ident); err != nil {
			t.Errorf("session %s after scale down: %v", ident, err)
		}
	}
	if ids := sandboxIDs(sandboxesOf(t, rt, id)); len(ids) != 3 || !contains(ids, claimed[0]) || !contains(ids, claimed[1]) || !contains(ids, claimed[2]) {
		t.Errorf("sandboxes after scale down = %v, want the claimed %v", ids, claimed)
	}
	if _, err := c.Acquire(ctx, id, "d"); !errors.Is(err, ErrPoolFull) {
		t.Errorf("Acquire(d) = %v, want ErrPoolFull", err)
	}
}

// TestDelete: deleting a pool, or the resource group holding it, destroys
// its sandboxes and binding records before the record goes.
func TestDelete(t *testing.T) {
	for _, target := range []string{"pool", "group"} {
		t.Run(target, func(t *testing.T) {
			ctx := context.Background()
			st := newStore(t)
			putGroup(t, st, model.StateSucceeded)
			rt, _ := newRuntime(t)
			c := startController(t, st, rt)
			id := putPoolSpec(t, st, c, poolSpec{name: "p1", containerType: model.ContainerTypeShell, max: 5, ready: 2}, "op")
			other := putPoolSpec(t, st, c, poolSpec{name: "p2", containerType: model.ContainerTypeShell, max: 5, ready: 1}, "op2")
			waitOp(t, st, "op")
			waitOp(t, st, "op2")
			for _, ident := range []string{"a", "b"} {
				if _, err := c.Acquire(ctx, id, ident); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, "bindings stored", func() bool { return records(t, st, id) == 2 })
			del := id
			if target == "group" {
				del = groupID
			}
			markDeleting(t, st, c, del, "del")
			if op := waitOp(t, st, "del"); op.Status != store.OperationSucceeded {
				t.Fatalf("delete operation = %+v", op)
			}
			if left := sandboxesOf(t, rt, id); len(left) != 0 {
				t.Errorf("%d sandboxes of the pool left", len(left))
			}
			if n := records(t, st, id); n != 0 {
				t.Errorf("%d records of the pool left", n)
			}
			if _, err := st.GetResource(ctx, id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("pool record: %v, want gone", err)
			}
			wantOther := 1
			if target == "group" {
				wantOther = 0
			}
			if left := sandboxesOf(t, rt, other); len(left) != wantOther {
				t.Errorf("other pool has %d sandboxes, want %d", len(left), wantOther)
			}
		})
	}
}

// TestRestart: a new controller on the same store and runtime finds the
// sessions of the previous one, with their state.
func TestRestart(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	rt, root := newRuntime(t)
	c1 := startController(t, st, rt)
	id := putPoolSpec(t, st, c1, poolSpec{name: "p1", containerType: model.ContainerTypePythonLTS, max: 10, ready: 2}, "op")
	if op := waitOp(t, st, "op"); op.Status != store.OperationSucceeded {
		t.Fatalf("operation = %+v", op)
	}
	s, err := c1.Acquire(ctx, id, "keep-me")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := s.Agent.Execute(ctx, wire.LangPython, wire.ExecuteRequest{Code: "x = 41"}); err != nil || r.Status != wire.StatusSucceeded {
		t.Fatalf("Execute = %+v, %v", r, err)
	}
	if _, err := s.Agent.WriteFile(ctx, "notes.txt", strings.NewReader("remember"), 8); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "refill", func() bool { return c1.counts(id).ready == 2 })
	// A sandbox no record claims, of a pool that does not exist.
	stray, err := rt.Create(ctx, sandbox.Spec{ID: "stray-1", Kind: sandbox.KindShell, Labels: map[string]string{LabelPool: strings.ToLower(poolIDOf("gone"))}})
	if err != nil {
		t.Fatal(err)
	}
	before := sandboxIDs(sandboxesOf(t, rt, id))
	c1.stop(t) // stores the bindings; the sandboxes keep running

	rt2 := sandboxtest.NewProcessRuntime(agentBinary, root)
	c2 := startController(t, st, rt2)
	waitFor(t, "adoption", func() bool { _, err := c2.Lookup(ctx, id, "keep-me"); return err == nil })
	got, err := c2.Acquire(ctx, id, "keep-me")
	if err != nil {
		t.Fatal(err)
	}
	if got.SandboxID != s.SandboxID || got.Allocation != AllocationExisting || !got.Created.Equal(s.Created) {
		t.Errorf("after restart: %s/%s created %v, want %s/existing created %v", got.SandboxID, got.Allocation, got.Created, s.SandboxID, s.Created)
	}
	r, err := got.Agent.Execute(ctx, wire.LangPython, wire.ExecuteRequest{Code: "x + 1"})
	if err != nil || r.Result == nil || r.Result.Repr != "42" {
		t.Errorf("x + 1 after restart = %+v, %v; want 42", r, err)
	}
	f, err := got.Agent.ReadFile(ctx, "notes.txt")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "remember" {
		t.Errorf("file after restart = %q", b)
	}
	if cn := c2.counts(id); cn.ready != 2 || cn.claimed != 1 {
		t.Errorf("after restart ready = %d, claimed = %d; want 2 and 1", cn.ready, cn.claimed)
	}
	after := sandboxIDs(sandboxesOf(t, rt2, id))
	if strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("sandboxes after restart = %v, want the same as before %v (warm ones adopted)", after, before)
	}
	if contains(sandboxIDs(sandboxesOf(t, rt2, "")), stray.ID) {
		t.Errorf("stray sandbox survived the restart")
	}
}

// TestStartFailure: a pool whose sandboxes cannot start is Failed with a
// readable error, and so is its operation.
func TestStartFailure(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	c := startController(t, st, failingRuntime{})
	id := putPoolSpec(t, st, c, poolSpec{name: "p1", containerType: model.ContainerTypeShell, max: 5, ready: 2}, "op")
	op := waitOp(t, st, "op")
	if op.Status != store.OperationFailed || op.ErrorCode != "ImagePullFailed" || !strings.Contains(op.ErrorMsg, "no such host") {
		t.Errorf("operation = %s %s %q, want Failed ImagePullFailed with the cause", op.Status, op.ErrorCode, op.ErrorMsg)
	}
	res, err := st.GetResource(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if got := provisioningState(res.Body); got != model.StateFailed || !strings.Contains(string(res.Body), "no such host") {
		t.Errorf("pool = %s", res.Body)
	}
	if _, err := c.Acquire(ctx, id, "u"); !errors.Is(err, ErrPoolNotReady) {
		t.Errorf("Acquire on a failed pool = %v, want ErrPoolNotReady", err)
	}
}

// TestNoRuntime: without a runtime pools hold no sessions.
func TestNoRuntime(t *testing.T) {
	st := newStore(t)
	putPool(t, st, model.StateSucceeded)
	c := New(st)
	if _, err := c.Acquire(context.Background(), poolID, "u"); !errors.Is(err, ErrPoolNotReady) {
		t.Errorf("Acquire = %v, want ErrPoolNotReady", err)
	}
}
