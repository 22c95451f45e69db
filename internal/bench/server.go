package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tidepool-dev/tidepool/internal/sandbox/oci"
)

// Target is a server to measure.
type Target struct {
	Endpoint string
	// MetricsURL is the server's Prometheus endpoint; empty when unknown
	// (refill is then skipped and claims wait a fixed time between
	// them).
	MetricsURL  string
	Credentials Credentials
	// Runtime is the server's sandbox runtime (runc, crun, runsc,
	// process), or "" when unknown.
	Runtime string
	// SandboxRoot is where the runtime keeps one directory (with a
	// state.json) per sandbox; empty when unknown (density is skipped).
	SandboxRoot string
	// Stop stops the server, if the bench started it, and removes what it
	// left; nil for a server the bench did not start.
	Stop func(context.Context) error
}

// StartFunc starts a server whose sandboxes run with runtime.
type StartFunc func(ctx context.Context, runtime string) (*Target, error)

// ExecServe returns a StartFunc that runs `<binary> serve` on a fresh data
// dir under the system's temporary directory, on loopback ports chosen by
// the kernel, and reads where it listens from --address-file. Stop sends
// SIGTERM, waits for the server, destroys any sandbox it left (a bench
// deletes its pools first, so there should be none) and removes the data
// dir.
func ExecServe(binary string) StartFunc {
	return func(ctx context.Context, runtime string) (*Target, error) {
		dir, err := os.MkdirTemp("", "tpbench-")
		if err != nil {
			return nil, err
		}
		addr := filepath.Join(dir, "address.json")
		logPath := filepath.Join(dir, "serve.log")
		logFile, err := os.Create(logPath)
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		cmd := exec.Command(binary, "serve", "--data-dir", dir, "--listen", "127.0.0.1:0",
			"--metrics-listen", "127.0.0.1:0", "--runtime", runtime, "--address-file", addr, "--log-level", "warn")
		cmd.Stdout, cmd.Stderr = logFile, logFile
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		// Flags only: no TIDEPOOL_* variable of the caller's may change it.
		cmd.Env = withoutTidepoolEnv(os.Environ())
		if err := cmd.Start(); err != nil {
			logFile.Close()
			os.RemoveAll(dir)
			return nil, fmt.Errorf("start %s serve: %w", binary, err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait(); logFile.Close() }()
		cleanup := func(ctx context.Context) error {
			var errs []error
			select {
			case <-exited:
			default:
				cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-exited:
				case <-time.After(30 * time.Second):
					cmd.Process.Kill()
					<-exited
					errs = append(errs, fmt.Errorf("%s serve did not stop within 30s of SIGTERM; killed", runtime))
				}
			}
			errs = append(errs, destroyLeftovers(ctx, runtime, filepath.Join(dir, "sandboxes"), binary))
			if m := mountsUnder(dir); len(m) > 0 {
				errs = append(errs, fmt.Errorf("still mounted under %s (left in place): %v", dir, m))
			} else {
				errs = append(errs, os.RemoveAll(dir))
			}
			return errors.Join(errs...)
		}
		var a struct {
			Endpoint    string `json:"endpoint"`
			Metrics     string `json:"metrics"`
			Credentials string `json:"credentials"`
		}
		err = poll(ctx, time.Minute, func() (bool, error) {
			select {
			case err := <-exited:
				exited <- err
				return false, fmt.Errorf("exited: %v", err)
			default:
			}
			data, err := os.ReadFile(addr)
			if err != nil {
				return false, nil
			}
			return true, json.Unmarshal(data, &a)
		})
		if err != nil {
			log, _ := os.ReadFile(logPath)
			cleanup(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("%s serve --runtime %s: %w\n%s", binary, runtime, err, lastLines(log, 15))
		}
		creds, err := ReadCredentials(a.Credentials)
		if err != nil {
			cleanup(context.WithoutCancel(ctx))
			return nil, err
		}
		return &Target{Endpoint: a.Endpoint, MetricsURL: a.Metrics, Credentials: creds, Runtime: runtime,
			SandboxRoot: filepath.Join(dir, "sandboxes"), Stop: cleanup}, nil
	}
}

func withoutTidepoolEnv(env []string) []string {
	out := env[:0:0]
	for _, e := range env {
		if !strings.HasPrefix(e, "TIDEPOOL_") {
			out = append(out, e)
		}
	}
	return out
}

// destroyLeftovers destroys the sandboxes a stopped server left under
// root.
func destroyLeftovers(ctx context.Context, runtime, root, agent string) error {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil // no runtime ever ran
	}
	left := 0
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			left++
		}
	}
	if left == 0 {
		return nil
	}
	rt, err := oci.New(root, oci.WithBinary(runtime), oci.WithAgentBinary(agent))
	if err != nil {
		return fmt.Errorf("%d sandboxes left under %s: %w", left, root, err)
	}
	list, err := rt.List(ctx)
	if err != nil {
		return fmt.Errorf("%d sandboxes left under %s: %w", left, root, err)
	}
	var errs []error
	for _, sb := range list {
		errs = append(errs, rt.Destroy(ctx, sb.ID))
	}
	return errors.Join(errs...)
}

// mountsUnder returns the mount points at or below dir.
func mountsUnder(dir string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append(out, f[4])
		}
	}
	return out
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
