package oci

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"time"
)

// Option configures a Runtime.
type Option func(*options) error

type options struct {
	binary       string
	runtimeArgs  []string
	agentBinary  string
	hostPaths    []string
	idBase       uint32
	idSize       uint32
	idMapSet     bool
	logger       *slog.Logger
	images       ImageStore
	bridge       string
	subnet       netip.Prefix
	cniPath      []string
	cgroupParent string
	startTimeout time.Duration
	tmpBytes     int64
}

// Defaults.
const (
	// DefaultIDBase is the first host uid/gid of the range sandboxes run
	// as: uid 0 in a sandbox is this uid on the host. It lies far above
	// the ranges /etc/subuid hands to users (100000 + n·65536).
	DefaultIDBase = 1 << 30
	// DefaultIDSize is the size of that range.
	DefaultIDSize = 65536
	// DefaultBridge and DefaultSubnet are the network of EgressEnabled
	// sandboxes.
	DefaultBridge = "tidepool0"
	DefaultSubnet = "10.88.0.0/16"
	// DefaultPidsLimit applies when Spec.PidsLimit is 0.
	DefaultPidsLimit = 512
	// DefaultDiskBytes applies when Spec.DiskBytes is 0.
	DefaultDiskBytes = 1 << 30
	// DefaultCgroupParent holds the sandboxes' cgroups, relative to the
	// server's own cgroup.
	DefaultCgroupParent = "tidepool"
)

// DefaultHostPaths are the host paths a host-rootfs sandbox sees, read-only.
// A path that is a symlink on the host (/bin → usr/bin on merged-/usr
// systems) becomes the same symlink in the sandbox; a missing one is
// skipped.
var DefaultHostPaths = []string{
	"/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin",
	"/etc/alternatives", "/etc/ssl/certs", "/etc/ssl/openssl.cnf", "/etc/ca-certificates",
	"/etc/ld.so.cache", "/etc/localtime", "/etc/mime.types", "/etc/protocols",
	"/etc/services", "/etc/os-release", "/etc/debian_version", "/etc/timezone",
}

// WithBinary selects the OCI runtime: "runc" (the default), "crun",
// "runsc", or a path to one of them (the file's name picks the dialect;
// an unknown name is driven like runc).
func WithBinary(name string) Option {
	return func(o *options) error {
		if name == "" {
			return errors.New("WithBinary: empty name")
		}
		o.binary = name
		return nil
	}
}

// WithRuntimeArgs adds global flags to every call of the runtime binary.
// The default for runsc is --platform=ptrace.
func WithRuntimeArgs(args ...string) Option {
	return func(o *options) error {
		o.runtimeArgs = append([]string(nil), args...)
		return nil
	}
}

// WithAgentBinary sets the tidepool binary bind-mounted read-only into each
// sandbox as its init (`tidepool agent`). The default is os.Executable().
// It must not depend on files outside the sandbox: build it static
// (CGO_ENABLED=0) when sandboxes use custom images.
func WithAgentBinary(path string) Option {
	return func(o *options) error {
		abs, err := filepath.Abs(path)
		if err != nil {
			return fmt.Errorf("WithAgentBinary: %w", err)
		}
		o.agentBinary = abs
		return nil
	}
}

// WithHostRootFS replaces DefaultHostPaths: the absolute host paths
// (directories, files or symlinks) a host-rootfs sandbox sees read-only.
func WithHostRootFS(paths ...string) Option {
	return func(o *options) error {
		for _, p := range paths {
			if !filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/" {
				return fmt.Errorf("WithHostRootFS: %q is not a clean absolute path below /", p)
			}
			if p == "/etc/passwd" || p == "/etc/group" || p == "/etc/hosts" || p == "/etc/hostname" || p == "/etc/resolv.conf" {
				return fmt.Errorf("WithHostRootFS: %s is generated per sandbox", p)
			}
		}
		o.hostPaths = append([]string(nil), paths...)
		return nil
	}
}

// WithIDMap sets the host uid/gid range sandboxes run as under runc and
// crun: ids 0..size-1 in a sandbox are hostID..hostID+size-1 on the host.
// All sandboxes of a Runtime share the range (they are kept apart by their
// mount, pid, ipc and network namespaces). The default is DefaultIDBase,
// DefaultIDSize. The range must not contain host uid 0 and must not be
// shared with host users. runsc ignores it: gVisor runs the sandbox in its
// own user namespace as an unprivileged host user.
func WithIDMap(hostID, size uint32) Option {
	return func(o *options) error {
		if hostID == 0 {
			return errors.New("WithIDMap: the range must not map host root")
		}
		if size == 0 || uint64(hostID)+uint64(size) > 1<<32-1 {
			return fmt.Errorf("WithIDMap: bad size %d", size)
		}
		o.idBase, o.idSize, o.idMapSet = hostID, size, true
		return nil
	}
}

// WithLogger sets the logger. The default discards.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("WithLogger: nil logger")
		}
		o.logger = l
		return nil
	}
}

// WithImageStore lets sandboxes run OCI images (Spec.Image): custom kinds
// always, built-in kinds when Spec.Image is set. Without one, such specs
// fail with sandbox.ErrImage.
func WithImageStore(s ImageStore) Option {
	return func(o *options) error {
		o.images = s
		return nil
	}
}

// WithNetwork sets the bridge and IPv4 subnet of EgressEnabled sandboxes.
// The defaults are DefaultBridge and DefaultSubnet.
func WithNetwork(bridge, subnet string) Option {
	return func(o *options) error {
		if bridge == "" || len(bridge) > 15 {
			return fmt.Errorf("WithNetwork: bad bridge name %q", bridge)
		}
		p, err := netip.ParsePrefix(subnet)
		if err != nil || !p.Addr().Is4() || p.Bits() > 28 || p.Masked() != p {
			return fmt.Errorf("WithNetwork: bad subnet %q (an IPv4 prefix of at most /28)", subnet)
		}
		o.bridge, o.subnet = bridge, p
		return nil
	}
}

// WithCNIPath sets where the CNI plugins are looked for. The default is
// /usr/lib/cni (Debian's containernetworking-plugins), then /opt/cni/bin.
func WithCNIPath(dirs ...string) Option {
	return func(o *options) error {
		o.cniPath = append([]string(nil), dirs...)
		return nil
	}
}

// WithCgroupParent sets the cgroup sandboxes' cgroups are created under,
// as <parent>/<id>; DefaultCgroupParent by default. An absolute path is
// from each hierarchy's root. A relative one is from the server's own
// cgroup under runc and runsc (and always on cgroup v2), and from the root
// under crun on cgroup v1 (crun's reading). Two Runtimes on one host need
// distinct parents. Under systemd, run the server with Delegate=yes and
// KillMode=process, so that a restart of the server does not kill its
// sandboxes.
func WithCgroupParent(path string) Option {
	return func(o *options) error {
		if path == "" || filepath.Clean(path) != path {
			return fmt.Errorf("WithCgroupParent: bad path %q", path)
		}
		o.cgroupParent = path
		return nil
	}
}

// WithStartTimeout bounds how long Create waits for the agent to answer
// /health, on top of the caller's context. The default is 30s.
func WithStartTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return errors.New("WithStartTimeout: must be positive")
		}
		o.startTimeout = d
		return nil
	}
}

// WithTmpBytes sets the size of each sandbox's /tmp (a tmpfs, so it is
// also charged to the sandbox's memory). The default is a quarter of the
// sandbox's disk size.
func WithTmpBytes(n int64) Option {
	return func(o *options) error {
		if n <= 0 {
			return errors.New("WithTmpBytes: must be positive")
		}
		o.tmpBytes = n
		return nil
	}
}
