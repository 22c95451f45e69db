package kernel

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tidepool-dev/tidepool/internal/agent/wire"
)

//go:embed driver.py
var pythonDriver string

// pythonBootstrap runs the driver, passed as the next argument, under a
// file name of its own: tracebacks leave its frames out.
const pythonBootstrap = `import sys;exec(compile(sys.argv.pop(1),"<tidepool-driver>","exec"))`

//go:embed driver.js
var nodeDriver string

// Defaults of Options.
const (
	DefaultPython         = "/usr/bin/python3"
	DefaultCwd            = "/mnt/data"
	DefaultTimeout        = 220 * time.Second // the data plane's maximum
	DefaultMaxOutputBytes = 1 << 20
	DefaultInterruptGrace = 2 * time.Second
)

// Bounds.
const (
	maxOutputBytes = 64 << 20         // a request's MaxOutputBytes is capped here
	startTimeout   = 60 * time.Second // for a kernel to become ready
)

// Kernel states, as reported by Status.
const (
	StateStarting = "starting"
	StateReady    = "ready"
	StateBusy     = "busy"
	StateDead     = "dead" // exited or failed to start; the next Execute starts it
)

// Errors callers branch on.
var (
	ErrUnknownLanguage = errors.New("unknown kernel language")
	ErrClosed          = errors.New("kernel manager closed")
)

// Error names of results (wire.ExecError.Name) the manager makes itself.
const (
	ErrorNameTimeout    = "TimeoutError"
	ErrorNameKernelDied = "KernelDied"
)

// Options configure a Manager. The zero value of each field selects the
// default its comment gives.
type Options struct {
	// Python is the interpreter of python kernels; "" means DefaultPython.
	Python string
	// Node is the interpreter of node kernels; "" means node on PATH, or
	// /usr/bin/node.
	Node string
	// Cwd is the kernels' working directory; "" means DefaultCwd.
	Cwd string
	// PreImport lists Python modules a python kernel imports when it
	// starts, before it reports ready. They are only loaded (sys.modules),
	// not bound to names in the user's namespace. A module that fails to
	// import is logged and skipped.
	PreImport []string
	// PythonBytecode is a file CompilePythonDriver made, which python
	// kernels load rather than compile their driver (see bytecode.go); ""
	// means none.
	PythonBytecode string
	// Env is the kernels' environment, "KEY=value" entries; nil means the
	// agent's own. Unless Env sets them, MPLBACKEND=Agg is added (figures
	// render without a display), and MPLCONFIGDIR=$TMPDIR/matplotlib, so
	// that matplotlib keeps its font cache in a writable place instead of
	// warning on every import and rebuilding the cache (seconds) in every
	// kernel, when HOME is read-only as in sandboxes.
	Env []string
	// DefaultTimeout bounds an execution whose request has no TimeoutMs;
	// 0 means DefaultTimeout.
	DefaultTimeout time.Duration
	// MaxOutputBytes caps stdout and stderr each, and the result's repr
	// and JSON, for requests without MaxOutputBytes; 0 means
	// DefaultMaxOutputBytes.
	MaxOutputBytes int64
	// InterruptGrace is how long an interrupted execution may take to stop
	// before its kernel is killed and restarted; 0 means
	// DefaultInterruptGrace.
	InterruptGrace time.Duration
	// Logger receives the kernels' lifecycle events; nil discards them.
	Logger *slog.Logger
}

// Manager runs the kernels of one sandbox: at most one per language.
// Its methods are safe for concurrent use.
type Manager struct {
	opts   Options
	log    *slog.Logger
	ctx    context.Context // cancelled by Close; bounds background starts
	cancel context.CancelFunc
	// wg counts the calls and background restarts in progress; Close
	// waits for them.
	wg sync.WaitGroup

	// mu guards the fields that follow and the guarded fields of slots.
	// It is never held while waiting for a kernel.
	mu      sync.Mutex
	closed  bool
	env     map[string]string // SetEnv's overlay
	envGen  uint64            // bumped by SetEnv
	kernels map[string]*slot
}

// slot is one language's kernel. Whoever holds sem (an Execute, a Start, a
// background restart) may use and replace proc; the fields marked guarded
// are read and written under Manager.mu.
type slot struct {
	lang string
	sem  chan struct{} // capacity 1: send to acquire, receive to release

	proc  *process // guarded; nil when not running
	state string   // guarded
	// lost is set when a kernel died and no Execute has reported yet that
	// its state is gone (Restarted); guarded.
	lost bool
	// lease is the kernel's lease while one holds it; guarded.
	lease *Lease
	// waiting counts the callers of take waiting for sem; a lease made
	// while one waits is revoked at once. Guarded.
	waiting int
}

// New returns a Manager; it starts no kernel.
func New(opts Options) *Manager {
	opts = opts.withDefaults()
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{
		opts:    opts,
		log:     log,
		ctx:     ctx,
		cancel:  cancel,
		env:     map[string]string{},
		kernels: map[string]*slot{},
	}
	for _, lang := range []string{wire.LangPython, wire.LangNode} {
		m.kernels[lang] = &slot{lang: lang, sem: make(chan struct{}, 1)}
	}
	return m
}

// withDefaults returns opts with the defaults its fields' comments give.
func (opts Options) withDefaults() Options {
	if opts.Python == "" {
		opts.Python = DefaultPython
	}
	if opts.Node == "" {
		opts.Node = "/usr/bin/node"
		if p, err := exec.LookPath("node"); err == nil {
			opts.Node = p
		}
	}
	if opts.Cwd == "" {
		opts.Cwd = DefaultCwd
	}
	if opts.DefaultTimeout <= 0 {
		opts.DefaultTimeout = DefaultTimeout
	}
	if opts.MaxOutputBytes <= 0 {
		opts.MaxOutputBytes = DefaultMaxOutputBytes
	}
	opts.MaxOutputBytes = min(opts.MaxOutputBytes, maxOutputBytes)
	if opts.InterruptGrace <= 0 {
		opts.InterruptGrace = DefaultInterruptGrace
	}
	opts.PreImport = slices.Clone(opts.PreImport)
	opts.Env = slices.Clone(opts.Env)
	return opts
}

// argv returns the command line of a kernel.
func (m *Manager) argv(lang string) []string {
	switch lang {
	case wire.LangPython:
		// -u: C stdio unbuffered (see the driver).
		if m.opts.PythonBytecode != "" {
			return []string{m.opts.Python, "-u", "-c", pythonCachedBootstrap, pythonDriver, m.opts.PythonBytecode, driverTag}
		}
		return []string{m.opts.Python, "-u", "-c", pythonBootstrap, pythonDriver}
	case wire.LangNode:
		return []string{m.opts.Node, "--expose-internals", "-e", nodeDriver}
	}
	return nil
}

// enter registers a call in progress on lang's kernel; the caller must
// call m.wg.Done when it returns.
func (m *Manager) enter(lang string) (*slot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	s, ok := m.kernels[lang]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownLanguage, lang)
	}
	m.wg.Add(1)
	return s, nil
}

// acquire takes s's semaphore, giving up when ctx or the Manager ends.
func (m *Manager) acquire(ctx context.Context, s *slot) error {
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-m.ctx.Done():
		return ErrClosed
	}
}

func (s *slot) release() { <-s.sem }

// take is enter and acquire for a caller that wants lang's kernel now: a
// lease of it is revoked (Lease). On success the caller holds s.sem and
// must call m.wg.Done when it returns.
func (m *Manager) take(ctx context.Context, lang string) (*slot, error) {
	s, err := m.enter(lang)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	s.waiting++
	l := s.lease
	m.mu.Unlock()
	if l != nil {
		l.revoke()
	}
	err = m.acquire(ctx, s)
	m.mu.Lock()
	s.waiting--
	m.mu.Unlock()
	if err != nil {
		m.wg.Done()
		return nil, fmt.Errorf("wait for the %s kernel: %w", lang, err)
	}
	return s, nil
}

// Start starts lang's kernel if it is not running and waits until it is
// ready. Warm sandboxes call it before they are claimed.
func (m *Manager) Start(ctx context.Context, lang string) error {
	s, err := m.enter(lang)
	if err != nil {
		return err
	}
	defer m.wg.Done()
	if err := m.acquire(ctx, s); err != nil {
		return fmt.Errorf("start %s kernel: %w", lang, err)
	}
	defer s.release()
	_, _, err = m.ensure(ctx, s)
	return err
}

// ensure returns s's running kernel, starting one if there is none;
// restarted reports a kernel whose loss no Execute has reported yet. The
// caller holds s.sem.
func (m *Manager) ensure(ctx context.Context, s *slot) (p *process, restarted bool, err error) {
	m.mu.Lock()
	p = s.proc
	if p != nil {
		select {
		case <-p.exited:
			m.diedLocked(s, p)
			p = nil
		default:
		}
	}
	m.mu.Unlock()
	if p == nil {
		if p, err = m.start(ctx, s); err != nil {
			return nil, false, err
		}
	}
	// A kernel restarted in the background counts too.
	m.mu.Lock()
	restarted = s.lost
	m.mu.Unlock()
	return p, restarted, nil
}

// diedLocked records that p, s's kernel, has ended.
func (m *Manager) diedLocked(s *slot, p *process) {
	if s.proc == p {
		s.proc = nil
		s.state = StateDead
		s.lost = true
	}
}

// start starts a kernel for s, waits until it is ready and installs it.
// The caller holds s.sem.
func (m *Manager) start(ctx context.Context, s *slot) (*process, error) {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	defer context.AfterFunc(m.ctx, cancel)()

	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	s.state = StateStarting
	env, gen := m.environLocked()
	m.mu.Unlock()

	p, err := m.spawnReady(ctx, s.lang, env)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil && m.closed {
		m.mu.Unlock()
		p.expected.Store(true)
		p.kill()
		m.mu.Lock()
		err = ErrClosed
	}
	if err != nil {
		s.state = StateDead
		return nil, err
	}
	p.envGen = gen
	s.proc = p
	s.state = StateReady
	m.wg.Add(1)
	go m.watch(s, p)
	return p, nil
}

// spawnReady starts a kernel process and waits for its driver's ready.
func (m *Manager) spawnReady(ctx context.Context, lang string, env []string) (*process, error) {
	t0 := time.Now()
	p, err := spawn(lang, m.argv(lang), m.opts.Cwd, env, int(m.opts.MaxOutputBytes))
	if err != nil {
		return nil, fmt.Errorf("start %s kernel: %w", lang, err)
	}
	id := newID()
	fail := func(err error) (*process, error) {
		p.kill()
		if msg := strings.TrimSpace(string(p.stderr.take().data)); msg != "" {
			err = fmt.Errorf("%w; stderr: %s", err, truncate(msg, 2000))
		}
		return nil, fmt.Errorf("start %s kernel: %w", lang, err)
	}
	deadline, _ := ctx.Deadline()
	if err := p.send(request{Type: "init", ID: id, PreImport: m.preImport(lang)}, deadline); err != nil {
		return fail(err)
	}
	var ready *response
	select {
	case ready = <-p.msgs:
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	if ready == nil {
		select {
		case <-p.exited:
		case <-ctx.Done():
		}
		return fail(fmt.Errorf("kernel exited (%s)", p.exitReason()))
	}
	if ready.Type != "ready" || ready.ID != id {
		return fail(fmt.Errorf("%w: %s %q in answer to init", errProtocol, ready.Type, ready.ID))
	}
	stdout, stderr := p.stdout.drain(), p.stderr.drain()
	attrs := []any{"lang", lang, "pid", p.pid, "version", ready.Version, "duration", time.Since(t0)}
	if len(stdout.data)+len(stderr.data) > 0 {
		attrs = append(attrs, "stdout", truncate(string(stdout.data), 2000), "stderr", truncate(string(stderr.data), 2000))
	}
	m.log.Info("kernel started", attrs...)
	for _, name := range slices.Sorted(maps.Keys(ready.PreImportErrors)) {
		m.log.Warn("kernel pre-import failed", "lang", lang, "module", name, "error", ready.PreImportErrors[name])
	}
	return p, nil
}

func (m *Manager) preImport(lang string) []string {
	if lang == wire.LangPython {
		return m.opts.PreImport
	}
	return nil
}

// environLocked returns the environment of a kernel started now, and the
// generation of the SetEnv overlay it includes.
func (m *Manager) environLocked() ([]string, uint64) {
	base := m.opts.Env
	if base == nil {
		base = os.Environ()
	}
	env := slices.Clone(base)
	for _, kv := range []string{"MPLBACKEND=Agg", "MPLCONFIGDIR=" + filepath.Join(os.TempDir(), "matplotlib")} {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.ContainsFunc(env, func(e string) bool { return strings.HasPrefix(e, k+"=") }) {
			env = append(env, kv)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(m.env)) {
		env = append(env, k+"="+m.env[k]) // later entries win (os/exec)
	}
	return env, m.envGen
}

// watch notices a kernel that ends while nobody uses it, and restarts it
// at once, so that the sandbox stays warm. One that ends within a second
// of its start is left dead (the next Execute starts it), so a kernel that
// cannot live does not restart in a loop.
func (m *Manager) watch(s *slot, p *process) {
	defer m.wg.Done()
	select {
	case <-p.exited:
	case <-m.ctx.Done():
		return
	}
	if p.expected.Load() {
		return // killed on purpose; the killer handles it
	}
	m.mu.Lock()
	mine := s.proc == p
	m.diedLocked(s, p)
	m.mu.Unlock()
	if !mine {
		return // its holder handles it
	}
	m.log.Warn("kernel exited", "lang", s.lang, "pid", p.pid, "reason", p.exitReason())
	p.kill() // releases its pipes; bounded
	if time.Since(p.started) < time.Second {
		return
	}
	select {
	case s.sem <- struct{}{}:
		m.restartAsync(s)
	default: // busy: the holder sees the death itself
	}
}

// restartAsync starts a new kernel for s in the background; the caller
// holds s.sem and hands it over.
func (m *Manager) restartAsync(s *slot) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		s.release()
		return
	}
	s.state = StateStarting
	m.wg.Add(1)
	m.mu.Unlock()
	go func() {
		defer m.wg.Done()
		defer s.release()
		if _, err := m.start(m.ctx, s); err != nil && !errors.Is(err, ErrClosed) && m.ctx.Err() == nil {
			m.log.Error("kernel restart failed", "lang", s.lang, "error", err)
		}
	}()
}

// Status reports the state of each language's kernel that has been
// started (StateStarting, StateReady, StateBusy, StateDead); languages
// never started are absent.
func (m *Manager) Status() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := map[string]string{}
	for lang, s := range m.kernels {
		if s.state != "" {
			st[lang] = s.state
		}
	}
	return st
}

// SetEnv merges env into the kernels' environment: kernels started later
// get it, and a running kernel applies it (os.environ, process.env) before
// its next execution, keeping its state. Late binding at claim time.
func (m *Manager) SetEnv(env map[string]string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	maps.Copy(m.env, env)
	m.envGen++
}

// Close kills the kernels and waits for the calls in progress, which
// fail with ErrClosed. Later calls fail with ErrClosed too.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	m.closed = true
	var procs []*process
	for _, s := range m.kernels {
		if s.proc != nil {
			procs = append(procs, s.proc)
		}
	}
	m.mu.Unlock()
	m.cancel()
	var wg sync.WaitGroup
	for _, p := range procs {
		p.expected.Store(true)
		wg.Go(p.kill)
	}
	wg.Wait()
	m.wg.Wait()
	return nil
}

// Execute runs req.Code in lang's kernel, starting the kernel if needed,
// after the executions queued before it. It returns an error only when
// nothing ran: an unknown language, a closed Manager, a kernel that could
// not start, or ctx ending while the call waited for the kernel. A ctx
// that ends during the execution interrupts it, like its timeout.
func (m *Manager) Execute(ctx context.Context, lang string, req wire.ExecuteRequest) (*wire.ExecuteResult, error) {
	s, err := m.take(ctx, lang)
	if err != nil {
		return nil, err
	}
	defer m.wg.Done()
	held := true
	defer func() {
		if held {
			s.release()
		}
	}()
	p, restarted, err := m.ensure(ctx, s)
	if err != nil {
		return nil, err
	}

	m.mu.Lock()
	s.state = StateBusy
	env := m.pendingEnvLocked(p)
	m.mu.Unlock()

	res, fate := m.run(ctx, p, req, env)

	m.mu.Lock()
	closed := m.closed
	if restarted {
		res.Restarted = true
		s.lost = false
	}
	if fate == fateOK && s.proc == p {
		s.state = StateReady
	}
	m.mu.Unlock()
	if fate != fateOK {
		held = false
		m.lose(s, p, fate)
	}
	if closed {
		return nil, ErrClosed
	}
	return res, nil
}

// pendingEnvLocked returns the SetEnv overlay when p has not applied its
// latest generation, which the next execution on p carries; nil otherwise.
func (m *Manager) pendingEnvLocked(p *process) map[string]string {
	if p.envGen == m.envGen {
		return nil
	}
	p.envGen = m.envGen
	return maps.Clone(m.env)
}

// lose records that s's kernel p ended in a call (f is not fateOK) and
// restarts it in the background; the caller holds s.sem and hands it over.
func (m *Manager) lose(s *slot, p *process, f fate) {
	m.mu.Lock()
	switch f {
	case fateDied:
		m.diedLocked(s, p)
	case fateKilled:
		if s.proc == p {
			s.proc = nil
			s.state = StateDead
		}
	}
	m.mu.Unlock()
	m.log.Warn("kernel lost", "lang", s.lang, "pid", p.pid, "reason", p.exitReason(), "killed", f == fateKilled)
	m.restartAsync(s)
}

// fate is what became of the kernel in an execution.
type fate int

const (
	fateOK     fate = iota // it is still running
	fateDied               // it ended by itself, or broke the protocol
	fateKilled             // it ignored an interrupt and was killed
)

// run executes one request on p.
func (m *Manager) run(ctx context.Context, p *process, req wire.ExecuteRequest, env map[string]string) (*wire.ExecuteResult, fate) {
	return execute(ctx, p, req, env, &m.opts, m.log)
}

// execute runs one request on p, a kernel of the agent's or a leased one;
// opts has its defaults set.
func execute(ctx context.Context, p *process, req wire.ExecuteRequest, env map[string]string, opts *Options, log *slog.Logger) (*wire.ExecuteResult, fate) {
	timeout := opts.DefaultTimeout
	if req.TimeoutMs > 0 {
		timeout = time.Duration(req.TimeoutMs) * time.Millisecond
	}
	limit := opts.MaxOutputBytes
	if req.MaxOutputBytes > 0 {
		limit = min(req.MaxOutputBytes, maxOutputBytes)
	}
	id := newID()
	p.stdout.arm(int(limit))
	p.stderr.arm(int(limit))

	t0 := time.Now()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	done := ctx.Done()
	var (
		msg         *response
		interrupted bool   // we sent SIGINT
		cause       string // why
		grace       <-chan time.Time
	)
	interrupt := func(why string) {
		interrupted, cause = true, why
		done = nil
		if err := p.interrupt(); err != nil {
			log.Warn("kernel interrupt failed", "lang", p.lang, "pid", p.pid, "error", err)
		}
		t := time.NewTimer(opts.InterruptGrace)
		grace = t.C
	}
	sendErr := p.send(request{Type: "execute", ID: id, Code: req.Code, Limit: limit, Env: env}, t0.Add(timeout))
wait:
	for sendErr == nil {
		select {
		case msg = <-p.msgs:
			if msg != nil && msg.Type == "result" && msg.ID != id {
				// The answer to an execution whose caller left while it
				// ran: a lease's holder that went away (lease.go).
				msg = nil
				continue
			}
			break wait
		case <-p.exited:
			break wait
		case <-deadline.C:
			interrupt(fmt.Sprintf("execution exceeded its timeout of %s", timeout))
		case <-done:
			interrupt(fmt.Sprintf("execution cancelled (%v)", context.Cause(ctx)))
		case <-grace:
			p.expected.Store(true)
			p.kill()
			res := newResult(t0, p.stdout.take(), p.stderr.take())
			res.Status = wire.StatusTimedOut
			res.Restarted = true
			res.Error = &wire.ExecError{
				Name:  ErrorNameTimeout,
				Value: fmt.Sprintf("%s; the kernel did not stop within %s of the interrupt and was restarted: its state is lost", cause, opts.InterruptGrace),
			}
			return res, fateKilled
		}
	}
	if msg == nil || msg.Type != "result" || msg.ID != id {
		// The kernel died, or broke the protocol: finish it off.
		reason := ""
		if msg != nil {
			reason = fmt.Sprintf("%v: %s %q in answer to execute", errProtocol, msg.Type, msg.ID)
		} else if sendErr != nil {
			reason = fmt.Sprintf("send: %v", sendErr)
		}
		p.kill()
		if reason == "" {
			reason = p.exitReason()
		}
		res := newResult(t0, p.stdout.take(), p.stderr.take())
		res.Status = wire.StatusFailed
		if interrupted {
			res.Status = wire.StatusTimedOut
		}
		res.Error = &wire.ExecError{
			Name:  ErrorNameKernelDied,
			Value: fmt.Sprintf("the %s kernel exited (%s): its state is lost", p.lang, reason),
		}
		return res, fateDied
	}

	res := newResult(t0, p.stdout.drain(), p.stderr.drain())
	if v := msg.Value; v != nil {
		res.Result = &wire.Value{Repr: v.Repr, Type: v.Type}
		if v.JSON != nil && json.Valid([]byte(*v.JSON)) {
			res.Result.JSON = json.RawMessage(*v.JSON)
		}
	}
	for _, img := range msg.Images {
		res.Images = append(res.Images, wire.Image{Format: "png", Data: img})
	}
	switch {
	case interrupted:
		res.Status = wire.StatusTimedOut
		res.Error = &wire.ExecError{Name: ErrorNameTimeout, Value: cause + " and was interrupted"}
		if msg.Error != nil {
			res.Error.Traceback = msg.Error.Traceback
		}
	case msg.Error != nil:
		res.Status = wire.StatusFailed
		res.Error = msg.Error
	}
	return res, fateOK
}

// newResult starts a result with the execution's output and duration.
func newResult(t0 time.Time, stdout, stderr output) *wire.ExecuteResult {
	return &wire.ExecuteResult{
		Status:          wire.StatusSucceeded,
		Stdout:          string(stdout.data),
		Stderr:          string(stderr.data),
		StdoutTruncated: stdout.truncated,
		StderrTruncated: stderr.truncated,
		DurationMs:      time.Since(t0).Milliseconds(),
	}
}

func newID() string {
	return fmt.Sprintf("%016x", rand.Uint64())
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
