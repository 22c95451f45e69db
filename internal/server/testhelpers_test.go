package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidepool-dev/tidepool/internal/sandbox/sandboxtest"
	"github.com/tidepool-dev/tidepool/internal/server"
)

// selfSignedCert writes a self-signed ECDSA certificate for 127.0.0.1 and
// its key to dir and returns the file names and a client that trusts it.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string, client *http.Client) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 16,
		ForceAttemptHTTP2:   true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return certFile, keyFile, &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// exchange is one request and the answer's status, headers and body.
type exchange struct {
	Method, Path string
	Status       int
	Header       http.Header
	Body         []byte
}

// recorder is an http.RoundTripper that records every exchange.
type recorder struct {
	rt http.RoundTripper
	mu sync.Mutex
	ex []exchange
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	r.mu.Lock()
	r.ex = append(r.ex, exchange{Method: req.Method, Path: req.URL.Path, Status: resp.StatusCode, Header: resp.Header.Clone(), Body: body})
	r.mu.Unlock()
	return resp, nil
}

// containing returns the exchanges whose response body contains s.
func (r *recorder) containing(s string) []exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []exchange
	for _, e := range r.ex {
		if bytes.Contains(e.Body, []byte(s)) {
			out = append(out, e)
		}
	}
	return out
}

// find returns the exchanges with the method whose path ends with suffix.
func (r *recorder) find(method, suffix string) []exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []exchange
	for _, e := range r.ex {
		if e.Method == method && strings.HasSuffix(e.Path, suffix) {
			out = append(out, e)
		}
	}
	return out
}

// logBuffer collects a server's logs; the test prints them if it fails.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startServer runs an in-process server for cfg on 127.0.0.1 and stops it
// when the test ends.
func startServer(t *testing.T, cfg server.Config) server.Info {
	t.Helper()
	logs := &logBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, ln)
	if err != nil {
		cancel()
		ln.Close()
		t.Fatalf("server.New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("Run did not return within 20s of cancel")
		}
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return srv.Info()
}

func readCredentials(t *testing.T, dataDir string) server.Credentials {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dataDir, server.CredentialsFile))
	if err != nil {
		t.Fatal(err)
	}
	var c server.Credentials
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatalf("%s: %v", server.CredentialsFile, err)
	}
	if c.TenantID == "" || c.SubscriptionID == "" || c.ClientID == "" || c.ClientSecret == "" || c.Endpoint == "" {
		t.Fatalf("%s is incomplete: %+v", server.CredentialsFile, c)
	}
	return c
}

// response is an HTTP answer read whole.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r *response) String() string {
	return fmt.Sprintf("HTTP %d: %s", r.Status, bytes.TrimSpace(r.Body))
}

// do sends a request with an optional bearer token and a JSON (any value)
// or form (url.Values) body.
func do(ctx context.Context, c *http.Client, method, u, token string, body any) (*response, error) {
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case url.Values:
		rd, ctype = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	case string:
		rd, ctype = strings.NewReader(b), "application/json"
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd, ctype = bytes.NewReader(data), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: data}, nil
}

// mustDo is do that fails the test on a transport error or an unexpected status.
func mustDo(t *testing.T, c *http.Client, method, u, token string, body any, want ...int) *response {
	t.Helper()
	r, err := do(t.Context(), c, method, u, token, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	for _, w := range want {
		if r.Status == w {
			return r
		}
	}
	t.Fatalf("%s %s: %s, want status %v", method, u, r, want)
	return nil
}

// managementToken gets a token for the management audience with the
// client-credentials grant, as a plain HTTP client would.
func managementToken(ctx context.Context, c *http.Client, creds server.Credentials) (string, error) {
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {creds.ClientID},
		"client_secret": {creds.ClientSecret},
		"scope":         {"https://management.azure.com/.default"},
	}
	r, err := do(ctx, c, http.MethodPost, creds.Endpoint+"/"+creds.TenantID+"/oauth2/v2.0/token", "", form)
	if err != nil {
		return "", err
	}
	if r.Status != http.StatusOK {
		return "", fmt.Errorf("token endpoint: %s", r)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if err := json.Unmarshal(r.Body, &tok); err != nil || tok.AccessToken == "" || !strings.EqualFold(tok.TokenType, "Bearer") {
		return "", fmt.Errorf("token endpoint: unexpected answer %s (%v)", r, err)
	}
	return tok.AccessToken, nil
}

// provisioningState reads properties.provisioningState from a resource body.
func provisioningState(body []byte) string {
	var v struct {
		Properties struct {
			ProvisioningState string `json:"provisioningState"`
		} `json:"properties"`
	}
	json.Unmarshal(body, &v)
	return v.Properties.ProvisioningState
}

// startProcessServer starts a server whose sandboxes are processes
// (sandboxtest.ProcessRuntime: real agents, no isolation) and returns its
// data dir and info. It skips in -short mode: it builds the binary.
func startProcessServer(t *testing.T) (string, server.Info) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the tidepool binary")
	}
	root, err := os.MkdirTemp("", "tpps") // short: unix socket paths
	if err != nil {
		t.Fatal(err)
	}
	rt := sandboxtest.NewProcessRuntime(agentBinary(t), root)
	t.Cleanup(func() {
		if err := rt.Close(); err != nil {
			t.Errorf("destroy leftover sandboxes: %v", err)
		}
		os.RemoveAll(root)
	})
	dir := t.TempDir()
	return dir, startServer(t, server.Config{DataDir: dir, Runtime: rt})
}
