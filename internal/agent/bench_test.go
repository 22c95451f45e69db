package agent_test

import (
	"testing"

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
