// Package sandbox defines how tidepool starts, reaches and destroys the
// isolated sandboxes sessions run in. Implementations live in sibling
// packages: oci (a local OCI runtime: runc, crun or runsc) and, later, a
// Kubernetes one.
//
// Lifecycle: Create starts a sandbox from a Spec and returns once its agent
// answers /health (for built-in types, with its kernel started). The caller
// then talks to the agent over Sandbox.Socket. Destroy stops it and removes
// everything it used: processes, mounts, cgroups, network devices, files.
// Sandboxes outlive the server process: after a restart, List finds the
// running ones again so that their sessions keep their state.
package sandbox

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors callers branch on.
var (
	ErrNotFound = errors.New("sandbox not found")
	// ErrRuntimeMissing: the OCI runtime binary is not installed.
	ErrRuntimeMissing = errors.New("sandbox runtime not installed")
	// ErrImage: the image cannot be pulled or unpacked (bad reference,
	// bad credentials, unreachable registry).
	ErrImage = errors.New("sandbox image unavailable")
)

// Kinds of sandbox, from the pool's container type.
const (
	KindPython = "python" // PythonLTS
	KindNode   = "node"   // NodeLTS
	KindShell  = "shell"  // Shell
	KindCustom = "custom" // CustomContainer
)

// Spec describes a sandbox to create.
type Spec struct {
	// ID names the sandbox; unique among live sandboxes; [a-z0-9-], ≤ 64.
	ID string
	// Labels are kept with the sandbox and returned by List (the pool id,
	// the template hash, ...).
	Labels map[string]string
	// Kind selects what runs: a kernel for python and node, nothing extra
	// for shell, the image's process for custom.
	Kind string
	// Image is an image reference (registry, "oci-layout:<dir>[@digest]" or
	// "docker-archive:<file>"). Required for custom; for built-in kinds it
	// replaces the host rootfs when set.
	Image string
	// RegistryAuth authenticates the pull of Image.
	RegistryAuth *RegistryAuth
	// Command and Args override the image's entrypoint and cmd (custom).
	Command, Args []string
	// Env is added to the image's environment (custom) or to the agent's.
	Env map[string]string
	// WorkingDir overrides the image's (custom).
	WorkingDir string
	// TargetPort is where the custom container listens (custom).
	TargetPort int
	// Limits.
	CPU         float64 // cores; 0 means unlimited
	MemoryBytes int64   // 0 means unlimited
	PidsLimit   int64   // 0 means the runtime default (512)
	DiskBytes   int64   // writable storage incl. /mnt/data; 0 means the default (1 GiB)
	// EgressEnabled gives the sandbox a route to the outside network;
	// otherwise it has loopback only.
	EgressEnabled bool
	// PreImport lists Python modules a warm Python kernel imports before
	// any claim.
	PreImport []string
}

// RegistryAuth are credentials for an image registry.
type RegistryAuth struct {
	Username, Password string
	// Token is a bearer token (identity-based pulls).
	Token string
}

// Sandbox is a running sandbox.
type Sandbox struct {
	ID     string
	Labels map[string]string
	// Socket is the host path of the agent's unix socket.
	Socket string
	// Pid is the host pid of the sandbox's init (the agent).
	Pid     int
	Created time.Time
	// AgentVersion is the version the agent reported when it started.
	AgentVersion string
}

// Runtime starts, finds and destroys sandboxes.
type Runtime interface {
	// Create starts a sandbox and returns when its agent is healthy. On
	// failure nothing of it is left behind.
	Create(ctx context.Context, spec Spec) (*Sandbox, error)
	// Destroy stops the sandbox and removes all it used. Destroying a
	// sandbox that does not exist returns ErrNotFound.
	Destroy(ctx context.Context, id string) error
	// List returns the live sandboxes this runtime manages, including
	// those started by an earlier server process.
	List(ctx context.Context) ([]*Sandbox, error)
}
