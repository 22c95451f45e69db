package server

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func newTestServer(t *testing.T, dir string) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s, err := New(context.Background(), Config{DataDir: dir}, ln)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func readCredentials(t *testing.T, path string) Credentials {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c Credentials
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// tokenStatus asks the server's token endpoint for a management token.
func tokenStatus(t *testing.T, s *Server, c Credentials) int {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {c.ClientID}, "client_secret": {c.ClientSecret}, "scope": {"https://management.azure.com/.default"}}
	req := httptest.NewRequest(http.MethodPost, "/"+c.TenantID+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec.Code
}

func TestBootstrapIsStableAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	s1 := newTestServer(t, dir)
	info1 := s1.Info()
	c1 := readCredentials(t, info1.CredentialsPath)
	st, err := os.Stat(info1.CredentialsPath)
	if err != nil {
		t.Fatal(err)
	}
	if mode := st.Mode().Perm(); mode != 0o600 {
		t.Errorf("credentials file mode = %o, want 600", mode)
	}
	if c1.TenantID == "" || c1.SubscriptionID == "" || c1.ClientID == "" || c1.ClientSecret == "" || c1.Endpoint != info1.Endpoint {
		t.Errorf("credentials = %+v, want every field set and endpoint %s", c1, info1.Endpoint)
	}
	if code := tokenStatus(t, s1, c1); code != http.StatusOK {
		t.Errorf("token with bootstrap credentials: status %d, want 200", code)
	}
	s1.Close()

	s2 := newTestServer(t, dir)
	defer s2.Close()
	c2 := readCredentials(t, filepath.Join(dir, CredentialsFile))
	if c2.TenantID != c1.TenantID || c2.SubscriptionID != c1.SubscriptionID || c2.ClientID != c1.ClientID || c2.ClientSecret != c1.ClientSecret {
		t.Errorf("after restart credentials = %+v, want the same as %+v (endpoint aside)", c2, c1)
	}
	if code := tokenStatus(t, s2, c2); code != http.StatusOK {
		t.Errorf("token after restart: status %d, want 200", code)
	}
}

func TestLostCredentialsAreReissued(t *testing.T) {
	dir := t.TempDir()
	s1 := newTestServer(t, dir)
	c1 := readCredentials(t, s1.Info().CredentialsPath)
	s1.Close()
	if err := os.Remove(filepath.Join(dir, CredentialsFile)); err != nil {
		t.Fatal(err)
	}

	s2 := newTestServer(t, dir)
	defer s2.Close()
	c2 := readCredentials(t, s2.Info().CredentialsPath)
	if c2.ClientID != c1.ClientID || c2.TenantID != c1.TenantID {
		t.Errorf("reissued credentials changed identity: %+v, was %+v", c2, c1)
	}
	if c2.ClientSecret == c1.ClientSecret {
		t.Error("reissued credentials kept the lost secret")
	}
	if code := tokenStatus(t, s2, c1); code != http.StatusUnauthorized {
		t.Errorf("token with the lost secret: status %d, want 401", code)
	}
	if code := tokenStatus(t, s2, c2); code != http.StatusOK {
		t.Errorf("token with the new secret: status %d, want 200", code)
	}
}

func TestHealthAndUnknownRoutes(t *testing.T) {
	s := newTestServer(t, t.TempDir())
	defer s.Close()
	for _, tt := range []struct {
		path string
		want int
	}{
		{"/healthz", http.StatusOK},
		{"/readyz", http.StatusOK},
		{"/.well-known/jwks.json", http.StatusOK},
		{"/" + s.Info().TenantID + "/v2.0/.well-known/openid-configuration", http.StatusOK},
		{"/nothing/here", http.StatusNotFound},
		{"/subscriptions/" + s.Info().SubscriptionID, http.StatusUnauthorized},
		{"/subscriptions/s/resourceGroups/rg/sessionPools/p/code/execute", http.StatusUnauthorized},
	} {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
		if rec.Code != tt.want {
			t.Errorf("GET %s: status %d, want %d (body %s)", tt.path, rec.Code, tt.want, rec.Body)
		}
		if tt.want >= 400 && !strings.Contains(rec.Body.String(), `"error":{"code":`) {
			t.Errorf("GET %s: body %s, want an ARM error", tt.path, rec.Body)
		}
	}
}
