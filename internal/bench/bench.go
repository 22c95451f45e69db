package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
)

// Scenarios, in the order they run.
var Scenarios = []string{"claim", "exec", "refill", "density", "shell", "files", "cold"}

// Sizes are the counts of each scenario.
type Sizes struct {
	ClaimSequential int // claims one at a time
	ClaimConcurrent int // clients per concurrent round
	ClaimRounds     int // concurrent rounds
	Sessions        int // sessions (and clients) of the throughput figure
	Cold            int // cold starts per runtime (and runs of its floor)
	Refill          int // ready set size refilled after each burst
	RefillRounds    int
	Density         int   // idle sessions started in each step of the density scenario
	DensityBudget   int64 // memory (bytes, all sessions) at which density stops
	DensityMax      int   // sessions at which density stops, whatever the memory
	FileBytes       int   // size of the file uploaded and downloaded
	Files           int   // uploads and downloads
	JupyterKernels  int   // new kernels (and idle kernels for memory)
}

// DefaultSizes are those of `tidepool bench` (and `make bench`).
var DefaultSizes = Sizes{
	ClaimSequential: 40, ClaimConcurrent: 16, ClaimRounds: 4, Sessions: 50, Cold: 12,
	Refill: 10, RefillRounds: 3, Density: 8, DensityBudget: 2 << 30, DensityMax: 256,
	FileBytes: 64 << 20, Files: 5, JupyterKernels: 6,
}

// SmokeSizes are tiny: a run that checks the command works.
var SmokeSizes = Sizes{
	ClaimSequential: 2, ClaimConcurrent: 3, ClaimRounds: 1, Sessions: 3, Cold: 1,
	Refill: 2, RefillRounds: 1, Density: 2, DensityBudget: 1, DensityMax: 2,
	FileBytes: 1 << 20, Files: 1, JupyterKernels: 1,
}

// Config configures a run.
type Config struct {
	// Scenarios to run; nil means all (Scenarios).
	Scenarios []string
	// Duration of each duration-based measurement (floors, executions on
	// an existing session, throughput, shell). 0 means 5 s.
	Duration time.Duration
	// Sizes of the scenarios; the zero value means DefaultSizes.
	Sizes Sizes
	// OutDir receives report.md, results.json and the charts; empty
	// writes nothing.
	OutDir string
	// Version is the tidepool version written in the results.
	Version string
	// Progress receives one line per step; nil discards them.
	Progress io.Writer

	// Target is a server to measure (--endpoint). When nil, Start starts
	// one for each runtime in Runtimes.
	Target *Target
	Start  StartFunc
	// Runtimes are the sandbox runtimes to start servers with: every
	// scenario runs on the first, cold runs on each.
	Runtimes []string
	// FloorRuntimes are the OCI runtimes whose `run` of a one-shot python3
	// is measured as the cold start's floor, interleaved with the cold
	// starts (needs root, and the server on this machine); AgentBinary is
	// the tidepool binary those bundles mount.
	FloorRuntimes []string
	AgentBinary   string
	// NoPeer skips Jupyter Server.
	NoPeer bool
	// Settle is how long a pool's ready set must stay unchanged before a
	// claim is timed; 0 means 300 ms.
	Settle time.Duration
}

// runner holds one run's state.
type runner struct {
	cfg    Config
	sizes  Sizes
	res    *Results
	byName map[string]*Measurement
	prefix string // of identifiers and resource groups
	seq    int
	mu     sync.Mutex
}

// Run runs the bench and returns its results; it writes the report files
// to cfg.OutDir when set. Errors of one scenario are recorded as skips and
// the run goes on; Run fails only when nothing could be measured at all
// (no server) or the report cannot be written.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	if cfg.Duration <= 0 {
		cfg.Duration = 5 * time.Second
	}
	if cfg.Sizes == (Sizes{}) {
		cfg.Sizes = DefaultSizes
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 300 * time.Millisecond
	}
	if cfg.Scenarios == nil {
		cfg.Scenarios = Scenarios
	}
	for _, s := range cfg.Scenarios {
		if !slices.Contains(Scenarios, s) {
			return nil, fmt.Errorf("unknown scenario %q: want some of %s", s, strings.Join(Scenarios, ", "))
		}
	}
	if cfg.Target == nil && (cfg.Start == nil || len(cfg.Runtimes) == 0) {
		return nil, errors.New("bench: no server to measure: give a target, or a way to start one and a runtime")
	}
	r := &runner{cfg: cfg, sizes: cfg.Sizes, byName: map[string]*Measurement{},
		prefix: fmt.Sprintf("bench%d", time.Now().UnixNano()%1e8)}
	mainRuntime := "unknown"
	if cfg.Target != nil {
		if cfg.Target.Runtime != "" {
			mainRuntime = cfg.Target.Runtime
		}
	} else {
		mainRuntime = cfg.Runtimes[0]
	}
	r.res = &Results{SchemaVersion: SchemaVersion, Version: cfg.Version, Started: time.Now().UTC(), Machine: machineInfo(),
		Config:       RunInfo{Scenarios: cfg.Scenarios, DurationSeconds: cfg.Duration.Seconds(), Runtime: mainRuntime},
		Measurements: []*Measurement{}, Skipped: []Skip{}}
	if cfg.Target != nil {
		r.res.Config.Endpoint = cfg.Target.Endpoint
	}

	r.floors(ctx)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.peer(ctx)
	if err := r.servers(ctx, mainRuntime); err != nil {
		return nil, err
	}
	r.compare()
	r.res.Seconds = time.Since(r.res.Started).Seconds()
	r.res.Summary = summary(r.res)
	if cfg.OutDir != "" {
		if err := writeReport(cfg.OutDir, r.res); err != nil {
			return r.res, err
		}
	}
	return r.res, nil
}

func (r *runner) wants(s string) bool { return slices.Contains(r.cfg.Scenarios, s) }

func (r *runner) progress(format string, args ...any) {
	if r.cfg.Progress != nil {
		fmt.Fprintf(r.cfg.Progress, "bench: "+format+"\n", args...)
	}
}

func (r *runner) add(m *Measurement) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m.Latency == nil && len(m.durations) > 0 {
		m.Latency = Summarize(m.durations)
	}
	if m.Count == 0 {
		m.Count = len(m.durations)
	}
	r.res.Measurements = append(r.res.Measurements, m)
	r.byName[m.Name] = m
	switch {
	case m.Throughput != nil:
		r.progress("%-28s %10.1f %s", m.Name, m.Throughput.Value, m.Throughput.Unit)
	case m.Latency != nil:
		r.progress("%-28s p50 %9.3f ms  p99 %9.3f ms  (n=%d)", m.Name, m.Latency.P50, m.Latency.P99, m.Count)
	case m.Memory != nil:
		r.progress("%-28s %9.1f MiB/session (n=%d)", m.Name, float64(m.Memory.UsageBytes)/(1<<20), m.Count)
	}
}

func (r *runner) skip(name string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Skipped = append(r.res.Skipped, Skip{Name: name, Reason: err.Error()})
	r.progress("%s: skipped: %v", name, err)
}

// ident returns a new session identifier.
func (r *runner) ident(kind string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	return fmt.Sprintf("%s-%s-%d", r.prefix, kind, r.seq)
}

// floors measures the floors the selected scenarios compare with.
func (r *runner) floors(ctx context.Context) {
	d := r.cfg.Duration
	if r.wants("claim") || r.wants("exec") || r.wants("shell") {
		r.progress("floor: loopback HTTP")
		if l, err := floorLoopback(ctx, d); err != nil {
			r.skip("floor/loopback-http", err)
		} else {
			r.add(&Measurement{Name: "floor/loopback-http", Scenario: "floor", System: SystemFloor,
				What: "POST of a code/execute body to an empty Go handler on 127.0.0.1, kept-alive connection", durations: l})
		}
	}
	if r.wants("claim") || r.wants("exec") {
		r.progress("floor: python print(1) through a pipe")
		if l, err := floorPython(ctx, d); err != nil {
			r.skip("floor/python-pipe", err)
		} else {
			r.add(&Measurement{Name: "floor/python-pipe", Scenario: "floor", System: SystemFloor,
				What: "exec of print(1) in one python3 process, code in and output out through a pipe", durations: l})
		}
	}
	if r.wants("shell") {
		r.progress("floor: fork and exec of sh")
		if l, err := floorShell(ctx, d); err != nil {
			r.skip("floor/sh-fork", err)
		} else {
			r.add(&Measurement{Name: "floor/sh-fork", Scenario: "floor", System: SystemFloor,
				What: "/bin/sh -c 'echo 1' started and waited for by the bench", durations: l})
		}
	}
	if r.wants("files") {
		r.progress("floor: loopback upload")
		if l, err := floorLoopbackUpload(ctx, r.sizes.FileBytes, max(r.sizes.Files, 5)); err != nil {
			r.skip("floor/loopback-upload", err)
		} else {
			r.add(&Measurement{Name: "floor/loopback-upload", Scenario: "floor", System: SystemFloor,
				What: fmt.Sprintf("POST of %s to an empty Go handler on 127.0.0.1", sizeText(r.sizes.FileBytes)), durations: l,
				Throughput: mibPerSec(r.sizes.FileBytes, l)})
		}
	}
}

// peer measures Jupyter Server.
func (r *runner) peer(ctx context.Context) {
	if r.cfg.NoPeer || !(r.wants("claim") || r.wants("exec") || r.wants("cold") || r.wants("density")) {
		return
	}
	bin, err := findJupyter()
	if err != nil {
		r.skip("jupyter", err)
		return
	}
	r.progress("jupyter: starting %s", bin)
	j, err := startJupyter(ctx, bin)
	if err != nil {
		r.skip("jupyter", err)
		return
	}
	defer j.stop()
	f, err := j.measure(ctx, r.sizes.JupyterKernels, r.cfg.Duration, r.progress)
	if err != nil {
		r.skip("jupyter", err)
		return
	}
	r.add(&Measurement{Name: "jupyter/new-kernel", Scenario: "peer", System: SystemJupyter,
		What: "POST /api/kernels, WebSocket to its channels, execute_request of print(1) until execute_reply and idle", durations: f.newKernel})
	r.add(&Measurement{Name: "jupyter/exec", Scenario: "peer", System: SystemJupyter,
		What: "execute_request of print(1) on a running kernel over its WebSocket until execute_reply and idle", durations: f.exec})
	if f.memory != nil {
		r.add(&Measurement{Name: "jupyter/memory", Scenario: "peer", System: SystemJupyter, Count: f.memCount, Memory: f.memory,
			What: "Pss and Rss of the server's kernel processes, per idle kernel after one print(1)"})
	}
}

// servers runs the scenarios on the main server, then cold on a server
// per other runtime.
func (r *runner) servers(ctx context.Context, mainRuntime string) error {
	t := r.cfg.Target
	if t == nil {
		r.progress("server: starting tidepool serve --runtime %s", mainRuntime)
		var err error
		if t, err = r.cfg.Start(ctx, mainRuntime); err != nil {
			return fmt.Errorf("start the server: %w", err)
		}
	}
	err := r.onServer(ctx, t, r.cfg.Scenarios)
	if t.Stop != nil {
		r.progress("server: stopping (%s)", mainRuntime)
		if serr := t.Stop(context.WithoutCancel(ctx)); serr != nil {
			r.skip("cleanup/"+mainRuntime, serr)
		}
	}
	if err != nil {
		return err
	}
	if r.cfg.Target != nil || !r.wants("cold") {
		return nil
	}
	for _, rt := range r.cfg.Runtimes[1:] {
		if err := ctx.Err(); err != nil {
			return err
		}
		r.progress("server: starting tidepool serve --runtime %s", rt)
		t, err := r.cfg.Start(ctx, rt)
		if err != nil {
			r.skip("cold/"+rt, err)
			continue
		}
		err = r.onServer(ctx, t, []string{"cold"})
		r.progress("server: stopping (%s)", rt)
		if serr := t.Stop(context.WithoutCancel(ctx)); serr != nil {
			r.skip("cleanup/"+rt, serr)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// onServer runs scenarios on t in a resource group of their own, deleted
// at the end. Only a failure to reach the server at all is an error; a
// failing scenario is recorded as skipped.
func (r *runner) onServer(ctx context.Context, t *Target, scenarios []string) error {
	c, err := NewClient(ctx, t.Endpoint, t.MetricsURL, t.Credentials)
	if err != nil {
		return err
	}
	defer c.Close()
	rg := r.prefix + "-" + strings.ReplaceAll(t.Runtime, "/", "-")
	if err := c.CreateGroup(ctx, rg); err != nil {
		return err
	}
	defer func() {
		r.progress("server: deleting resource group %s", rg)
		if err := c.DeleteGroup(context.WithoutCancel(ctx), rg); err != nil {
			r.skip("cleanup/"+rg, err)
		}
	}()
	s := &scenario{r: r, c: c, t: t, rg: rg}
	for _, name := range Scenarios {
		if !slices.Contains(scenarios, name) || !r.wants(name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		r.progress("%s: running on %s", name, runtimeName(t))
		var err error
		switch name {
		case "claim":
			err = s.claim(ctx)
		case "exec":
			err = s.exec(ctx)
		case "refill":
			err = s.refill(ctx)
		case "density":
			err = s.density(ctx)
		case "shell":
			err = s.shell(ctx)
		case "files":
			err = s.files(ctx)
		case "cold":
			err = s.cold(ctx)
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.skip(name+"/"+runtimeName(t), err)
		}
	}
	return nil
}

func runtimeName(t *Target) string {
	if t.Runtime == "" {
		return "unknown"
	}
	return t.Runtime
}

func sizeText(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

// mibPerSec is size over the median duration.
func mibPerSec(size int, l []time.Duration) *Rate {
	s := Summarize(l)
	if s == nil || s.P50 <= 0 {
		return nil
	}
	return &Rate{Value: round(float64(size) / (1 << 20) / (s.P50 / 1000)), Unit: "MiB/s"}
}

func round(v float64) float64 { return float64(int64(v*100+0.5)) / 100 }
