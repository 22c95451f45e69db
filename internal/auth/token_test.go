package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tidepool-dev/tidepool/internal/store"
)

// principals is a PrincipalLookup over a map keyed by client id.
type principals map[string]*store.Principal

func (m principals) GetPrincipalByClientID(_ context.Context, clientID string) (*store.Principal, error) {
	if p, ok := m[clientID]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("principal %s: %w", clientID, store.ErrNotFound)
}

// federatedBy names, for tests, the one principal that may act as the
// managed identities of a principals map.
const federatedBy = "operator-object-id"

func (m principals) Federate(_ context.Context, subject *Claims, p *store.Principal) error {
	if p.Kind != "ManagedIdentity" || subject.ObjectID != federatedBy {
		return errors.New("not federated")
	}
	return nil
}

type failingLookup struct{}

func (failingLookup) GetPrincipalByClientID(context.Context, string) (*store.Principal, error) {
	return nil, errors.New("database is locked")
}

func (failingLookup) Federate(context.Context, *Claims, *store.Principal) error {
	return errors.New("database is locked")
}

// newTestServer serves the issuer's endpoints on the paths Entra uses.
func newTestServer(t *testing.T, i *Issuer, lookup PrincipalLookup) *httptest.Server {
	mux := http.NewServeMux()
	mux.Handle("/{tenantId}/oauth2/v2.0/token", i.TokenHandler(lookup))
	mux.Handle("/.well-known/jwks.json", i.JWKSHandler())
	mux.Handle("/{tenantId}/discovery/v2.0/keys", i.JWKSHandler())
	mux.Handle("/{tenantId}/v2.0/.well-known/openid-configuration", i.OpenIDConfigHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestTokenHandler(t *testing.T) {
	const secret = "good-secret"
	good := &store.Principal{ObjectID: "oid-good", ClientID: "client-good", Secrets: []store.Secret{
		{ID: "1", Hash: HashSecret("expired-secret"), Expires: testStart.Add(-time.Minute)},
		{ID: "2", Hash: HashSecret(secret)},
	}}
	expired := &store.Principal{ObjectID: "oid-expired", ClientID: "client-expired", Secrets: []store.Secret{
		{ID: "1", Hash: HashSecret(secret), Expires: testStart},
	}}
	i, _ := newTestIssuer(t, nil)
	srv := newTestServer(t, i, principals{good.ClientID: good, expired.ClientID: expired})
	failing := newTestServer(t, i, failingLookup{})
	tokenPath := "/" + testTenant + "/oauth2/v2.0/token"

	form := func(kv ...string) url.Values {
		v := url.Values{"grant_type": {"client_credentials"}, "client_id": {good.ClientID}, "client_secret": {secret}}
		for n := 0; n < len(kv); n += 2 {
			if kv[n+1] == "" {
				v.Del(kv[n])
			} else {
				v.Set(kv[n], kv[n+1])
			}
		}
		if !v.Has("scope") && !v.Has("resource") {
			v.Set("scope", "https://dynamicsessions.io/.default")
		}
		return v
	}
	tests := []struct {
		name       string
		server     *httptest.Server // srv if nil
		method     string           // POST if empty
		path       string           // tokenPath if empty
		body       string
		basic      []string // user, password
		wantStatus int
		wantError  string // OAuth2 error code, or "" for success
		wantAADSTS int
		wantAud    string
	}{
		{name: "management scope", body: form("scope", "https://management.azure.com/.default").Encode(), wantStatus: 200, wantAud: AudienceManagement},
		{name: "management scope, double slash", body: form("scope", "https://management.azure.com//.default").Encode(), wantStatus: 200, wantAud: AudienceManagement},
		{name: "management core scope", body: form("scope", "https://management.core.windows.net//.default").Encode(), wantStatus: 200, wantAud: AudienceManagement},
		{name: "data plane scope", body: form("scope", "https://dynamicsessions.io/.default").Encode(), wantStatus: 200, wantAud: AudienceDataPlane},
		{name: "data plane scope, double slash", body: form("scope", "https://dynamicsessions.io//.default").Encode(), wantStatus: 200, wantAud: AudienceDataPlane},
		{name: "legacy data plane scope", body: form("scope", "https://acasessions.io/.default").Encode(), wantStatus: 200, wantAud: AudienceDataPlaneLegacy},
		{name: "v1 resource", body: form("resource", "https://management.core.windows.net/").Encode(), wantStatus: 200, wantAud: AudienceManagement},
		{name: "tenant case", path: "/" + strings.ToUpper(testTenant) + "/oauth2/v2.0/token", body: form().Encode(), wantStatus: 200, wantAud: AudienceDataPlane},
		{name: "basic auth", body: form("client_id", "", "client_secret", "").Encode(), basic: []string{good.ClientID, secret}, wantStatus: 200, wantAud: AudienceDataPlane},
		{name: "basic auth and matching client_id", body: form("client_secret", "").Encode(), basic: []string{good.ClientID, secret}, wantStatus: 200, wantAud: AudienceDataPlane},
		{name: "basic auth and body secret", body: form().Encode(), basic: []string{good.ClientID, secret}, wantStatus: 400, wantError: "invalid_request", wantAADSTS: 9002313},
		{name: "wrong secret", body: form("client_secret", "nope").Encode(), wantStatus: 401, wantError: "invalid_client", wantAADSTS: 7000215},
		{name: "wrong secret, basic", body: form("client_id", "", "client_secret", "").Encode(), basic: []string{good.ClientID, "nope"}, wantStatus: 401, wantError: "invalid_client", wantAADSTS: 7000215},
		{name: "expired secret", body: form("client_id", expired.ClientID).Encode(), wantStatus: 401, wantError: "invalid_client", wantAADSTS: 7000222},
		{name: "rotated-out secret", body: form("client_secret", "expired-secret").Encode(), wantStatus: 401, wantError: "invalid_client", wantAADSTS: 7000222},
		{name: "unknown client", body: form("client_id", "nobody").Encode(), wantStatus: 401, wantError: "invalid_client", wantAADSTS: 700016},
		{name: "no secret", body: form("client_secret", "").Encode(), wantStatus: 401, wantError: "invalid_client", wantAADSTS: 7000218},
		{name: "no client id", body: form("client_id", "").Encode(), wantStatus: 400, wantError: "invalid_request", wantAADSTS: 900144},
		{name: "no grant type", body: form("grant_type", "").Encode(), wantStatus: 400, wantError: "invalid_request", wantAADSTS: 900144},
		{name: "authorization code grant", body: form("grant_type", "authorization_code").Encode(), wantStatus: 400, wantError: "unsupported_grant_type", wantAADSTS: 70003},
		{name: "password grant without a user", body: form("grant_type", "password").Encode(), wantStatus: 400, wantError: "invalid_request", wantAADSTS: 900144},
		{name: "password grant for an application", body: form("grant_type", "password", "username", good.ClientID, "password", secret).Encode(), wantStatus: 400, wantError: "invalid_grant", wantAADSTS: 50126},
		{name: "scope without .default", body: form("scope", "https://dynamicsessions.io").Encode(), wantStatus: 400, wantError: "invalid_scope", wantAADSTS: 70011},
		{name: "OpenID scopes ignored", body: form("scope", "https://dynamicsessions.io/.default openid offline_access profile").Encode(), wantStatus: 200, wantAud: AudienceDataPlane},
		{name: "only OpenID scopes", body: form("scope", "openid profile").Encode(), wantStatus: 400, wantError: "invalid_scope", wantAADSTS: 70011},
		{name: "two scopes", body: form("scope", "https://dynamicsessions.io/.default https://management.azure.com/.default").Encode(), wantStatus: 400, wantError: "invalid_scope", wantAADSTS: 70011},
		{name: "unknown resource", body: form("scope", "https://vault.azure.net/.default").Encode(), wantStatus: 400, wantError: "invalid_scope", wantAADSTS: 70011},
		{name: "unknown v1 resource", body: form("resource", "https://vault.azure.net").Encode(), wantStatus: 400, wantError: "invalid_scope", wantAADSTS: 70011},
		{name: "wrong tenant", path: "/common/oauth2/v2.0/token", body: form().Encode(), wantStatus: 400, wantError: "invalid_request", wantAADSTS: 90002},
		{name: "GET", method: "GET", wantStatus: 405, wantError: "invalid_request", wantAADSTS: 900561},
		{name: "body too large", body: form("pad", strings.Repeat("x", maxTokenRequest)).Encode(), wantStatus: 400, wantError: "invalid_request", wantAADSTS: 9002313},
		{name: "store failure", server: failing, body: form().Encode(), wantStatus: 503, wantError: "temporarily_unavailable", wantAADSTS: 90033},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, method, path := tt.server, tt.method, tt.path
			if s == nil {
				s = srv
			}
			if method == "" {
				method = "POST"
			}
			if path == "" {
				path = tokenPath
			}
			req, err := http.NewRequest(method, s.URL+path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.basic != nil {
				req.SetBasicAuth(url.QueryEscape(tt.basic[0]), url.QueryEscape(tt.basic[1]))
			}
			resp, err := s.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("%s %s: status %d, want %d; body %s", method, path, resp.StatusCode, tt.wantStatus, body)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", cc)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q", ct)
			}
			if tt.wantError == "" {
				checkTokenResponse(t, i, body, tt.wantAud)
			} else {
				checkOAuthError(t, body, tt.wantError, tt.wantAADSTS)
			}
		})
	}
}

func checkTokenResponse(t *testing.T, i *Issuer, body []byte, wantAud string) {
	t.Helper()
	var got struct {
		TokenType    string `json:"token_type"`
		ExpiresIn    int    `json:"expires_in"`
		ExtExpiresIn int    `json:"ext_expires_in"`
		AccessToken  string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	if got.TokenType != "Bearer" || got.ExpiresIn != 3599 || got.ExtExpiresIn != 3599 {
		t.Errorf("response = %s", body)
	}
	claims, err := i.Verify(got.AccessToken, wantAud)
	if err != nil {
		t.Fatalf("Verify(access_token, %q): %v", wantAud, err)
	}
	if claims.Audience != wantAud || claims.ObjectID != "oid-good" || claims.AppID != "client-good" {
		t.Errorf("claims = %+v", claims)
	}
}

func checkOAuthError(t *testing.T, body []byte, wantError string, wantAADSTS int) {
	t.Helper()
	var got struct {
		Error         string `json:"error"`
		Description   string `json:"error_description"`
		Codes         []int  `json:"error_codes"`
		Timestamp     string `json:"timestamp"`
		TraceID       string `json:"trace_id"`
		CorrelationID string `json:"correlation_id"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	prefix := fmt.Sprintf("AADSTS%d: ", wantAADSTS)
	if got.Error != wantError || len(got.Codes) != 1 || got.Codes[0] != wantAADSTS || !strings.HasPrefix(got.Description, prefix) {
		t.Errorf("error = %s, want %s with %s", body, wantError, prefix)
	}
	if got.Timestamp != "2025-03-01 12:00:00Z" || len(got.TraceID) != 36 || len(got.CorrelationID) != 36 {
		t.Errorf("timestamp or ids in %s", body)
	}
	if !strings.HasSuffix(got.Description, "Timestamp: "+got.Timestamp) || !strings.Contains(got.Description, "Trace ID: "+got.TraceID) {
		t.Errorf("description %q lacks the trace id and timestamp", got.Description)
	}
}
