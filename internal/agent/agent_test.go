package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/tidepool-dev/tidepool/internal/agent"
	"github.com/tidepool-dev/tidepool/internal/agent/wire"
)

// fakeKernels records what the agent hands it.
type fakeKernels struct {
	mu  sync.Mutex
	env map[string]string
}

var _ agent.Kernels = (*fakeKernels)(nil)

func (k *fakeKernels) Execute(ctx context.Context, lang string, req wire.ExecuteRequest) (*wire.ExecuteResult, error) {
	switch req.Code {
	case "panic":
		panic("kernel bug")
	case "fail":
		return nil, errors.New("interpreter died")
	}
	return &wire.ExecuteResult{Status: wire.StatusSucceeded, Stdout: lang + ":" + req.Code}, nil
}

func (k *fakeKernels) Status() map[string]string {
	return map[string]string{wire.LangPython: "ready"}
}

func (k *fakeKernels) SetEnv(env map[string]string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.env = env
}

func TestHealthAndInit(t *testing.T) {
	k := &fakeKernels{}
	a := startAgent(t, func(c *agent.Config) { c.Kernels = k; c.Build = "v-test" })
	ctx := t.Context()
	h, err := a.Health(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h.Version != wire.Version || h.Build != "v-test" || !h.Ready || h.Identifier != "" ||
		h.Kernels[wire.LangPython] != "ready" || h.TargetPortReady != nil || h.ContainerExit != nil {
		t.Errorf("Health = %+v", h)
	}

	init := wire.InitRequest{
		Identifier: "user-42", Env: map[string]string{"A": "1"}, Secrets: map[string]string{"S": "2"},
		IdentityEndpoint: "http://169.254.0.1/msi/token", IdentityHeader: "hdr",
	}
	h, err = a.Init(ctx, init)
	if err != nil || h.Identifier != "user-42" {
		t.Fatalf("Init = %+v %v", h, err)
	}
	want := map[string]string{"A": "1", "S": "2", "IDENTITY_ENDPOINT": "http://169.254.0.1/msi/token", "IDENTITY_HEADER": "hdr"}
	k.mu.Lock()
	got := k.env
	k.mu.Unlock()
	if !maps.Equal(got, want) {
		t.Errorf("kernels' env = %v, want %v", got, want)
	}
	res, err := a.Exec(ctx, wire.ExecRequest{ShellCommand: `echo "$A$S $IDENTITY_ENDPOINT $IDENTITY_HEADER"`})
	if err != nil || res.Stdout != "12 http://169.254.0.1/msi/token hdr\n" {
		t.Errorf("exec env: %q %v", res.Stdout, err)
	}

	// A retry with the same identifier is fine and replaces the env.
	init.Env = map[string]string{"A": "again"}
	if _, err := a.Init(ctx, init); err != nil {
		t.Errorf("second Init, same identifier: %v", err)
	}
	res, _ = a.Exec(ctx, wire.ExecRequest{ShellCommand: `echo "$A"`})
	if res.Stdout != "again\n" {
		t.Errorf("env after retry: %q", res.Stdout)
	}
	_, err = a.Init(ctx, wire.InitRequest{Identifier: "someone-else"})
	wantCode(t, "Init, other identifier", err, 409, wire.CodeIdentifierBound)
	_, err = a.Init(ctx, wire.InitRequest{})
	wantCode(t, "Init, no identifier", err, 400, wire.CodeInvalidRequest)
	_, err = a.Init(ctx, wire.InitRequest{Identifier: "user-42", Env: map[string]string{"": "x"}})
	wantCode(t, "Init, bad env", err, 400, wire.CodeInvalidRequest)
	if h, _ := a.Health(ctx); h.Identifier != "user-42" {
		t.Errorf("identifier now %q", h.Identifier)
	}
}

func TestKernels(t *testing.T) {
	t.Run("none", func(t *testing.T) {
		a := startAgent(t, nil)
		_, err := a.Execute(t.Context(), wire.LangPython, wire.ExecuteRequest{Code: "1"})
		wantCode(t, "Execute", err, 501, wire.CodeNotImplemented)
		if h, _ := a.Health(t.Context()); h.Kernels != nil {
			t.Errorf("Kernels = %v, want none", h.Kernels)
		}
	})
	a := startAgent(t, func(c *agent.Config) { c.Kernels = &fakeKernels{} })
	res, err := a.Execute(t.Context(), wire.LangNode, wire.ExecuteRequest{Code: "1+1"})
	if err != nil || res.Stdout != "node:1+1" || res.Status != wire.StatusSucceeded {
		t.Errorf("Execute = %+v %v", res, err)
	}
	_, err = a.Execute(t.Context(), "cobol", wire.ExecuteRequest{Code: "1"})
	wantCode(t, "Execute cobol", err, 404, wire.CodeUnknownLanguage)
	_, err = a.Execute(t.Context(), wire.LangPython, wire.ExecuteRequest{Code: "fail"})
	wantCode(t, "Execute failing", err, 503, wire.CodeKernelUnavailable)
	_, err = a.Execute(t.Context(), wire.LangPython, wire.ExecuteRequest{Code: "panic"})
	wantCode(t, "Execute panicking", err, 500, wire.CodeInternal)
	if _, err := a.Health(t.Context()); err != nil {
		t.Errorf("Health after a panic: %v", err)
	}
}

func TestRoutes(t *testing.T) {
	a := startAgent(t, nil)
	tests := []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/nope", 404, wire.CodeNotFound},
		{"GET", "/", 404, wire.CodeNotFound},
		{"POST", "/health", 405, wire.CodeMethodNotAllowed},
		{"GET", "/exec", 405, wire.CodeMethodNotAllowed},
		{"PATCH", "/files", 405, wire.CodeMethodNotAllowed},
		{"GET", "/files?recursive=maybe", 400, wire.CodeInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, "http://agent"+tt.path, nil)
			resp := rawRequest(t, a.Client, req)
			defer resp.Body.Close()
			var er wire.ErrorResponse
			if err := json.NewDecoder(resp.Body).Decode(&er); err != nil {
				t.Fatalf("body: %v", err)
			}
			if resp.StatusCode != tt.status || er.Error.Code != tt.code || resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("got %d %+v (%s), want %d %s", resp.StatusCode, er, resp.Header.Get("Content-Type"), tt.status, tt.code)
			}
			if tt.status == 405 && resp.Header.Get("Allow") == "" {
				t.Error("no Allow header")
			}
		})
	}
}

func TestConfigInvalid(t *testing.T) {
	for name, cfg := range map[string]agent.Config{
		"timeout over max": {ExecTimeout: 2e9, MaxExecTimeout: 1e9},
		"cap over max":     {OutputCap: 10, MaxOutputCap: 5},
		"port":             {TargetPort: 70000},
		"container env":    {ContainerEnv: []string{"NOEQUALS"}},
	} {
		cfg.FilesRoot = t.TempDir()
		if _, err := agent.New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
}

// freePort is a port on 127.0.0.1 nobody listens on (for now).
func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestContainer: the image's process runs as the agent's child; /health
// follows its port and its exit.
func TestContainer(t *testing.T) {
	port := freePort(t)
	a := startAgent(t, func(c *agent.Config) {
		c.TargetPort = port
		c.Container = []string{os.Args[0], "-test.run=^$"}
		c.ContainerEnv = []string{testRoleEnv + "=target", "PORT=" + strconv.Itoa(port), "GORACE=atexit_sleep_ms=0"}
	})
	ctx := t.Context()
	waitFor(t, "the target port", func() bool {
		h, err := a.Health(ctx)
		return err == nil && h.TargetPortReady != nil && *h.TargetPortReady
	})
	h, _ := a.Health(ctx)
	if !h.Ready || h.ContainerExit != nil {
		t.Errorf("Health = %+v, want ready, running", h)
	}
	hc := &http.Client{Transport: a.ProxyTransport()}
	resp, err := hc.Get("http://app/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hello from target" {
		t.Errorf("through the proxy: %q", b)
	}
	go func() {
		// The target exits without answering.
		if resp, err := hc.Get("http://app/exit?code=7"); err == nil {
			resp.Body.Close()
		}
	}()
	waitFor(t, "the container to exit", func() bool {
		h, err := a.Health(ctx)
		return err == nil && h.ContainerExit != nil
	})
	h, _ = a.Health(ctx)
	if h.Ready || h.ContainerExit.ExitCode != 7 || h.ContainerExit.At.IsZero() {
		t.Errorf("Health = %+v, exit %+v; want not ready, exit code 7", h, h.ContainerExit)
	}
}

func TestContainerCannotStart(t *testing.T) {
	a := startAgent(t, func(c *agent.Config) { c.Container = []string{"/no/such/program"} })
	h, err := a.Health(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if h.Ready || h.ContainerExit == nil || h.ContainerExit.ExitCode != -1 || h.ContainerExit.Error == "" {
		t.Errorf("Health = %+v, exit %+v; want not ready, exit -1 with an error", h, h.ContainerExit)
	}
}

// TestInitReapsOrphans runs `tidepool agent` (init and server) as a child
// process: orphans of commands are reparented to its init, which reaps
// them when they exit.
func TestInitReapsOrphans(t *testing.T) {
	a := startChildAgent(t, childConfig{})
	initPid := a.cmd.Process.Pid
	const n = 10
	// Each command double-forks: the subshell outlives its parent, which
	// prints its pid and exits. The orphans wait for a file.
	res, err := a.Exec(t.Context(), wire.ExecRequest{ShellCommand: `for i in $(seq ` + strconv.Itoa(n) + `); do
		sh -c '(while [ ! -e go ]; do sleep 0.01; done) >/dev/null 2>&1 & echo $!'
	done`})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Exec = %+v %v", res, err)
	}
	var orphans []int
	for _, f := range strings.Fields(res.Stdout) {
		pid, _ := strconv.Atoi(f)
		orphans = append(orphans, pid)
	}
	if len(orphans) != n {
		t.Fatalf("stdout %q: want %d pids", res.Stdout, n)
	}
	for _, pid := range orphans {
		if st, ppid := procState(pid); st == "" || ppid != initPid {
			t.Errorf("orphan %d: state %q, parent %d; want alive, parent init %d", pid, st, ppid, initPid)
		}
	}
	if err := os.WriteFile(filepath.Join(a.root, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, pid := range orphans {
		waitFor(t, "orphan "+strconv.Itoa(pid)+" to be reaped", func() bool {
			st, _ := procState(pid)
			return st == ""
		})
	}
	if z := zombieChildren(initPid); len(z) > 0 {
		t.Errorf("zombies left under init: %v", z)
	}
}

// TestInitStops: SIGTERM to init reaches the server, which stops its
// children (the custom container too); init exits 0 with nothing left.
func TestInitStops(t *testing.T) {
	port := freePort(t)
	a := startChildAgent(t, childConfig{TargetPort: port, Container: []string{"sh", "-c", "PORT=" + strconv.Itoa(port) + " " + testRoleEnv + "=target exec " + os.Args[0] + " -test.run=^$"}})
	waitFor(t, "the container's port", func() bool {
		h, err := a.Health(t.Context())
		return err == nil && h.TargetPortReady != nil && *h.TargetPortReady
	})
	initPid := a.cmd.Process.Pid
	kids := childrenOf(initPid)
	if len(kids) != 1 {
		t.Fatalf("init has children %v, want the server alone", kids)
	}
	container := childrenOf(kids[0])
	res, err := a.Exec(t.Context(), wire.ExecRequest{ShellCommand: "sleep 100 > /dev/null 2>&1 & echo $!"})
	if err != nil {
		t.Fatal(err)
	}
	background, _ := strconv.Atoi(strings.TrimSpace(res.Stdout))

	if err := syscall.Kill(initPid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-a.done
	if code := a.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("init exit code %d, want 0", code)
	}
	for _, pid := range append(container, kids[0], background) {
		if st, _ := procState(pid); st != "" {
			t.Errorf("process %d left behind (state %s)", pid, st)
		}
	}
}

// childrenOf lists the live children of ppid.
func childrenOf(ppid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var kids []int
	for _, f := range stats {
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		if s, pp := procState(pid); pp == ppid && s != "Z" {
			kids = append(kids, pid)
		}
	}
	return kids
}
