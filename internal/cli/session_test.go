package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tidepool-dev/tidepool/internal/sandbox/sandboxtest"
)

var (
	agentOnce sync.Once
	agentBin  string
	agentErr  error
)

// processRuntime builds the tidepool binary once and returns a
// ProcessRuntime that runs it as each sandbox's agent.
func processRuntime(t *testing.T) *sandboxtest.ProcessRuntime {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the tidepool binary")
	}
	agentOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tpcli")
		if err != nil {
			agentErr = err
			return
		}
		if err := os.Chmod(dir, 0o711); err != nil {
			agentErr = err
			return
		}
		agentBin = filepath.Join(dir, "tidepool")
		build := exec.Command("go", "build", "-o", agentBin, "github.com/tidepool-dev/tidepool/cmd/tidepool")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			agentErr = err
			agentBin = string(out)
		}
	})
	if agentErr != nil {
		t.Fatalf("build tidepool: %v\n%s", agentErr, agentBin)
	}
	root, err := os.MkdirTemp("", "tpc")
	if err != nil {
		t.Fatal(err)
	}
	rt := sandboxtest.NewProcessRuntime(agentBin, root)
	t.Cleanup(func() {
		if err := rt.Close(); err != nil {
			t.Errorf("destroy leftover sandboxes: %v", err)
		}
		os.RemoveAll(root)
	})
	return rt
}

// TestSessionCommands runs code, files and shell commands through the
// CLI against a server whose sandboxes are real agent processes.
func TestSessionCommands(t *testing.T) {
	e := newEnv(t, processRuntime(t))
	e.mustRun("group", "create", "-n", "rg", "-l", "eastasia")
	e.mustRun("sessionpool", "create", "-n", "pypool", "-g", "rg", "--max-sessions", "2", "--ready-sessions", "1")
	s := []string{"-n", "pypool", "-g", "rg", "-i", "user-1"}
	ci := func(sub string, args ...string) []string {
		return append(append([]string{"containerapp", "session", "code-interpreter", sub}, s...), args...)
	}
	out := e.mustJSON(ci("execute", "--code", "print(6*7)")...)
	if got := dig(out, "result.stdout"); got != "42\n" {
		t.Errorf("execute: result.stdout = %q (%v)", got, out)
	}
	if got := strings.TrimSpace(e.mustRun(ci("execute", "--code", "x = 5\nx * 2", "--query", "result.executionResult", "-o", "tsv", "--session-pool-location", "eastasia")...)); got != "10" {
		t.Errorf("execute --session-pool-location: executionResult = %q", got)
	}
	if r := e.run(ci("execute", "--code", "1", "--timeout-in-seconds", "221")...); r.code != 1 || !strings.Contains(r.stderr, "Timeout in seconds must be in range [1, 220].") {
		t.Errorf("timeout 221: exit %d %q", r.code, r.stderr)
	}

	local := filepath.Join(t.TempDir(), "example.txt")
	if err := os.WriteFile(local, []byte("hello file"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.mustRun(ci("upload-file", "--filepath", local, "--path", "my-directory")...)
	names := e.mustRun(ci("list-files", "--path", "my-directory", "--query", "value[].name", "-o", "tsv")...)
	if names != "example.txt\n" {
		t.Errorf("list-files = %q", names)
	}
	if got := e.mustJSON(ci("show-file-content", "--filename", "example.txt", "--path", "my-directory")...); got != "hello file" {
		t.Errorf("show-file-content = %v", got)
	}
	if got := e.mustJSON(ci("show-file-metadata", "--filename", "my-directory/example.txt")...); dig(got, "sizeInBytes") != 10.0 {
		t.Errorf("show-file-metadata = %v", got)
	}
	e.mustRun(ci("delete-file", "--filename", "example.txt", "--path", "my-directory", "--yes")...)
	if names := e.mustRun(ci("list-files", "--path", "my-directory", "--query", "value[].name", "-o", "tsv")...); names != "" {
		t.Errorf("list-files after delete = %q", names)
	}
	if r := e.run(append([]string{"session", "stop"}, s...)...); r.code != 1 || !strings.Contains(r.stderr, "only supported for session pools with type 'CustomContainer'") {
		t.Errorf("session stop on PythonLTS: exit %d %q", r.code, r.stderr)
	}

	// Shell pools: session shell exec.
	e.mustRun("sessionpool", "create", "-n", "shpool", "-g", "rg", "--container-type", "Shell", "--max-sessions", "2", "--ready-sessions", "1", "--network-status", "EgressEnabled")
	sh := []string{"session", "shell", "exec", "-n", "shpool", "-g", "rg", "-i", "exec-1"}
	res := e.mustJSON(append(sh, "--command", "echo 'hello world'; echo 'hi'")...)
	if dig(res, "status") != "0" || dig(res, "result.stdout") != "hello world\nhi\n" {
		t.Errorf("shell exec --command = %v", res)
	}
	if got := e.mustRun(append(sh, "--argv", "printf", "%s-%s", "a", "b", "--query", "result.stdout", "-o", "tsv")...); got != "a-b\n" {
		t.Errorf("shell exec --argv = %q", got)
	}
}
