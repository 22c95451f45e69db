package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidepool-dev/tidepool/internal/sandbox/sandboxtest"
	"github.com/tidepool-dev/tidepool/internal/server"
)

// buildTidepool builds cmd/tidepool (static, as `make build` does) into a
// world-searchable temporary directory: the ProcessRuntime runs it as the
// sandboxes' agent.
func buildTidepool(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
		if _, err := os.Stat(goBin); err != nil {
			goBin = "/usr/local/go/bin/go"
		}
	}
	dir, err := os.MkdirTemp("", "tpbench-bin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "tidepool")
	cmd := exec.Command(goBin, "build", "-o", bin, "github.com/tidepool-dev/tidepool/cmd/tidepool")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// processTarget runs an in-process server whose sandboxes are
// sandboxtest.ProcessRuntime's (real agents and kernels, no isolation)
// until the test ends.
func processTarget(t *testing.T) *Target {
	t.Helper()
	agent := buildTidepool(t)
	root, err := os.MkdirTemp("", "tpbs") // short: unix socket paths
	if err != nil {
		t.Fatal(err)
	}
	rt := sandboxtest.NewProcessRuntime(agent, root)
	t.Cleanup(func() {
		ctx := context.Background()
		list, _ := rt.List(ctx)
		for _, sb := range list {
			rt.Destroy(ctx, sb.ID)
		}
		os.RemoveAll(root)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	logs := &syncWriter{w: &bytes.Buffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, server.Config{DataDir: dataDir, Runtime: rt, MetricsListener: mln,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))}, ln)
	if err != nil {
		cancel()
		t.Fatalf("server.New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Errorf("server did not stop")
		}
		srv.Close()
		if t.Failed() {
			t.Logf("server log:\n%s", logs.w)
		}
	})
	creds, err := ReadCredentials(filepath.Join(dataDir, server.CredentialsFile))
	if err != nil {
		t.Fatal(err)
	}
	return &Target{Endpoint: srv.Info().Endpoint, MetricsURL: "http://" + mln.Addr().String() + "/metrics",
		Credentials: creds, Runtime: "process", SandboxRoot: root}
}

// syncWriter serialises writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// TestSmoke runs every scenario with tiny sizes against a server with the
// process runtime and checks that each produced its figures, the report,
// the JSON and the charts. It asserts no timing.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds tidepool and starts sandboxes")
	}
	target := processTarget(t)
	out := t.TempDir()
	var progress bytes.Buffer
	cfg := Config{Duration: 200 * time.Millisecond, Sizes: SmokeSizes, OutDir: out, Version: "test",
		Target: target, Settle: 50 * time.Millisecond, Progress: &progress, NoPeer: os.Getenv("TIDEPOOL_BENCH_PEER") == ""}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s", err, progress.String())
	}
	t.Logf("progress:\n%s", progress.String())
	for _, s := range res.Skipped {
		if !strings.HasPrefix(s.Name, "jupyter") {
			t.Errorf("skipped %s: %s", s.Name, s.Reason)
		}
	}
	want := []string{"floor/loopback-http", "floor/python-pipe", "floor/sh-fork", "floor/loopback-upload",
		"claim/sequential", "claim/concurrent-3", "exec/sequential", "exec/throughput-3", "refill",
		"density/process", "shell", "files/upload", "files/download", "cold/process"}
	var got []string
	for _, m := range res.Measurements {
		got = append(got, m.Name)
		switch {
		case m.Latency == nil && m.Memory == nil:
			t.Errorf("%s: neither latency nor memory", m.Name)
		case m.Latency != nil && !(m.Latency.Min <= m.Latency.P50 && m.Latency.P50 <= m.Latency.P90 &&
			m.Latency.P90 <= m.Latency.P99 && m.Latency.P99 <= m.Latency.Max && m.Count > 0):
			t.Errorf("%s: inconsistent latency %+v (n=%d)", m.Name, m.Latency, m.Count)
		case m.Memory != nil && (m.Memory.UsageBytes <= 0 || m.Memory.SessionsPerGiB <= 0):
			t.Errorf("%s: memory %+v", m.Name, m.Memory)
		}
		if m.System == SystemTidepool && m.Scenario != "density" && m.Scenario != "exec" && m.Scenario != "refill" && m.Scenario != "cold" && m.Floor == "" {
			t.Errorf("%s: no floor", m.Name)
		}
	}
	for _, name := range want {
		if !slices.Contains(got, name) {
			t.Errorf("no measurement %s; have %v", name, got)
		}
	}
	if !strings.HasPrefix(res.Summary, "tidepool bench (process, ") || !strings.Contains(res.Summary, "claim p50") {
		t.Errorf("summary %q", res.Summary)
	}

	// results.json holds the same results.
	data, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Results
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatalf("results.json: %v", err)
	}
	if back.SchemaVersion != SchemaVersion || len(back.Measurements) != len(res.Measurements) || back.Summary != res.Summary {
		t.Errorf("results.json differs from the results: %d measurements, summary %q", len(back.Measurements), back.Summary)
	}
	report, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, chart := range []string{"claim.png", "exec.png", "cold.png", "density.png"} {
		b, err := os.ReadFile(filepath.Join(out, chart))
		if err != nil {
			t.Errorf("chart: %v", err)
			continue
		}
		if !bytes.HasPrefix(b, []byte("\x89PNG")) {
			t.Errorf("%s is not a PNG", chart)
		}
		if !bytes.Contains(report, []byte("("+chart+")")) {
			t.Errorf("report.md does not show %s", chart)
		}
	}
	if !bytes.Contains(report, []byte(res.Summary)) {
		t.Errorf("report.md lacks the summary")
	}
}
