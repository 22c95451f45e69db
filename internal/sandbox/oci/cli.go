package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/tidepool-dev/tidepool/internal/sandbox"
)

// Flavours of OCI runtime binaries. They share the runc command line; the
// differences (global flags, what a spec may contain) are keyed on these.
const (
	flavourRunc  = "runc"
	flavourCrun  = "crun"
	flavourRunsc = "runsc"
)

// debianPackage names the package that installs each flavour.
var debianPackage = map[string]string{
	flavourRunc:  "runc",
	flavourCrun:  "crun",
	flavourRunsc: "runsc",
}

// cli is a thin client for an OCI runtime binary (runc, crun or runsc),
// in the manner of containerd's go-runc: each call builds its argument list,
// runs the binary and returns an *ExitError carrying its stderr when it
// fails.
type cli struct {
	// path is the binary's absolute path.
	path string
	// flavour is runc, crun or runsc.
	flavour string
	// stateRoot is passed as --root: where the binary keeps its state.
	stateRoot string
	// global holds extra global flags (runsc's --platform, ...).
	global []string
	// wrap, when set, is a command line the binary is run through;
	// startWrap, for the start subcommand only.
	wrap, startWrap []string
}

// ExitError is a failed run of the OCI runtime binary.
type ExitError struct {
	Binary string
	Args   []string
	Code   int
	Stderr string
}

func (e *ExitError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" {
		msg = "no output"
	}
	return fmt.Sprintf("%s %s: exit status %d: %s", filepath.Base(e.Binary), strings.Join(e.Args, " "), e.Code, msg)
}

// resolveBinary finds the runtime binary: a bare flavour name is looked up
// in PATH (and the sbin directories, which a non-login PATH may lack).
func resolveBinary(name string) (path, flavour string, err error) {
	flavour = filepath.Base(name)
	if _, ok := debianPackage[flavour]; !ok {
		// An unknown name is assumed to speak runc's dialect.
		flavour = flavourRunc
	}
	missing := func(cause error) error {
		pkg := debianPackage[flavour]
		if pkg == "" {
			pkg = "runc"
		}
		return fmt.Errorf("oci runtime %q (apt-get install %s): %w: %v", name, pkg, sandbox.ErrRuntimeMissing, cause)
	}
	if strings.ContainsRune(name, '/') {
		st, err := os.Stat(name)
		if err != nil {
			return "", "", missing(err)
		}
		if st.IsDir() || st.Mode()&0o111 == 0 {
			return "", "", missing(errors.New("not an executable file"))
		}
		abs, err := filepath.Abs(name)
		if err != nil {
			return "", "", err
		}
		return abs, flavour, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, flavour, nil
	}
	for _, dir := range []string{"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, flavour, nil
		}
	}
	return "", "", missing(exec.ErrNotFound)
}

func (c *cli) args(sub ...string) []string {
	a := make([]string, 0, len(c.global)+2+len(sub))
	a = append(a, "--root", c.stateRoot)
	a = append(a, c.global...)
	return append(a, sub...)
}

// command builds an *exec.Cmd for a subcommand. The binary runs in its own
// session so that a signal to the server's process group (a Ctrl-C in a
// terminal) never reaches a runtime or the containers it starts.
func (c *cli) command(ctx context.Context, sub ...string) *exec.Cmd {
	return c.commandWrapped(ctx, c.wrap, sub...)
}

func (c *cli) commandWrapped(ctx context.Context, wrap []string, sub ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if len(wrap) > 0 {
		argv := append(append(slices.Clone(wrap[1:]), c.path), c.args(sub...)...)
		cmd = exec.CommandContext(ctx, wrap[0], argv...)
	} else {
		cmd = exec.CommandContext(ctx, c.path, c.args(sub...)...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	return cmd
}

// run runs a subcommand to completion and returns its stdout.
func (c *cli) run(ctx context.Context, sub ...string) ([]byte, error) {
	cmd := c.command(ctx, sub...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), c.exitError(sub, err, stderr.String())
	}
	return stdout.Bytes(), nil
}

func (c *cli) exitError(sub []string, err error, stderr string) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &ExitError{Binary: c.path, Args: sub, Code: ee.ExitCode(), Stderr: stderr}
	}
	return fmt.Errorf("%s %s: %w", filepath.Base(c.path), strings.Join(sub, " "), err)
}

// runDetached creates and starts a container in one call (run --detach).
// The container's stdio and the binary's own messages go to logFile, so
// that the container holds no pipe of ours and outlives this process.
// extraGlobal are global flags for this container only (runsc's
// --network).
func (c *cli) runDetached(ctx context.Context, id, bundle, pidFile string, logFile *os.File, extraGlobal ...string) error {
	if c.flavour == flavourRunsc {
		// runsc has no run --detach: create, then start.
		if err := c.create(ctx, id, bundle, pidFile, logFile, extraGlobal...); err != nil {
			return err
		}
		return c.startCreated(ctx, id, logFile, extraGlobal...)
	}
	return c.start(ctx, logFile, extraGlobal, "run", "--detach", noNewKeyring, "--bundle", bundle, "--pid-file", pidFile, id)
}

// noNewKeyring keeps runc and crun from giving each container a session
// keyring of its own. Those keyrings are charged to the sandboxes' host uid,
// whose quota (kernel.keys.maxkeys, 200 by default) then caps a host at
// ~200 sandboxes: runc fails with "unable to create session key: disk
// quota exceeded". A sandbox inherits the server's session keyring
// instead, and cannot touch it: the seccomp profile refuses keyctl,
// add_key and request_key (see seccomp.go).
const noNewKeyring = "--no-new-keyring"

// create creates a container whose init waits for startCreated.
func (c *cli) create(ctx context.Context, id, bundle, pidFile string, logFile *os.File, extraGlobal ...string) error {
	return c.start(ctx, logFile, extraGlobal, "create", "--bundle", bundle, "--pid-file", pidFile, id)
}

// startCreated starts a created container's process.
func (c *cli) startCreated(ctx context.Context, id string, logFile *os.File, extraGlobal ...string) error {
	return c.startWrapped(ctx, c.startWrap, logFile, extraGlobal, "start", id)
}

func (c *cli) start(ctx context.Context, logFile *os.File, extraGlobal []string, sub ...string) error {
	return c.startWrapped(ctx, c.wrap, logFile, extraGlobal, sub...)
}

func (c *cli) startWrapped(ctx context.Context, wrap []string, logFile *os.File, extraGlobal []string, sub ...string) error {
	cmd := c.commandWrapped(ctx, wrap, append(slices.Clone(extraGlobal), sub...)...)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = logFile, logFile
	off, _ := logFile.Seek(0, 1)
	if err := cmd.Run(); err != nil {
		return c.exitError(sub, err, readTail(logFile.Name(), off, 4096))
	}
	return nil
}

// readTail returns what a file holds after off, at most max bytes of it
// (the end).
func readTail(path string, off int64, max int) string {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < off {
		return ""
	}
	b = b[off:]
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// crunHybridWrap works around crun's refusal of hybrid cgroup hosts
// whose cgroup2 hierarchy has a controller of its own ("cgroups in hybrid
// mode not supported"; on such hosts, typically hugetlb): crun runs in a
// private mount namespace without /sys/fs/cgroup/unified, where it sees a
// plain cgroup v1 host and drives the v1 controllers as runc does. It
// returns nil when the host needs no workaround.
func crunHybridWrap() ([]string, error) {
	const unified = "/sys/fs/cgroup/unified"
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil || st.Type == unix.CGROUP2_SUPER_MAGIC {
		return nil, nil
	}
	if err := unix.Statfs(unified, &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		return nil, nil
	}
	if b, err := os.ReadFile(unified + "/cgroup.controllers"); err != nil || len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	unshare, err := findTool("unshare", "util-linux")
	if err != nil {
		return nil, err
	}
	return []string{unshare, "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
		`umount -l ` + unified + ` && exec "$@"`, "sh"}, nil
}

// runscNetnsWrap works around old runsc releases (such as Debian 12's) on
// Linux 6.x: runsc start decides that it was handed the host's network
// namespace when /proc/sys/net/core/rmem_default exists, which newer
// kernels show in every network namespace, and fails with "cannot run with
// network enabled in root network namespace". runsc start then runs in a
// private mount namespace where /proc/sys/net is an empty tmpfs (the
// per-namespace entries below it cannot be covered one by one). The
// sandbox's namespace is never the host's: Create makes a new one.
func runscNetnsWrap() ([]string, error) {
	unshare, err := findTool("unshare", "util-linux")
	if err != nil {
		return nil, err
	}
	return []string{unshare, "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
		`mount -t tmpfs -o size=4k,mode=555 tmpfs /proc/sys/net && exec "$@"`, "sh"}, nil
}

// containerState is the part of `<runtime> state` output we use.
type containerState struct {
	ID     string `json:"id"`
	Pid    int    `json:"pid"`
	Status string `json:"status"` // creating, created, running, stopped (runsc: also paused)
	Bundle string `json:"bundle"`
}

// list returns the containers the runtime knows, by id.
func (c *cli) list(ctx context.Context) (map[string]containerState, error) {
	out, err := c.run(ctx, "list", "--format", "json")
	// runc list stats each container's state directory in turn: one deleted
	// meanwhile fails the whole listing. Another try sees it gone.
	for try := 0; try < 5 && err != nil && strings.Contains(err.Error(), "no such file or directory"); try++ {
		out, err = c.run(ctx, "list", "--format", "json")
	}
	if err != nil {
		return nil, err
	}
	var all []containerState
	if s := bytes.TrimSpace(out); len(s) > 0 && !bytes.Equal(s, []byte("null")) {
		if err := json.Unmarshal(s, &all); err != nil {
			return nil, fmt.Errorf("%s list: %w", c.flavour, err)
		}
	}
	m := make(map[string]containerState, len(all))
	for _, st := range all {
		m[st.ID] = st
	}
	return m, nil
}

// errNoContainer: the runtime does not know the container.
var errNoContainer = errors.New("container does not exist")

// state returns the container's state, or errNoContainer.
func (c *cli) state(ctx context.Context, id string) (*containerState, error) {
	out, err := c.run(ctx, "state", id)
	if err != nil {
		if isNotExist(err) {
			return nil, errNoContainer
		}
		return nil, err
	}
	var st containerState
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, fmt.Errorf("%s state %s: %w", c.flavour, id, err)
	}
	return &st, nil
}

// kill sends sig to the container's processes. A container that does not
// exist or is not running is not an error.
func (c *cli) kill(ctx context.Context, id string, sig string) error {
	sub := []string{"kill", "--all", id, sig}
	_, err := c.run(ctx, sub...)
	if err != nil && (isNotExist(err) || isNotRunning(err)) {
		return nil
	}
	return err
}

// delete removes a stopped container's runtime state; force kills it
// first. A container that does not exist is not an error.
func (c *cli) delete(ctx context.Context, id string, force bool) error {
	sub := []string{"delete"}
	if force {
		sub = append(sub, "--force")
	}
	sub = append(sub, id)
	_, err := c.run(ctx, sub...)
	if err != nil && isNotExist(err) {
		return nil
	}
	return err
}

// execResult is the outcome of exec.
type execResult struct {
	Stdout, Stderr string
	Code           int
}

// exec runs a process in the container with the process settings of its
// config.json (user, capabilities, no_new_privileges, rlimits, env) and
// args replaced: passed whole with --process, as the runtimes differ in
// what they take from the bundle otherwise (crun exec would drop
// no_new_privileges). Used by tests and diagnostics; sessions use the
// agent.
func (c *cli) exec(ctx context.Context, id, bundle string, stdin []byte, args ...string) (*execResult, error) {
	conf, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, err
	}
	var spec struct {
		Process map[string]any `json:"process"`
	}
	if err := json.Unmarshal(conf, &spec); err != nil {
		return nil, err
	}
	spec.Process["args"] = args
	spec.Process["terminal"] = false
	proc, err := json.Marshal(spec.Process)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp("", "tidepool-exec-*.json")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(proc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	cmd := c.command(ctx, "exec", "--process", f.Name(), id)
	var stdout, stderr bytes.Buffer
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	res := &execResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		res.Code = ee.ExitCode()
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("%s exec %s: %w", c.flavour, id, err)
	}
	return res, nil
}

// isNotExist reports whether err says the container is unknown. The three
// runtimes word it differently.
func isNotExist(err error) bool {
	var ee *ExitError
	if !errors.As(err, &ee) {
		return false
	}
	s := strings.ToLower(ee.Stderr)
	return strings.Contains(s, "does not exist") || strings.Contains(s, "not found") ||
		strings.Contains(s, "no such file or directory") || strings.Contains(s, "cannot find")
}

// isNotRunning reports whether err says the container is not running.
func isNotRunning(err error) bool {
	var ee *ExitError
	if !errors.As(err, &ee) {
		return false
	}
	s := strings.ToLower(ee.Stderr)
	return strings.Contains(s, "not running") || strings.Contains(s, "process already finished") ||
		strings.Contains(s, "no such process") || strings.Contains(s, "container is stopped") ||
		strings.Contains(s, "is not running")
}
