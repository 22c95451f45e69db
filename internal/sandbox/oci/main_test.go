package oci

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidepool-dev/tidepool/internal/agent/client"
	"github.com/tidepool-dev/tidepool/internal/agent/wire"
	"github.com/tidepool-dev/tidepool/internal/sandbox"
	"github.com/tidepool-dev/tidepool/internal/sandbox/sandboxtest"
)

// The tests run real sandboxes: they need root, the OCI runtimes
// (Debian: runc crun runsc), containernetworking-plugins, nftables,
// iproute2, e2fsprogs, python3, and loop devices. Without root they skip,
// unless CI is set: then they fail.
//
// They use their own bridge, subnet and cgroup parent, so that they do not
// disturb a tidepool running on the same host, and remove them at the end.
const (
	testBridge       = "tptest0"
	testSubnet       = "10.217.0.0/16"
	testCgroupParent = "tidepool-test"
)

const ipForward = "/proc/sys/net/ipv4/ip_forward"

// helperEnv makes the test binary act as a short-lived server that creates
// a sandbox and waits to be killed (see TestReadoptAfterServerDeath).
const helperEnv = "TIDEPOOL_OCI_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "create" {
		os.Exit(helperCreate())
	}
	// The CNI bridge plugin turns IPv4 forwarding on; put it back.
	forward, _ := os.ReadFile(ipForward)
	code := m.Run()
	if len(forward) > 0 && os.Geteuid() == 0 {
		if err := os.WriteFile(ipForward, forward, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "restore ip_forward:", err)
		}
	}
	if os.Geteuid() == 0 {
		if err := cleanupHost(); err != nil {
			fmt.Fprintln(os.Stderr, "cleanup:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	if agentDir != "" {
		os.RemoveAll(agentDir)
	}
	os.Exit(code)
}

// needRoot skips a test that needs root, or fails it under CI.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("CI is set but the tests do not run as root: sandbox tests need root (OCI runtimes, mounts, network namespaces)")
	}
	t.Skip("skipping: needs root (OCI runtimes, mounts, network namespaces); CI runs it as root")
}

var (
	agentOnce  sync.Once
	agentDir   string
	builtAgent string
	agentErr   error
)

// testAgent builds the tidepool binary (static, as `make build` does) once
// per test run; sandboxes run its `agent` subcommand. TIDEPOOL_TEST_AGENT
// names a prebuilt one instead.
func testAgent(t testing.TB) string {
	t.Helper()
	agentOnce.Do(func() {
		if p := os.Getenv("TIDEPOOL_TEST_AGENT"); p != "" {
			builtAgent = p
			return
		}
		agentDir, agentErr = os.MkdirTemp("", "tpagent")
		if agentErr != nil {
			return
		}
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = "/usr/local/go/bin/go"
		}
		out, err := exec.Command(goBin, "env", "GOMOD").Output()
		if err != nil {
			agentErr = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		modRoot := filepath.Dir(strings.TrimSpace(string(out)))
		builtAgent = filepath.Join(agentDir, "tidepool-agent")
		cmd := exec.Command(goBin, "build", "-trimpath", "-o", builtAgent, "./cmd/tidepool-agent")
		cmd.Dir = modRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			agentErr = fmt.Errorf("go build ./cmd/tidepool-agent: %v\n%s", err, out)
			return
		}
		if out, err := exec.Command(builtAgent, "agent", "--help").CombinedOutput(); err != nil {
			agentErr = fmt.Errorf("tidepool agent --help: %v\n%s", err, out)
		}
	})
	if agentErr != nil {
		t.Fatal(agentErr)
	}
	return builtAgent
}

// flavours are the runtimes the tests run on.
var flavours = []string{flavourRunc, flavourCrun, flavourRunsc}

// forEachRuntime runs fn as a subtest per runtime. A runtime that is not
// installed is skipped (a failure under CI, which installs them all).
func forEachRuntime(t *testing.T, fn func(t *testing.T, flavour string)) {
	needRoot(t)
	for _, f := range flavours {
		t.Run(f, func(t *testing.T) {
			if _, _, err := resolveBinary(f); err != nil {
				if os.Getenv("CI") != "" {
					t.Fatal(err)
				}
				t.Skipf("skipping: %v", err)
			}
			fn(t, f)
		})
	}
}

// newTestRuntime returns a Runtime on a fresh root. At the end of the test
// it destroys what is left and checks that nothing stays mounted.
func newTestRuntime(t testing.TB, flavour string, opts ...Option) *Runtime {
	t.Helper()
	testAgent(t)
	root, err := os.MkdirTemp("", "tpo")
	if err != nil {
		t.Fatal(err)
	}
	rt, err := New(root, append(testOptions(flavour), opts...)...)
	if err != nil {
		os.RemoveAll(root)
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { cleanupRoot(t, rt) })
	return rt
}

func testOptions(flavour string) []Option {
	opts := []Option{
		WithBinary(flavour),
		WithAgentBinary(builtAgent),
		WithNetwork(testBridge, testSubnet),
		WithCgroupParent(testCgroupParent),
	}
	if os.Getenv(v2vmGuestEnv) != "" {
		// Under QEMU's emulation a sandbox starts tens of times slower
		// than on the host, slower still on a busy host: the default
		// would time out on start-up, not test a limit.
		opts = append(opts, WithStartTimeout(5*time.Minute))
	}
	return opts
}

func cleanupRoot(t testing.TB, rt *Runtime) {
	ctx := context.Background()
	entries, _ := os.ReadDir(rt.root)
	for _, e := range entries {
		if idPattern.MatchString(e.Name()) {
			if err := rt.Destroy(ctx, e.Name()); err != nil && !errors.Is(err, sandbox.ErrNotFound) {
				t.Errorf("cleanup: Destroy(%s): %v", e.Name(), err)
			}
		}
	}
	if m, _ := mountsUnder(rt.root); len(m) > 0 {
		t.Errorf("cleanup: still mounted under %s: %v", rt.root, m)
		for _, p := range slices.Backward(m) {
			_ = unmount(p)
		}
	}
	os.RemoveAll(rt.root)
}

// cleanupHost removes what the tests leave on the host by design: the
// test bridge, its nftables tables and the test cgroup parents.
func cleanupHost() error {
	var errs []error
	if _, err := os.Stat("/sys/class/net/" + testBridge); err == nil {
		if out, err := exec.Command("ip", "link", "del", testBridge).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip link del %s: %v: %s", testBridge, err, out))
		}
	}
	n := &network{bridge: testBridge}
	if err := n.removeRules(context.Background()); err != nil {
		errs = append(errs, err)
	}
	for _, flavour := range flavours {
		paths, err := testCgroupPaths(flavour)
		if err != nil {
			errs = append(errs, err)
		}
		for _, p := range paths {
			if err := removeCgroup(p); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// testCgroupPaths are the test runtimes' cgroup parent directories. A
// runtime resolves the relative testCgroupParent against the process's
// cgroup; on cgroup v2, against the one the process had before New moved
// it into its "supervisor" leaf (prepareCgroupV2).
func testCgroupPaths(flavour string) (map[string]string, error) {
	if !cgroupV2Only() {
		return runtimeCgroupPaths(flavour, testCgroupParent)
	}
	own, err := processCgroupsRaw(os.Getpid())
	if err != nil {
		return nil, err
	}
	p := own[""]
	if filepath.Base(p) == "supervisor" {
		p = filepath.Dir(p)
	}
	return map[string]string{"": filepath.Join("/sys/fs/cgroup", p, testCgroupParent)}, nil
}

// helperCreate is the test binary as a server process: it creates one
// sandbox, says READY, and waits to be killed.
func helperCreate() int {
	rt, err := New(os.Getenv("TP_ROOT"), testOptionsFrom(os.Getenv("TP_FLAVOUR"), os.Getenv("TP_AGENT"))...)
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	spec := sandboxtest.BaseSpec(os.Getenv("TP_ID"))
	spec.EgressEnabled = os.Getenv("TP_EGRESS") != ""
	if _, err := rt.Create(context.Background(), spec); err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	fmt.Println("READY")
	time.Sleep(time.Hour)
	return 0
}

func testOptionsFrom(flavour, agent string) []Option {
	builtAgent = agent
	return testOptions(flavour)
}

// exec runs argv in the sandbox through its agent.
func execIn(t testing.TB, sb *sandbox.Sandbox, timeout time.Duration, argv ...string) *wire.ExecResult {
	t.Helper()
	c := client.New(sb.Socket)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout+10*time.Second)
	defer cancel()
	res, err := c.Exec(ctx, wire.ExecRequest{Argv: argv, TimeoutMs: timeout.Milliseconds()})
	if err != nil {
		t.Fatalf("exec %q in %s: %v", argv, sb.ID, err)
	}
	return res
}

// python runs a Python script in the sandbox.
func python(t testing.TB, sb *sandbox.Sandbox, timeout time.Duration, script string) *wire.ExecResult {
	t.Helper()
	return execIn(t, sb, timeout, "python3", "-c", script)
}

// pythonJSON runs a script that prints one JSON document and decodes it.
func pythonJSON(t testing.TB, sb *sandbox.Sandbox, script string, v any) {
	t.Helper()
	res := python(t, sb, 60*time.Second, script)
	if res.ExitCode != 0 {
		t.Fatalf("python in %s: exit %d\nstdout: %s\nstderr: %s", sb.ID, res.ExitCode, res.Stdout, res.Stderr)
	}
	if err := json.Unmarshal([]byte(res.Stdout), v); err != nil {
		t.Fatalf("python in %s: %v\nstdout: %s\nstderr: %s", sb.ID, err, res.Stdout, res.Stderr)
	}
}

// wantHealthy fails unless the sandbox's agent answers /health.
func wantHealthy(t testing.TB, sb *sandbox.Sandbox) {
	t.Helper()
	c := client.New(sb.Socket)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Health(ctx); err != nil {
		t.Fatalf("health of %s: %v", sb.ID, err)
	}
}

func mustCreate(t testing.TB, rt *Runtime, spec sandbox.Spec) *sandbox.Sandbox {
	t.Helper()
	sb, err := rt.Create(context.Background(), spec)
	if err != nil {
		t.Fatalf("Create(%s): %v", spec.ID, err)
	}
	return sb
}

func mustDestroy(t testing.TB, rt *Runtime, id string) {
	t.Helper()
	if err := rt.Destroy(context.Background(), id); err != nil {
		t.Fatalf("Destroy(%s): %v", id, err)
	}
}

func stateOf(t testing.TB, rt *Runtime, id string) *sandboxState {
	t.Helper()
	st, err := readState(rt.dir(id))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// hostSnapshot is what a sandbox may leak on the host.
type hostSnapshot struct {
	Procs   []string // processes in the test cgroup parent or naming the root
	Mounts  []string // mount points under the root, and nsfs mounts
	Cgroups []string // directories below the test cgroup parent
	Links   []string // network interfaces
	Loops   []string // loop devices backed by files under the root
	Files   []string // paths under the root
}

func snapshot(t testing.TB, root string) hostSnapshot {
	t.Helper()
	var s hostSnapshot
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cg, err1 := os.ReadFile(p + "/cgroup")
		cmd, err2 := os.ReadFile(p + "/cmdline")
		if err1 != nil || err2 != nil {
			continue // gone meanwhile
		}
		cmdline := strings.ReplaceAll(string(cmd), "\x00", " ")
		if stat, err := os.ReadFile(p + "/stat"); err == nil && strings.Contains(string(stat), ") Z ") {
			// A zombie is gone but for its pid: killed sandbox inits wait
			// for the host's init to reap them.
			continue
		}
		if strings.Contains(string(cg), "/"+testCgroupParent+"/") || strings.Contains(cmdline, root+"/") {
			s.Procs = append(s.Procs, filepath.Base(p)+" "+cmdline)
		}
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mi), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		if strings.HasPrefix(f[4], root) || strings.Contains(line, " - nsfs ") {
			s.Mounts = append(s.Mounts, f[4])
		}
	}
	var paths []string
	for _, flavour := range flavours {
		m, _ := testCgroupPaths(flavour)
		for _, p := range m {
			if !slices.Contains(paths, p) {
				paths = append(paths, p)
			}
		}
	}
	for _, p := range paths {
		_ = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() && path != p {
				s.Cgroups = append(s.Cgroups, path)
			}
			return nil
		})
	}
	out, err := exec.Command("ip", "-o", "link").Output()
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 1 {
			s.Links = append(s.Links, strings.TrimSuffix(f[1], ":"))
		}
	}
	backing, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, b := range backing {
		if f, err := os.ReadFile(b); err == nil && strings.HasPrefix(string(f), root) {
			s.Loops = append(s.Loops, b)
		}
	}
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		switch {
		case strings.HasPrefix(rel, ".templates/") || strings.HasPrefix(rel, ".bin/"),
			filepath.Dir(rel) == ".oci",
			strings.HasPrefix(rel, ".cni/") && !isAddr(filepath.Base(rel)):
			// State shared by all sandboxes, made once: disk templates,
			// the agent's copy, each runtime's state directory, the
			// address allocator's lock and cursor.
			return nil
		}
		s.Files = append(s.Files, path)
		return nil
	})
	for _, l := range [][]string{s.Procs, s.Mounts, s.Cgroups, s.Links, s.Loops, s.Files} {
		slices.Sort(l)
	}
	return s
}

func isAddr(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}

// diffSnapshots reports what changed between two snapshots.
func diffSnapshots(a, b hostSnapshot) string {
	var out strings.Builder
	diff := func(name string, x, y []string) {
		for _, e := range y {
			if !slices.Contains(x, e) {
				fmt.Fprintf(&out, "%s: + %s\n", name, e)
			}
		}
		for _, e := range x {
			if !slices.Contains(y, e) {
				fmt.Fprintf(&out, "%s: - %s\n", name, e)
			}
		}
	}
	diff("process", a.Procs, b.Procs)
	diff("mount", a.Mounts, b.Mounts)
	diff("cgroup", a.Cgroups, b.Cgroups)
	diff("link", a.Links, b.Links)
	diff("loop", a.Loops, b.Loops)
	diff("file", a.Files, b.Files)
	return out.String()
}
