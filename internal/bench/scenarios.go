package bench

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// scenario runs scenarios on one server.
type scenario struct {
	r  *runner
	c  *Client
	t  *Target
	rg string
}

func (s *scenario) rt() string { return runtimeName(s.t) }

// settle waits until p's ready set is full and quiet.
func (s *scenario) settle(ctx context.Context, p *Pool) error {
	return s.c.WaitQuiet(ctx, p, s.r.cfg.Settle, 3*time.Minute)
}

// deletePool deletes a scenario's pool (its sandboxes go with it), so that
// the next scenario runs on a quiet machine.
func (s *scenario) deletePool(ctx context.Context, p *Pool) {
	ctx = context.WithoutCancel(ctx)
	u := s.c.endpoint + p.Key + "?api-version=2025-02-02-preview"
	s.c.doJSON(ctx, "DELETE", u, nil)
	poll(ctx, 3*time.Minute, func() (bool, error) {
		st, _, _, err := s.c.doJSON(ctx, "GET", u, nil)
		return st == 404, err
	})
	if s.c.metrics != "" {
		poll(ctx, 3*time.Minute, func() (bool, error) {
			g, err := s.c.Gauges(ctx, p)
			return g == (PoolGauges{}), err
		})
	}
}

// concurrently runs f(i) for i in [0, n) on at most workers goroutines
// and returns the first error.
func concurrently(n, workers int, f func(i int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	next := make(chan int)
	for range min(workers, n) {
		wg.Go(func() {
			for i := range next {
				errs[i] = f(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return errors.Join(errs...)
}

// claim: print(1) on new identifiers with ready sandboxes; sequential,
// then rounds of ClaimConcurrent clients at once. Each claim (each round)
// waits, untimed, for a full and quiet ready set; sessions are deleted
// after.
func (s *scenario) claim(ctx context.Context) error {
	z := s.r.sizes
	conc := max(z.ClaimConcurrent, 1)
	p, err := s.c.CreatePool(ctx, s.rg, PoolSpec{Name: "claim", ContainerType: "PythonLTS", Ready: conc, Max: 3 * conc})
	if err != nil {
		return err
	}
	defer s.deletePool(ctx, p)
	var seq []time.Duration
	cold := 0
	for i := range z.ClaimSequential {
		if err := s.settle(ctx, p); err != nil {
			return err
		}
		s.r.progress("claim: sequential %d/%d", i+1, z.ClaimSequential)
		id := s.r.ident("claim")
		t0 := time.Now()
		res, err := s.c.Execute(ctx, p, id, "print(1)")
		d := time.Since(t0)
		if err != nil {
			return err
		}
		seq = append(seq, d)
		if res.AllocationMs >= 20 {
			cold++
		}
		if err := s.c.DeleteSession(ctx, p, id); err != nil {
			return err
		}
	}
	s.r.add(&Measurement{Name: "claim/sequential", Scenario: "claim", System: SystemTidepool, Runtime: s.rt(), durations: seq,
		What:  "POST code/execute of print(1) with a new identifier on a pool with ready sandboxes, one client",
		Notes: coldNote(cold, len(seq))})
	var par []time.Duration
	cold = 0
	for round := range z.ClaimRounds {
		if err := s.settle(ctx, p); err != nil {
			return err
		}
		s.r.progress("claim: %d concurrent, round %d/%d", conc, round+1, z.ClaimRounds)
		ids := make([]string, conc)
		lat := make([]time.Duration, conc)
		allocs := make([]int, conc)
		for i := range ids {
			ids[i] = s.r.ident("claimc")
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make([]error, conc)
		for i := range conc {
			wg.Go(func() {
				<-start
				t0 := time.Now()
				res, err := s.c.Execute(ctx, p, ids[i], "print(1)")
				lat[i], allocs[i], errs[i] = time.Since(t0), res.AllocationMs, err
			})
		}
		close(start)
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		par = append(par, lat...)
		for _, a := range allocs {
			if a >= 20 {
				cold++
			}
		}
		if err := concurrently(conc, 8, func(i int) error { return s.c.DeleteSession(ctx, p, ids[i]) }); err != nil {
			return err
		}
	}
	s.r.add(&Measurement{Name: fmt.Sprintf("claim/concurrent-%d", conc), Scenario: "claim", System: SystemTidepool, Runtime: s.rt(), durations: par,
		What:  fmt.Sprintf("the same, %d clients at once on %d new identifiers (a pool with %d ready sandboxes)", conc, conc, conc),
		Notes: coldNote(cold, len(par))})
	return nil
}

func coldNote(cold, n int) string {
	if cold == 0 {
		return ""
	}
	return fmt.Sprintf("%d of %d took ≥ 20 ms to allocate (x-ms-allocation-time): a cold start, or a slow claim", cold, n)
}

// exec: print(1) on an existing session, sequentially for Duration; then
// across Sessions sessions with one client each for Duration
// (throughput).
func (s *scenario) exec(ctx context.Context) error {
	z := s.r.sizes
	n := max(z.Sessions, 1)
	p, err := s.c.CreatePool(ctx, s.rg, PoolSpec{Name: "exec", ContainerType: "PythonLTS", Ready: n, Max: n + 4})
	if err != nil {
		return err
	}
	defer s.deletePool(ctx, p)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = s.r.ident("exec")
	}
	s.r.progress("exec: claiming %d sessions", n)
	if err := concurrently(n, 4, func(i int) error { _, err := s.c.Execute(ctx, p, ids[i], "print(1)"); return err }); err != nil {
		return err
	}
	if err := s.settle(ctx, p); err != nil {
		return err
	}
	s.r.progress("exec: sequential on one session for %s", s.r.cfg.Duration)
	var seq []time.Duration
	err = forDuration(ctx, s.r.cfg.Duration, func() error {
		t0 := time.Now()
		if _, err := s.c.Execute(ctx, p, ids[0], "print(1)"); err != nil {
			return err
		}
		seq = append(seq, time.Since(t0))
		return nil
	})
	if err != nil {
		return err
	}
	s.r.add(&Measurement{Name: "exec/sequential", Scenario: "exec", System: SystemTidepool, Runtime: s.rt(), durations: seq,
		What: "POST code/execute of print(1) on an identifier that has a session, one client"})
	s.r.progress("exec: %d sessions, %d clients for %s", n, n, s.r.cfg.Duration)
	lat := make([][]time.Duration, n)
	t0 := time.Now()
	err = concurrently(n, n, func(i int) error {
		return forDuration(ctx, s.r.cfg.Duration, func() error {
			t := time.Now()
			if _, err := s.c.Execute(ctx, p, ids[i], "print(1)"); err != nil {
				return err
			}
			lat[i] = append(lat[i], time.Since(t))
			return nil
		})
	})
	elapsed := time.Since(t0)
	if err != nil {
		return err
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	s.r.add(&Measurement{Name: fmt.Sprintf("exec/throughput-%d", n), Scenario: "exec", System: SystemTidepool, Runtime: s.rt(), durations: all,
		Throughput: &Rate{Value: round(float64(len(all)) / elapsed.Seconds()), Unit: "executions/s"},
		What:       fmt.Sprintf("print(1) on %d sessions, one client per session, all at once; latency of each execution and executions/s over the run", n)})
	return nil
}

// refill: a burst of Refill claims empties the ready set; timed from the
// burst's start until the ready set is full again.
func (s *scenario) refill(ctx context.Context) error {
	if s.c.metrics == "" {
		return errNoMetrics
	}
	z := s.r.sizes
	n := max(z.Refill, 1)
	p, err := s.c.CreatePool(ctx, s.rg, PoolSpec{Name: "refill", ContainerType: "PythonLTS", Ready: n, Max: 3 * n})
	if err != nil {
		return err
	}
	defer s.deletePool(ctx, p)
	var times []time.Duration
	for round := range z.RefillRounds {
		if err := s.settle(ctx, p); err != nil {
			return err
		}
		s.r.progress("refill: burst of %d claims, round %d/%d", n, round+1, z.RefillRounds)
		ids := make([]string, n)
		for i := range ids {
			ids[i] = s.r.ident("refill")
		}
		t0 := time.Now()
		if err := concurrently(n, n, func(i int) error { _, err := s.c.Execute(ctx, p, ids[i], "print(1)"); return err }); err != nil {
			return err
		}
		err := poll(ctx, 3*time.Minute, func() (bool, error) {
			g, err := s.c.Gauges(ctx, p)
			return g.Ready >= n && g.Starting == 0, err
		})
		if err != nil {
			return fmt.Errorf("ready set not back: %w", err)
		}
		times = append(times, time.Since(t0))
		if err := concurrently(n, 8, func(i int) error { return s.c.DeleteSession(ctx, p, ids[i]) }); err != nil {
			return err
		}
	}
	st := Summarize(times)
	s.r.add(&Measurement{Name: "refill", Scenario: "refill", System: SystemTidepool, Runtime: s.rt(), durations: times,
		Throughput: &Rate{Value: round(float64(n) / (st.P50 / 1000)), Unit: "sandboxes/s"},
		What:       fmt.Sprintf("from a burst of %d claims on a pool with %d ready sandboxes until the ready set is full again (metrics); sandboxes/s = %d / p50", n, n, n)})
	return nil
}

// density: idle Python sessions (kernel loaded, one print(1) each), started
// Density at a time until together they use DensityBudget bytes or number
// DensityMax; the memory of each sandbox read from its cgroup.
func (s *scenario) density(ctx context.Context) error {
	if s.t.SandboxRoot == "" {
		return errors.New("the server's sandbox directory is unknown (give --sandbox-root with --endpoint)")
	}
	step := max(s.r.sizes.Density, 1)
	limit := max(s.r.sizes.DensityMax, step)
	p, err := s.c.CreatePool(ctx, s.rg, PoolSpec{Name: "density", ContainerType: "PythonLTS", Ready: step, Max: limit})
	if err != nil {
		return err
	}
	defer s.deletePool(ctx, p)
	if err := s.settle(ctx, p); err != nil {
		return err
	}
	n := 0
	var usage, rss int64
	method := ""
	for n < limit && (n == 0 || usage < s.r.sizes.DensityBudget) {
		k := min(step, limit-n)
		s.r.progress("density: %d sessions, %d MiB; starting %d more", n, usage>>20, k)
		if err := concurrently(k, 4, func(int) error { _, err := s.c.Execute(ctx, p, s.r.ident("density"), "print(1)"); return err }); err != nil {
			return fmt.Errorf("after %d sessions: %w", n, err)
		}
		n += k
		if err := sleep(ctx, 2*time.Second); err != nil {
			return err
		}
		// Only claimed sandboxes count: the warm set refills meanwhile.
		if usage, rss, method, err = s.claimedMemory(p.Key, n); err != nil {
			return err
		}
	}
	mem := &Memory{Method: method, UsageBytes: usage / int64(n), RSSBytes: rss / int64(n)}
	mem.SessionsPerGiB = round(perGiB(mem.UsageBytes))
	s.r.add(&Measurement{Name: "density/" + s.rt(), Scenario: "density", System: SystemTidepool, Runtime: s.rt(), Count: n, Memory: mem,
		What: fmt.Sprintf("memory per idle python session (kernel loaded, after one print(1), 2 s idle), from each sandbox's memory cgroup; sessions added %d at a time until they used %d MiB or numbered %d", step, s.r.sizes.DensityBudget>>20, limit)})
	return nil
}

// claimedMemory sums the memory of the pool's n largest sandboxes: the
// warm set refills while sessions start, and a warm sandbox, which has run
// no code, uses less than a session.
func (s *scenario) claimedMemory(key string, n int) (usage, rss int64, method string, err error) {
	sbs, err := poolSandboxes(s.t.SandboxRoot, key)
	if err != nil {
		return 0, 0, "", err
	}
	if len(sbs) < n {
		return 0, 0, "", fmt.Errorf("found %d sandboxes of the pool under %s, want at least %d", len(sbs), s.t.SandboxRoot, n)
	}
	ms := make([]sandboxMemory, 0, len(sbs))
	for _, sb := range sbs {
		m, err := measureSandbox(sb)
		if err != nil {
			return 0, 0, "", err
		}
		ms = append(ms, m)
	}
	slices.SortFunc(ms, func(a, b sandboxMemory) int { return cmp.Compare(b.usage, a.usage) })
	for _, m := range ms[:n] {
		usage, rss, method = usage+m.usage, rss+m.rss, m.method
	}
	return usage, rss, method, nil
}

// shell: shellCommand `echo 1` on a Shell pool's session, for Duration.
func (s *scenario) shell(ctx context.Context) error {
	p, err := s.c.CreatePool(ctx, s.rg, PoolSpec{Name: "shell", ContainerType: "Shell", Ready: 1, Max: 4})
	if err != nil {
		return err
	}
	defer s.deletePool(ctx, p)
	id := s.r.ident("shell")
	if err := s.c.Shell(ctx, p, id, "echo 1"); err != nil {
		return err
	}
	var l []time.Duration
	err = forDuration(ctx, s.r.cfg.Duration, func() error {
		t0 := time.Now()
		if err := s.c.Shell(ctx, p, id, "echo 1"); err != nil {
			return err
		}
		l = append(l, time.Since(t0))
		return nil
	})
	if err != nil {
		return err
	}
	s.r.add(&Measurement{Name: "shell", Scenario: "shell", System: SystemTidepool, Runtime: s.rt(), durations: l,
		What: "POST executions with shellCommand `echo 1` on an identifier that has a session (Shell pool)"})
	return nil
}

// files: upload then download a FileBytes file, Files times.
func (s *scenario) files(ctx context.Context) error {
	z := s.r.sizes
	p, err := s.c.CreatePool(ctx, s.rg, PoolSpec{Name: "files", ContainerType: "PythonLTS", Ready: 1, Max: 4})
	if err != nil {
		return err
	}
	defer s.deletePool(ctx, p)
	data := make([]byte, z.FileBytes)
	rand.Read(data)
	id := s.r.ident("files")
	if _, err := s.c.Execute(ctx, p, id, "print(1)"); err != nil {
		return err
	}
	var up, down []time.Duration
	for i := range z.Files {
		s.r.progress("files: upload and download %d/%d", i+1, z.Files)
		t0 := time.Now()
		if err := s.c.Upload(ctx, p, id, "bench.bin", data); err != nil {
			return err
		}
		up = append(up, time.Since(t0))
		t0 = time.Now()
		n, err := s.c.Download(ctx, p, id, "bench.bin")
		if err != nil {
			return err
		}
		down = append(down, time.Since(t0))
		if n != int64(len(data)) {
			return fmt.Errorf("downloaded %d bytes, uploaded %d", n, len(data))
		}
	}
	size := sizeText(z.FileBytes)
	s.r.add(&Measurement{Name: "files/upload", Scenario: "files", System: SystemTidepool, Runtime: s.rt(), durations: up,
		Throughput: mibPerSec(z.FileBytes, up), What: "POST files/upload (multipart) of a " + size + " file into /mnt/data"})
	s.r.add(&Measurement{Name: "files/download", Scenario: "files", System: SystemTidepool, Runtime: s.rt(), durations: down,
		Throughput: mibPerSec(z.FileBytes, down), What: "GET files/content of the " + size + " file"})
	return nil
}

// cold: print(1) on new identifiers of a pool with no ready sandbox: each
// starts a sandbox for the request.
func (s *scenario) cold(ctx context.Context) error {
	p, err := s.c.CreatePool(ctx, s.rg, PoolSpec{Name: "cold", ContainerType: "PythonLTS", Ready: 0, Max: 4})
	if err != nil {
		return err
	}
	defer s.deletePool(ctx, p)
	// The floor runs interleaved with the cold starts, so that both see
	// the same machine.
	var floor *ociFloor
	floorName := "floor/oci-run/" + s.rt()
	if slices.Contains(s.r.cfg.FloorRuntimes, s.rt()) {
		if floor, err = newOCIFloor(ctx, s.rt(), s.r.cfg.AgentBinary); err != nil {
			s.r.skip(floorName, err)
		} else {
			defer floor.close()
		}
	}
	var l, fl []time.Duration
	for i := range s.r.sizes.Cold {
		if err := s.settle(ctx, p); err != nil {
			return err
		}
		s.r.progress("cold: %s %d/%d", s.rt(), i+1, s.r.sizes.Cold)
		if floor != nil {
			d, err := floor.run(ctx)
			if err != nil {
				s.r.skip(floorName, err)
				floor.close()
				floor, fl = nil, nil
			} else {
				fl = append(fl, d)
			}
		}
		id := s.r.ident("cold")
		t0 := time.Now()
		if _, err := s.c.Execute(ctx, p, id, "print(1)"); err != nil {
			return err
		}
		l = append(l, time.Since(t0))
		if err := s.c.DeleteSession(ctx, p, id); err != nil {
			return err
		}
	}
	if floor != nil {
		s.r.add(&Measurement{Name: floorName, Scenario: "floor", System: SystemFloor, Runtime: s.rt(), durations: fl,
			What: s.rt() + " run (foreground) of python3 -c pass in a bundle like a sandbox's (host rootfs, user namespace for runc and crun, seccomp, cgroup limits; no agent, disk or network), each run just before a cold start"})
	}
	s.r.add(&Measurement{Name: "cold/" + s.rt(), Scenario: "cold", System: SystemTidepool, Runtime: s.rt(), durations: l,
		What: "POST code/execute of print(1) with a new identifier on a pool with readySessionInstances 0: a sandbox (and its kernel) started for the request"})
	return nil
}
