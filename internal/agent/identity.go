package agent

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"maps"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tidepool-dev/tidepool/internal/agent/wire"
)

// The identity endpoint serves code in the sandbox the tokens of the pool's
// managed identities, in the App Service managed-identity protocol the
// Azure SDKs speak when IDENTITY_ENDPOINT and IDENTITY_HEADER are set:
//
//	GET $IDENTITY_ENDPOINT?resource=<uri>&api-version=2019-08-01[&client_id=|principal_id=|mi_res_id=]
//	X-IDENTITY-HEADER: $IDENTITY_HEADER
//
// The tokens are minted by the tidepool server and pushed at claim (PUT
// /identity); the agent holds no key and mints nothing. The endpoint
// listens on the sandbox's loopback only, and exists only in sandboxes
// whose pool gives its sessions an identity.
type identityEndpoint struct {
	header string
	url    string
	srv    *http.Server

	mu         sync.Mutex
	identities []wire.Identity
}

// handleIdentity serves PUT /identity.
func (s *Server) handleIdentity(w http.ResponseWriter, r *http.Request) error {
	var req wire.IdentityRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	s.mu.Lock()
	bound := s.identifier != ""
	s.mu.Unlock()
	if !bound {
		return errorf(http.StatusConflict, wire.CodeInvalidRequest, "the sandbox is not bound to a session: call /init first")
	}
	ep, err := s.startIdentityEndpoint()
	if err != nil {
		return errorf(http.StatusInternalServerError, wire.CodeInternal, "identity endpoint: %v", err)
	}
	ep.mu.Lock()
	ep.identities = req.Identities
	ep.mu.Unlock()

	// The kernels and commands see the endpoint from now on.
	s.initMu.Lock()
	s.mu.Lock()
	if s.initEnv == nil {
		s.initEnv = map[string]string{}
	}
	s.initEnv["IDENTITY_ENDPOINT"] = ep.url
	s.initEnv["IDENTITY_HEADER"] = ep.header
	env := maps.Clone(s.initEnv)
	s.mu.Unlock()
	if s.cfg.Kernels != nil {
		s.cfg.Kernels.SetEnv(env)
	}
	s.initMu.Unlock()
	s.log.InfoContext(r.Context(), "identities set", "count", len(req.Identities))
	writeJSON(w, http.StatusOK, wire.IdentityResponse{Endpoint: ep.url, Header: ep.header})
	return nil
}

// startIdentityEndpoint starts the endpoint on first use.
func (s *Server) startIdentityEndpoint() (*identityEndpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.identity != nil {
		return s.identity, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	secret := make([]byte, 16)
	rand.Read(secret)
	ep := &identityEndpoint{
		header: hex.EncodeToString(secret),
		url:    "http://" + ln.Addr().String() + "/msi/token",
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/msi/token", ep.serveToken)
	ep.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go ep.srv.Serve(ln)
	s.identity = ep
	return ep, nil
}

func (s *Server) closeIdentityEndpoint(ctx context.Context) {
	s.mu.Lock()
	ep := s.identity
	s.mu.Unlock()
	if ep != nil {
		ep.srv.Shutdown(ctx)
	}
}

// msiError is the App Service protocol's error body.
func msiError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, map[string]any{"statusCode": status, "message": fmt.Sprintf(format, args...)})
}

func (ep *identityEndpoint) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		msiError(w, http.StatusMethodNotAllowed, "Use GET.")
		return
	}
	h := r.Header.Get("X-IDENTITY-HEADER")
	if subtle.ConstantTimeCompare([]byte(h), []byte(ep.header)) != 1 {
		msiError(w, http.StatusUnauthorized, "The X-IDENTITY-HEADER header is missing or wrong: send the value of IDENTITY_HEADER.")
		return
	}
	q := r.URL.Query()
	resource := q.Get("resource")
	if resource == "" {
		msiError(w, http.StatusBadRequest, "The resource query parameter is required.")
		return
	}
	ep.mu.Lock()
	ids := ep.identities
	ep.mu.Unlock()
	id, err := pickIdentity(ids, q)
	if err != nil {
		msiError(w, http.StatusBadRequest, "%v", err)
		return
	}
	want := canonicalResource(resource)
	for _, t := range id.Tokens {
		if canonicalResource(t.Resource) != want {
			continue
		}
		if time.Now().Unix() >= t.ExpiresOn {
			msiError(w, http.StatusServiceUnavailable, "The token for '%s' has expired and no fresh one has arrived from the server yet; retry.", resource)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{
			"access_token": t.AccessToken,
			"expires_on":   strconv.FormatInt(t.ExpiresOn, 10),
			"resource":     resource,
			"token_type":   "Bearer",
			"client_id":    id.ClientID,
		})
		return
	}
	msiError(w, http.StatusBadRequest, "No token for the resource '%s': the server issues tokens for the management API and the session data plane only.", resource)
}

// pickIdentity chooses the identity a token request names by client_id,
// principal_id (object_id) or mi_res_id, or the default one.
func pickIdentity(ids []wire.Identity, q map[string][]string) (*wire.Identity, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	for _, k := range []string{"client_id", "principal_id", "object_id", "mi_res_id"} {
		v := get(k)
		if v == "" {
			continue
		}
		for i := range ids {
			id := &ids[i]
			if (k == "client_id" && strings.EqualFold(id.ClientID, v)) ||
				((k == "principal_id" || k == "object_id") && strings.EqualFold(id.PrincipalID, v)) ||
				(k == "mi_res_id" && id.ResourceID != "" && strings.EqualFold(id.ResourceID, v)) {
				return id, nil
			}
		}
		return nil, fmt.Errorf("no managed identity of this session matches %s '%s'", k, v)
	}
	for i := range ids {
		if ids[i].Default {
			return &ids[i], nil
		}
	}
	if len(ids) == 1 {
		return &ids[0], nil
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("this session has no managed identity")
	}
	return nil, fmt.Errorf("this session has several managed identities: name one with client_id, principal_id or mi_res_id")
}

// canonicalResource compares resources as the token endpoint does: no
// "/.default" scope suffix, no trailing slash, no case.
func canonicalResource(r string) string {
	r = strings.TrimSuffix(r, "/.default")
	return strings.ToLower(strings.TrimSuffix(r, "/"))
}
