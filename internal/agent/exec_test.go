package agent_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tidepool-dev/tidepool/internal/agent"
	"github.com/tidepool-dev/tidepool/internal/agent/wire"
)

func TestExec(t *testing.T) {
	a := startAgent(t, nil)
	if _, err := a.Init(t.Context(), wire.InitRequest{Identifier: "s1", Env: map[string]string{"FROM_INIT": "i", "SHADOWED": "init"}, Secrets: map[string]string{"TOKEN": "sekrit"}}); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(a.cfg.FilesRoot, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	notExec := filepath.Join(a.cfg.FilesRoot, "notexec")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		req        wire.ExecRequest
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"shell", wire.ExecRequest{ShellCommand: "echo hello"}, 0, "hello\n", ""},
		{"bash features", wire.ExecRequest{ShellCommand: `[[ abc == a* ]] && echo bash`}, 0, "bash\n", ""},
		{"exit code", wire.ExecRequest{ShellCommand: "echo out; echo err >&2; exit 3"}, 3, "out\n", "err\n"},
		{"argv", wire.ExecRequest{Argv: []string{"printf", "%s|%s", "a b", "$HOME"}}, 0, "a b|$HOME", ""},
		{"argv absolute", wire.ExecRequest{Argv: []string{"/bin/sh", "-c", "exit 5"}}, 5, "", ""},
		{"stdin", wire.ExecRequest{ShellCommand: "tr a-z A-Z", Stdin: "shout\n"}, 0, "SHOUT\n", ""},
		{"stdin argv", wire.ExecRequest{Argv: []string{"wc", "-c"}, Stdin: strings.Repeat("x", 200000)}, 0, "200000\n", ""},
		{"no stdin", wire.ExecRequest{ShellCommand: "cat"}, 0, "", ""},
		{"env", wire.ExecRequest{ShellCommand: `echo "$FOO $FROM_INIT $TOKEN $SHADOWED"`, Env: map[string]string{"FOO": "bar", "SHADOWED": "request"}}, 0, "bar i sekrit request\n", ""},
		{"default cwd", wire.ExecRequest{ShellCommand: "pwd"}, 0, a.cfg.FilesRoot + "\n", ""},
		{"relative cwd", wire.ExecRequest{ShellCommand: "pwd", Cwd: "sub"}, 0, filepath.Join(a.cfg.FilesRoot, "sub") + "\n", ""},
		{"absolute cwd", wire.ExecRequest{ShellCommand: "pwd", Cwd: "/"}, 0, "/\n", ""},
		{"killed by signal", wire.ExecRequest{ShellCommand: "kill -TERM $$"}, 128 + 15, "", ""},
		{"not found", wire.ExecRequest{Argv: []string{"no-such-program-xyz"}}, 127, "", "tidepool-agent: no-such-program-xyz: command not found\n"},
		{"not found in shell", wire.ExecRequest{ShellCommand: "no-such-program-xyz"}, 127, "", "*"},
		{"not executable", wire.ExecRequest{Argv: []string{notExec}}, 126, "", "*"},
		{"relative program", wire.ExecRequest{Argv: []string{"./notexec"}}, 126, "", "*"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := a.Exec(t.Context(), tt.req)
			if err != nil {
				t.Fatalf("Exec: %v", err)
			}
			if res.ExitCode != tt.wantCode {
				t.Errorf("ExitCode = %d, want %d (stderr %q)", res.ExitCode, tt.wantCode, res.Stderr)
			}
			if res.Stdout != tt.wantStdout {
				t.Errorf("Stdout = %q, want %q", res.Stdout, tt.wantStdout)
			}
			if tt.wantStderr != "*" && res.Stderr != tt.wantStderr {
				t.Errorf("Stderr = %q, want %q", res.Stderr, tt.wantStderr)
			}
			if res.StdoutBytes != int64(len(res.Stdout)) || res.StderrBytes != int64(len(res.Stderr)) {
				t.Errorf("byte counts %d/%d, want %d/%d", res.StdoutBytes, res.StderrBytes, len(res.Stdout), len(res.Stderr))
			}
			if res.TimedOut || res.StdoutTruncated || res.StderrTruncated {
				t.Errorf("flags: %+v", res)
			}
		})
	}
	t.Run("signal name", func(t *testing.T) {
		res, err := a.Exec(t.Context(), wire.ExecRequest{ShellCommand: "kill -KILL $$"})
		if err != nil {
			t.Fatal(err)
		}
		if res.Signal != "SIGKILL" || res.ExitCode != 137 || res.TimedOut {
			t.Errorf("got %+v, want SIGKILL, 137, not timed out", res)
		}
	})
}

func TestExecInvalid(t *testing.T) {
	a := startAgent(t, nil)
	tests := []struct {
		name string
		req  wire.ExecRequest
		code string
	}{
		{"neither", wire.ExecRequest{}, wire.CodeInvalidRequest},
		{"both", wire.ExecRequest{ShellCommand: "true", Argv: []string{"true"}}, wire.CodeInvalidRequest},
		{"empty argv0", wire.ExecRequest{Argv: []string{""}}, wire.CodeInvalidRequest},
		{"negative timeout", wire.ExecRequest{ShellCommand: "true", TimeoutMs: -1}, wire.CodeInvalidRequest},
		{"negative cap", wire.ExecRequest{ShellCommand: "true", MaxOutputBytes: -1}, wire.CodeInvalidRequest},
		{"bad env name", wire.ExecRequest{ShellCommand: "true", Env: map[string]string{"A=B": "x"}}, wire.CodeInvalidRequest},
		{"NUL in env", wire.ExecRequest{ShellCommand: "true", Env: map[string]string{"A": "x\x00y"}}, wire.CodeInvalidRequest},
		{"NUL in argv", wire.ExecRequest{Argv: []string{"echo", "a\x00b"}}, wire.CodeInvalidRequest},
		{"missing cwd", wire.ExecRequest{ShellCommand: "true", Cwd: "/no/such/dir"}, wire.CodeInvalidCwd},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.Exec(t.Context(), tt.req)
			wantCode(t, "Exec", err, http.StatusBadRequest, tt.code)
		})
	}
	t.Run("bad JSON", func(t *testing.T) {
		req, _ := http.NewRequest("POST", "http://agent/exec", strings.NewReader("{"))
		resp := rawRequest(t, a.Client, req)
		defer resp.Body.Close()
		var er wire.ErrorResponse
		json.NewDecoder(resp.Body).Decode(&er)
		if resp.StatusCode != 400 || er.Error.Code != wire.CodeInvalidRequest {
			t.Errorf("got %d %+v, want 400 InvalidRequest", resp.StatusCode, er)
		}
	})
	t.Run("bad stream", func(t *testing.T) {
		req, _ := http.NewRequest("POST", "http://agent/exec?stream=xml", strings.NewReader(`{"shellCommand":"true"}`))
		resp := rawRequest(t, a.Client, req)
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("status %d, want 400", resp.StatusCode)
		}
	})
}

// TestExecTimeout: at the deadline the whole process group dies, the
// background sleep included, and the result says so.
func TestExecTimeout(t *testing.T) {
	a := startAgent(t, nil)
	res, err := a.Exec(t.Context(), wire.ExecRequest{ShellCommand: "sleep 100 & echo $!; sleep 100", TimeoutMs: 300})
	if err != nil {
		t.Fatal(err)
	}
	if !res.TimedOut || res.ExitCode != wire.ExitCodeTimedOut {
		t.Errorf("got TimedOut=%v ExitCode=%d, want true, %d", res.TimedOut, res.ExitCode, wire.ExitCodeTimedOut)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(res.Stdout))
	if err != nil {
		t.Fatalf("stdout %q: %v", res.Stdout, err)
	}
	waitFor(t, "the background sleep to die", func() bool { return dead(pid) })
}

// TestExecTimeoutClamped: a timeout above the maximum is lowered to it.
func TestExecTimeoutClamped(t *testing.T) {
	a := startAgent(t, func(c *agent.Config) {
		c.ExecTimeout = 100 * time.Millisecond
		c.MaxExecTimeout = 200 * time.Millisecond
	})
	res, err := a.Exec(t.Context(), wire.ExecRequest{ShellCommand: "sleep 100", TimeoutMs: 3600_000})
	if err != nil {
		t.Fatal(err)
	}
	if !res.TimedOut {
		t.Errorf("TimedOut = false, want true")
	}
	res, err = a.Exec(t.Context(), wire.ExecRequest{ShellCommand: "sleep 100"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.TimedOut {
		t.Errorf("default timeout: TimedOut = false, want true")
	}
}

// TestExecOutputCap: output past the cap is drained and counted, not kept.
func TestExecOutputCap(t *testing.T) {
	a := startAgent(t, func(c *agent.Config) { c.MaxOutputCap = 2 << 20 })
	const out, errOut = 50_000_000, 3_000_000
	tests := []struct {
		name     string
		capReq   int64
		wantKept int64
	}{
		{"default cap", 0, agent.DefaultOutputCap},
		{"small cap", 10, 10},
		{"clamped cap", 1 << 30, 2 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := a.Exec(t.Context(), wire.ExecRequest{
				ShellCommand:   "yes | head -c 50000000; yes | head -c 3000000 >&2; echo done",
				MaxOutputBytes: tt.capReq,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.ExitCode != 0 {
				t.Fatalf("ExitCode = %d", res.ExitCode)
			}
			if int64(len(res.Stdout)) != tt.wantKept || int64(len(res.Stderr)) != tt.wantKept {
				t.Errorf("kept %d/%d bytes, want %d", len(res.Stdout), len(res.Stderr), tt.wantKept)
			}
			if res.StdoutBytes != out+5 || res.StderrBytes != errOut {
				t.Errorf("counted %d/%d bytes, want %d/%d", res.StdoutBytes, res.StderrBytes, out+5, errOut)
			}
			if !res.StdoutTruncated || !res.StderrTruncated {
				t.Errorf("truncated = %v/%v, want true/true", res.StdoutTruncated, res.StderrTruncated)
			}
		})
	}
	t.Run("exactly the cap", func(t *testing.T) {
		res, err := a.Exec(t.Context(), wire.ExecRequest{ShellCommand: "printf 0123456789", MaxOutputBytes: 10})
		if err != nil {
			t.Fatal(err)
		}
		if res.Stdout != "0123456789" || res.StdoutTruncated {
			t.Errorf("got %q truncated=%v, want all 10 bytes, not truncated", res.Stdout, res.StdoutTruncated)
		}
	})
}

// TestExecBackground: a command that leaves a background process holding
// its output still returns; the process keeps running.
func TestExecBackground(t *testing.T) {
	a := startAgent(t, nil)
	res, err := a.Exec(t.Context(), wire.ExecRequest{ShellCommand: "sleep 100 & echo $!"})
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(res.Stdout))
	if err != nil {
		t.Fatalf("stdout %q: %v", res.Stdout, err)
	}
	defer syscall.Kill(pid, syscall.SIGKILL)
	if res.ExitCode != 0 || res.TimedOut {
		t.Errorf("got %+v, want exit 0", res)
	}
	if dead(pid) {
		t.Errorf("background process %d died with its command", pid)
	}
}

func TestExecStreamNDJSON(t *testing.T) {
	a := startAgent(t, nil)
	// The command waits for a file the callback creates on the first
	// line: it can only finish if output is streamed as it comes.
	gate := filepath.Join(a.cfg.FilesRoot, "gate")
	var stdout, stderr strings.Builder
	var events int
	res, err := a.ExecStream(t.Context(), wire.ExecRequest{
		ShellCommand: `echo first; echo warn >&2; while [ ! -e gate ]; do sleep 0.01; done; echo second`,
		TimeoutMs:    20_000,
	}, func(stream, data string) error {
		events++
		switch stream {
		case wire.StreamStdout:
			stdout.WriteString(data)
			if strings.Contains(stdout.String(), "first\n") {
				os.WriteFile(gate, nil, 0o644)
			}
		case wire.StreamStderr:
			stderr.WriteString(data)
		default:
			t.Errorf("unknown stream %q", stream)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.TimedOut || res.ExitCode != 0 {
		t.Fatalf("result %+v: output was not streamed before the command ended", res)
	}
	if stdout.String() != "first\nsecond\n" || stderr.String() != "warn\n" {
		t.Errorf("streamed %q / %q", stdout.String(), stderr.String())
	}
	if res.Stdout != "" || res.StdoutBytes != 13 || res.StderrBytes != 5 {
		t.Errorf("final result %+v: want no text, 13 and 5 bytes", res)
	}
	if events < 3 {
		t.Errorf("%d events, want at least 3", events)
	}
}

// TestExecStreamUTF8: a character split between two writes arrives whole.
func TestExecStreamUTF8(t *testing.T) {
	a := startAgent(t, nil)
	var got []string
	_, err := a.ExecStream(t.Context(), wire.ExecRequest{
		ShellCommand: `printf 'caf\303'; sleep 0.1; printf '\251!'`,
	}, func(_, data string) error {
		got = append(got, data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if s := strings.Join(got, ""); s != "café!" {
		t.Errorf("streamed %q (events %q), want %q", s, got, "café!")
	}
}

// TestExecStreamCap: streamed output stops at the cap; counting goes on.
func TestExecStreamCap(t *testing.T) {
	a := startAgent(t, nil)
	n := 0
	res, err := a.ExecStream(t.Context(), wire.ExecRequest{ShellCommand: "head -c 1000000 /dev/zero", MaxOutputBytes: 1000}, func(_, data string) error {
		n += len(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 1000 || !res.StdoutTruncated || res.StdoutBytes != 1000000 {
		t.Errorf("streamed %d bytes, result %+v; want 1000, truncated, 1000000 counted", n, res)
	}
}

func TestExecStreamSSE(t *testing.T) {
	a := startAgent(t, nil)
	for _, how := range []string{"accept", "query"} {
		t.Run(how, func(t *testing.T) {
			url := "http://agent/exec"
			if how == "query" {
				url += "?stream=sse"
			}
			req, _ := http.NewRequest("POST", url, strings.NewReader(`{"shellCommand":"echo one; echo two >&2; exit 4"}`))
			if how == "accept" {
				req.Header.Set("Accept", "text/event-stream")
			}
			resp := rawRequest(t, a.Client, req)
			defer resp.Body.Close()
			if ct := resp.Header.Get("Content-Type"); ct != wire.ContentTypeSSE {
				t.Fatalf("Content-Type %q", ct)
			}
			type event struct {
				name string
				ev   wire.StreamEvent
			}
			var evs []event
			var name string
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				line := sc.Text()
				switch {
				case strings.HasPrefix(line, "event: "):
					name = strings.TrimPrefix(line, "event: ")
				case strings.HasPrefix(line, "data: "):
					var ev wire.StreamEvent
					if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev); err != nil {
						t.Fatalf("data %q: %v", line, err)
					}
					evs = append(evs, event{name, ev})
				case line == "":
				default:
					t.Errorf("unexpected line %q", line)
				}
			}
			var out, errOut string
			for _, e := range evs[:len(evs)-1] {
				if e.name != e.ev.Stream {
					t.Errorf("event %q carries stream %q", e.name, e.ev.Stream)
				}
				if e.ev.Stream == "stdout" {
					out += e.ev.Data
				} else {
					errOut += e.ev.Data
				}
			}
			last := evs[len(evs)-1]
			if last.name != "exit" || last.ev.Exit == nil || last.ev.Exit.ExitCode != 4 {
				t.Errorf("last event %+v, want exit with code 4", last)
			}
			if out != "one\n" || errOut != "two\n" {
				t.Errorf("streamed %q / %q", out, errOut)
			}
		})
	}
}

// TestExecDisconnect: a caller that goes away takes its command with it,
// streaming or not.
func TestExecDisconnect(t *testing.T) {
	a := startAgent(t, nil)
	t.Run("plain", func(t *testing.T) {
		pidFile := filepath.Join(a.cfg.FilesRoot, "pid")
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() {
			_, err := a.Exec(ctx, wire.ExecRequest{ShellCommand: "sleep 100 & echo $! > pid; wait"})
			errc <- err
		}()
		var pid int
		waitFor(t, "the command to start", func() bool {
			b, _ := os.ReadFile(pidFile)
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
			return pid > 0
		})
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("Exec: %v, want context.Canceled", err)
		}
		waitFor(t, "the command's group to die", func() bool { return dead(pid) })
	})
	t.Run("stream", func(t *testing.T) {
		stop := errors.New("enough")
		var pid int
		_, err := a.ExecStream(t.Context(), wire.ExecRequest{ShellCommand: "sleep 100 & echo $!; wait"}, func(_, data string) error {
			pid, _ = strconv.Atoi(strings.TrimSpace(data))
			return stop
		})
		if !errors.Is(err, stop) {
			t.Fatalf("ExecStream: %v, want the callback's error", err)
		}
		if pid == 0 {
			t.Fatal("no pid streamed")
		}
		waitFor(t, "the command's group to die", func() bool { return dead(pid) })
	})
}

// TestExecConcurrent: commands run side by side and keep their output
// apart.
func TestExecConcurrent(t *testing.T) {
	a := startAgent(t, nil)
	const n = 16
	errc := make(chan error, n)
	for i := range n {
		go func() {
			want := strconv.Itoa(i)
			res, err := a.Exec(t.Context(), wire.ExecRequest{Argv: []string{"echo", want}})
			if err == nil && res.Stdout != want+"\n" {
				err = errors.New("got " + res.Stdout + ", want " + want)
			}
			errc <- err
		}()
	}
	for range n {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
}

func TestExecWorkdirCreated(t *testing.T) {
	work := filepath.Join(t.TempDir(), "not", "yet")
	a := startAgent(t, func(c *agent.Config) { c.Workdir = work })
	res, err := a.Exec(t.Context(), wire.ExecRequest{Argv: []string{"pwd"}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal([]byte(res.Stdout), []byte(work+"\n")) {
		t.Errorf("pwd = %q, want %q", res.Stdout, work)
	}
}
