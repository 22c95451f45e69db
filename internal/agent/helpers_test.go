package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tidepool-dev/tidepool/internal/agent"
	"github.com/tidepool-dev/tidepool/internal/agent/client"
	"github.com/tidepool-dev/tidepool/internal/agent/wire"
)

// The test binary doubles as the programs some tests need as separate
// processes; testRoleEnv selects which (see TestMain).
const testRoleEnv = "TIDEPOOL_AGENT_TEST_ROLE"

// childConfig configures the agent a test runs as a child process.
type childConfig struct {
	Socket     string   `json:"socket"`
	FilesRoot  string   `json:"filesRoot"`
	TargetPort int      `json:"targetPort,omitempty"`
	Container  []string `json:"container,omitempty"`
}

const childConfigEnv = "TIDEPOOL_AGENT_TEST_CONFIG"

func TestMain(m *testing.M) {
	switch os.Getenv(testRoleEnv) {
	case "agent":
		os.Exit(agentMain())
	case "target":
		os.Exit(targetMain())
	case "holder":
		os.Exit(holderMain())
	}
	os.Exit(m.Run())
}

// agentMain is `tidepool agent` with its init, configured from the
// environment.
func agentMain() int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if !agent.IsInitChild() {
		return agent.RunInit(log)
	}
	os.Unsetenv(agent.ChildEnv)
	var cc childConfig
	if err := json.Unmarshal([]byte(os.Getenv(childConfigEnv)), &cc); err != nil {
		log.Error("config", "err", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	srv, err := agent.New(agent.Config{
		FilesRoot: cc.FilesRoot, TargetPort: cc.TargetPort, Container: cc.Container,
		StopGrace: 2 * time.Second, Logger: log,
	})
	if err != nil {
		log.Error("new", "err", err)
		return 2
	}
	ln, err := agent.Listen(cc.Socket)
	if err != nil {
		log.Error("listen", "err", err)
		return 2
	}
	if err := srv.Run(ctx, ln); err != nil {
		log.Error("run", "err", err)
		return 1
	}
	return 0
}

// targetMain is a custom container's process: an HTTP server on 127.0.0.1
// at $PORT that answers / with "hello from target" and exits with code n
// on /exit?code=n, or 0 on SIGTERM.
func targetMain() int {
	ln, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("PORT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	exit := make(chan int, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello from target") })
	mux.HandleFunc("/exit", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		exit <- code
	})
	go http.Serve(ln, mux)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	select {
	case code := <-exit:
		return code
	case <-sigs:
		return 0
	}
}

// holderMain is a server that leases the python kernel of the agent at
// $SOCKET, runs x = 1, says "ready", and runs $CODE, to be killed during
// it (TestLeaseHolderLeaves).
func holderMain() int {
	c := client.New(os.Getenv("SOCKET"))
	ctx := context.Background()
	if _, err := c.Execute(ctx, "python", wire.ExecuteRequest{Code: "x = 1"}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	fmt.Println("ready")
	c.Execute(ctx, "python", wire.ExecuteRequest{Code: os.Getenv("CODE")})
	return 0
}

// socketPath is a short path for a unix socket (t.TempDir paths can
// exceed the 108-byte limit).
func socketPath(t testing.TB) string {
	dir, err := os.MkdirTemp("", "agent")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "run", "agent.sock")
}

// testAgent is an agent served in-process on a unix socket.
type testAgent struct {
	*client.Client
	cfg agent.Config
}

// startAgent runs an agent whose file root (and default cwd) is in
// t.TempDir(); mod adjusts its config. The agent stops when the test ends.
func startAgent(t testing.TB, mod func(*agent.Config)) *testAgent {
	t.Helper()
	cfg := agent.Config{
		FilesRoot: filepath.Join(t.TempDir(), "data"),
		StopGrace: 2 * time.Second,
		Logger:    slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := agent.New(cfg)
	if err != nil {
		t.Fatalf("agent.New: %v", err)
	}
	sock := socketPath(t)
	ln, err := agent.Listen(sock)
	if err != nil {
		t.Fatalf("agent.Listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()
	c := client.New(sock)
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		c.Close()
	})
	return &testAgent{Client: c, cfg: cfg}
}

// testWriter sends logs to t.Log, and drops them once the test is over.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	defer func() { recover() }() // logging after the test ended
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// childAgent is `tidepool agent` (init and server) run as a child process.
type childAgent struct {
	*client.Client
	cmd  *exec.Cmd
	root string
	done chan struct{} // closed when cmd has been waited for
}

func startChildAgent(t *testing.T, cc childConfig) *childAgent {
	t.Helper()
	cc.Socket = socketPath(t)
	if cc.FilesRoot == "" {
		cc.FilesRoot = filepath.Join(t.TempDir(), "data")
	}
	b, _ := json.Marshal(cc)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// GORACE: a race-enabled binary otherwise sleeps a second at exit.
	cmd.Env = append(os.Environ(), testRoleEnv+"=agent", childConfigEnv+"="+string(b), "GORACE=atexit_sleep_ms=0")
	cmd.Stdout = testWriter{t}
	cmd.Stderr = testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ca := &childAgent{Client: client.New(cc.Socket), cmd: cmd, root: cc.FilesRoot, done: make(chan struct{})}
	go func() { cmd.Wait(); close(ca.done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGKILL)
		<-ca.done
		ca.Close()
	})
	waitFor(t, "the child agent to answer /health", func() bool {
		_, err := ca.Health(context.Background())
		return err == nil
	})
	return ca
}

// waitFor polls cond until it holds; it fails the test after a generous
// deadline, which only a broken agent reaches.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// procState is the state letter of process pid ("R", "S", "Z"...) and its
// parent, or "" when there is no such process.
func procState(pid int) (state string, ppid int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0
	}
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	ppid, _ = strconv.Atoi(f[1])
	return f[0], ppid
}

// dead reports whether pid has ended (gone, or a zombie).
func dead(pid int) bool {
	s, _ := procState(pid)
	return s == "" || s == "Z"
}

// zombieChildren lists the zombie children of ppid.
func zombieChildren(ppid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var z []int
	for _, f := range stats {
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		if s, pp := procState(pid); pp == ppid && s == "Z" {
			z = append(z, pid)
		}
	}
	return z
}

// wantCode fails unless err is a *client.Error with status and code.
func wantCode(t testing.TB, what string, err error, status int, code string) {
	t.Helper()
	var ce *client.Error
	if !errors.As(err, &ce) {
		t.Errorf("%s: err = %v, want %d %s", what, err, status, code)
		return
	}
	if ce.Status != status || ce.Code != code {
		t.Errorf("%s: got %d %s (%s), want %d %s", what, ce.Status, ce.Code, ce.Message, status, code)
	}
}

// rawRequest sends a request straight to the agent's socket, for what the
// client does not expose (SSE, Range, bad requests).
func rawRequest(t testing.TB, c *client.Client, req *http.Request) *http.Response {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", c.Socket())
		},
	}}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return resp
}
