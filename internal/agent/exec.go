package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/tidepool-dev/tidepool/internal/agent/wire"
)

// execPlan is a validated /exec request.
type execPlan struct {
	name    string   // what the caller asked to run, for messages
	path    string   // the program; empty when lookErr is set
	args    []string // argv
	lookErr error    // the program was not found
	env     []string
	dir     string
	stdin   string
	timeout time.Duration
	cap     int64
}

// handleExec runs a command and answers with its result, or streams its
// output (NDJSON or server-sent events) and ends with the result.
func (s *Server) handleExec(w http.ResponseWriter, r *http.Request) error {
	var req wire.ExecRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	format, err := streamFormat(r)
	if err != nil {
		return err
	}
	plan, err := s.plan(&req)
	if err != nil {
		return err
	}
	if s.procs.stopping() {
		return errorf(http.StatusServiceUnavailable, wire.CodeShuttingDown, "the agent is stopping")
	}
	if format == "" {
		res := s.run(r.Context(), plan, nil, nil)
		if r.Context().Err() != nil {
			return nil // the caller is gone and the command was killed
		}
		writeJSON(w, http.StatusOK, res)
		return nil
	}

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	sw := &streamWriter{w: w, rc: http.NewResponseController(w), sse: format == wire.ContentTypeSSE, onFail: cancel}
	h := w.Header()
	h.Set("Content-Type", format)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	sw.rc.Flush()
	emitTo := func(stream string) *emitter {
		return &emitter{send: func(b []byte) {
			sw.send(stream, &wire.StreamEvent{Stream: stream, Data: string(b)})
		}}
	}
	out, errOut := emitTo(wire.StreamStdout), emitTo(wire.StreamStderr)
	res := s.run(ctx, plan, out.emit, errOut.emit)
	out.flush()
	errOut.flush()
	sw.send("exit", &wire.StreamEvent{Exit: &res})
	return nil
}

// streamFormat is the stream content type the request asks for, or "".
func streamFormat(r *http.Request) (string, error) {
	switch q := r.URL.Query().Get("stream"); q {
	case "ndjson":
		return wire.ContentTypeNDJSON, nil
	case "sse":
		return wire.ContentTypeSSE, nil
	case "":
	default:
		return "", errorf(http.StatusBadRequest, wire.CodeInvalidRequest, "stream=%q: want ndjson or sse", q)
	}
	accept := r.Header.Get("Accept")
	switch {
	case strings.Contains(accept, wire.ContentTypeNDJSON):
		return wire.ContentTypeNDJSON, nil
	case strings.Contains(accept, wire.ContentTypeSSE):
		return wire.ContentTypeSSE, nil
	}
	return "", nil
}

func (s *Server) plan(req *wire.ExecRequest) (*execPlan, error) {
	bad := func(format string, args ...any) error {
		return errorf(http.StatusBadRequest, wire.CodeInvalidRequest, format, args...)
	}
	switch {
	case req.ShellCommand == "" && len(req.Argv) == 0:
		return nil, bad("one of shellCommand and argv is required")
	case req.ShellCommand != "" && len(req.Argv) > 0:
		return nil, bad("shellCommand and argv are exclusive")
	case len(req.Argv) > 0 && req.Argv[0] == "":
		return nil, bad("argv[0] is empty")
	case req.TimeoutMs < 0:
		return nil, bad("timeoutMs must not be negative")
	case req.MaxOutputBytes < 0:
		return nil, bad("maxOutputBytes must not be negative")
	case strings.IndexByte(req.ShellCommand, 0) >= 0:
		return nil, bad("shellCommand contains a NUL byte")
	}
	for _, a := range req.Argv {
		if strings.IndexByte(a, 0) >= 0 {
			return nil, bad("argv contains a NUL byte")
		}
	}
	for k, v := range req.Env {
		if !validEnvKey(k) {
			return nil, bad("invalid environment variable name %q", k)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return nil, bad("environment variable %s contains a NUL byte", k)
		}
	}
	p := &execPlan{stdin: req.Stdin, timeout: s.cfg.ExecTimeout, cap: s.cfg.OutputCap}
	if req.TimeoutMs > 0 {
		p.timeout = min(time.Duration(req.TimeoutMs)*time.Millisecond, s.cfg.MaxExecTimeout)
	}
	if req.MaxOutputBytes > 0 {
		p.cap = min(req.MaxOutputBytes, s.cfg.MaxOutputCap)
	}

	switch {
	case req.Cwd == "":
		p.dir = s.cfg.Workdir
		if err := os.MkdirAll(p.dir, 0o755); err != nil {
			return nil, &apiError{status: http.StatusInternalServerError, code: wire.CodeInternal,
				msg: "cannot create the working directory", err: err}
		}
	default:
		p.dir = req.Cwd
		if !filepath.IsAbs(p.dir) {
			p.dir = filepath.Join(s.cfg.Workdir, p.dir)
		}
		if fi, err := os.Stat(p.dir); err != nil || !fi.IsDir() {
			return nil, errorf(http.StatusBadRequest, wire.CodeInvalidCwd, "cwd %q is not a directory", req.Cwd)
		}
	}
	p.env = s.environ(req.Env)
	if req.ShellCommand != "" {
		p.name = filepath.Base(s.shell)
		p.path = s.shell
		p.args = []string{p.name, "-c", req.ShellCommand}
	} else {
		p.name = req.Argv[0]
		p.args = req.Argv
		p.path, p.lookErr = lookPath(req.Argv[0], p.env, p.dir)
	}
	return p, nil
}

// run runs the command to its end and reports it. onStdout and onStderr,
// when set, receive the kept output as it arrives instead of the result.
// The command leads its own process group; the group is killed with
// SIGKILL when the plan's deadline passes or ctx is done.
func (s *Server) run(ctx context.Context, p *execPlan, onStdout, onStderr func([]byte)) wire.ExecResult {
	stdout := &capture{limit: p.cap, emit: onStdout}
	stderr := &capture{limit: p.cap, emit: onStderr}
	start := time.Now()
	result := func(code int) wire.ExecResult {
		return wire.ExecResult{
			ExitCode:        code,
			Stdout:          string(stdout.buf),
			Stderr:          string(stderr.buf),
			StdoutTruncated: stdout.truncated(),
			StderrTruncated: stderr.truncated(),
			StdoutBytes:     stdout.n,
			StderrBytes:     stderr.n,
			DurationMs:      time.Since(start).Milliseconds(),
		}
	}
	if p.lookErr != nil {
		fmt.Fprintf(stderr, "tidepool-agent: %s: command not found\n", p.name)
		return result(127)
	}
	cmd := &exec.Cmd{
		Path:        p.path,
		Args:        p.args,
		Env:         p.env,
		Dir:         p.dir,
		Stdout:      stdout,
		Stderr:      stderr,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
		WaitDelay:   s.cfg.OutputGrace,
	}
	if p.stdin != "" {
		cmd.Stdin = strings.NewReader(p.stdin)
	}
	if err := cmd.Start(); err != nil {
		code, reason := 126, "cannot execute"
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) {
			code, reason = 127, "command not found"
		}
		var errno syscall.Errno
		if errors.As(err, &errno) {
			reason += ": " + errno.Error()
		}
		fmt.Fprintf(stderr, "tidepool-agent: %s: %s\n", p.name, reason)
		return result(code)
	}
	pgid := cmd.Process.Pid
	if s.procs.add(pgid) {
		defer s.procs.remove(pgid)
	} else {
		syscall.Kill(-pgid, syscall.SIGKILL)
	}
	runCtx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	var killed atomic.Bool
	stop := context.AfterFunc(runCtx, func() {
		killed.Store(true)
		syscall.Kill(-pgid, syscall.SIGKILL)
	})
	err := cmd.Wait()
	stop()
	if err != nil && !errors.Is(err, exec.ErrWaitDelay) {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			s.log.DebugContext(ctx, "wait", "err", err)
		}
	}
	code, sig := exitStatus(cmd.ProcessState)
	res := result(code)
	res.Signal = sig
	// A deadline kill that found the leader already gone (only orphans of
	// it were left) is no timeout of the command.
	if killed.Load() && ctx.Err() == nil && sig == "SIGKILL" {
		res.TimedOut = true
		res.ExitCode = wire.ExitCodeTimedOut
	}
	return res
}

// capture keeps the first limit bytes written to it (in buf, or passed to
// emit when set) and counts all of them; it never fails, so the command's
// output is drained past the cap and memory stays bounded.
type capture struct {
	limit int64
	n     int64
	buf   []byte
	emit  func([]byte)
}

func (c *capture) Write(p []byte) (int, error) {
	kept := min(c.n, c.limit)
	c.n += int64(len(p))
	if room := c.limit - kept; room > 0 {
		q := p[:min(int64(len(p)), room)]
		if c.emit != nil {
			c.emit(q)
		} else {
			c.buf = append(c.buf, q...)
		}
	}
	return len(p), nil
}

func (c *capture) truncated() bool { return c.n > c.limit }

// streamWriter writes stream events, one at a time, flushing each.
type streamWriter struct {
	w      http.ResponseWriter
	rc     *http.ResponseController
	sse    bool
	onFail func() // called once when a write fails (the caller is gone)

	mu     sync.Mutex // guards the fields that follow
	failed bool
	buf    bytes.Buffer
}

// send writes ev; name is the SSE event name.
func (sw *streamWriter) send(name string, ev *wire.StreamEvent) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.failed {
		return
	}
	sw.buf.Reset()
	if sw.sse {
		sw.buf.WriteString("event: " + name + "\ndata: ")
	}
	enc := json.NewEncoder(&sw.buf)
	enc.SetEscapeHTML(false)
	enc.Encode(ev) // ends with a newline; JSON has no raw newlines
	if sw.sse {
		sw.buf.WriteByte('\n')
	}
	_, err := sw.w.Write(sw.buf.Bytes())
	if err == nil {
		err = sw.rc.Flush()
	}
	if err != nil {
		sw.failed = true
		sw.onFail()
	}
}

// emitter passes one stream's output on to send, holding back a UTF-8
// sequence split between two reads so that events carry whole characters.
type emitter struct {
	send    func([]byte)
	pending []byte
}

func (e *emitter) emit(p []byte) {
	data := p
	if len(e.pending) > 0 {
		data = append(e.pending, p...)
		e.pending = nil
	}
	cut := len(data) - incompleteTail(data)
	if cut < len(data) {
		e.pending = append([]byte(nil), data[cut:]...)
	}
	if cut > 0 {
		e.send(data[:cut])
	}
}

// flush sends what is held back, at the end of the stream.
func (e *emitter) flush() {
	if len(e.pending) > 0 {
		e.send(e.pending)
		e.pending = nil
	}
}

// incompleteTail is the length of a UTF-8 sequence cut short at the end of
// b, or 0.
func incompleteTail(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if utf8.FullRune(b[i:]) {
				return 0
			}
			return len(b) - i
		}
	}
	return 0
}

// exitStatus is the exit code of a finished process, 128+n when signal n
// killed it (the shell convention), and the signal's name.
func exitStatus(ps *os.ProcessState) (code int, signal string) {
	ws := ps.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return 128 + int(ws.Signal()), signalName(ws.Signal())
	}
	return ws.ExitStatus(), ""
}

var signalNames = map[syscall.Signal]string{
	syscall.SIGHUP: "SIGHUP", syscall.SIGINT: "SIGINT", syscall.SIGQUIT: "SIGQUIT",
	syscall.SIGILL: "SIGILL", syscall.SIGTRAP: "SIGTRAP", syscall.SIGABRT: "SIGABRT",
	syscall.SIGBUS: "SIGBUS", syscall.SIGFPE: "SIGFPE", syscall.SIGKILL: "SIGKILL",
	syscall.SIGUSR1: "SIGUSR1", syscall.SIGSEGV: "SIGSEGV", syscall.SIGUSR2: "SIGUSR2",
	syscall.SIGPIPE: "SIGPIPE", syscall.SIGALRM: "SIGALRM", syscall.SIGTERM: "SIGTERM",
	syscall.SIGXCPU: "SIGXCPU", syscall.SIGXFSZ: "SIGXFSZ", syscall.SIGSYS: "SIGSYS",
}

func signalName(sig syscall.Signal) string {
	if n, ok := signalNames[sig]; ok {
		return n
	}
	return fmt.Sprintf("SIG%d", int(sig))
}
