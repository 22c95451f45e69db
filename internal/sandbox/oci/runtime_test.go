package oci

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tidepool-dev/tidepool/internal/agent/client"
	"github.com/tidepool-dev/tidepool/internal/agent/wire"
	"github.com/tidepool-dev/tidepool/internal/sandbox"
	"github.com/tidepool-dev/tidepool/internal/sandbox/sandboxtest"
)

func TestRuntimeSuite(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, flavour string) {
		sandboxtest.RuntimeSuite(t, func(t *testing.T) sandbox.Runtime {
			return newTestRuntime(t, flavour)
		})
	})
}

func TestRuntimeMissing(t *testing.T) {
	for _, name := range []string{"/nonexistent/runc", "/nonexistent/crun", "/nonexistent/runsc"} {
		_, err := New(t.TempDir(), WithBinary(name))
		if !errors.Is(err, sandbox.ErrRuntimeMissing) {
			t.Errorf("New(WithBinary(%q)): %v, want ErrRuntimeMissing", name, err)
			continue
		}
		if want := "apt-get install " + filepath.Base(name); !strings.Contains(err.Error(), want) {
			t.Errorf("New(WithBinary(%q)): %q does not say %q", name, err, want)
		}
	}
}

// TestNoLeaks creates and destroys sandboxes of every shape and checks
// that the host is as it was: processes, mounts, cgroups, network links,
// network namespaces, loop devices and files.
func TestNoLeaks(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, flavour string) {
		rt := newTestRuntime(t, flavour)
		ctx := context.Background()
		// A first round makes what is shared and kept: the bridge, the
		// disk template, the runtime's state directory.
		warm := sandboxtest.BaseSpec(sandboxtest.NewID("warm"))
		warm.EgressEnabled = true
		mustCreate(t, rt, warm)
		mustDestroy(t, rt, warm.ID)

		before := snapshot(t, rt.root)
		var ids []string
		for _, egress := range []bool{false, true} {
			for _, kind := range []string{sandbox.KindPython, sandbox.KindShell} {
				spec := sandboxtest.BaseSpec(sandboxtest.NewID("leak"))
				spec.Kind, spec.EgressEnabled = kind, egress
				sb := mustCreate(t, rt, spec)
				// Leave something running and something written.
				res := execIn(t, sb, 10*time.Second, "sh", "-c", "echo x > /mnt/data/f; echo y > /tmp/f; (sleep 600 &) ; echo ok")
				if res.ExitCode != 0 {
					t.Errorf("exec in %s: %+v", sb.ID, res)
				}
				ids = append(ids, spec.ID)
			}
		}
		during := snapshot(t, rt.root)
		if len(during.Procs) <= len(before.Procs) || len(during.Mounts) <= len(before.Mounts) || len(during.Loops) <= len(before.Loops) {
			t.Errorf("the snapshot does not see the sandboxes:\n%s", diffSnapshots(before, during))
		}
		for _, id := range ids {
			if err := rt.Destroy(ctx, id); err != nil {
				t.Errorf("Destroy(%s): %v", id, err)
			}
		}
		after := snapshot(t, rt.root)
		if d := diffSnapshots(before, after); d != "" {
			t.Errorf("host changed by create+destroy:\n%s", d)
		}
	})
}

// TestCreateFailureCleanup checks that a Create failing at various points
// leaves nothing behind.
func TestCreateFailureCleanup(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, flavour string) {
		rt := newTestRuntime(t, flavour)
		warm := sandboxtest.BaseSpec(sandboxtest.NewID("warm"))
		warm.EgressEnabled = true
		mustCreate(t, rt, warm)
		mustDestroy(t, rt, warm.ID)
		before := snapshot(t, rt.root)

		failing := map[string]struct {
			rt   *Runtime
			spec func(*sandbox.Spec)
		}{
			// The agent exits at once: noticed through its pidfd.
			"agent exits": {rt: newTestRuntime(t, flavour, WithAgentBinary("/bin/false"))},
			// The runtime fails: no such working directory.
			"runtime fails": {rt: rt, spec: func(s *sandbox.Spec) { s.WorkingDir = "/etc/hostname" }},
			// The network fails after the netns exists.
			"cni fails": {rt: newTestRuntime(t, flavour, WithCNIPath(t.TempDir())), spec: func(s *sandbox.Spec) { s.EgressEnabled = true }},
			// An image without an image store.
			"no image store": {rt: rt, spec: func(s *sandbox.Spec) { s.Kind, s.Image = sandbox.KindCustom, "example.com/x:1" }},
		}
		for name, tc := range failing {
			spec := sandboxtest.BaseSpec(sandboxtest.NewID("fail"))
			if tc.spec != nil {
				tc.spec(&spec)
			}
			tcBefore := snapshot(t, tc.rt.root)
			_, err := tc.rt.Create(context.Background(), spec)
			if err == nil {
				t.Errorf("%s: Create succeeded", name)
				mustDestroy(t, tc.rt, spec.ID)
				continue
			}
			t.Logf("%s: %v", name, err)
			if d := diffSnapshots(tcBefore, snapshot(t, tc.rt.root)); d != "" {
				t.Errorf("%s: left behind:\n%s", name, d)
			}
			if err := tc.rt.Destroy(context.Background(), spec.ID); !errors.Is(err, sandbox.ErrNotFound) {
				t.Errorf("%s: Destroy after failed Create: %v, want ErrNotFound", name, err)
			}
		}
		if d := diffSnapshots(before, snapshot(t, rt.root)); d != "" {
			t.Errorf("left behind:\n%s", d)
		}
	})
}

// TestDeadSandboxIsCleanedByList: a sandbox whose init died is not listed,
// and List removes its remains.
func TestDeadSandboxIsCleanedByList(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, flavour string) {
		rt := newTestRuntime(t, flavour)
		warm := sandboxtest.BaseSpec(sandboxtest.NewID("warm"))
		mustCreate(t, rt, warm)
		mustDestroy(t, rt, warm.ID)
		before := snapshot(t, rt.root)
		spec := sandboxtest.BaseSpec(sandboxtest.NewID("dead"))
		sb := mustCreate(t, rt, spec)
		if err := syscall.Kill(sb.Pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitGone(t, sb.Pid)
		list, err := rt.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range list {
			if l.ID == spec.ID {
				t.Errorf("List: dead sandbox %s listed", spec.ID)
			}
		}
		if d := diffSnapshots(before, snapshot(t, rt.root)); d != "" {
			t.Errorf("left behind:\n%s", d)
		}
		if err := rt.Destroy(context.Background(), spec.ID); !errors.Is(err, sandbox.ErrNotFound) {
			t.Errorf("Destroy after List cleaned it: %v, want ErrNotFound", err)
		}
	})
}

func waitGone(t testing.TB, pid int) {
	t.Helper()
	for i := 0; i < 500; i++ {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		if f := strings.Fields(string(b)); len(f) > 2 && f[2] == "Z" {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("pid %d still alive", pid)
}

// TestReadopt: a new Runtime on the same root finds the sandboxes of the
// previous one, and they work.
func TestReadopt(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, flavour string) {
		rt1 := newTestRuntime(t, flavour)
		spec := sandboxtest.BaseSpec(sandboxtest.NewID("readopt"))
		spec.EgressEnabled = true
		sb := mustCreate(t, rt1, spec)
		if res := execIn(t, sb, 10*time.Second, "sh", "-c", "echo kept > /mnt/data/state"); res.ExitCode != 0 {
			t.Fatalf("exec: %+v", res)
		}

		rt2, err := New(rt1.root, testOptions(flavour)...)
		if err != nil {
			t.Fatal(err)
		}
		list, err := rt2.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].ID != spec.ID || list[0].Socket != sb.Socket || list[0].Pid != sb.Pid {
			t.Fatalf("List on a new Runtime: %+v, want [%+v]", list, sb)
		}
		res := execIn(t, list[0], 10*time.Second, "cat", "/mnt/data/state")
		if strings.TrimSpace(res.Stdout) != "kept" {
			t.Errorf("state after re-adoption: %+v", res)
		}
		mustDestroy(t, rt2, spec.ID)
	})
}

// TestReadoptAfterServerDeath: the sandboxes of a server process that is
// killed keep running, and the next server adopts them.
func TestReadoptAfterServerDeath(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, flavour string) {
		rt := newTestRuntime(t, flavour)
		id := sandboxtest.NewID("orphan")
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"=create", "TP_ROOT="+rt.root, "TP_FLAVOUR="+flavour,
			"TP_AGENT="+builtAgent, "TP_ID="+id, "TP_EGRESS=1")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		if strings.TrimSpace(line) != "READY" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("helper: %q", line)
		}
		// The server dies hard.
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()

		list, err := rt.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].ID != id {
			t.Fatalf("List after the server died: %+v, want %s", list, id)
		}
		wantHealthy(t, list[0])
		if res := execIn(t, list[0], 10*time.Second, "true"); res.ExitCode != 0 {
			t.Errorf("exec after re-adoption: %+v", res)
		}
		mustDestroy(t, rt, id)
	})
}

// TestLimits checks the cgroup settings and that the limits hold: a memory
// bomb, a fork bomb and a disk fill hurt only their sandbox. Each case has
// a sandbox of its own.
func TestLimits(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, flavour string) {
		rt := newTestRuntime(t, flavour)
		newSandbox := func(t *testing.T, mutate ...func(*sandbox.Spec)) (sandbox.Spec, *sandbox.Sandbox, *sandboxState) {
			spec := sandboxtest.BaseSpec(sandboxtest.NewID("limits"))
			spec.Kind = sandbox.KindPython
			spec.CPU = 0.5
			spec.MemoryBytes = 192 << 20
			spec.PidsLimit = 64
			spec.DiskBytes = 32 << 20
			for _, m := range mutate {
				m(&spec)
			}
			sb := mustCreate(t, rt, spec)
			t.Cleanup(func() {
				if err := rt.Destroy(context.Background(), spec.ID); err != nil && !errors.Is(err, sandbox.ErrNotFound) {
					t.Errorf("Destroy(%s): %v", spec.ID, err)
				}
			})
			return spec, sb, stateOf(t, rt, spec.ID)
		}

		t.Run("cgroup files", func(t *testing.T) {
			spec, _, st := newSandbox(t)
			pidsMax := "64"
			if flavour == flavourRunsc {
				pidsMax = strconv.Itoa(256 + 16*64) // gVisor's threads; see ociSpec
			}
			want := map[string]string{
				"memory.limit_in_bytes": strconv.FormatInt(spec.MemoryBytes, 10),
				"cpu.cfs_quota_us":      "50000",
				"cpu.cfs_period_us":     "100000",
				"pids.max":              pidsMax,
			}
			if cgroupV2Only() {
				want = map[string]string{
					"memory.max":      strconv.FormatInt(spec.MemoryBytes, 10),
					"memory.swap.max": "0",
					"cpu.max":         "50000 100000",
					"pids.max":        pidsMax,
				}
			}
			for file, v := range want {
				got, err := readCgroupFile(st.Cgroups, file)
				if err != nil {
					t.Errorf("%s: %v", file, err)
					continue
				}
				if got != v {
					t.Errorf("%s = %q, want %q", file, got, v)
				}
			}
			// No swap beyond the memory limit, where the kernel accounts it.
			if got, err := readCgroupFile(st.Cgroups, "memory.memsw.limit_in_bytes"); err == nil && got != strconv.FormatInt(spec.MemoryBytes, 10) {
				t.Errorf("memory.memsw.limit_in_bytes = %q, want %d", got, spec.MemoryBytes)
			}
		})

		// Under runc and crun the kernel's OOM killer, confined to the
		// sandbox's cgroup, kills the allocating process and the agent
		// lives on. Under runsc the sandbox's whole kernel is one host
		// process: the OOM killer ends the sandbox, which List then
		// reports gone (and cleans up).
		t.Run("memory bomb", func(t *testing.T) {
			spec, sb, st := newSandbox(t)
			c := client.New(sb.Socket)
			defer c.Close()
			res, err := c.Exec(context.Background(), wire.ExecRequest{Argv: []string{"python3", "-c", `
chunks = []
try:
    for i in range(64):
        chunks.append(b"\x01" * (16 << 20))
        print(i, flush=True)
    print("survived")
except MemoryError:
    print("MemoryError")
`}, TimeoutMs: 60000})
			if flavour == flavourRunsc {
				t.Logf("memory bomb: %+v, %v", res, err)
				if err == nil && !strings.Contains(res.Stdout, "MemoryError") {
					t.Fatalf("memory bomb was not stopped: %+v", res)
				}
				if err != nil {
					waitGone(t, sb.Pid)
					if _, ok := listedIDs(t, rt)[spec.ID]; ok {
						t.Errorf("List: %s listed after its OOM kill", spec.ID)
					}
					if _, err := os.Stat(rt.dir(spec.ID)); err == nil {
						t.Errorf("List left the remains of %s", spec.ID)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("exec: %v", err)
			}
			t.Logf("memory bomb: exit %d signal %q, last output %q", res.ExitCode, res.Signal, lastLine(res.Stdout))
			if res.Signal != "SIGKILL" && res.ExitCode != 137 || strings.Contains(res.Stdout, "survived") {
				t.Errorf("memory bomb was not stopped: %+v", res)
			}
			// The OOM kill counter: memory.oom_control on cgroup v1,
			// memory.events on v2.
			oomFile := "memory.oom_control"
			if cgroupV2Only() {
				oomFile = "memory.events"
			}
			if oom, err := readCgroupFile(st.Cgroups, oomFile); err != nil || !strings.Contains(oom, "oom_kill 1") {
				t.Errorf("%s: %q, %v; want one OOM kill", oomFile, oom, err)
			}
			wantHealthy(t, sb) // the agent survives
			if res := execIn(t, sb, 10*time.Second, "true"); res.ExitCode != 0 {
				t.Errorf("exec after the memory bomb: %+v", res)
			}
		})

		// Under runsc, gVisor stops it with RLIMIT_NPROC (see ociSpec);
		// its processes cost more memory there, so that the sandbox gets
		// more, lest the memory limit end it first.
		t.Run("fork bomb", func(t *testing.T) {
			spec, sb, st := newSandbox(t, func(s *sandbox.Spec) {
				if flavour == flavourRunsc {
					s.MemoryBytes = 768 << 20
				}
			})
			res := python(t, sb, 60*time.Second, `
import os, time
pids, err = [], None
try:
    while len(pids) < 10000:
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        pids.append(pid)
except OSError as e:
    err = e.errno
print(len(pids), err, flush=True)
for p in pids:
    os.kill(p, 9)
for p in pids:
    os.waitpid(p, 0)
`)
			var n, errno int
			if _, err := fmt.Sscan(res.Stdout, &n, &errno); err != nil {
				t.Fatalf("fork bomb: %+v", res)
			}
			t.Logf("fork bomb: %d processes, then errno %d", n, errno)
			if errno != int(syscall.EAGAIN) || n >= int(spec.PidsLimit) {
				t.Errorf("fork bomb: %d forks, errno %d; want EAGAIN before %d", n, errno, spec.PidsLimit)
			}
			wantHealthy(t, sb)
			if cur, err := readCgroupFile(st.Cgroups, "pids.current"); err == nil && flavour != flavourRunsc {
				if n, _ := strconv.Atoi(cur); n > 20 {
					t.Errorf("pids.current = %d after the fork bomb ended", n)
				}
			}
		})

		t.Run("disk fill", func(t *testing.T) {
			spec, sb, _ := newSandbox(t)
			for _, dir := range []string{"/mnt/data", "/tmp"} {
				res := python(t, sb, 60*time.Second, fmt.Sprintf(`
import os
fd = os.open(%q + "/fill", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
n, err, buf = 0, None, b"\x01" * (1 << 20)
try:
    while n < (1 << 30):
        n += os.write(fd, buf)
except OSError as e:
    err = e.errno
os.close(fd)
os.unlink(%q + "/fill")
print(n, err)
`, dir, dir))
				var n int64
				var errno string
				if _, err := fmt.Sscan(res.Stdout, &n, &errno); err != nil {
					t.Fatalf("disk fill %s: %+v", dir, res)
				}
				t.Logf("disk fill %s: %d MiB, then errno %s", dir, n>>20, errno)
				if errno != strconv.Itoa(int(syscall.ENOSPC)) || n > spec.DiskBytes {
					t.Errorf("disk fill %s: wrote %d bytes, errno %s; want ENOSPC within %d bytes", dir, n, errno, spec.DiskBytes)
				}
			}
			img, err := os.Stat(filepath.Join(rt.dir(spec.ID), "disk.img"))
			if err != nil {
				t.Fatal(err)
			}
			if blocks := img.Sys().(*syscall.Stat_t).Blocks * 512; img.Size() != spec.DiskBytes || blocks > spec.DiskBytes {
				t.Errorf("disk.img: size %d, %d bytes allocated; want at most %d", img.Size(), blocks, spec.DiskBytes)
			}
			wantHealthy(t, sb)
		})
	})
}

func listedIDs(t testing.TB, rt *Runtime) map[string]*sandbox.Sandbox {
	t.Helper()
	list, err := rt.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]*sandbox.Sandbox{}
	for _, sb := range list {
		m[sb.ID] = sb
	}
	return m
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// readCgroupFile reads a file of the sandbox's cgroup: the first of its
// cgroup directories that has it.
func readCgroupFile(cgroups map[string]string, file string) (string, error) {
	for _, dir := range cgroups {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err == nil {
			return strings.TrimSpace(string(b)), nil
		}
	}
	return "", fmt.Errorf("%s: not in %v", file, cgroups)
}

// TestHealthAfterCreate: Create returns only once the agent answers, with
// the kind's kernel started, and reports the agent's API version. The
// kernels run under the sandbox's seccomp profile and limits.
func TestHealthAfterCreate(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, flavour string) {
		rt := newTestRuntime(t, flavour)
		for _, tc := range []struct{ kind, lang, code, want string }{
			{sandbox.KindShell, "", "", ""},
			{sandbox.KindPython, wire.LangPython, "import json, os; print(json.dumps(os.getcwd())); 6*7", "42"},
			{sandbox.KindNode, wire.LangNode, "console.log(JSON.stringify(process.cwd())); 6*7", "42"},
		} {
			spec := sandboxtest.BaseSpec(sandboxtest.NewID("health"))
			spec.Kind = tc.kind
			spec.MemoryBytes = 512 << 20
			sb := mustCreate(t, rt, spec)
			c := client.New(sb.Socket)
			h, err := c.Health(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !h.Ready || h.Version != sb.AgentVersion || sb.AgentVersion == "" {
				t.Errorf("%s: health %+v, sandbox AgentVersion %q", tc.kind, h, sb.AgentVersion)
			}
			if tc.lang != "" {
				if st := h.Kernels[tc.lang]; st != "ready" && st != "busy" {
					t.Errorf("%s: kernel %q after Create, want ready", tc.kind, st)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				res, err := c.Execute(ctx, tc.lang, wire.ExecuteRequest{Code: tc.code})
				cancel()
				if err != nil {
					t.Errorf("%s: execute: %v", tc.kind, err)
				} else if res.Status != wire.StatusSucceeded || res.Result == nil || res.Result.Repr != tc.want || !strings.Contains(res.Stdout, "/mnt/data") {
					t.Errorf("%s: execute: %+v (result %+v)", tc.kind, res, res.Result)
				}
				// From its second execution on, the client drives the
				// kernel itself, but under gVisor, whose pipes are not the
				// host's (client/lease.go).
				if res, err := c.Execute(context.Background(), tc.lang, wire.ExecuteRequest{Code: "6*7"}); err != nil || res.Result == nil || res.Result.Repr != "42" {
					t.Errorf("%s: second execute: %+v, %v", tc.kind, res, err)
				}
				want := []string{tc.lang}
				if flavour == "runsc" {
					want = nil
				}
				if got := c.Leased(); !slices.Equal(got, want) {
					t.Errorf("%s: leased kernels %q, want %q", tc.kind, got, want)
				}
			}
			if tc.kind == sandbox.KindPython {
				// The kernel is given the driver the server compiled.
				res, err := c.Exec(context.Background(), wire.ExecRequest{ShellCommand: `tr '\0' ' ' </proc/1/cmdline; echo; head -c 9 ` + driverPath})
				if err != nil || !strings.Contains(res.Stdout, "--python-bytecode "+driverPath) || !strings.Contains(res.Stdout, "\ncpython-") {
					t.Errorf("python sandbox: agent command line and driver bytecode: %q, %v", res.Stdout, err)
				}
			}
			c.Close()
			mustDestroy(t, rt, sb.ID)
		}
	})
}

// TestNoKeyringPerSandbox: sandboxes charge no kernel keys to their host
// uid. Keys are limited per uid (kernel.keys.maxkeys, 200), so a session
// keyring per sandbox capped a host at ~200 sandboxes.
func TestNoKeyringPerSandbox(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, flavour string) {
		if flavour == flavourRunsc {
			t.Skip("runsc keeps sandboxes off the host's keyrings (its processes are host root, whose quota is 1,000,000 keys)")
		}
		rt := newTestRuntime(t, flavour)
		var ids []string
		for range 3 {
			sb := mustCreate(t, rt, sandboxtest.BaseSpec(sandboxtest.NewID("keys")))
			ids = append(ids, sb.ID)
		}
		b, err := os.ReadFile("/proc/key-users")
		if err != nil {
			t.Skipf("skipping: %v", err) // a kernel without keys
		}
		prefix := strconv.FormatUint(uint64(rt.uid), 10) + ":"
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[0] == prefix {
				t.Errorf("the sandboxes' host uid %d holds kernel keys: %q", rt.uid, line)
			}
		}
		for _, id := range ids {
			mustDestroy(t, rt, id)
		}
	})
}
