package sandboxtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/tidepool-dev/tidepool/internal/agent/client"
	"github.com/tidepool-dev/tidepool/internal/sandbox"
)

var _ sandbox.Runtime = (*ProcessRuntime)(nil)

// ProcessRuntime is a sandbox.Runtime that runs the real tidepool agent as a
// plain child process of the test, WITHOUT ANY ISOLATION: no namespaces, no
// cgroups, no seccomp, no limits, the host's network and file system. It
// exists to test the agent's users (the pool controller) against real
// agents and real kernels; never use it to run untrusted code.
//
// Each sandbox lives in <root>/<id>: agent.sock (the agent's socket),
// data/ (its files root and working directory), state.json (pid, labels,
// creation time) and agent.log. Sandboxes outlive the ProcessRuntime value
// that made them: a new ProcessRuntime on the same root finds them with
// List and destroys them with Destroy, as a real runtime does after a
// server restart.
//
// Spec.Image, the limits and EgressEnabled are accepted and ignored. A
// custom sandbox runs Spec.Command and Spec.Args on the host under the
// agent (with --target-port and --container-env).
type ProcessRuntime struct {
	agent string
	root  string

	mu sync.Mutex
	// waits holds, for the sandboxes this value started, a channel closed
	// when the agent process has exited and been reaped; guarded by mu.
	waits map[string]chan struct{}
}

// NewProcessRuntime returns a runtime that starts agentBinary (a tidepool
// binary; it runs "tidepool agent") for each sandbox, under root. root must
// be short enough for unix socket paths (os.MkdirTemp("", ...) is).
func NewProcessRuntime(agentBinary, root string) *ProcessRuntime {
	return &ProcessRuntime{agent: agentBinary, root: root, waits: map[string]chan struct{}{}}
}

// processState is what state.json holds.
type processState struct {
	ID           string            `json:"id"`
	Labels       map[string]string `json:"labels,omitempty"`
	Pid          int               `json:"pid"`
	Created      time.Time         `json:"created"`
	AgentVersion string            `json:"agentVersion"`
}

// Create starts an agent and waits until it is healthy and, for python and
// node, its kernel is ready.
func (r *ProcessRuntime) Create(ctx context.Context, spec sandbox.Spec) (_ *sandbox.Sandbox, retErr error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !fakeIDPattern.MatchString(spec.ID) {
		return nil, fmt.Errorf("sandbox id %q: invalid", spec.ID)
	}
	if spec.CPU < 0 || spec.MemoryBytes < 0 || spec.PidsLimit < 0 || spec.DiskBytes < 0 {
		return nil, fmt.Errorf("sandbox %s: negative limit", spec.ID)
	}
	dir := filepath.Join(r.root, spec.ID)
	data := filepath.Join(dir, "data")
	socket := filepath.Join(dir, "agent.sock")
	args := []string{"agent", "--init=false", "--socket", socket, "--files-root", data, "--workdir", data, "--stop-grace", "1s"}
	lang := ""
	switch spec.Kind {
	case sandbox.KindPython, sandbox.KindNode:
		lang = spec.Kind
		args = append(args, "--kernel", lang)
		if lang == sandbox.KindPython && len(spec.PreImport) > 0 {
			for _, m := range spec.PreImport {
				args = append(args, "--pre-import", m)
			}
		}
	case sandbox.KindShell:
	case sandbox.KindCustom:
		if spec.Image == "" {
			return nil, fmt.Errorf("sandbox %s: a custom sandbox needs an image", spec.ID)
		}
		if len(spec.Command)+len(spec.Args) == 0 {
			return nil, fmt.Errorf("sandbox %s: the process runtime runs a custom sandbox's command on the host and needs one", spec.ID)
		}
		if spec.TargetPort > 0 {
			args = append(args, "--target-port", strconv.Itoa(spec.TargetPort))
		}
		for _, k := range slices.Sorted(maps.Keys(spec.Env)) {
			args = append(args, "--container-env", k+"="+spec.Env[k])
		}
		if spec.WorkingDir != "" {
			args = append(args, "--container-dir", spec.WorkingDir)
		}
		args = append(args, "--")
		args = append(args, spec.Command...)
		args = append(args, spec.Args...)
	default:
		return nil, fmt.Errorf("sandbox %s: unknown kind %q", spec.ID, spec.Kind)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("sandbox %s exists", spec.ID)
		}
		return nil, fmt.Errorf("sandbox %s: %w", spec.ID, err)
	}
	defer func() {
		if retErr != nil {
			_ = r.Destroy(context.WithoutCancel(ctx), spec.ID)
			os.RemoveAll(dir)
		}
	}()
	if err := os.Mkdir(data, 0o700); err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", spec.ID, err)
	}
	logf, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", spec.ID, err)
	}
	defer logf.Close()
	cmd := exec.Command(r.agent, args...)
	cmd.Dir = data
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if spec.Kind != sandbox.KindCustom {
		cmd.Env = os.Environ()
		for _, k := range slices.Sorted(maps.Keys(spec.Env)) {
			cmd.Env = append(cmd.Env, k+"="+spec.Env[k])
		}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("sandbox %s: start agent: %w", spec.ID, err)
	}
	exited := make(chan struct{})
	r.mu.Lock()
	r.waits[spec.ID] = exited
	r.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		close(exited)
		r.mu.Lock()
		delete(r.waits, spec.ID)
		r.mu.Unlock()
	}()
	st := processState{ID: spec.ID, Labels: maps.Clone(spec.Labels), Pid: cmd.Process.Pid, Created: time.Now().UTC()}
	if err := writeState(dir, &st); err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", spec.ID, err)
	}
	version, err := waitHealthy(ctx, socket, lang, exited)
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "agent.log"))
		if len(log) > 2000 {
			log = log[len(log)-2000:]
		}
		return nil, fmt.Errorf("sandbox %s: %w (agent log: %s)", spec.ID, err, log)
	}
	st.AgentVersion = version
	if err := writeState(dir, &st); err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", spec.ID, err)
	}
	return st.sandbox(socket), nil
}

func (st *processState) sandbox(socket string) *sandbox.Sandbox {
	return &sandbox.Sandbox{ID: st.ID, Labels: maps.Clone(st.Labels), Socket: socket, Pid: st.Pid, Created: st.Created, AgentVersion: st.AgentVersion}
}

func writeState(dir string, st *processState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "state.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "state.json"))
}

func readState(dir string) (*processState, error) {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return nil, err
	}
	var st processState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// waitHealthy polls /health until the agent answers ready (and lang's
// kernel is ready), the process exits, or ctx ends.
func waitHealthy(ctx context.Context, socket, lang string, exited <-chan struct{}) (string, error) {
	c := client.New(socket)
	defer c.Close()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		hctx, cancel := context.WithTimeout(ctx, time.Second)
		h, err := c.Health(hctx)
		cancel()
		switch {
		case err != nil:
			last = err
		case lang != "" && h.Kernels[lang] != "ready":
			last = fmt.Errorf("kernel %s is %q", lang, h.Kernels[lang])
			if h.Kernels[lang] == "failed" {
				return "", last
			}
		case !h.Ready:
			last = errors.New("agent not ready")
		default:
			return h.Version, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("wait for agent: %w (last: %v)", ctx.Err(), last)
		case <-exited:
			return "", errors.New("agent exited before it was healthy")
		case <-tick.C:
		}
	}
}

// alive reports whether pid runs (and is not a zombie this process has yet
// to reap: the reaping goroutine does that promptly).
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Destroy stops the agent's process group (SIGTERM, then SIGKILL after a
// second) and removes the sandbox's directory.
func (r *ProcessRuntime) Destroy(ctx context.Context, id string) error {
	if !fakeIDPattern.MatchString(id) {
		return fmt.Errorf("destroy sandbox %q: %w", id, sandbox.ErrNotFound)
	}
	dir := filepath.Join(r.root, id)
	st, err := readState(dir)
	if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Stat(dir); serr == nil {
			// Created but not yet started: only the directory to remove.
			return os.RemoveAll(dir)
		}
		return fmt.Errorf("destroy sandbox %q: %w", id, sandbox.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("destroy sandbox %q: %w", id, err)
	}
	r.mu.Lock()
	exited := r.waits[id]
	r.mu.Unlock()
	if alive(st.Pid) {
		_ = syscall.Kill(-st.Pid, syscall.SIGTERM)
		if exited != nil {
			select {
			case <-exited:
			case <-time.After(time.Second):
			}
		} else {
			for deadline := time.Now().Add(time.Second); alive(st.Pid) && time.Now().Before(deadline); {
				time.Sleep(2 * time.Millisecond)
			}
		}
		_ = syscall.Kill(-st.Pid, syscall.SIGKILL)
		if exited != nil {
			<-exited
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("destroy sandbox %q: %w", id, err)
	}
	return nil
}

// List returns the sandboxes whose agent process runs, oldest first.
func (r *ProcessRuntime) List(context.Context) ([]*sandbox.Sandbox, error) {
	entries, err := os.ReadDir(r.root)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []*sandbox.Sandbox
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(r.root, e.Name())
		st, err := readState(dir)
		if err != nil || !alive(st.Pid) || st.AgentVersion == "" {
			continue
		}
		out = append(out, st.sandbox(filepath.Join(dir, "agent.sock")))
	}
	slices.SortFunc(out, func(a, b *sandbox.Sandbox) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// Close destroys every sandbox under the root (for test cleanup).
func (r *ProcessRuntime) Close() error {
	entries, err := os.ReadDir(r.root)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	var errs []error
	for _, e := range entries {
		if e.IsDir() {
			if err := r.Destroy(context.Background(), e.Name()); err != nil && !errors.Is(err, sandbox.ErrNotFound) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
