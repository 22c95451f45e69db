package oci

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/tidepool-dev/tidepool/internal/sandbox"
)

// These tests need no root: they check what the runtime writes, not what
// runs.

func testBundle(kind, flavour string) *bundleSpec {
	entries := []hostEntry{{path: "/usr", kind: entryDir}, {path: "/bin", kind: entrySymlink, target: "usr/bin"}, {path: "/etc/ld.so.cache", kind: entryFile}}
	return &bundleSpec{
		spec: sandbox.Spec{
			ID: "t1", Kind: kind, CPU: 1.5, MemoryBytes: 256 << 20, DiskBytes: 64 << 20,
			Env: map[string]string{"B": "2", "A": "1"},
		},
		flavour: flavour, rootfs: "/r/t1/rootfs", readonly: true, hostBinds: entries,
		agentBinary: "/r/.bin/tidepool-x", runDir: "/r/t1/run", dataDir: "/r/t1/disk/data",
		idBase: DefaultIDBase, idSize: DefaultIDSize, cgroupsPath: "tidepool/t1", tmpBytes: 16 << 20, nofile: 4096,
	}
}

func findMount(s *specs.Spec, dest string) *specs.Mount {
	for i := range s.Mounts {
		if s.Mounts[i].Destination == dest {
			return &s.Mounts[i]
		}
	}
	return nil
}

func TestOCISpecHostRootFS(t *testing.T) {
	s, err := ociSpec(testBundle(sandbox.KindPython, flavourRunc))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Root.Readonly || s.Root.Path != "/r/t1/rootfs" {
		t.Errorf("root = %+v, want read-only /r/t1/rootfs", s.Root)
	}
	p := s.Process
	if !p.NoNewPrivileges || p.User.UID != 0 || p.Cwd != "/mnt/data" {
		t.Errorf("process: nnp %v, uid %d, cwd %q", p.NoNewPrivileges, p.User.UID, p.Cwd)
	}
	if want := []string{agentPath, "agent", "--socket", agentSocket, "--kernel", "python"}; !slices.Equal(p.Args, want) {
		t.Errorf("args = %q, want %q", p.Args, want)
	}
	// An empty, present capability set: runtimes read a missing one as
	// "keep the defaults".
	raw, _ := json.Marshal(s)
	if !strings.Contains(string(raw), `"capabilities":{}`) {
		t.Errorf("capabilities not an explicit empty set: %s", raw)
	}
	if !slices.Contains(p.Env, "A=1") || !slices.Contains(p.Env, "B=2") {
		t.Errorf("env %q lacks the spec's variables", p.Env)
	}
	var ns []string
	for _, n := range s.Linux.Namespaces {
		ns = append(ns, string(n.Type))
		if n.Path != "" {
			t.Errorf("namespace %s joins %s, want a new one", n.Type, n.Path)
		}
	}
	for _, want := range []string{"pid", "ipc", "uts", "mount", "network", "user", "cgroup"} {
		if !slices.Contains(ns, want) {
			t.Errorf("namespaces %v lack %s", ns, want)
		}
	}
	wantMap := []specs.LinuxIDMapping{{ContainerID: 0, HostID: DefaultIDBase, Size: DefaultIDSize}}
	if !slices.Equal(s.Linux.UIDMappings, wantMap) || !slices.Equal(s.Linux.GIDMappings, wantMap) {
		t.Errorf("id maps %v %v", s.Linux.UIDMappings, s.Linux.GIDMappings)
	}
	r := s.Linux.Resources
	if *r.Memory.Limit != 256<<20 || *r.Memory.Swap != 256<<20 {
		t.Errorf("memory %d swap %d", *r.Memory.Limit, *r.Memory.Swap)
	}
	if *r.CPU.Quota != 150000 || *r.CPU.Period != 100000 {
		t.Errorf("cpu quota %d period %d", *r.CPU.Quota, *r.CPU.Period)
	}
	if *r.Pids.Limit != DefaultPidsLimit {
		t.Errorf("pids %d, want the default %d", *r.Pids.Limit, DefaultPidsLimit)
	}
	if s.Linux.CgroupsPath != "tidepool/t1" {
		t.Errorf("cgroupsPath %q", s.Linux.CgroupsPath)
	}
	for _, m := range []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/sys/firmware", "/proc/scsi", "/proc/acpi"} {
		if !slices.Contains(s.Linux.MaskedPaths, m) {
			t.Errorf("%s not masked", m)
		}
	}
	for _, m := range []string{"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"} {
		if !slices.Contains(s.Linux.ReadonlyPaths, m) {
			t.Errorf("%s not read-only", m)
		}
	}
	for dest, want := range map[string][]string{
		"/usr":             {"bind", "ro", "nosuid", "nodev"},
		"/etc/ld.so.cache": {"bind", "ro", "nosuid", "nodev"},
		"/mnt/data":        {"bind", "rw", "nosuid", "nodev"},
		agentPath:          {"bind", "ro", "nosuid", "nodev"},
		agentRunDir:        {"bind", "rw", "nosuid", "nodev", "noexec"},
		"/tmp":             {"nosuid", "nodev", "mode=1777", "size=16777216"},
	} {
		m := findMount(s, dest)
		if m == nil {
			t.Errorf("no mount at %s", dest)
			continue
		}
		if !slices.Equal(m.Options, want) {
			t.Errorf("mount %s: options %q, want %q", dest, m.Options, want)
		}
	}
	if findMount(s, "/bin") != nil {
		t.Error("/bin, a symlink on the host, is mounted; want a symlink in the rootfs")
	}
	if s.Linux.Sysctl["net.ipv4.ping_group_range"] != "0 65535" {
		t.Errorf("sysctl %v", s.Linux.Sysctl)
	}
}

func TestOCISpecEgress(t *testing.T) {
	b := testBundle(sandbox.KindShell, flavourRunsc)
	b.netnsPath = "/r/t1/netns"
	s, err := ociSpec(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range s.Linux.Namespaces {
		if n.Type == specs.NetworkNamespace && n.Path != "/r/t1/netns" {
			t.Errorf("network namespace %q, want the prepared one", n.Path)
		}
		if n.Type == specs.UserNamespace || n.Type == specs.CgroupNamespace {
			t.Errorf("runsc spec has a %s namespace", n.Type)
		}
	}
	if len(s.Linux.UIDMappings) != 0 || len(s.Linux.Sysctl) != 0 {
		t.Errorf("runsc spec: id maps %v, sysctl %v", s.Linux.UIDMappings, s.Linux.Sysctl)
	}
	var nproc uint64
	for _, rl := range s.Process.Rlimits {
		if rl.Type == "RLIMIT_NPROC" {
			nproc = rl.Hard
		}
	}
	if nproc != DefaultPidsLimit || *s.Linux.Resources.Pids.Limit != 256+16*DefaultPidsLimit {
		t.Errorf("runsc: RLIMIT_NPROC %d, host pids %d", nproc, *s.Linux.Resources.Pids.Limit)
	}
}

func TestOCISpecCustom(t *testing.T) {
	b := testBundle(sandbox.KindCustom, flavourRunc)
	b.readonly = false
	b.hostBinds = nil
	b.spec.TargetPort = 8080
	b.spec.Args = []string{"--port", "8080"}
	b.image = &Image{RootFS: "/img", Config: ImageConfig{
		Entrypoint: []string{"/srv"}, Cmd: []string{"--default"},
		Env: []string{"PATH=/opt/bin", "A=image"}, WorkingDir: "/app",
	}}
	s, err := ociSpec(b)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{agentPath, "agent", "--socket", agentSocket, "--target-port", "8080", "--", "/srv", "--port", "8080"}
	if !slices.Equal(s.Process.Args, want) {
		t.Errorf("args %q, want %q", s.Process.Args, want)
	}
	if s.Process.Cwd != "/app" || !slices.Contains(s.Process.Env, "PATH=/opt/bin") || !slices.Contains(s.Process.Env, "A=1") {
		t.Errorf("cwd %q env %q", s.Process.Cwd, s.Process.Env)
	}
	if !slices.Equal(s.Process.Capabilities.Bounding, customCaps) || slices.Contains(customCaps, "CAP_NET_RAW") {
		t.Errorf("caps %v", s.Process.Capabilities.Bounding)
	}
	if findMount(s, "/usr") != nil {
		t.Error("an image sandbox mounts the host's /usr")
	}
	if !allowed(s.Linux.Seccomp, "chroot") {
		t.Error("chroot denied despite CAP_SYS_CHROOT")
	}

	b.image.Config.Entrypoint, b.image.Config.Cmd, b.spec.Args = nil, nil, nil
	if _, err := ociSpec(b); err == nil {
		t.Error("a custom sandbox with no command: no error")
	}
}

func TestAgentArgs(t *testing.T) {
	for _, tc := range []struct {
		kind      string
		preImport []string
		want      []string
	}{
		{sandbox.KindShell, nil, nil},
		{sandbox.KindPython, nil, []string{"--kernel", "python"}},
		{sandbox.KindPython, []string{"numpy", "pandas"}, []string{"--kernel", "python", "--pre-import", "numpy,pandas"}},
		{sandbox.KindNode, []string{"ignored"}, []string{"--kernel", "node"}},
	} {
		b := testBundle(tc.kind, flavourRunc)
		b.spec.PreImport = tc.preImport
		got, err := agentArgs(b)
		if err != nil {
			t.Fatal(err)
		}
		want := append([]string{agentPath, "agent", "--socket", agentSocket}, tc.want...)
		if !slices.Equal(got, want) {
			t.Errorf("%s %v: args %q, want %q", tc.kind, tc.preImport, got, want)
		}
	}
	b := testBundle(sandbox.KindPython, flavourRunc)
	b.spec.PreImport = []string{"a,b"}
	if _, err := agentArgs(b); err == nil {
		t.Error("a pre-import with a comma: no error")
	}
}

// allowed reports whether the profile allows name unconditionally.
func allowed(p *specs.LinuxSeccomp, name string) bool {
	for _, sc := range p.Syscalls {
		if sc.Action == specs.ActAllow && len(sc.Args) == 0 && slices.Contains(sc.Names, name) {
			return true
		}
	}
	return false
}

func TestSeccompProfile(t *testing.T) {
	p := seccompProfile(nil, flavourRunc)
	if p.DefaultAction != specs.ActErrno || p.DefaultErrnoRet == nil || *p.DefaultErrnoRet != uint(syscall.EPERM) {
		t.Errorf("default action %v %v, want EPERM", p.DefaultAction, p.DefaultErrnoRet)
	}
	for _, name := range []string{
		"mount", "umount2", "pivot_root", "unshare", "setns", "ptrace", "kexec_load", "kexec_file_load",
		"init_module", "finit_module", "delete_module", "bpf", "perf_event_open", "keyctl", "add_key",
		"request_key", "swapon", "swapoff", "reboot", "open_by_handle_at", "userfaultfd", "io_uring_setup",
		"fsopen", "fsmount", "move_mount", "open_tree", "process_vm_readv", "process_vm_writev", "kcmp",
		"pidfd_getfd", "chroot", "clock_settime", "settimeofday", "sethostname", "acct", "quotactl",
	} {
		for _, sc := range p.Syscalls {
			if sc.Action == specs.ActAllow && slices.Contains(sc.Names, name) {
				t.Errorf("%s is allowed", name)
			}
		}
	}
	for _, name := range []string{"read", "write", "openat", "execve", "mmap", "futex", "epoll_wait", "statx", "rseq"} {
		if !allowed(p, name) {
			t.Errorf("%s is not allowed", name)
		}
	}
	var clone, clone3 bool
	for _, sc := range p.Syscalls {
		if slices.Contains(sc.Names, "clone") {
			clone = sc.Action == specs.ActAllow && len(sc.Args) == 1 && sc.Args[0].Op == specs.OpMaskedEqual && sc.Args[0].Value == namespaceFlags
		}
		if slices.Contains(sc.Names, "clone3") {
			clone3 = sc.Action == specs.ActErrno && sc.ErrnoRet != nil && *sc.ErrnoRet == uint(syscall.ENOSYS)
		}
	}
	if !clone || !clone3 {
		t.Errorf("clone allowed only without namespace flags: %v; clone3 ENOSYS: %v", clone, clone3)
	}
	if !allowed(seccompProfile(nil, flavourRunsc), "clone3") {
		t.Error("runsc: clone3 not allowed (gVisor would fail it with EPERM)")
	}
}

func TestImageCommand(t *testing.T) {
	img := &Image{Config: ImageConfig{Entrypoint: []string{"/e"}, Cmd: []string{"c1", "c2"}}}
	tests := []struct {
		name          string
		img           *Image
		command, args []string
		want          []string
	}{
		{"image", img, nil, nil, []string{"/e", "c1", "c2"}},
		{"args replace cmd", img, nil, []string{"a"}, []string{"/e", "a"}},
		{"command replaces both", img, []string{"/x"}, nil, []string{"/x"}},
		{"command and args", img, []string{"/x"}, []string{"a"}, []string{"/x", "a"}},
		{"no image", nil, []string{"/x"}, []string{"a"}, []string{"/x", "a"}},
	}
	for _, tc := range tests {
		if got := imageCommand(tc.img, tc.command, tc.args); !slices.Equal(got, tc.want) {
			t.Errorf("%s: imageCommand = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestLookupID(t *testing.T) {
	dir := t.TempDir()
	img := &Image{RootFS: dir}
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0::/:/bin/sh\nweb:x:101:102::/:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "etc/group"), []byte("root:x:0:\nstaff:x:50:\n"), 0o644)
	tests := []struct {
		user     string
		uid, gid uint32
		bad      bool
	}{
		{"", 0, 0, false},
		{"web", 101, 102, false},
		{"101", 101, 102, false},
		{"4242", 4242, 0, false},
		{"web:staff", 101, 50, false},
		{"web:77", 101, 77, false},
		{"nobody", 0, 0, true},
		{"web:nogroup", 0, 0, true},
	}
	for _, tc := range tests {
		img.Config.User = tc.user
		uid, gid, err := imageUser(img)
		if tc.bad {
			if err == nil {
				t.Errorf("imageUser(%q): no error", tc.user)
			}
			continue
		}
		if err != nil || uid != tc.uid || gid != tc.gid {
			t.Errorf("imageUser(%q) = %d, %d, %v; want %d, %d", tc.user, uid, gid, err, tc.uid, tc.gid)
		}
	}
}

func TestValidate(t *testing.T) {
	r := &Runtime{root: "/var/lib/tidepool/sandboxes"}
	good := sandbox.Spec{ID: "abc-123", Kind: sandbox.KindShell}
	if err := r.validate(&good); err != nil {
		t.Errorf("validate(%+v): %v", good, err)
	}
	for name, mutate := range map[string]func(*sandbox.Spec){
		"uppercase id":     func(s *sandbox.Spec) { s.ID = "ABC" },
		"dash first":       func(s *sandbox.Spec) { s.ID = "-abc" },
		"dotdot":           func(s *sandbox.Spec) { s.ID = ".." },
		"kind":             func(s *sandbox.Spec) { s.Kind = "java" },
		"image no store":   func(s *sandbox.Spec) { s.Image = "x" },
		"custom no image":  func(s *sandbox.Spec) { s.Kind = sandbox.KindCustom },
		"tiny memory":      func(s *sandbox.Spec) { s.MemoryBytes = 1 << 20 },
		"tiny disk":        func(s *sandbox.Spec) { s.DiskBytes = 1 << 20 },
		"negative cpu":     func(s *sandbox.Spec) { s.CPU = -1 },
		"relative workdir": func(s *sandbox.Spec) { s.WorkingDir = "app" },
		"env name":         func(s *sandbox.Spec) { s.Env = map[string]string{"A=B": "c"} },
	} {
		s := good
		mutate(&s)
		if err := r.validate(&s); err == nil {
			t.Errorf("%s: validate accepted %+v", name, s)
		}
	}
	long := &Runtime{root: "/" + strings.Repeat("x", 60)}
	s := good
	s.ID = strings.Repeat("a", 60)
	if err := long.validate(&s); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("validate with a socket path over the limit: %v", err)
	}
}

func TestOptions(t *testing.T) {
	var o options
	for name, opt := range map[string]Option{
		"idmap of root":   WithIDMap(0, 10),
		"idmap overflow":  WithIDMap(1<<32-10, 100),
		"bridge name":     WithNetwork("a-very-long-bridge-name", "10.0.0.0/16"),
		"subnet v6":       WithNetwork("br0", "fd00::/64"),
		"subnet unmasked": WithNetwork("br0", "10.0.0.1/16"),
		"relative host":   WithHostRootFS("usr"),
		"generated host":  WithHostRootFS("/etc/passwd"),
		"empty binary":    WithBinary(""),
		"cgroup parent":   WithCgroupParent("a/../b"),
	} {
		if err := opt(&o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestKeyedMutex(t *testing.T) {
	var k keyedMutex
	unlock := k.lock("a")
	if _, ok := k.tryLock("a"); ok {
		t.Error("tryLock succeeded on a held id")
	}
	u2, ok := k.tryLock("b")
	if !ok {
		t.Error("tryLock failed on a free id")
	}
	u2()
	unlock()
	u3, ok := k.tryLock("a")
	if !ok {
		t.Error("tryLock failed after unlock")
	}
	u3()
	if len(k.locks) != 0 {
		t.Errorf("locks left: %v", k.locks)
	}
}

func TestCopySparse(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(64 << 20)
	f.WriteAt([]byte("head"), 0)
	f.WriteAt([]byte("middle"), 32<<20)
	f.WriteAt([]byte("tail"), 64<<20-4)
	f.Close()
	if err := copySparse(src, dst); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(src)
	b, _ := os.ReadFile(dst)
	if string(a) != string(b) {
		t.Fatal("copy differs")
	}
	st, _ := os.Stat(dst)
	if blocks := st.Sys().(*syscall.Stat_t).Blocks * 512; blocks > 1<<20 {
		t.Errorf("copy allocates %d bytes, want the holes kept", blocks)
	}
	if err := copySparse(src, dst); err == nil {
		t.Error("copy over an existing file: no error")
	}
}

func TestPrepareHostRootFS(t *testing.T) {
	host := t.TempDir()
	os.Mkdir(filepath.Join(host, "usr"), 0o755)
	os.Symlink("usr/bin", filepath.Join(host, "bin"))
	os.WriteFile(filepath.Join(host, "cache"), nil, 0o644)
	entries, err := scanHostPaths([]string{filepath.Join(host, "usr"), filepath.Join(host, "bin"), filepath.Join(host, "cache"), filepath.Join(host, "missing")})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 || entries[1].kind != entrySymlink || entries[1].target != "usr/bin" {
		t.Fatalf("scanHostPaths: %+v", entries)
	}
	root := t.TempDir()
	if err := prepareHostRootFS(root, entries, []byte("nameserver 10.0.0.1\n")); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(filepath.Join(root, host, "bin")); err != nil || target != "usr/bin" {
		t.Errorf("symlink: %q, %v", target, err)
	}
	for _, p := range []string{"proc", "dev", "sys", "tmp", "mnt/data", ".tidepool/run", filepath.Join(host, "usr")} {
		if st, err := os.Stat(filepath.Join(root, p)); err != nil || !st.IsDir() {
			t.Errorf("mount point %s: %v", p, err)
		}
	}
	for p, want := range map[string]string{
		"etc/passwd":      "root:x:0:0:",
		"etc/hosts":       "localhost sandbox",
		"etc/resolv.conf": "nameserver 10.0.0.1",
		"etc/hostname":    "sandbox",
	} {
		if b, err := os.ReadFile(filepath.Join(root, p)); err != nil || !strings.Contains(string(b), want) {
			t.Errorf("%s: %q, %v; want it to contain %q", p, b, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "etc/shadow")); err == nil {
		t.Error("the rootfs has /etc/shadow")
	}
}
