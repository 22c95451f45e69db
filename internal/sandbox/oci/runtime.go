package oci

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tidepool-dev/tidepool/internal/agent/kernel"
	"github.com/tidepool-dev/tidepool/internal/sandbox"
)

var _ sandbox.Runtime = (*Runtime)(nil)

// Runtime runs sandboxes with a local OCI runtime binary. Its state lives
// under the root directory given to New; a new Runtime on the same root
// (after a server restart) finds the running sandboxes again. Methods are
// safe for concurrent use; operations on one sandbox id are serialised.
type Runtime struct {
	root string
	opts options
	log  *slog.Logger

	cli         *cli // the configured runtime binary
	agentBinary string
	// pythonBytecode is the python driver compiled by the host's python3,
	// for python sandboxes on the host's rootfs; "" when it could not be.
	pythonBytecode string
	hostEntries    []hostEntry
	templates      *diskTemplates
	net            *network
	nofile         uint64
	// uid and gid own a sandbox's writable directories on the host: what
	// uid 0 in the sandbox is.
	uid, gid     uint32
	cgroupParent string

	locks keyedMutex

	// mu guards clis.
	mu   sync.Mutex
	clis map[string]*cli // by binary path: runtimes of re-adopted sandboxes
}

// cleanupTimeout bounds the undo of a failed Create and each teardown.
const cleanupTimeout = 30 * time.Second

// New returns a Runtime keeping its state under root (created if needed;
// e.g. <data-dir>/sandboxes). It fails with an error wrapping
// sandbox.ErrRuntimeMissing when the runtime binary is not installed.
func New(root string, opts ...Option) (*Runtime, error) {
	o := options{
		binary:       "runc",
		idBase:       DefaultIDBase,
		idSize:       DefaultIDSize,
		bridge:       DefaultBridge,
		subnet:       netip.MustParsePrefix(DefaultSubnet),
		cniPath:      []string{"/usr/lib/cni", "/opt/cni/bin"},
		cgroupParent: DefaultCgroupParent,
		startTimeout: 30 * time.Second,
		hostPaths:    DefaultHostPaths,
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	path, flavour, err := resolveBinary(o.binary)
	if err != nil {
		return nil, err
	}
	if o.runtimeArgs == nil {
		o.runtimeArgs = defaultRuntimeArgs(flavour)
	}
	if flavour == flavourRunsc && o.idMapSet {
		return nil, errors.New("oci: WithIDMap does not apply to runsc (gVisor maps ids itself)")
	}
	root, err = filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	r := &Runtime{
		root:         root,
		opts:         o,
		log:          o.logger,
		nofile:       hostNofile(),
		cgroupParent: o.cgroupParent,
		clis:         map[string]*cli{},
	}
	if flavour != flavourRunsc {
		r.uid, r.gid = o.idBase, o.idBase
	}
	// The sandbox's init, running as the mapped uid, resolves its bind
	// mounts' sources itself: root and its ancestors must be searchable
	// by others.
	for _, d := range []string{root, filepath.Join(root, ".oci"), filepath.Join(root, ".templates"), filepath.Join(root, ".cni"), filepath.Join(root, ".bin")} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("oci: %w", err)
		}
	}
	if err := os.Chmod(root, 0o711); err != nil {
		return nil, fmt.Errorf("oci: %w", err)
	}
	if flavour != flavourRunsc {
		if err := checkSearchable(root); err != nil {
			return nil, fmt.Errorf("oci: root %s: %w", root, err)
		}
	}
	r.cli = r.newCLI(path, flavour, o.runtimeArgs)
	r.clis[path] = r.cli

	agent := o.agentBinary
	if agent == "" {
		if agent, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("oci: agent binary: %w", err)
		}
	}
	if r.agentBinary, err = installAgent(agent, filepath.Join(root, ".bin")); err != nil {
		return nil, fmt.Errorf("oci: agent binary: %w", err)
	}
	r.pythonBytecode = compileDriver(filepath.Join(root, ".bin", "python-driver.pyc"), r.log)
	if r.hostEntries, err = scanHostPaths(o.hostPaths); err != nil {
		return nil, fmt.Errorf("oci: host rootfs: %w", err)
	}
	r.templates = &diskTemplates{dir: filepath.Join(root, ".templates")}
	if _, err := findTool("mkfs.ext4", "e2fsprogs"); err != nil {
		return nil, fmt.Errorf("oci: %w", err)
	}
	r.net = &network{
		bridge:     o.bridge,
		subnet:     o.subnet,
		pluginDirs: o.cniPath,
		ipamDir:    filepath.Join(root, ".cni", "ipam"),
	}
	if cgroupV2Only() && !filepath.IsAbs(o.cgroupParent) {
		base, err := prepareCgroupV2()
		if err != nil {
			return nil, fmt.Errorf("oci: cgroup v2: %w", err)
		}
		r.cgroupParent = filepath.Join(base, o.cgroupParent)
	}
	return r, nil
}

// newCLI returns a client for a runtime binary, with global flags args.
func (r *Runtime) newCLI(path, flavour string, args []string) *cli {
	c := &cli{path: path, flavour: flavour, stateRoot: filepath.Join(r.root, ".oci", flavour), global: args}
	var err error
	switch flavour {
	case flavourCrun:
		c.wrap, err = crunHybridWrap()
	case flavourRunsc:
		c.startWrap, err = runscNetnsWrap()
	}
	if err != nil {
		// Without the workaround the runtime fails later, saying why.
		r.log.Warn("oci runtime workaround unavailable", "runtime", flavour, "err", err)
	}
	return c
}

// defaultRuntimeArgs are the global flags of a runtime not configured
// with WithRuntimeArgs.
func defaultRuntimeArgs(flavour string) []string {
	if flavour == flavourRunsc {
		return []string{"--platform=ptrace"}
	}
	return nil
}

// cliFor returns the client for the binary a sandbox was started with.
func (r *Runtime) cliFor(st *sandboxState) *cli {
	if st.Binary == "" || st.Binary == r.cli.path {
		return r.cli
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.clis[st.Binary]; ok {
		return c
	}
	flavour := st.Flavour
	if flavour == "" {
		flavour = flavourRunc
	}
	c := r.newCLI(st.Binary, flavour, defaultRuntimeArgs(flavour))
	r.clis[st.Binary] = c
	return c
}

// checkSearchable fails if some ancestor of dir is not searchable by
// others.
func checkSearchable(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s is not searchable by others (mode %v); sandboxes' user namespaces need o+x on the root's ancestors", d, st.Mode().Perm())
		}
		if d == "/" {
			return nil
		}
	}
}

// installAgent copies the agent binary into dir, named by its content
// hash: sandboxes bind-mount the copy, which the sandboxes' mapped uid can
// reach (the original may sit in a private directory), and which an
// upgrade of the original leaves alone.
// compileDriver has the host's python3 compile the kernels' driver into
// dst, once per server start, so that each python kernel loads it instead
// of compiling it (4–7 ms of every start). Sandboxes get it read-only; a
// kernel whose interpreter did not make it (an image's) compiles the
// source as before. It returns dst, or "" when there is no host python3
// or the compile failed.
func compileDriver(dst string, log *slog.Logger) string {
	if _, err := os.Stat(kernel.DefaultPython); err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kernel.CompilePythonDriver(ctx, kernel.DefaultPython, dst); err != nil {
		log.Warn("python kernels will compile their driver at each start", "err", err)
		return ""
	}
	return dst
}

func installAgent(src, dir string) (string, error) {
	f, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	dst := filepath.Join(dir, "tidepool-"+hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, ".agent-")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, f); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return dst, os.Rename(tmp.Name(), dst)
}

var idPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$`)

// maxSocketPath is the longest path a unix socket address holds.
const maxSocketPath = len(unix.RawSockaddrUnix{}.Path) - 1

func (r *Runtime) dir(id string) string { return filepath.Join(r.root, id) }

// socketPath is the host path of a sandbox's agent socket.
func (r *Runtime) socketPath(id string) string {
	return filepath.Join(r.root, id, "run", "agent.sock")
}

func (r *Runtime) validate(spec *sandbox.Spec) error {
	if !idPattern.MatchString(spec.ID) {
		return fmt.Errorf("sandbox id %q: want [a-z0-9-], at most 64 characters, no leading or trailing dash", spec.ID)
	}
	if p := r.socketPath(spec.ID); len(p) > maxSocketPath {
		return fmt.Errorf("sandbox %s: agent socket path %s is longer than %d bytes: use a shorter root or id", spec.ID, p, maxSocketPath)
	}
	switch spec.Kind {
	case sandbox.KindPython, sandbox.KindNode, sandbox.KindShell:
	case sandbox.KindCustom:
		if spec.Image == "" {
			return fmt.Errorf("sandbox %s: a custom sandbox needs an image", spec.ID)
		}
	default:
		return fmt.Errorf("sandbox %s: unknown kind %q", spec.ID, spec.Kind)
	}
	if spec.Image != "" && r.opts.images == nil {
		return fmt.Errorf("sandbox %s: image %q: no image store is configured: %w", spec.ID, spec.Image, sandbox.ErrImage)
	}
	if spec.CPU < 0 || spec.MemoryBytes < 0 || spec.PidsLimit < 0 || spec.DiskBytes < 0 {
		return fmt.Errorf("sandbox %s: negative limit", spec.ID)
	}
	if spec.MemoryBytes > 0 && spec.MemoryBytes < 16<<20 {
		return fmt.Errorf("sandbox %s: memory %d is below the 16 MiB minimum", spec.ID, spec.MemoryBytes)
	}
	if spec.DiskBytes > 0 && spec.DiskBytes < 8<<20 {
		return fmt.Errorf("sandbox %s: disk %d is below the 8 MiB minimum", spec.ID, spec.DiskBytes)
	}
	if spec.WorkingDir != "" && !cleanAbs(spec.WorkingDir) {
		return fmt.Errorf("sandbox %s: working directory %q is not a clean absolute path", spec.ID, spec.WorkingDir)
	}
	for k := range spec.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return fmt.Errorf("sandbox %s: bad environment variable name %q", spec.ID, k)
		}
	}
	return nil
}

// errExists: Create was given the id of a sandbox that exists.
var errExists = errors.New("sandbox exists")

// Create starts a sandbox and returns once its agent answers /health. On
// failure, everything it set up is undone, even if ctx was cancelled.
func (r *Runtime) Create(ctx context.Context, spec sandbox.Spec) (_ *sandbox.Sandbox, retErr error) {
	if err := r.validate(&spec); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("create sandbox %s: %w", spec.ID, err)
	}
	unlock := r.locks.lock(spec.ID)
	defer unlock()

	dir := r.dir(spec.ID)
	if err := os.Mkdir(dir, 0o711); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("create sandbox %s: %w", spec.ID, errExists)
		}
		return nil, fmt.Errorf("create sandbox %s: %w", spec.ID, err)
	}
	st := &sandboxState{
		ID:      spec.ID,
		Labels:  maps.Clone(spec.Labels),
		Kind:    spec.Kind,
		Created: time.Now().UTC(),
		Binary:  r.cli.path,
		Flavour: r.cli.flavour,
	}
	defer func() {
		if retErr == nil {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if err := r.teardown(cctx, dir, st); err != nil {
			r.log.ErrorContext(ctx, "undo failed sandbox create", "sandbox", spec.ID, "err", err)
		}
		retErr = fmt.Errorf("create sandbox %s: %w", spec.ID, retErr)
	}()
	if err := writeState(dir, st); err != nil {
		return nil, err
	}

	ph := phases{start: time.Now()}
	// Steps that run other programs (mkfs, the CNI plugin, the OCI
	// runtime) are not interrupted half-way, which could leave state that
	// no one knows of (a runtime's init without its state file); ctx is
	// checked between them, and bounds the wait for the agent.
	sctx, cancelSteps := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancelSteps()

	// The image, if any: pulled first, as its user owns the storage.
	var img *Image
	uid, gid := uint32(0), uint32(0)
	if spec.Image != "" {
		var err error
		if img, err = r.opts.images.Pull(ctx, spec.Image, spec.RegistryAuth); err != nil {
			return nil, fmt.Errorf("image %s: %w", spec.Image, err)
		}
		if uid, gid, err = imageUser(img); err != nil {
			return nil, err
		}
		if uid >= r.opts.idSize && r.cli.flavour != flavourRunsc {
			return nil, fmt.Errorf("image %s: user %d is outside the sandbox's %d ids", spec.Image, uid, r.opts.idSize)
		}
		ph.mark("image")
	}

	// Writable storage.
	diskBytes := spec.DiskBytes
	if diskBytes == 0 {
		diskBytes = DefaultDiskBytes
	}
	tmpl, err := r.templates.get(sctx, diskBytes, r.uid+uid, r.gid+gid)
	if err != nil {
		return nil, err
	}
	diskImg, diskDir := filepath.Join(dir, "disk.img"), filepath.Join(dir, "disk")
	if err := copySparse(tmpl, diskImg); err != nil {
		return nil, err
	}
	if err := os.Mkdir(diskDir, 0o711); err != nil {
		return nil, err
	}
	st.Disk = true // before the mount: teardown unmounts what may be there
	if err := writeState(dir, st); err != nil {
		return nil, err
	}
	if err := mountImage(diskImg, diskDir); err != nil {
		return nil, err
	}

	ph.mark("disk")
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// The network namespace of a sandbox with egress. Under runc and
	// crun the runtime makes it, inside the sandbox's user namespace (so
	// that it may mount its /sys), and it is plumbed between create and
	// start; gVisor reads its network when it boots, so for runsc it is
	// made and plumbed first.
	var resolv []byte
	netnsPath, specNetns := "", ""
	if spec.EgressEnabled {
		hostResolv, _ := os.ReadFile("/etc/resolv.conf")
		resolv = sandboxResolvConf(hostResolv)
		netnsPath = filepath.Join(dir, "netns")
		if r.cli.flavour == flavourRunsc {
			specNetns = netnsPath
			if err := r.addNetwork(sctx, dir, st, func() error { return newNetns(netnsPath) }); err != nil {
				return nil, err
			}
		}
	}

	// Root filesystem.
	ph.mark("netns")
	rootfs := filepath.Join(dir, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return nil, err
	}
	if img != nil {
		upper, work := filepath.Join(diskDir, "upper"), filepath.Join(diskDir, "work")
		if err := makeUpper(img.RootFS, upper, work); err != nil {
			return nil, err
		}
		st.Overlay = true
		if err := writeState(dir, st); err != nil {
			return nil, err
		}
		if err := mountOverlay(img.RootFS, upper, work, rootfs); err != nil {
			return nil, err
		}
		// The working directory is made if the image lacks it (as Docker
		// does), owned by the image's user.
		cwd := img.Config.WorkingDir
		if spec.WorkingDir != "" {
			cwd = spec.WorkingDir
		}
		if !cleanAbs(cwd) {
			cwd = ""
		}
		if err := prepareImageRootFS(rootfs, resolv, cwd, int(r.uid+uid), int(r.gid+gid)); err != nil {
			return nil, err
		}
	} else if err := prepareHostRootFS(rootfs, r.hostEntries, resolv); err != nil {
		return nil, err
	}

	ph.mark("rootfs")
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// The agent's socket directory.
	runDir := filepath.Join(dir, "run")
	if err := os.Mkdir(runDir, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chown(runDir, int(r.uid+uid), int(r.gid+gid)); err != nil {
		return nil, err
	}

	hostBinds := r.hostEntries
	if img != nil {
		hostBinds = nil // an image brings its own /usr
	}
	tmpBytes := r.opts.tmpBytes
	if tmpBytes == 0 {
		tmpBytes = max(diskBytes/4, 16<<20)
	}
	idSize := r.opts.idSize
	if r.cli.flavour == flavourRunsc {
		idSize = 0
	}
	ociConf, err := ociSpec(&bundleSpec{
		spec:           spec,
		flavour:        r.cli.flavour,
		rootfs:         rootfs,
		readonly:       img == nil,
		hostBinds:      hostBinds,
		agentBinary:    r.agentBinary,
		pythonBytecode: r.pythonBytecode,
		runDir:         runDir,
		dataDir:        filepath.Join(diskDir, "data"),
		netnsPath:      specNetns,
		idBase:         r.opts.idBase,
		idSize:         idSize,
		uid:            uid,
		gid:            gid,
		cgroupsPath:    filepath.Join(r.cgroupParent, spec.ID),
		tmpBytes:       tmpBytes,
		image:          img,
		nofile:         r.nofile,
	})
	if err != nil {
		return nil, err
	}
	confJSON, err := json.Marshal(ociConf)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), confJSON, 0o600); err != nil {
		return nil, err
	}

	// Run it. Its stdio and the runtime's messages go to a log on the
	// sandbox's own disk (bounded by it, and no pipe of ours).
	logFile, err := os.OpenFile(filepath.Join(diskDir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	st.Started = true
	if err := writeState(dir, st); err != nil {
		return nil, err
	}
	cgroupsPath := filepath.Join(r.cgroupParent, spec.ID)
	if err := claimCgroup(r.cli.flavour, cgroupsPath); err != nil {
		return nil, err
	}
	pidFile := filepath.Join(dir, "init.pid")
	var extra []string
	if r.cli.flavour == flavourRunsc {
		extra = runscFlags(spec.EgressEnabled)
	}
	var pid int
	if spec.EgressEnabled && r.cli.flavour != flavourRunsc {
		if err := r.cli.create(sctx, spec.ID, dir, pidFile, logFile); err != nil {
			return nil, err
		}
		if pid, err = readPidFile(pidFile); err != nil {
			return nil, err
		}
		nsSrc := fmt.Sprintf("/proc/%d/ns/net", pid)
		if err := r.addNetwork(sctx, dir, st, func() error { return bindNetns(nsSrc, netnsPath) }); err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := r.cli.startCreated(sctx, spec.ID, logFile); err != nil {
			return nil, err
		}
	} else {
		if err := r.cli.runDetached(sctx, spec.ID, dir, pidFile, logFile, extra...); err != nil {
			return nil, err
		}
		if pid, err = readPidFile(pidFile); err != nil {
			return nil, err
		}
	}
	st.Pid = pid
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("sandbox init %d: %w", pid, err)
	}
	defer unix.Close(pidfd)
	if st.Cgroups, err = processCgroups(pid); err != nil {
		return nil, fmt.Errorf("sandbox cgroups: %w", err)
	}
	if err := writeState(dir, st); err != nil {
		return nil, err
	}

	ph.mark("run")
	hctx, cancel := context.WithTimeout(ctx, r.opts.startTimeout)
	defer cancel()
	// Once the agent's socket exists, the sandbox may not change its
	// directory: the server dials that path on the host, so a symlink
	// planted there (to a host daemon's socket) would make the server its
	// client.
	version, err := waitReady(hctx, r.socketPath(spec.ID), pidfd, kernelOf(spec.Kind), func() error {
		return lockRunDir(runDir, r.cli.flavour)
	})
	if err != nil {
		if tail := readTail(logFile.Name(), 0, 2048); tail != "" {
			err = fmt.Errorf("%w; agent log: %s", err, strings.TrimSpace(tail))
		}
		return nil, err
	}
	st.AgentVersion = version
	st.Ready = true
	if err := writeState(dir, st); err != nil {
		return nil, err
	}
	ph.mark("ready")
	r.log.DebugContext(ctx, "sandbox created", "sandbox", spec.ID, "pid", pid, "runtime", r.cli.flavour, "phases", ph.String())
	return r.sandboxOf(st), nil
}

// addNetwork makes the sandbox's netns file with mk and connects it to
// the bridge.
func (r *Runtime) addNetwork(ctx context.Context, dir string, st *sandboxState, mk func() error) error {
	st.Netns = true // before: teardown releases whatever part exists
	if err := writeState(dir, st); err != nil {
		return err
	}
	netns := filepath.Join(dir, "netns")
	if err := mk(); err != nil {
		return err
	}
	ip, err := r.net.add(ctx, st.ID, netns)
	if err != nil {
		return err
	}
	st.IP = ip.String()
	return writeState(dir, st)
}

// lockRunDir gives the socket directory to an owner that is not the
// sandbox's, read-only to others: host root, which a user namespace does
// not map, or for gVisor (which shows host ids as they are, and whose
// sandbox user is uid 0) host nobody. The agent made its socket when it
// started; it cannot make or replace entries any more.
func lockRunDir(dir, flavour string) error {
	owner := 0
	if flavour == flavourRunsc {
		owner = 65534
	}
	// The mode first: the agent, still setting its socket up, must be
	// able to reach it at every moment.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	return os.Chown(dir, owner, owner)
}

// phases times the steps of a Create, for the debug log.
type phases struct {
	start time.Time
	b     strings.Builder
}

func (p *phases) mark(name string) {
	now := time.Now()
	fmt.Fprintf(&p.b, "%s=%.1fms ", name, float64(now.Sub(p.start).Microseconds())/1000)
	p.start = now
}

func (p *phases) String() string { return strings.TrimSpace(p.b.String()) }

// runscFlags are the per-sandbox global flags of runsc: the agent's socket
// must be a host socket (and "create" alone leaves it without stat or
// chmod in this gVisor; "all" also lets the sandbox connect to host
// sockets, of which its mounts hold none but its own agent's), the seccomp
// profile applies inside the sandbox, and a sandbox without egress gets
// gVisor's loopback-only network.
func runscFlags(egress bool) []string {
	f := []string{"--host-uds=all", "--oci-seccomp"}
	if !egress {
		f = append(f, "--network=none")
	}
	return f
}

func (r *Runtime) sandboxOf(st *sandboxState) *sandbox.Sandbox {
	return &sandbox.Sandbox{
		ID:           st.ID,
		Labels:       maps.Clone(st.Labels),
		Socket:       r.socketPath(st.ID),
		Pid:          st.Pid,
		Created:      st.Created,
		AgentVersion: st.AgentVersion,
	}
}

func readPidFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s: %q", path, b)
	}
	return pid, nil
}

// makeUpper makes an overlay's upper and work directories, the upper one
// with the owner and mode of the image's root (the merged root takes
// them from it).
func makeUpper(lower, upper, work string) error {
	st, err := os.Stat(lower)
	if err != nil {
		return fmt.Errorf("image rootfs: %w", err)
	}
	for _, d := range []string{upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("image rootfs: no owner")
	}
	if err := os.Chown(upper, int(sys.Uid), int(sys.Gid)); err != nil {
		return err
	}
	return os.Chmod(upper, st.Mode().Perm())
}

// imageUser resolves an image's User to ids (in the sandbox).
func imageUser(img *Image) (uid, gid uint32, err error) {
	u := img.Config.User
	if u == "" {
		return 0, 0, nil
	}
	root, err := os.OpenRoot(img.RootFS)
	if err != nil {
		return 0, 0, err
	}
	defer root.Close()
	name, group, hasGroup := strings.Cut(u, ":")
	uid, gid, err = lookupID(root, "etc/passwd", name, true)
	if err != nil {
		return 0, 0, fmt.Errorf("image user %q: %w", u, err)
	}
	if hasGroup {
		if gid, _, err = lookupID(root, "etc/group", group, false); err != nil {
			return 0, 0, fmt.Errorf("image group %q: %w", u, err)
		}
	}
	return uid, gid, nil
}

// lookupID resolves a name or number in the image's passwd (passwd:
// also return the primary gid) or group file, read inside the image.
func lookupID(root *os.Root, file, name string, passwd bool) (id, gid uint32, err error) {
	if n, err := strconv.ParseUint(name, 10, 32); err == nil {
		if passwd {
			// A numeric user's primary group is its entry's, or 0.
			_, g, err := lookupID(root, file, name+"\x00byid", true)
			if err != nil {
				g = 0
			}
			return uint32(n), g, nil
		}
		return uint32(n), 0, nil
	}
	byID := strings.HasSuffix(name, "\x00byid")
	name = strings.TrimSuffix(name, "\x00byid")
	f, err := root.Open(file)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) < 3 {
			continue
		}
		key := fields[0]
		if byID {
			key = fields[2]
		}
		if key != name {
			continue
		}
		n, err := strconv.ParseUint(fields[2], 10, 32)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: bad id %q", file, fields[2])
		}
		if passwd && len(fields) >= 4 {
			g, err := strconv.ParseUint(fields[3], 10, 32)
			if err != nil {
				return 0, 0, fmt.Errorf("%s: bad gid %q", file, fields[3])
			}
			return uint32(n), uint32(g), nil
		}
		return uint32(n), 0, nil
	}
	return 0, 0, fmt.Errorf("%q not found in %s", name, file)
}

// Destroy stops a sandbox and removes everything it used. It returns
// sandbox.ErrNotFound for an unknown id (so a repeated Destroy does).
func (r *Runtime) Destroy(ctx context.Context, id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("destroy sandbox %q: %w", id, sandbox.ErrNotFound)
	}
	unlock := r.locks.lock(id)
	defer unlock()
	dir := r.dir(id)
	st, err := readState(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("destroy sandbox %s: %w", id, sandbox.ErrNotFound)
		}
		// A crash left a directory without state: clean it up.
		st, err = &sandboxState{ID: id}, nil
	}
	if err != nil {
		return fmt.Errorf("destroy sandbox %s: %w", id, err)
	}
	// Finish even if the caller gives up: a half-destroyed sandbox is
	// worse than a late answer.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := r.teardown(cctx, dir, st); err != nil {
		return fmt.Errorf("destroy sandbox %s: %w", id, err)
	}
	r.log.DebugContext(ctx, "sandbox destroyed", "sandbox", id)
	return nil
}

// teardown undoes whatever of a sandbox exists, in reverse order of
// Create: processes, runtime state, network, mounts, cgroups, files. Each
// step tolerates its part being absent, so teardown can be repeated after
// a partial failure. The directory is removed only when nothing is
// mounted in it any more.
func (r *Runtime) teardown(ctx context.Context, dir string, st *sandboxState) error {
	id := filepath.Base(dir)
	c := r.cliFor(st)
	var errs []error

	if err := r.stop(ctx, c, id, st); err != nil {
		errs = append(errs, err)
	}
	if st.Netns {
		netns := filepath.Join(dir, "netns")
		if err := r.net.del(ctx, id, netns); err != nil {
			errs = append(errs, err)
		}
		if err := removeNetns(netns); err != nil {
			errs = append(errs, err)
		}
	}
	if st.Overlay {
		if err := unmount(filepath.Join(dir, "rootfs")); err != nil {
			errs = append(errs, err)
		}
	}
	if st.Disk {
		if err := unmount(filepath.Join(dir, "disk")); err != nil {
			errs = append(errs, err)
		}
	}
	cgroups := st.Cgroups
	if len(cgroups) == 0 {
		// Not recorded (a crash before the runtime started it): look
		// where the runtime would have put it.
		cgroups, _ = runtimeCgroupPaths(c.flavour, filepath.Join(r.cgroupParent, id))
	}
	for _, cg := range cgroups {
		if err := removeCgroup(cg); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if mounted, err := mountsUnder(dir); err != nil {
		return err
	} else if len(mounted) > 0 {
		return fmt.Errorf("still mounted: %s", strings.Join(mounted, ", "))
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return nil
}

// stop kills the sandbox's processes, waits for its init to exit and
// deletes the container from the runtime's state.
func (r *Runtime) stop(ctx context.Context, c *cli, id string, st *sandboxState) error {
	if c.flavour == flavourRunsc {
		// gVisor's sandbox process outlives the container's init until
		// the container is deleted; delete --force kills and reaps both.
		return c.delete(ctx, id, true)
	}
	// The init's pidfd, taken before the kill, tells when it is gone; a
	// pid from an earlier boot or reused since is recognised by its cgroup.
	pidfd := -1
	if st.Pid > 0 && pidInSandbox(st.Pid, id) {
		if fd, err := unix.PidfdOpen(st.Pid, 0); err == nil {
			pidfd = fd
			defer unix.Close(fd)
		}
	}
	if err := c.kill(ctx, id, "KILL"); err != nil {
		// Not fatal yet: delete --force below kills too.
		r.log.DebugContext(ctx, "kill sandbox", "sandbox", id, "err", err)
	}
	if pidfd >= 0 {
		// Killing a pid namespace's init kills the rest of it.
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; {
			n, err := unix.Poll(fds, 100)
			if n > 0 || (err != nil && !errors.Is(err, unix.EINTR)) {
				break
			}
		}
	}
	if err := c.delete(ctx, id, false); err != nil {
		// Still running (the kill raced a start), or half-created.
		return c.delete(ctx, id, true)
	}
	return nil
}

// pidInSandbox reports whether pid is in the sandbox's cgroup.
func pidInSandbox(pid int, id string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasSuffix(line, "/"+id) {
			return true
		}
	}
	return false
}

// mountsUnder lists the mount points at or below dir.
func mountsUnder(dir string) ([]string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountinfo(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	return out, nil
}

// List returns the running sandboxes under the root, including those an
// earlier server process started. Sandboxes whose container is gone (it
// exited, the host rebooted, a create crashed half-way) are destroyed on
// the way and not returned. Sandboxes being created or destroyed right now
// are skipped.
func (r *Runtime) List(ctx context.Context) ([]*sandbox.Sandbox, error) {
	entries, err := os.ReadDir(r.root)
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	// One `list` per runtime binary in use, not one `state` per sandbox.
	live := map[string]map[string]containerState{} // binary → id → state
	var out []*sandbox.Sandbox
	for _, e := range entries {
		id := e.Name()
		if !e.IsDir() || !idPattern.MatchString(id) {
			continue
		}
		unlock, ok := r.locks.tryLock(id)
		if !ok {
			continue
		}
		sb, err := r.listOne(ctx, id, live)
		unlock()
		if err != nil {
			return nil, err
		}
		if sb != nil {
			out = append(out, sb)
		}
	}
	slices.SortFunc(out, func(a, b *sandbox.Sandbox) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// listOne returns the sandbox id if it is live (nil if not, after
// cleaning it up). Called with id locked.
func (r *Runtime) listOne(ctx context.Context, id string, live map[string]map[string]containerState) (*sandbox.Sandbox, error) {
	dir := r.dir(id)
	st, err := readState(dir)
	if errors.Is(err, fs.ErrNotExist) {
		st = &sandboxState{ID: id}
	} else if err != nil {
		r.log.WarnContext(ctx, "unreadable sandbox state; removing", "sandbox", id, "err", err)
		st = &sandboxState{ID: id}
	}
	c := r.cliFor(st)
	states, ok := live[c.path]
	if !ok {
		if states, err = c.list(ctx); err != nil {
			return nil, fmt.Errorf("list sandboxes: %w", err)
		}
		live[c.path] = states
	}
	cs, ok := states[id]
	if ok && st.Ready && (cs.Status == "running" || cs.Status == "paused") {
		return r.sandboxOf(st), nil
	}
	r.log.InfoContext(ctx, "removing dead sandbox", "sandbox", id, "status", cs.Status)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := r.teardown(cctx, dir, st); err != nil {
		// Keep listing: the next List retries.
		r.log.ErrorContext(ctx, "remove dead sandbox", "sandbox", id, "err", err)
	}
	return nil, nil
}
