package oci

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidepool-dev/tidepool/internal/sandbox"
	"github.com/tidepool-dev/tidepool/internal/sandbox/sandboxtest"
)

// probeScript runs hostile operations in a sandbox and reports how each
// went: "ok:..." or "errno:N".
const probeScript = `
import ctypes, json, os, socket
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def call(f):
    try:
        return "ok:%r" % (f(),)
    except OSError as e:
        return "errno:%d" % e.errno
def c(rc):
    return "errno:%d" % ctypes.get_errno() if rc == -1 else "ok:%d" % rc
def readall(p):
    with open(p, "rb") as f:
        return f.read()
r = {}
r["shadow"] = call(lambda: len(readall("/etc/shadow")))
r["mount"] = c(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))
r["umount"] = c(libc.umount2(b"/mnt/data", 2))
r["unshare_user"] = c(libc.unshare(0x10000000))
r["unshare_mnt"] = c(libc.unshare(0x00020000))
r["unshare_net"] = c(libc.unshare(0x40000000))
r["raw_socket"] = call(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close())
r["packet_socket"] = call(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close())
r["ptrace"] = c(libc.ptrace(0, 0, None, None))
if os.uname().machine == "x86_64":
    r["bpf"] = c(libc.syscall(321, 0, None, 0))
    r["keyctl"] = c(libc.syscall(250, 0, -1, 0, 0, 0))
    r["perf_event_open"] = c(libc.syscall(298, None, 0, -1, -1, 0))
    r["kexec_load"] = c(libc.syscall(246, 0, 0, None, 0))
    r["userfaultfd"] = c(libc.syscall(323, 0))
status = {}
for line in readall("/proc/self/status").decode().splitlines():
    k, _, v = line.partition(":")
    if k in ("Uid", "Gid", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"):
        status[k] = v.split()
r["status"] = status
r["write_root"] = call(lambda: open("/probe", "w").close())
r["write_usr"] = call(lambda: open("/usr/probe", "w").close())
r["write_etc"] = call(lambda: open("/etc/passwd", "a").close())
r["write_tmp"] = call(lambda: open("/tmp/probe", "w").close())
r["write_data"] = call(lambda: open("/mnt/data/probe", "w").close())
r["ifaces"] = sorted(n for _, n in socket.if_nameindex())
procs = []
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            procs.append(readall("/proc/%s/cmdline" % p).replace(b"\0", b" ").decode())
        except OSError:
            pass
r["procs"] = procs
r["pid1"] = readall("/proc/1/cmdline").replace(b"\0", b" ").decode()
r["kcore"] = call(lambda: len(readall("/proc/kcore")))
r["keys"] = call(lambda: len(readall("/proc/keys")))
r["sysrq"] = call(lambda: open("/proc/sysrq-trigger", "w").write("h"))
r["hostname"] = socket.gethostname()
import threading
def thread():
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()
r["thread"] = call(thread)
r["files"] = sorted(os.listdir("/mnt/data")) + sorted("/tmp/" + f for f in os.listdir("/tmp"))
print(json.dumps(r))
`

type probe struct {
	Shadow, Mount, Umount                 string
	UnshareUser, UnshareMnt, UnshareNet   string
	RawSocket, PacketSocket, Ptrace       string
	Bpf, Keyctl, PerfEventOpen, KexecLoad string
	Userfaultfd                           string
	Status                                map[string][]string
	WriteRoot, WriteUsr, WriteEtc         string
	WriteTmp, WriteData                   string
	Ifaces, Procs, Files                  []string
	Pid1, Kcore, Keys, Sysrq, Hostname    string
	Thread                                string
}

// runProbe runs probeScript in a sandbox.
func runProbe(t *testing.T, sb *sandbox.Sandbox) probe {
	t.Helper()
	var raw map[string]any
	pythonJSON(t, sb, probeScript, &raw)
	str := func(k string) string { s, _ := raw[k].(string); return s }
	list := func(k string) []string {
		var out []string
		for _, v := range raw[k].([]any) {
			out = append(out, v.(string))
		}
		return out
	}
	p := probe{
		Shadow: str("shadow"), Mount: str("mount"), Umount: str("umount"),
		UnshareUser: str("unshare_user"), UnshareMnt: str("unshare_mnt"), UnshareNet: str("unshare_net"),
		RawSocket: str("raw_socket"), PacketSocket: str("packet_socket"), Ptrace: str("ptrace"),
		Bpf: str("bpf"), Keyctl: str("keyctl"), PerfEventOpen: str("perf_event_open"), KexecLoad: str("kexec_load"),
		Userfaultfd: str("userfaultfd"),
		WriteRoot:   str("write_root"), WriteUsr: str("write_usr"), WriteEtc: str("write_etc"),
		WriteTmp: str("write_tmp"), WriteData: str("write_data"),
		Ifaces: list("ifaces"), Procs: list("procs"), Files: list("files"),
		Pid1: str("pid1"), Kcore: str("kcore"), Keys: str("keys"), Sysrq: str("sysrq"), Hostname: str("hostname"), Thread: str("thread"),
		Status: map[string][]string{},
	}
	for k, v := range raw["status"].(map[string]any) {
		for _, e := range v.([]any) {
			p.Status[k] = append(p.Status[k], e.(string))
		}
	}
	return p
}

// TestIsolation runs hostile code in sandboxes, through the agent's /exec
// as sessions do.
func TestIsolation(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, flavour string) {
		rt := newTestRuntime(t, flavour)
		a := mustCreate(t, rt, withKind(sandboxtest.BaseSpec(sandboxtest.NewID("iso-a")), sandbox.KindPython))
		b := mustCreate(t, rt, withKind(sandboxtest.BaseSpec(sandboxtest.NewID("iso-b")), sandbox.KindPython))
		defer mustDestroy(t, rt, a.ID)
		defer mustDestroy(t, rt, b.ID)

		// A leaves files and a running process; B must see none of them.
		if res := execIn(t, a, 10*time.Second, "sh", "-c", "echo secret > /mnt/data/secret-a; echo secret > /tmp/secret-a"); res.ExitCode != 0 {
			t.Fatalf("exec in A: %+v", res)
		}
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			execIn(t, a, 20*time.Second, "python3", "-c", "import time; time.sleep(4)", "marker-of-sandbox-a")
		}()
		defer wg.Wait()
		waitFor(t, func() bool {
			return strings.Contains(strings.Join(runProbeQuiet(t, a).Procs, "\n"), "marker-of-sandbox-a")
		})

		p := runProbe(t, b)
		isRunsc := flavour == flavourRunsc
		denied := func(name, got string, errnos ...int) {
			t.Helper()
			for _, e := range errnos {
				if got == fmt.Sprintf("errno:%d", e) {
					return
				}
			}
			t.Errorf("%s: %s, want errno %v", name, got, errnos)
		}
		const eperm, enoent, erofs, eacces, enosys = 1, 2, 30, 13, 38
		denied("read /etc/shadow", p.Shadow, enoent)
		denied("mount", p.Mount, eperm)
		denied("umount /mnt/data", p.Umount, eperm)
		denied("unshare(CLONE_NEWUSER)", p.UnshareUser, eperm)
		denied("unshare(CLONE_NEWNS)", p.UnshareMnt, eperm)
		denied("unshare(CLONE_NEWNET)", p.UnshareNet, eperm)
		denied("raw socket", p.RawSocket, eperm)
		if isRunsc {
			denied("packet socket", p.PacketSocket, eperm, 97) // gVisor: EAFNOSUPPORT without a network
		} else {
			denied("packet socket", p.PacketSocket, eperm)
		}
		denied("ptrace", p.Ptrace, eperm)
		if runtime.GOARCH == "amd64" {
			denied("bpf", p.Bpf, eperm, enosys)
			denied("keyctl", p.Keyctl, eperm, enosys)
			denied("perf_event_open", p.PerfEventOpen, eperm, enosys)
			denied("kexec_load", p.KexecLoad, eperm, enosys)
			denied("userfaultfd", p.Userfaultfd, eperm, enosys)
		}
		denied("write /", p.WriteRoot, erofs, eacces)
		denied("write /usr", p.WriteUsr, erofs, eacces)
		denied("write /etc/passwd", p.WriteEtc, erofs, eacces)
		if p.WriteTmp != "ok:None" || p.WriteData != "ok:None" {
			t.Errorf("write /tmp: %s, write /mnt/data: %s; want both ok", p.WriteTmp, p.WriteData)
		}
		denied("write /proc/sysrq-trigger", p.Sysrq, erofs, eacces, eperm, enoent)
		if p.Kcore != "ok:0" && !strings.HasPrefix(p.Kcore, "errno:") {
			t.Errorf("/proc/kcore: %s, want masked (empty or unreadable)", p.Kcore)
		}
		if p.Keys != "ok:0" && !strings.HasPrefix(p.Keys, "errno:") {
			t.Errorf("/proc/keys: %s, want masked", p.Keys)
		}
		for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
			if v, ok := p.Status[k]; isRunsc && !ok {
				continue // gVisor's /proc/self/status lacks some lines
			} else if len(v) != 1 || v[0] != "0000000000000000" {
				t.Errorf("%s = %v, want no capabilities", k, v)
			}
		}
		if v, ok := p.Status["NoNewPrivs"]; (ok || !isRunsc) && (len(v) != 1 || v[0] != "1") {
			t.Errorf("NoNewPrivs = %v, want 1", v)
		}
		if v := p.Status["Seccomp"]; !isRunsc && (len(v) != 1 || v[0] != "2") {
			t.Errorf("Seccomp = %v, want 2 (filter)", v)
		}
		if !slicesEqual(p.Ifaces, []string{"lo"}) {
			t.Errorf("network interfaces %v, want only lo", p.Ifaces)
		}
		if !strings.HasPrefix(p.Pid1, agentPath+" agent") {
			t.Errorf("pid 1 is %q, want the agent", p.Pid1)
		}
		for _, cmd := range p.Procs {
			if strings.Contains(cmd, "marker-of-sandbox-a") || strings.Contains(cmd, "process_api") || strings.Contains(cmd, ".test") {
				t.Errorf("B sees a process that is not its own: %q", cmd)
			}
		}
		if len(p.Procs) > 12 {
			t.Errorf("B sees %d processes: %q", len(p.Procs), p.Procs)
		}
		for _, f := range p.Files {
			if strings.Contains(f, "secret-a") {
				t.Errorf("B sees A's file %s", f)
			}
		}
		if p.Thread != "ok:None" {
			t.Errorf("starting a thread: %s (the seccomp profile must let libc's clone3 fall back)", p.Thread)
		}
		if p.Hostname != hostname {
			t.Errorf("hostname %q, want %q", p.Hostname, hostname)
		}

		// The agent's socket directory is the host's: no symlink to a host
		// socket can be planted where the server dials.
		res := execIn(t, b, 10*time.Second, "sh", "-c",
			"rm -f /.tidepool/run/agent.sock; echo rm=$?; ln -s /var/run/x.sock /.tidepool/run/planted; echo ln=$?; mv /.tidepool/run/agent.sock /.tidepool/run/moved; echo mv=$?")
		if !strings.Contains(res.Stdout, "rm=1") || !strings.Contains(res.Stdout, "ln=1") || !strings.Contains(res.Stdout, "mv=1") {
			t.Errorf("changing the socket directory: %+v", res)
		}
		if st, err := os.Lstat(b.Socket); err != nil || st.Mode().Type() != os.ModeSocket {
			t.Errorf("the agent socket on the host: %v, %v", st, err)
		}
		wantHealthy(t, b)

		// On the host, the sandbox runs as an unprivileged user.
		hostUID := hostUID(t, b.Pid)
		if hostUID == 0 {
			t.Errorf("sandbox init %d runs as root on the host", b.Pid)
		}
		if !isRunsc && hostUID != DefaultIDBase {
			t.Errorf("sandbox init runs as host uid %d, want %d", hostUID, DefaultIDBase)
		}
	})
}

func withKind(s sandbox.Spec, kind string) sandbox.Spec {
	s.Kind = kind
	return s
}

func slicesEqual(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}

// runProbeQuiet lists A's processes (for waiting on them).
func runProbeQuiet(t *testing.T, sb *sandbox.Sandbox) probe {
	var raw struct{ Procs []string }
	pythonJSON(t, sb, `
import json, os
procs = []
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            procs.append(open("/proc/%s/cmdline" % p, "rb").read().replace(b"\0", b" ").decode())
        except OSError:
            pass
print(json.dumps({"Procs": procs}))
`, &raw)
	return probe{Procs: raw.Procs}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("condition not met in 5s")
}

// hostUID is the real uid of a host process.
func hostUID(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" {
			var uid int
			fmt.Sscan(f[1], &uid)
			return uid
		}
	}
	t.Fatalf("no Uid in /proc/%d/status", pid)
	return -1
}

// TestRuncExecIsConfined: processes started with the runtime's exec (not
// the agent) get the same confinement.
func TestRuncExecIsConfined(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, flavour string) {
		rt := newTestRuntime(t, flavour)
		sb := mustCreate(t, rt, sandboxtest.BaseSpec(sandboxtest.NewID("rexec")))
		defer mustDestroy(t, rt, sb.ID)
		res, err := rt.cli.exec(context.Background(), sb.ID, rt.dir(sb.ID), nil, "sh", "-c", "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; cat /etc/shadow")
		if err != nil {
			t.Fatal(err)
		}
		nnp := strings.Contains(res.Stdout, "NoNewPrivs:\t1") || flavour == flavourRunsc // gVisor does not show it
		if !strings.Contains(res.Stdout, "CapEff:\t0000000000000000") || !nnp || res.Code == 0 {
			t.Errorf("%s exec: %+v", flavour, res)
		}
	})
}
