package dataplane

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/tidepool-dev/tidepool/internal/arm"
	"github.com/tidepool-dev/tidepool/internal/auth"
	"github.com/tidepool-dev/tidepool/internal/model"
	"github.com/tidepool-dev/tidepool/internal/pool"
)

// Sessions maps identifiers to live sessions; the pool controller
// implements it. Errors are (or wrap) the pool.Err* sentinels when they are
// one of those cases.
type Sessions interface {
	// Acquire returns the session bound to identifier, binding a new one
	// (from the warm set, or started cold) when there is none, and counts
	// the request as activity.
	Acquire(ctx context.Context, poolID, identifier string) (*pool.Session, error)
	// Lookup returns the live session bound to identifier, or
	// pool.ErrSessionNotFound; it never creates one.
	Lookup(ctx context.Context, poolID, identifier string) (*pool.Session, error)
	// Sessions lists the pool's live sessions.
	Sessions(ctx context.Context, poolID string) ([]pool.Session, error)
	// Stop ends the session bound to identifier (pool.ErrSessionNotFound
	// when there is none).
	Stop(ctx context.Context, poolID, identifier string) error
}

// Pools reads session pools. GetPool returns pool.ErrPoolNotFound when
// there is no pool with that id. StorePools adapts a store.Store.
type Pools interface {
	GetPool(ctx context.Context, poolID string) (*model.SessionPool, error)
}

// Authenticator verifies a request's bearer token for one of the
// audiences; *auth.Issuer implements it. A failure is an *auth.Error.
type Authenticator interface {
	Authenticate(r *http.Request, audiences ...string) (*auth.Claims, error)
}

// Actions that Config.Authorize is asked about, in the form of Azure's
// data actions.
const (
	// ActionExecute covers everything that uses a session: executions,
	// files, session reads and deletes, proxied requests.
	ActionExecute = "Microsoft.App/sessionPools/interpreters/execute/action"
	// ActionReadSessions covers pool-wide reads: listSessions, metadata,
	// .management/listSessions, .management/getSession.
	ActionReadSessions = "Microsoft.App/sessionPools/sessions/read"
	// ActionStopSession covers DELETE session and .management/stopSession.
	ActionStopSession = "Microsoft.App/sessionPools/sessions/delete"
)

// Defaults and bounds of Config.
const (
	DefaultMaxExecutionTimeout = 220 * time.Second
	DefaultMaxShellTimeout     = 600 * time.Second
	DefaultMaxUploadBytes      = 128 << 20
	// listPageSize is the page of listSessions and
	// .management/listSessions (Azure documents 300).
	listPageSize = 300
	// maxJSONBody caps execution request bodies.
	maxJSONBody = 16 << 20
)

// Config configures a Handler. Sessions, Pools and Auth are required.
type Config struct {
	Sessions Sessions
	Pools    Pools
	Auth     Authenticator
	// Audiences are the token audiences accepted; nil means the data
	// plane's two names and the management audience (the seed tutorial
	// sends a plain "az account get-access-token" token).
	Audiences []string
	// Authorize decides whether the caller may do action on the pool; nil
	// allows everything. It is the one authorization check of the data
	// plane. An error it returns is sent as is when it is an *arm.Error,
	// as a 403 AuthorizationFailed otherwise.
	Authorize func(r *http.Request, claims *auth.Claims, poolID, action string) error
	// PublicURL is the base of absolute URLs in answers (nextLink).
	PublicURL string
	// MaxExecutionTimeout is the default and the bound of a code
	// execution's timeoutInSeconds; 0 means 220 s.
	MaxExecutionTimeout time.Duration
	// MaxShellTimeout bounds a shell execution's timeoutInSeconds (whose
	// default is MaxExecutionTimeout); 0 means 600 s.
	MaxShellTimeout time.Duration
	// MaxUploadBytes bounds one uploaded file; 0 means 128 MiB. Larger
	// uploads get 413.
	MaxUploadBytes int64
	// ExecutionRetention is how long finished execution records stay
	// readable by GET executions/{id}; 0 means 15 minutes.
	ExecutionRetention time.Duration
	// Logger receives request errors; nil discards.
	Logger *slog.Logger
	// Metrics records requests and execution latencies; nil records
	// nothing.
	Metrics *Metrics
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MCPKeys checks the x-ms-apikey header of MCP requests; nil refuses
	// every key (bearer tokens still work).
	MCPKeys MCPKeys
}

// Handler is the data-plane HTTP handler. Mount it at the server's root
// for paths under /subscriptions/{s}/resourceGroups/{rg}/sessionPools/{p}.
// Close stops the asynchronous executions it runs.
type Handler struct {
	sessions  Sessions
	pools     Pools
	auth      Authenticator
	audiences []string
	authorize func(r *http.Request, claims *auth.Claims, poolID, action string) error
	publicURL string
	maxExec   time.Duration
	maxShell  time.Duration
	maxUpload int64
	log       *slog.Logger
	metrics   *Metrics
	now       func() time.Time
	mcpKeys   MCPKeys

	execs *executions

	// ctx is the parent of asynchronous executions; cancel ends them.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a Handler for cfg.
func New(cfg Config) *Handler {
	h := &Handler{
		sessions:  cfg.Sessions,
		pools:     cfg.Pools,
		auth:      cfg.Auth,
		audiences: cfg.Audiences,
		authorize: cfg.Authorize,
		publicURL: strings.TrimSuffix(cfg.PublicURL, "/"),
		maxExec:   cfg.MaxExecutionTimeout,
		maxShell:  cfg.MaxShellTimeout,
		maxUpload: cfg.MaxUploadBytes,
		log:       cfg.Logger,
		metrics:   cfg.Metrics,
		now:       cfg.Now,
		mcpKeys:   cfg.MCPKeys,
	}
	if h.audiences == nil {
		h.audiences = []string{auth.AudienceDataPlane, auth.AudienceDataPlaneLegacy, auth.AudienceManagement}
	}
	if h.maxExec <= 0 {
		h.maxExec = DefaultMaxExecutionTimeout
	}
	if h.maxShell <= 0 {
		h.maxShell = DefaultMaxShellTimeout
	}
	if h.maxShell < h.maxExec {
		h.maxShell = h.maxExec
	}
	if h.maxUpload <= 0 {
		h.maxUpload = DefaultMaxUploadBytes
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	retention := cfg.ExecutionRetention
	if retention <= 0 {
		retention = 15 * time.Minute
	}
	h.execs = newExecutions(retention, h.now)
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h
}

// Close cancels the asynchronous executions in flight and waits for them.
func (h *Handler) Close() error {
	h.cancel()
	h.wg.Wait()
	return nil
}

// request is one data-plane request, parsed.
type request struct {
	r      *http.Request
	claims *auth.Claims
	// base is the escaped base path, /subscriptions/{s}/resourceGroups/{g}/sessionPools/{p}.
	base     string
	sub, rg  string
	poolName string
	poolID   string
	// rest holds the path segments after the base, unescaped; raw the
	// same, escaped; trailing is true when the path ended in "/".
	rest     []string
	raw      []string
	trailing bool
	query    url.Values
	version  string
	pool     *model.SessionPool
}

// ServeHTTP answers a data-plane request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	arm.SetRequestHeaders(w, r)
	var rec *statusRecorder
	if h.metrics != nil {
		rec = &statusRecorder{ResponseWriter: w}
		w = rec
	}
	req, err := h.parse(r)
	if err == nil {
		err = h.serve(w, req)
	}
	if err != nil {
		h.writeError(w, r, err)
	}
	if rec != nil {
		route := "other"
		if req != nil {
			route = routeFamily(req.rest, req.isCustom())
		}
		if rec.status == 0 {
			rec.status = http.StatusOK // nothing written: net/http sends 200
		}
		h.metrics.request(route, rec.status)
	}
}

// parse splits the path and authenticates and authorizes the caller.
func (h *Handler) parse(r *http.Request) (*request, error) {
	escaped := r.URL.EscapedPath()
	var raw []string
	for _, s := range strings.Split(escaped, "/") {
		if s != "" {
			raw = append(raw, s)
		}
	}
	if len(raw) < 6 || !strings.EqualFold(raw[0], "subscriptions") || !strings.EqualFold(raw[2], "resourceGroups") ||
		!strings.EqualFold(raw[4], "sessionPools") {
		return nil, errNotFoundRoute
	}
	segs := make([]string, len(raw))
	for i, s := range raw {
		u, err := url.PathUnescape(s)
		if err != nil {
			return nil, badRequest("InvalidPath", "The request path is not validly escaped.")
		}
		segs[i] = u
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		// Clients join raw values (SK-PY, SK-NET); keep what parses.
		q = lenientQuery(r.URL.RawQuery)
	}
	req := &request{
		r:        r,
		base:     "/" + strings.Join(raw[:6], "/"),
		sub:      segs[1],
		rg:       segs[3],
		poolName: segs[5],
		poolID:   arm.PoolID(segs[1], segs[3], segs[5]),
		rest:     segs[6:],
		raw:      raw[6:],
		trailing: strings.HasSuffix(escaped, "/"),
		query:    q,
		version:  queryGet(q, "api-version"),
	}
	if isMCP(req.rest) {
		return req, nil // API keys or a bearer token: serveMCP authenticates
	}
	claims, err := h.auth.Authenticate(r, h.audiences...)
	if err != nil {
		return nil, arm.AuthError(err)
	}
	req.claims = claims
	return req, nil
}

// lenientQuery parses a query whose values may hold unescaped '%'.
func lenientQuery(raw string) url.Values {
	q := url.Values{}
	for _, kv := range strings.Split(raw, "&") {
		k, v, _ := strings.Cut(kv, "=")
		if uk, err := url.QueryUnescape(k); err == nil {
			k = uk
		}
		if uv, err := url.QueryUnescape(v); err == nil {
			v = uv
		}
		if k != "" {
			q.Add(k, v)
		}
	}
	return q
}

// queryGet reads a query parameter, its name case-insensitively.
func queryGet(q url.Values, name string) string {
	if v, ok := q[name]; ok && len(v) > 0 {
		return v[0]
	}
	for k, v := range q {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// check runs THE authorization check, then loads the pool.
func (h *Handler) check(req *request, action string) error {
	if h.authorize != nil {
		if err := h.authorize(req.r, req.claims, req.poolID, action); err != nil {
			var ae *arm.Error
			if errors.As(err, &ae) {
				return ae
			}
			return &arm.Error{Status: http.StatusForbidden, Code: "AuthorizationFailed",
				Message: fmt.Sprintf("The client '%s' does not have authorization to perform action '%s' over scope '%s'.",
					req.claims.ObjectID, action, req.poolID), Err: err}
		}
	}
	p, err := h.pools.GetPool(req.r.Context(), req.poolID)
	if err != nil {
		return err
	}
	if p.Properties == nil {
		p.Properties = &model.PoolProperties{}
	}
	req.pool = p
	return nil
}

func (req *request) containerType() string {
	if req.pool == nil || req.pool.Properties == nil {
		return ""
	}
	return req.pool.Properties.ContainerType
}

func (req *request) isCustom() bool {
	return strings.EqualFold(req.containerType(), model.ContainerTypeCustomContainer)
}

// family is the wire family the request's api-version implies on paths v1
// and v2 share.
type family int

const (
	familyV1 family = iota
	familyV2
)

// versionFamily: no api-version, 2024-02-02-preview and
// 2024-08-02-preview (and anything dated before 2024-10-02) are v1;
// everything else is v2.
func versionFamily(v string) family {
	v = strings.ToLower(strings.TrimSpace(v))
	if v == "" || len(v) < 10 {
		return familyV1
	}
	if v[:10] < "2024-10-02" {
		return familyV1
	}
	return familyV2
}

// hashIdentifier is how an identifier appears in logs.
func hashIdentifier(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:6])
}

// maxIdentifierLen is the longest identifier accepted (the spec's maxLength).
const maxIdentifierLen = 256

// validateIdentifier applies the lenient rule: 1 to 256 characters, no
// control characters. The documented rules (4–128 characters from a
// fixed set) are a subset.
func validateIdentifier(id string) error {
	if id == "" {
		return badRequest("MissingSessionIdentifier",
			"The 'identifier' query parameter is required: it names the session (for example a UUID).")
	}
	if n := len([]rune(id)); n > maxIdentifierLen {
		return badRequest("InvalidLengthOfSessionIdentifier",
			"The session identifier is %d characters long; it must be 1 to %d characters.", n, maxIdentifierLen)
	}
	for _, c := range id {
		if c < 0x20 || c == 0x7f || c == '\uFFFD' {
			return badRequest("InvalidSessionIdentifier",
				"The session identifier contains a control or invalid character; use letters, digits and punctuation such as - _ | & ^ %% $ # ( ) { } [ ] ; < >.")
		}
	}
	return nil
}

// identifier returns the request's validated identifier.
func (req *request) identifier() (string, error) {
	id := queryGet(req.query, "identifier")
	if err := validateIdentifier(id); err != nil {
		return "", err
	}
	return id, nil
}

// acquire gets (or creates) the session of the request's identifier.
func (h *Handler) acquire(req *request) (*pool.Session, error) {
	id, err := req.identifier()
	if err != nil {
		return nil, err
	}
	return h.acquireID(req, id)
}

func (h *Handler) acquireID(req *request, id string) (*pool.Session, error) {
	s, err := h.sessions.Acquire(req.r.Context(), req.poolID, id)
	if err != nil {
		return nil, fmt.Errorf("acquire session %s: %w", hashIdentifier(id), err)
	}
	return s, nil
}

// serve routes a parsed request.
func (h *Handler) serve(w http.ResponseWriter, req *request) error {
	rest := req.rest
	m := req.r.Method
	n := len(rest)
	seg := func(i int) string {
		if i < n {
			return strings.ToLower(rest[i])
		}
		return ""
	}
	// .management/* is tidepool's on every pool type.
	if n == 2 && seg(0) == ".management" {
		switch seg(1) {
		case "getsession":
			return h.authorized(req, ActionReadSessions, func() error { return h.mgmtGetSession(w, req) }, m, "POST", "GET")
		case "listsessions":
			return h.authorized(req, ActionReadSessions, func() error { return h.mgmtListSessions(w, req) }, m, "POST", "GET")
		case "stopsession":
			return h.authorized(req, ActionStopSession, func() error { return h.mgmtStopSession(w, req) }, m, "POST", "DELETE")
		}
	}
	if isMCP(rest) {
		return h.serveMCP(w, req)
	}
	if err := h.check(req, actionFor(rest, m)); err != nil {
		return err
	}
	if req.isCustom() {
		return h.proxy(w, req)
	}
	switch {
	case n == 2 && seg(0) == "python" && seg(1) == "execute",
		n == 2 && seg(0) == "code" && seg(1) == "execute":
		return allow(m, "POST", func() error { return h.execute(w, req, wireV1) })
	case n == 1 && seg(0) == "execute":
		return allow(m, "POST", func() error { return h.execute(w, req, wireFlat) })
	case n == 1 && seg(0) == "executions":
		return allow(m, "POST", func() error { return h.execute(w, req, wireV2) })
	case n == 2 && (seg(0) == "executions" || seg(0) == "execute"):
		return allow(m, "GET", func() error { return h.getExecution(w, req, rest[1], seg(0) == "execute") })
	case n == 2 && seg(0) == "python" && seg(1) == "uploadfile",
		n == 2 && seg(0) == "files" && seg(1) == "upload":
		return allow(m, "POST", func() error { return h.upload(w, req, familyV1) })
	case n == 1 && seg(0) == "files:uploadfile":
		return allow(m, "POST", func() error { return h.upload(w, req, familyV2) })
	case n == 1 && seg(0) == "files":
		switch m {
		case http.MethodPost, http.MethodPut:
			return h.upload(w, req, versionFamily(req.version))
		case http.MethodGet, http.MethodHead:
			return h.listFiles(w, req)
		}
		return methodNotAllowed(m, "GET", "POST")
	case n >= 3 && seg(0) == "files" && seg(1) == "content":
		return allow(m, "GET", func() error { return h.download(w, req, strings.Join(rest[2:], "/")) })
	case n >= 3 && seg(0) == "files" && seg(n-1) == "content":
		return allow(m, "GET", func() error { return h.download(w, req, strings.Join(rest[1:n-1], "/")) })
	case n >= 2 && seg(0) == "files" && strings.HasSuffix(seg(n-1), ":downloadfile"):
		name := strings.Join(rest[1:], "/")
		return allow(m, "POST", func() error { return h.downloadBase64(w, req, name[:len(name)-len(":downloadFile")]) })
	case n >= 2 && seg(0) == "files":
		name := strings.Join(rest[1:], "/")
		switch m {
		case http.MethodGet, http.MethodHead:
			return h.fileMetadata(w, req, name)
		case http.MethodDelete:
			return h.deleteFile(w, req, name)
		}
		return methodNotAllowed(m, "GET", "DELETE")
	case n == 1 && seg(0) == "session":
		switch m {
		case http.MethodGet:
			return h.getSession(w, req)
		case http.MethodDelete:
			return h.deleteSession(w, req)
		}
		return methodNotAllowed(m, "GET", "DELETE")
	case n == 1 && seg(0) == "listsessions":
		return allow(m, "GET", func() error { return h.listSessions(w, req) })
	case n == 1 && seg(0) == "metadata":
		return allow(m, "GET", func() error { return h.metadata(w, req) })
	}
	return errNotFoundRoute
}

// actionFor is the authorization action of a non-.management path.
func actionFor(rest []string, method string) string {
	if len(rest) == 1 {
		switch strings.ToLower(rest[0]) {
		case "listsessions", "metadata":
			return ActionReadSessions
		case "session":
			if method == http.MethodDelete {
				return ActionStopSession
			}
		}
	}
	return ActionExecute
}

// authorized checks the method, authorization and pool, then runs fn.
func (h *Handler) authorized(req *request, action string, fn func() error, m string, methods ...string) error {
	return allow(m, methods[0], func() error {
		if err := h.check(req, action); err != nil {
			return err
		}
		return fn()
	}, methods[1:]...)
}

// allow runs fn when m is one of the methods (HEAD counts as GET).
func allow(m, method string, fn func() error, more ...string) error {
	for _, want := range append([]string{method}, more...) {
		if m == want || (m == http.MethodHead && want == http.MethodGet) {
			return fn()
		}
	}
	return methodNotAllowed(m, append([]string{method}, more...)...)
}

func methodNotAllowed(m string, allowed ...string) error {
	return &arm.Error{Status: http.StatusMethodNotAllowed, Code: "MethodNotAllowed",
		Message: fmt.Sprintf("The method '%s' is not allowed on this path; use %s.", m, strings.Join(allowed, " or ")),
		Header:  http.Header{"Allow": {strings.Join(allowed, ", ")}}}
}

var errNotFoundRoute = &arm.Error{Status: http.StatusNotFound, Code: "NotFound",
	Message: "No data-plane route matches this path. See docs/dataplane.md for the routes of a session pool endpoint."}

func badRequest(code, format string, args ...any) *arm.Error {
	return &arm.Error{Status: http.StatusBadRequest, Code: code, Message: fmt.Sprintf(format, args...)}
}

// writeError maps err to the data plane's answer: sentinel errors of the
// pool controller, agent errors and *arm.Error; anything else is a 500
// whose cause is logged, not sent.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := h.asError(err)
	if e.Status >= 500 {
		h.log.ErrorContext(r.Context(), "data-plane request failed", "method", r.Method, "code", e.Code, "err", err)
	} else if e.Err != nil || e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden {
		h.log.DebugContext(r.Context(), "data-plane request refused", "status", e.Status, "code", e.Code, "err", err)
	}
	arm.WriteError(w, e)
}

func (h *Handler) asError(err error) *arm.Error {
	var ae *arm.Error
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, pool.ErrPoolFull):
		return &arm.Error{Status: http.StatusNotFound, Code: "SessionPoolFull",
			Message: "The session pool has reached its maxConcurrentSessions: no more sessions can be allocated. " +
				"Reuse an existing identifier, stop a session (POST .management/stopSession or DELETE session) or raise scaleConfiguration.maxConcurrentSessions.",
			Err: err}
	case errors.Is(err, pool.ErrPoolNotFound):
		return &arm.Error{Status: http.StatusNotFound, Code: "SessionPoolNotFound",
			Message: "The session pool was not found.", Err: err}
	case errors.Is(err, pool.ErrPoolNotReady):
		return &arm.Error{Status: http.StatusConflict, Code: "SessionPoolNotReady",
			Message: "The session pool is not ready: it failed to provision or is being deleted. See the pool's provisioningState.", Err: err}
	case errors.Is(err, pool.ErrSessionNotFound):
		return &arm.Error{Status: http.StatusNotFound, Code: "SessionNotFound",
			Message: "No live session has this identifier.", Err: err}
	case errors.Is(err, context.Canceled):
		return &arm.Error{Status: 499, Code: "ClientClosedRequest", Message: "The request was canceled.", Err: err}
	}
	if ae := agentError(err); ae != nil {
		return ae
	}
	return &arm.Error{Status: http.StatusInternalServerError, Code: "InternalServerError",
		Message: "The server encountered an internal error. Please retry the request.", Err: err}
}

// writeJSON sends v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		arm.WriteError(w, &arm.Error{Status: http.StatusInternalServerError, Code: "InternalServerError", Message: "response encoding failed"})
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(data)
}

// armTime renders t as the data plane does: UTC, RFC 3339 with fraction.
func armTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}
