package agent_test

import (
	"slices"
	"testing"
	"time"

	"github.com/tidepool-dev/tidepool/internal/agent"
	"github.com/tidepool-dev/tidepool/internal/agent/kernel"
	"github.com/tidepool-dev/tidepool/internal/agent/wire"
)

// BenchmarkHealth is one GET /health round trip through the client over
// the unix socket (a reused connection): the agent's share of the floor.
func BenchmarkHealth(b *testing.B) {
	a := startAgent(b, nil)
	ctx := b.Context()
	for b.Loop() {
		if _, err := a.Health(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExecTrue is one POST /exec of `true` (argv, no shell): the
// round trip plus a fork and exec.
func BenchmarkExecTrue(b *testing.B) {
	a := startAgent(b, nil)
	ctx := b.Context()
	for b.Loop() {
		res, err := a.Exec(ctx, wire.ExecRequest{Argv: []string{"true"}})
		if err != nil || res.ExitCode != 0 {
			b.Fatal(res, err)
		}
	}
}

// BenchmarkExecShellTrue is `true` through bash -c.
func BenchmarkExecShellTrue(b *testing.B) {
	a := startAgent(b, nil)
	ctx := b.Context()
	for b.Loop() {
		res, err := a.Exec(ctx, wire.ExecRequest{ShellCommand: "true"})
		if err != nil || res.ExitCode != 0 {
			b.Fatal(res, err)
		}
	}
}

// BenchmarkKernelExecute is print(1) in a warm Python kernel through the
// agent's HTTP API, client and agent in one process: the agent's share of
// a warm execution, without a process hop for the client.
func BenchmarkKernelExecute(b *testing.B) {
	km := kernel.New(kernel.Options{Cwd: b.TempDir()})
	b.Cleanup(func() { km.Close() })
	a := startAgent(b, func(c *agent.Config) { c.Kernels = km })
	ctx := b.Context()
	if err := km.Start(ctx, wire.LangPython); err != nil {
		b.Fatal(err)
	}
	req := wire.ExecuteRequest{Code: "print(1)"}
	for range 100 {
		if _, err := a.Execute(ctx, wire.LangPython, req); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		t0 := time.Now()
		res, err := a.Execute(ctx, wire.LangPython, req)
		lat = append(lat, time.Since(t0))
		if err != nil || res.Stdout != "1\n" {
			b.Fatal(res, err)
		}
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
