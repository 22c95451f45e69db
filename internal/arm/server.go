package arm

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tidepool-dev/tidepool/internal/auth"
	"github.com/tidepool-dev/tidepool/internal/model"
	"github.com/tidepool-dev/tidepool/internal/store"
)

// Authenticator verifies a request's bearer token for one of the audiences.
// A failure is an *auth.Error.
type Authenticator interface {
	Authenticate(r *http.Request, audiences ...string) (*auth.Claims, error)
}

// Reconciler takes stored resources to a terminal provisioning state and
// completes their operations. Enqueue must not block.
type Reconciler interface {
	Enqueue(id string)
}

// Config configures a Server. Store, Auth, Authorizer and Reconciler are
// required.
type Config struct {
	Store      store.Store
	Auth       Authenticator
	Authorizer Authorizer
	Reconciler Reconciler
	// PublicURL is the base of every absolute URL the API returns
	// (Azure-AsyncOperation, Location, nextLink, poolManagementEndpoint),
	// without a trailing slash.
	PublicURL string
	// TenantID is the tenant of system-assigned identities.
	TenantID string
	// PageSize caps list pages; 0 means 1000.
	PageSize int
	// AllowHyphenatedPoolNames applies the CLI's pool name rule (hyphens,
	// at most 32 characters) instead of the API's.
	AllowHyphenatedPoolNames bool
	// OperationWait is how long a poll of an operation in progress waits
	// for it to finish before answering; 0 means 250ms, negative none.
	OperationWait time.Duration
	// MaxBodyBytes caps request bodies; 0 means 4 MiB.
	MaxBodyBytes int64
	// Logger receives request errors; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Server is the management API handler.
type Server struct {
	st        store.Store
	auth      Authenticator
	authz     Authorizer
	rec       Reconciler
	publicURL string
	tenantID  string
	pageSize  int
	hyphens   bool
	maxBody   int64
	opWait    time.Duration
	log       *slog.Logger
	now       func() time.Time
	deploys   deployRunner // template deployments in progress (deployments.go)
}

// New returns a Server for cfg.
func New(cfg Config) *Server {
	s := &Server{
		st:        cfg.Store,
		auth:      cfg.Auth,
		authz:     cfg.Authorizer,
		rec:       cfg.Reconciler,
		publicURL: strings.TrimSuffix(cfg.PublicURL, "/"),
		tenantID:  cfg.TenantID,
		pageSize:  cfg.PageSize,
		hyphens:   cfg.AllowHyphenatedPoolNames,
		maxBody:   cfg.MaxBodyBytes,
		opWait:    cfg.OperationWait,
		log:       cfg.Logger,
		now:       cfg.Now,
	}
	if s.pageSize <= 0 {
		s.pageSize = 1000
	}
	if s.maxBody <= 0 {
		s.maxBody = 4 << 20
	}
	switch {
	case s.opWait == 0:
		s.opWait = 250 * time.Millisecond
	case s.opWait < 0:
		s.opWait = 0
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

type ctxKey int

const claimsKey ctxKey = iota

// claimsFrom returns the authenticated caller of a request.
func claimsFrom(ctx context.Context) *auth.Claims {
	c, _ := ctx.Value(claimsKey).(*auth.Claims)
	return c
}

// ServeHTTP sets ARM's response headers, authenticates the caller for the
// management audience, and routes the request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	SetRequestHeaders(w, r)
	claims, err := s.auth.Authenticate(r, auth.AudienceManagement)
	if err != nil {
		s.writeError(w, r, AuthError(err))
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), claimsKey, claims))
	if err := s.route(w, r); err != nil {
		s.writeError(w, r, err)
	}
}

// SetRequestHeaders sets the headers ARM puts on every response:
// x-ms-request-id (new, unless an outer handler has set it already: the
// server's logs name requests by it), x-ms-correlation-request-id (echoed
// or new) and, when the caller asks with x-ms-return-client-request-id,
// x-ms-client-request-id.
func SetRequestHeaders(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if h.Get("X-Ms-Request-Id") == "" {
		h.Set("X-Ms-Request-Id", rand.Text())
	}
	corr := r.Header.Get("X-Ms-Correlation-Request-Id")
	if corr == "" || len(corr) > 128 {
		corr = uuid.NewString()
	}
	h.Set("X-Ms-Correlation-Request-Id", corr)
	if cid := r.Header.Get("X-Ms-Client-Request-Id"); cid != "" && len(cid) <= 128 && strings.EqualFold(r.Header.Get("X-Ms-Return-Client-Request-Id"), "true") {
		h.Set("X-Ms-Client-Request-Id", cid)
	}
}

// AuthError turns an authentication failure into ARM's 401.
func AuthError(err error) *Error {
	ae, ok := err.(*auth.Error)
	if !ok {
		return &Error{Status: http.StatusUnauthorized, Code: "AuthenticationFailed", Message: "Authentication failed.", Err: err}
	}
	return &Error{
		Status:  http.StatusUnauthorized,
		Code:    ae.Code,
		Message: ae.Message,
		Header:  http.Header{"Www-Authenticate": {ae.WWWAuthenticate()}},
		Err:     ae.Err,
	}
}

// apiVersion checks the api-version query parameter: required, and either one
// of versions or, when versions is nil, any well-formed version.
func apiVersion(r *http.Request, versions []model.APIVersion) (string, error) {
	v := r.URL.Query().Get("api-version")
	if v == "" {
		return "", badRequest("MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.")
	}
	if versions == nil {
		if !model.WellFormedAPIVersion(v) {
			return "", badRequest("InvalidApiVersionParameter", "The api-version '%s' is invalid. The api-version must be of the form YYYY-MM-DD with an optional suffix such as -preview.", clip(v))
		}
		return v, nil
	}
	for _, sv := range versions {
		if strings.EqualFold(string(sv), v) {
			return string(sv), nil
		}
	}
	list := make([]string, len(versions))
	for i, sv := range versions {
		list[i] = string(sv)
	}
	return "", badRequest("InvalidApiVersionParameter", "The api-version '%s' is invalid. The supported versions are '%s'.", clip(v), strings.Join(list, ","))
}

// clip bounds user input echoed in messages.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
