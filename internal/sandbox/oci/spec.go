package oci

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/tidepool-dev/tidepool/internal/sandbox"
)

// Paths inside a sandbox.
const (
	agentPath      = "/.tidepool/tidepool"
	driverPath     = "/.tidepool/driver.pyc"
	agentRunDir    = "/.tidepool/run"
	agentSocket    = agentRunDir + "/agent.sock"
	dataMountPoint = "/mnt/data"
	hostname       = "sandbox"
)

// cfsPeriod is the CFS period the CPU quota is expressed in (100 ms, the
// kernel's default).
const cfsPeriod = 100000

// maskedPaths are hidden from sandboxes (the list of containerd's default
// spec, plus the hypervisor and powercap knobs).
var maskedPaths = []string{
	"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
	"/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
	"/proc/timer_stats", "/sys/devices/virtual/powercap", "/sys/firmware",
	"/sys/kernel/debug", "/sys/kernel/security",
}

// readonlyPaths are read-only in sandboxes.
var readonlyPaths = []string{
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
}

// customCaps is the capability set of custom-image sandboxes: what
// ordinary images expect of root (chown their files, drop to a service
// user, bind port 80), all of it confined to the sandbox's user namespace.
// Built-in kinds get no capability at all. Neither gets CAP_NET_RAW,
// CAP_MKNOD, CAP_SYS_ADMIN or CAP_SYS_PTRACE.
var customCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
}

// bundleSpec is what a sandbox's config.json is made from.
type bundleSpec struct {
	spec     sandbox.Spec
	flavour  string
	rootfs   string // absolute host path of the root filesystem
	readonly bool
	// host-rootfs sandboxes: the read-only binds.
	hostBinds []hostEntry
	// host paths mounted into the sandbox.
	agentBinary, runDir, dataDir string
	// pythonBytecode is the driver compiled by the server for python
	// kernels (kernel.CompilePythonDriver), mounted at driverPath; "" for
	// none.
	pythonBytecode string
	// netnsPath joins a prepared network namespace; empty means a new
	// one with loopback only.
	netnsPath string
	// user namespace: ids 0..idSize-1 map to idBase.. on the host;
	// idSize 0 means no user namespace.
	idBase, idSize uint32
	uid, gid       uint32
	cgroupsPath    string
	tmpBytes       int64
	// image is set for image-based sandboxes.
	image *Image
	// nofile is the RLIMIT_NOFILE to give (soft = hard).
	nofile uint64
}

// ociSpec builds the runtime-spec configuration of a sandbox.
func ociSpec(b *bundleSpec) (*specs.Spec, error) {
	s := b.spec
	caps := []string{}
	if s.Kind == sandbox.KindCustom {
		caps = customCaps
	}
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOSTNAME=" + hostname,
	}
	cwd := dataMountPoint
	if b.image == nil {
		env = append(env, "HOME=/tmp", "TMPDIR=/tmp", "LANG=C.UTF-8")
	} else {
		cwd = "/"
		env = mergeEnv(env, b.image.Config.Env)
		if b.image.Config.WorkingDir != "" {
			cwd = b.image.Config.WorkingDir
		}
	}
	if s.WorkingDir != "" {
		cwd = s.WorkingDir
	}
	if len(s.Env) > 0 {
		keys := slices.Sorted(maps.Keys(s.Env))
		extra := make([]string, 0, len(keys))
		for _, k := range keys {
			extra = append(extra, k+"="+s.Env[k])
		}
		env = mergeEnv(env, extra)
	}

	args, err := agentArgs(b)
	if err != nil {
		return nil, err
	}

	mounts := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777", "size=" + strconv.FormatInt(b.tmpBytes, 10)}},
	}
	if b.flavour != flavourRunsc {
		mounts = append(mounts, specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}})
	}
	for _, h := range b.hostBinds {
		if h.kind == entrySymlink {
			continue // a symlink in the rootfs, no mount
		}
		mounts = append(mounts, specs.Mount{Destination: h.path, Type: "bind", Source: h.path, Options: []string{"bind", "ro", "nosuid", "nodev"}})
	}
	mounts = append(mounts,
		specs.Mount{Destination: dataMountPoint, Type: "bind", Source: b.dataDir, Options: []string{"bind", "rw", "nosuid", "nodev"}},
		specs.Mount{Destination: agentRunDir, Type: "bind", Source: b.runDir, Options: []string{"bind", "rw", "nosuid", "nodev", "noexec"}},
		specs.Mount{Destination: agentPath, Type: "bind", Source: b.agentBinary, Options: []string{"bind", "ro", "nosuid", "nodev"}},
	)
	if b.spec.Kind == sandbox.KindPython && b.pythonBytecode != "" {
		mounts = append(mounts, specs.Mount{Destination: driverPath, Type: "bind", Source: b.pythonBytecode, Options: []string{"bind", "ro", "nosuid", "nodev", "noexec"}})
	}

	namespaces := []specs.LinuxNamespace{
		{Type: specs.PIDNamespace},
		{Type: specs.IPCNamespace},
		{Type: specs.UTSNamespace},
		{Type: specs.MountNamespace},
		{Type: specs.NetworkNamespace, Path: b.netnsPath},
	}
	if b.flavour != flavourRunsc {
		namespaces = append(namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	var uidMap, gidMap []specs.LinuxIDMapping
	if b.idSize > 0 && b.flavour != flavourRunsc {
		// (gVisor runs the sandbox in a user namespace of its own.)
		namespaces = append(namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		uidMap = []specs.LinuxIDMapping{{ContainerID: 0, HostID: b.idBase, Size: b.idSize}}
		gidMap = []specs.LinuxIDMapping{{ContainerID: 0, HostID: b.idBase, Size: b.idSize}}
	}

	pids := s.PidsLimit
	if pids <= 0 {
		pids = DefaultPidsLimit
	}
	rlimits := []specs.POSIXRlimit{
		{Type: "RLIMIT_NOFILE", Hard: b.nofile, Soft: b.nofile},
		{Type: "RLIMIT_CORE", Hard: 0, Soft: 0},
	}
	hostPids := pids
	if b.flavour == flavourRunsc {
		// gVisor runs the sandbox's tasks inside its own kernel: it
		// enforces RLIMIT_NPROC on them (fork fails with EAGAIN, as
		// under a pids cgroup). The host cgroup then counts gVisor's own
		// threads, about a hundred plus a dozen per sandbox task on the
		// ptrace platform; it is set above that, as a backstop that
		// would end the whole sandbox.
		rlimits = append(rlimits, specs.POSIXRlimit{Type: "RLIMIT_NPROC", Hard: uint64(pids), Soft: uint64(pids)})
		hostPids = 256 + 16*pids
	}
	res := &specs.LinuxResources{
		Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
		Pids:    &specs.LinuxPids{Limit: &hostPids},
	}
	if s.MemoryBytes > 0 {
		limit, swap := s.MemoryBytes, s.MemoryBytes // memory+swap = memory: no swap
		res.Memory = &specs.LinuxMemory{Limit: &limit, Swap: &swap}
	}
	if s.CPU > 0 {
		quota, period := int64(s.CPU*cfsPeriod), uint64(cfsPeriod)
		if quota < 1000 {
			quota = 1000 // the kernel's minimum
		}
		res.CPU = &specs.LinuxCPU{Quota: &quota, Period: &period}
	}

	sysctl := map[string]string{}
	if b.netnsPath == "" {
		// The sandbox's own network namespace: let its unprivileged root
		// bind low ports and use ICMP echo sockets (not raw sockets). For
		// a prepared namespace they were set when it was made.
		sysctl["net.ipv4.ip_unprivileged_port_start"] = "0"
		// Written from inside the user namespace: only mapped gids.
		sysctl["net.ipv4.ping_group_range"] = fmt.Sprintf("0 %d", max(b.idSize, 1)-1)
	}
	if b.flavour == flavourRunsc {
		sysctl = nil // gVisor's netstack has its own knobs
	}

	oomAdj := 0
	spec := &specs.Spec{
		Version:  "1.0.2",
		Hostname: hostname,
		Root:     &specs.Root{Path: b.rootfs, Readonly: b.readonly},
		Process: &specs.Process{
			User:            specs.User{UID: b.uid, GID: b.gid},
			Args:            args,
			Env:             env,
			Cwd:             cwd,
			NoNewPrivileges: true,
			OOMScoreAdj:     &oomAdj,
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			Rlimits: rlimits,
		},
		Mounts: mounts,
		Linux: &specs.Linux{
			UIDMappings:   uidMap,
			GIDMappings:   gidMap,
			Sysctl:        sysctl,
			Resources:     res,
			CgroupsPath:   b.cgroupsPath,
			Namespaces:    namespaces,
			Seccomp:       seccompProfile(caps, b.flavour),
			MaskedPaths:   maskedPaths,
			ReadonlyPaths: readonlyPaths,
		},
	}
	return spec, nil
}

// agentArgs is the sandbox's init: the agent, told where to listen, which
// kernel to start before any request (python and node kinds, with the
// modules a python kernel pre-imports), and, for a custom sandbox, what to
// run.
func agentArgs(b *bundleSpec) ([]string, error) {
	s := b.spec
	args := []string{agentPath, "agent", "--socket", agentSocket}
	if lang := kernelOf(s.Kind); lang != "" {
		args = append(args, "--kernel", lang)
	}
	if s.Kind == sandbox.KindPython && b.pythonBytecode != "" {
		args = append(args, "--python-bytecode", driverPath)
	}
	if s.Kind == sandbox.KindPython && len(s.PreImport) > 0 {
		for _, m := range s.PreImport {
			if m == "" || strings.ContainsAny(m, ", \t\n") {
				return nil, fmt.Errorf("pre-import %q: not a module name", m)
			}
		}
		args = append(args, "--pre-import", strings.Join(s.PreImport, ","))
	}
	if s.Kind == sandbox.KindCustom {
		if s.TargetPort > 0 {
			args = append(args, "--target-port", strconv.Itoa(s.TargetPort))
		}
		cmd := imageCommand(b.image, s.Command, s.Args)
		if len(cmd) == 0 {
			return nil, fmt.Errorf("custom sandbox: no command: the image has no entrypoint or cmd and the spec gives none")
		}
		args = append(args, "--")
		args = append(args, cmd...)
	}
	return args, nil
}

// kernelOf is the kernel a kind of sandbox keeps warm ("" for none).
func kernelOf(kind string) string {
	switch kind {
	case sandbox.KindPython:
		return "python"
	case sandbox.KindNode:
		return "node"
	}
	return ""
}

// imageCommand applies Docker's rules: Command replaces the entrypoint
// (and drops the image's cmd); Args replace the cmd.
func imageCommand(img *Image, command, args []string) []string {
	var entry, cmd []string
	if img != nil {
		entry, cmd = img.Config.Entrypoint, img.Config.Cmd
	}
	if len(command) > 0 {
		entry, cmd = command, nil
	}
	if len(args) > 0 {
		cmd = args
	}
	return append(slices.Clone(entry), cmd...)
}

// mergeEnv overlays extra KEY=value pairs on base.
func mergeEnv(base, extra []string) []string {
	out := slices.Clone(base)
	for _, kv := range extra {
		k, _, _ := strings.Cut(kv, "=")
		i := slices.IndexFunc(out, func(e string) bool { ek, _, _ := strings.Cut(e, "="); return ek == k })
		if i >= 0 {
			out[i] = kv
		} else {
			out = append(out, kv)
		}
	}
	return out
}

// hostNofile is the RLIMIT_NOFILE sandboxes get: 65536, or the server's
// hard limit when lower (an unprivileged user namespace cannot raise it).
func hostNofile() uint64 {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 1024
	}
	return min(rl.Max, 65536)
}

// cleanAbs reports whether p is a clean absolute path inside the sandbox.
func cleanAbs(p string) bool {
	return path.IsAbs(p) && path.Clean(p) == p
}
