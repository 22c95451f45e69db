package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidepool-dev/tidepool/internal/agent/wire"
)

// Kernels runs code in the sandbox's persistent interpreters. The agent
// routes POST /kernels/{lang}/execute to it and reports Status in
// /health; kernel.Manager implements it.
type Kernels interface {
	// Execute runs req in the kernel for lang (wire.LangPython,
	// wire.LangNode). A timeout is a result (wire.StatusTimedOut), not an
	// error; an error means the kernel could not run the code at all.
	Execute(ctx context.Context, lang string, req wire.ExecuteRequest) (*wire.ExecuteResult, error)
	// Status maps each language to its kernel's state, for /health.
	Status() map[string]string
	// SetEnv adds env, the variables from /init, to the kernels'
	// environment. The agent does not modify env afterwards.
	SetEnv(env map[string]string)
}

// Defaults of Config.
const (
	DefaultExecTimeout    = 60 * time.Second
	DefaultMaxExecTimeout = 10 * time.Minute
	DefaultOutputCap      = 1 << 20
	DefaultMaxOutputCap   = 16 << 20
	DefaultOutputGrace    = 200 * time.Millisecond
	DefaultStopGrace      = 5 * time.Second
	// maxJSONBody bounds the JSON bodies of /init, /exec and kernel
	// executes (stdin and code travel in them).
	maxJSONBody = 32 << 20
)

// Config configures a Server. Each field's zero value is documented.
type Config struct {
	// FilesRoot is the directory the /files routes are confined to,
	// created if missing. Default wire.DefaultRoot (/mnt/data).
	FilesRoot string
	// Workdir is the default working directory of /exec, created when a
	// command needs it and it is missing. Default FilesRoot.
	Workdir string
	// ExecTimeout is the deadline of an /exec that asks for none; default
	// 60 s. MaxExecTimeout bounds what a request may ask for; default
	// 10 min.
	ExecTimeout, MaxExecTimeout time.Duration
	// OutputCap is how much of stdout and of stderr, each, an /exec keeps
	// when the request does not say; default 1 MiB. MaxOutputCap bounds
	// what a request may ask for; default 16 MiB.
	OutputCap, MaxOutputCap int64
	// OutputGrace is how long the output pipes of a command are still read
	// after it exits, for background processes that inherited them;
	// default 200 ms. After it the pipes are closed; those processes keep
	// running.
	OutputGrace time.Duration
	// MaxUploadBytes caps the body of PUT /files/content (413 above it);
	// 0 means no cap.
	MaxUploadBytes int64
	// TargetPort is the port on 127.0.0.1 that /proxy forwards to and
	// that /health reports on; 0 means none (/proxy answers 501).
	TargetPort int
	// Container is the custom container's command; the agent starts it as
	// its child and reports its exit in /health. Empty means none.
	Container []string
	// ContainerEnv (KEY=VALUE) is added to the agent's environment for
	// the container's process.
	ContainerEnv []string
	// ContainerDir is the container's working directory; default the
	// agent's own.
	ContainerDir string
	// StopGrace is how long children get between SIGTERM and SIGKILL when
	// the agent stops; default 5 s.
	StopGrace time.Duration
	// Kernels runs code for /kernels/{lang}/execute; nil means the route
	// answers 501.
	Kernels Kernels
	// Logger receives the agent's logs; nil discards them.
	Logger *slog.Logger
	// Build is the binary's version, reported in /health.
	Build string
}

// Server is the agent: the HTTP API a sandbox offers the tidepool server.
// Create it with New and serve it with Run.
type Server struct {
	cfg     Config
	log     *slog.Logger
	files   *fileRoot
	shell   string   // bash, or sh where bash is absent
	baseEnv []string // the agent's environment, for every child
	procs   procTable
	proxy   *httputil.ReverseProxy // nil without a target port
	handler http.Handler
	running atomic.Bool

	// initMu serializes /init, so that Kernels.SetEnv sees bindings in the
	// order they were recorded.
	initMu sync.Mutex

	// mu guards the fields that follow.
	mu            sync.Mutex
	identifier    string
	initEnv       map[string]string // env, secrets and identity from /init
	containerExit *wire.ExitStatus
	portReady     bool
	identity      *identityEndpoint // started by the first PUT /identity
}

// New checks cfg, fills in its defaults and opens the file root (creating
// it if missing). It starts nothing: Run does.
func New(cfg Config) (*Server, error) {
	if cfg.FilesRoot == "" {
		cfg.FilesRoot = wire.DefaultRoot
	}
	if cfg.Workdir == "" {
		cfg.Workdir = cfg.FilesRoot
	}
	if cfg.ExecTimeout <= 0 {
		cfg.ExecTimeout = DefaultExecTimeout
	}
	if cfg.MaxExecTimeout <= 0 {
		cfg.MaxExecTimeout = DefaultMaxExecTimeout
	}
	if cfg.OutputCap <= 0 {
		cfg.OutputCap = DefaultOutputCap
	}
	if cfg.MaxOutputCap <= 0 {
		cfg.MaxOutputCap = DefaultMaxOutputCap
	}
	if cfg.OutputGrace <= 0 {
		cfg.OutputGrace = DefaultOutputGrace
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = DefaultStopGrace
	}
	switch {
	case cfg.ExecTimeout > cfg.MaxExecTimeout:
		return nil, fmt.Errorf("exec timeout %v exceeds the maximum %v", cfg.ExecTimeout, cfg.MaxExecTimeout)
	case cfg.OutputCap > cfg.MaxOutputCap:
		return nil, fmt.Errorf("output cap %d exceeds the maximum %d", cfg.OutputCap, cfg.MaxOutputCap)
	case cfg.TargetPort < 0 || cfg.TargetPort > 65535:
		return nil, fmt.Errorf("target port %d out of range", cfg.TargetPort)
	case cfg.MaxUploadBytes < 0:
		return nil, fmt.Errorf("negative upload cap %d", cfg.MaxUploadBytes)
	}
	for _, kv := range cfg.ContainerEnv {
		if k, _, ok := strings.Cut(kv, "="); !ok || !validEnvKey(k) {
			return nil, fmt.Errorf("container env %q: want KEY=VALUE", kv)
		}
	}
	var err error
	if cfg.Workdir, err = filepath.Abs(cfg.Workdir); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.files, err = openFileRoot(cfg.FilesRoot); err != nil {
		return nil, err
	}
	s.baseEnv = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, ChildEnv+"=")
	})
	if !slices.ContainsFunc(s.baseEnv, func(kv string) bool { return strings.HasPrefix(kv, "PATH=") }) {
		s.baseEnv = append(s.baseEnv, "PATH="+defaultPath)
	}
	s.shell = "/bin/sh"
	for _, sh := range []string{"bash", "sh"} {
		if p, err := lookPath(sh, s.baseEnv, "/"); err == nil {
			s.shell = p
			break
		}
	}
	if cfg.TargetPort != 0 {
		s.proxy = s.newProxy()
	}
	s.handler = s.routes()
	return s, nil
}

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Listen listens on the unix socket at path, creating its directory and
// replacing a stale socket left by an earlier agent. The socket is mode
// 0666: access to it is governed by the directory it lives in.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("listen on %s: exists and is not a socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o666); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// Run starts the custom container (if any), serves the API on ln and
// blocks until ctx is done. Then it stops: new commands are refused, every
// child process group gets SIGTERM, and SIGKILL after StopGrace; open
// requests are drained. Run closes ln (removing the socket) and the file
// root, and returns nil after a clean stop. It may be called once.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	if !s.running.CompareAndSwap(false, true) {
		ln.Close()
		return errors.New("agent: Run called twice")
	}
	defer s.files.root.Close()
	bg, stopBg := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopBg()

	if len(s.cfg.Container) > 0 {
		s.startContainer(&wg)
	}
	if s.cfg.TargetPort != 0 {
		wg.Go(func() { s.pollTarget(bg) })
	}
	hs := &http.Server{
		Handler: s.handler,
		// No ReadTimeout or WriteTimeout: uploads, downloads and commands
		// may run for minutes; each command has its own deadline.
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	go primeCodecs()
	sl := s.splitListener(bg, ln)
	serveErr := make(chan error, 1)
	go func() { serveErr <- hs.Serve(sl) }()
	s.log.Info("agent serving", "socket", ln.Addr().String(), "version", wire.Version,
		"files_root", s.cfg.FilesRoot, "target_port", s.cfg.TargetPort)

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("serve: %w", err)
	}
	s.log.Info("agent stopping")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.cfg.StopGrace+2*time.Second)
	defer cancel()
	shutDone := make(chan error, 1)
	go func() { shutDone <- hs.Shutdown(shutdownCtx) }()
	s.closeIdentityEndpoint(shutdownCtx)
	s.procs.terminate(s.cfg.StopGrace)
	if serr := <-shutDone; serr != nil {
		hs.Close()
	}
	sl.closeFramed()
	return err
}

// ServeHTTP serves the agent API; Run is the usual way in.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /health", s.handle(s.handleHealth))
	mux.Handle("POST /init", s.handle(s.handleInit))
	mux.Handle("PUT /identity", s.handle(s.handleIdentity))
	mux.Handle("POST /exec", s.handle(s.handleExec))
	mux.Handle("POST /kernels/{lang}/execute", s.handle(s.handleKernelExecute))
	mux.Handle("GET /files", s.handle(s.handleList))
	mux.Handle("DELETE /files", s.handle(s.handleDelete))
	mux.Handle("GET /files/stat", s.handle(s.handleStat))
	mux.Handle("GET /files/content", s.handle(s.handleRead))
	mux.Handle("PUT /files/content", s.handle(s.handleWrite))
	mux.Handle("POST /files/mkdir", s.handle(s.handleMkdir))
	proxy := s.handle(s.handleProxy)
	return s.recoverer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// /proxy goes around the mux, which would clean (and redirect)
		// paths that belong to the target.
		if p := r.URL.Path; p == "/proxy" || strings.HasPrefix(p, "/proxy/") {
			proxy.ServeHTTP(w, r)
			return
		}
		h, pattern := mux.Handler(r)
		if pattern == "" {
			// The mux's own 404, 405 or redirect: keep its status and
			// headers, answer in the API's error shape.
			rec := &headerRecorder{header: http.Header{}}
			h.ServeHTTP(rec, r)
			maps.Copy(w.Header(), rec.header)
			w.Header().Del("Content-Type")
			switch rec.status {
			case http.StatusNotFound:
				s.writeError(w, r, errorf(http.StatusNotFound, wire.CodeNotFound, "no route for %s %s", r.Method, r.URL.Path))
			case http.StatusMethodNotAllowed:
				s.writeError(w, r, errorf(http.StatusMethodNotAllowed, wire.CodeMethodNotAllowed, "method %s not allowed on %s", r.Method, r.URL.Path))
			default:
				w.WriteHeader(rec.status)
			}
			return
		}
		mux.ServeHTTP(w, r)
	}))
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, s.health())
	return nil
}

func (s *Server) health() *wire.Health {
	h := &wire.Health{Version: wire.Version, Build: s.cfg.Build, Ready: true}
	s.mu.Lock()
	h.Identifier = s.identifier
	if s.cfg.TargetPort != 0 {
		ready := s.portReady
		h.TargetPortReady = &ready
	}
	if s.containerExit != nil {
		ce := *s.containerExit
		h.ContainerExit = &ce
	}
	s.mu.Unlock()
	if len(s.cfg.Container) > 0 {
		h.Ready = h.ContainerExit == nil && (h.TargetPortReady == nil || *h.TargetPortReady)
	}
	if s.cfg.Kernels != nil {
		h.Kernels = s.cfg.Kernels.Status()
	}
	return h
}

func (s *Server) handleInit(w http.ResponseWriter, r *http.Request) error {
	var req wire.InitRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.Identifier == "" {
		return errorf(http.StatusBadRequest, wire.CodeInvalidRequest, "identifier is required")
	}
	env := make(map[string]string, len(req.Env)+len(req.Secrets)+2)
	for _, m := range []map[string]string{req.Env, req.Secrets} {
		for k, v := range m {
			if !validEnvKey(k) {
				return errorf(http.StatusBadRequest, wire.CodeInvalidRequest, "invalid environment variable name %q", k)
			}
			if strings.IndexByte(v, 0) >= 0 {
				return errorf(http.StatusBadRequest, wire.CodeInvalidRequest, "environment variable %s contains a NUL byte", k)
			}
			env[k] = v
		}
	}
	if req.IdentityEndpoint != "" {
		env["IDENTITY_ENDPOINT"] = req.IdentityEndpoint
	}
	if req.IdentityHeader != "" {
		env["IDENTITY_HEADER"] = req.IdentityHeader
	}

	s.initMu.Lock()
	defer s.initMu.Unlock()
	s.mu.Lock()
	if s.identifier != "" && s.identifier != req.Identifier {
		s.mu.Unlock()
		return errorf(http.StatusConflict, wire.CodeIdentifierBound, "the sandbox is bound to another identifier")
	}
	s.identifier = req.Identifier
	s.initEnv = env
	s.mu.Unlock()
	if s.cfg.Kernels != nil {
		s.cfg.Kernels.SetEnv(maps.Clone(env))
	}
	s.log.InfoContext(r.Context(), "bound", "identifier_hash", hashIdentifier(req.Identifier), "env", len(req.Env), "secrets", len(req.Secrets))
	writeJSON(w, http.StatusOK, s.health())
	return nil
}

func (s *Server) handleKernelExecute(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Kernels == nil {
		return errorf(http.StatusNotImplemented, wire.CodeNotImplemented, "this sandbox runs no kernels")
	}
	lang := r.PathValue("lang")
	if lang != wire.LangPython && lang != wire.LangNode {
		return errorf(http.StatusNotFound, wire.CodeUnknownLanguage, "no kernel for language %q", lang)
	}
	var req wire.ExecuteRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.TimeoutMs < 0 || req.MaxOutputBytes < 0 {
		return errorf(http.StatusBadRequest, wire.CodeInvalidRequest, "timeoutMs and maxOutputBytes must not be negative")
	}
	res, err := s.cfg.Kernels.Execute(r.Context(), lang, req)
	if err != nil {
		if r.Context().Err() != nil {
			return nil // the caller is gone
		}
		return &apiError{status: http.StatusServiceUnavailable, code: wire.CodeKernelUnavailable,
			msg: fmt.Sprintf("%s kernel: %v", lang, err), err: err}
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// environ is the environment of a child: the agent's, then /init's, then
// extra. Later entries win (os/exec keeps the last of duplicate keys).
func (s *Server) environ(extra map[string]string) []string {
	s.mu.Lock()
	initEnv := s.initEnv
	s.mu.Unlock()
	env := slices.Clip(s.baseEnv)
	for _, m := range []map[string]string{initEnv, extra} {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			env = append(env, k+"="+m[k])
		}
	}
	return env
}

func validEnvKey(k string) bool {
	return k != "" && !strings.ContainsAny(k, "=\x00")
}

// hashIdentifier is how logs name a session: identifiers are chosen by
// callers and may carry user data.
func hashIdentifier(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:6])
}

// lookPath finds file as a shell would, using the PATH in env; a name with
// a slash is taken relative to dir.
func lookPath(file string, env []string, dir string) (string, error) {
	if strings.Contains(file, "/") {
		if !filepath.IsAbs(file) {
			file = filepath.Join(dir, file)
		}
		return file, nil
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			d = "."
		}
		if !filepath.IsAbs(d) {
			d = filepath.Join(dir, d)
		}
		p := filepath.Join(d, file)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// ChildEnv is the environment variable that marks the agent server
// RunInit starts. The server should unset it once it has checked
// IsInitChild; the environment New gives commands never has it.
const ChildEnv = "TIDEPOOL_AGENT_CHILD"

// IsInitChild reports whether this process is the agent server started by
// RunInit (and so should serve rather than run as init).
func IsInitChild() bool { return os.Getenv(ChildEnv) == "1" }

// primeCodecs has encoding/json build its codecs for the wire types of the
// hot calls while the agent waits for its kernel to start: otherwise a
// session's first /init and first execution pay for that reflection.
func primeCodecs() {
	for _, v := range []any{&wire.InitRequest{}, &wire.Health{}, &wire.ExecuteRequest{}, &wire.ExecuteResult{},
		&wire.ExecRequest{}, &wire.ExecResult{}, &wire.IdentityRequest{}, &wire.ErrorResponse{}} {
		b, err := json.Marshal(v)
		if err == nil {
			err = json.Unmarshal(b, v)
		}
		_ = err // zero values of wire types always round-trip
	}
}
