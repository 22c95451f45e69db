package kernel

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tidepool-dev/tidepool/internal/agent/wire"
)

// The design target (DESIGN §7) is a p50 of at most 200 µs for a warm
// execution through the agent, HTTP included; these measure the kernel
// part alone: Execute of a one-line program on a warm kernel, through the
// Manager. Besides ns/op they report p50 and p99.

func BenchmarkPythonExecute(b *testing.B) {
	benchmarkExecute(b, wire.LangPython, "print(1)", "1\n")
}

func BenchmarkNodeExecute(b *testing.B) {
	benchmarkExecute(b, wire.LangNode, "console.log(1)", "1\n")
}

func benchmarkExecute(b *testing.B, lang, code, want string) {
	m := newManager(b, Options{})
	ctx := context.Background()
	if err := m.Start(ctx, lang); err != nil {
		b.Fatalf("Start: %v", err)
	}
	req := wire.ExecuteRequest{Code: code}
	for range 100 { // warm up
		if _, err := m.Execute(ctx, lang, req); err != nil {
			b.Fatalf("Execute: %v", err)
		}
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		res, err := m.Execute(ctx, lang, req)
		lat = append(lat, time.Since(t0))
		if err != nil || res.Stdout != want {
			b.Fatalf("Execute(%q) = %+v, %v; want stdout %q", code, res, err, want)
		}
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

// BenchmarkPythonStart measures a cold kernel start: the interpreter, the
// driver, and its ready answer.
func BenchmarkPythonStart(b *testing.B) { benchmarkStart(b, wire.LangPython, "") }

func BenchmarkNodeStart(b *testing.B) { benchmarkStart(b, wire.LangNode, "") }

// BenchmarkPythonStartBytecode is BenchmarkPythonStart with the driver
// precompiled (Options.PythonBytecode).
func BenchmarkPythonStartBytecode(b *testing.B) {
	file := b.TempDir() + "/driver.pyc"
	if err := CompilePythonDriver(context.Background(), interpreter(b, wire.LangPython), file); err != nil {
		b.Fatal(err)
	}
	benchmarkStart(b, wire.LangPython, file)
}

func benchmarkStart(b *testing.B, lang, bytecode string) {
	ctx := context.Background()
	opts := Options{Python: interpreter(b, wire.LangPython), Node: interpreter(b, wire.LangNode), Cwd: b.TempDir(), PythonBytecode: bytecode}
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		m := New(opts)
		t0 := time.Now()
		err := m.Start(ctx, lang)
		lat = append(lat, time.Since(t0))
		if err != nil {
			b.Fatalf("Start: %v", err)
		}
		b.StopTimer()
		m.Close()
		b.StartTimer()
	}
	reportPercentiles(b, lat)
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}
