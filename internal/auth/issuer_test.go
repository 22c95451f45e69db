package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tidepool-dev/tidepool/internal/store"
)

const (
	testTenant    = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	testPublicURL = "http://127.0.0.1:7380"
)

var testStart = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable time source for Config.Now.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

var testKey = func() *ecdsa.PrivateKey {
	k, err := GenerateKey()
	if err != nil {
		panic(err)
	}
	return k
}()

var testPrincipal = &store.Principal{
	ObjectID: "9f3b8c52-0d7e-4c53-9a43-3a4a0c1f0b11",
	ClientID: "0e8b5a6c-2f0d-4f4c-8e1e-7d9c2f6a1b22",
	Kind:     "ServicePrincipal",
}

// newTestIssuer returns an issuer with the test key and a clock at
// testStart; modify adjusts the config first.
func newTestIssuer(t testing.TB, modify func(*Config)) (*Issuer, *clock) {
	t.Helper()
	c := &clock{testStart}
	cfg := Config{TenantID: testTenant, PublicURL: testPublicURL, Key: testKey, Now: c.now}
	if modify != nil {
		modify(&cfg)
	}
	i, err := NewIssuer(cfg)
	if err != nil {
		t.Fatalf("NewIssuer: %v", err)
	}
	return i, c
}

func issue(t testing.TB, i *Issuer, aud string) string {
	t.Helper()
	tok, _, err := i.Issue(testPrincipal, aud)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return tok
}

// forge signs the claims of a genuine token for aud with method and key,
// under the issuer's kid.
func forge(t *testing.T, i *Issuer, aud string, method jwt.SigningMethod, key any) string {
	t.Helper()
	now := jwt.NewNumericDate(testStart)
	tok := jwt.NewWithClaims(method, &tokenClaims{
		Audience: aud, Issuer: i.issuer, IssuedAt: now, NotBefore: now,
		ExpiresAt: jwt.NewNumericDate(testStart.Add(time.Hour)),
		ObjectID:  testPrincipal.ObjectID, Subject: testPrincipal.ObjectID, TenantID: testTenant,
	})
	tok.Header["kid"] = i.keyID
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", method.Alg(), err)
	}
	return s
}

func TestNewIssuer(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		modify func(*Config)
		ok     bool
	}{
		{"defaults", func(*Config) {}, true},
		{"trailing slash", func(c *Config) { c.PublicURL += "/" }, true},
		{"no tenant", func(c *Config) { c.TenantID = "" }, false},
		{"tenant with slash", func(c *Config) { c.TenantID = "a/b" }, false},
		{"relative URL", func(c *Config) { c.PublicURL = "127.0.0.1:7380" }, false},
		{"no key", func(c *Config) { c.Key = nil }, false},
		{"P-384 key", func(c *Config) { c.Key = p384 }, false},
		{"short TTL", func(c *Config) { c.TokenTTL = time.Second }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{TenantID: testTenant, PublicURL: testPublicURL, Key: testKey}
			tt.modify(&cfg)
			i, err := NewIssuer(cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("NewIssuer: err = %v, want ok = %v", err, tt.ok)
			}
			if err == nil && i.issuer != testPublicURL+"/"+testTenant+"/v2.0" {
				t.Errorf("issuer = %q", i.issuer)
			}
		})
	}
}

// TestIssueShape checks the header and claims against an Entra v2 app token.
func TestIssueShape(t *testing.T) {
	i, _ := newTestIssuer(t, nil)
	tok, expires, err := i.Issue(testPrincipal, AudienceDataPlane)
	if err != nil {
		t.Fatal(err)
	}
	if want := testStart.Add(time.Hour); !expires.Equal(want) {
		t.Errorf("expires = %v, want %v", expires, want)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	decode := func(s string) map[string]any {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]any{}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	header, claims := decode(parts[0]), decode(parts[1])
	wantHeader := map[string]any{"alg": "ES256", "typ": "JWT", "kid": i.keyID}
	if fmt.Sprint(header) != fmt.Sprint(wantHeader) {
		t.Errorf("header = %v, want %v", header, wantHeader)
	}
	unix := float64(testStart.Unix())
	wantClaims := map[string]any{
		"aud": AudienceDataPlane, "iss": i.issuer, "iat": unix, "nbf": unix, "exp": unix + 3600,
		"azp": testPrincipal.ClientID, "appid": testPrincipal.ClientID, "idtyp": "app",
		"oid": testPrincipal.ObjectID, "sub": testPrincipal.ObjectID, "tid": testTenant, "ver": "2.0",
	}
	uti, _ := claims["uti"].(string)
	if len(uti) < 16 {
		t.Errorf("uti = %q, want a random id", uti)
	}
	delete(claims, "uti")
	if fmt.Sprint(claims) != fmt.Sprint(wantClaims) {
		t.Errorf("claims = %v\nwant %v", claims, wantClaims)
	}
	// The thumbprint is the default kid.
	k, _ := publicJWK(&testKey.PublicKey)
	if i.keyID != k.thumbprint() {
		t.Errorf("kid = %q, want thumbprint %q", i.keyID, k.thumbprint())
	}
}

func TestVerify(t *testing.T) {
	i, c := newTestIssuer(t, nil)
	otherKey, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&testKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	// Other issuers sharing the clock, to mint tokens that differ in one way.
	sameKid, _ := newTestIssuer(t, func(cfg *Config) { cfg.Key, cfg.KeyID, cfg.Now = otherKey, i.keyID, c.now })
	otherKid, _ := newTestIssuer(t, func(cfg *Config) { cfg.KeyID, cfg.Now = "other", c.now })
	otherURL, _ := newTestIssuer(t, func(cfg *Config) { cfg.PublicURL, cfg.Now = "http://elsewhere:7380", c.now })
	future := &clock{testStart.Add(2 * time.Minute)}
	early, _ := newTestIssuer(t, func(cfg *Config) { cfg.Now = future.now })
	slightlyFuture := &clock{testStart.Add(30 * time.Second)}
	skewed, _ := newTestIssuer(t, func(cfg *Config) { cfg.Now = slightlyFuture.now })

	mgmt := issue(t, i, AudienceManagement)
	tests := []struct {
		name      string
		token     string
		audiences []string
		after     time.Duration // clock advance before Verify
		wantCode  string        // "" for success
		wantMsg   string        // substring of the message
	}{
		{"valid", mgmt, []string{AudienceManagement}, 0, "", ""},
		{"one of several audiences", issue(t, i, AudienceDataPlane), []string{AudienceDataPlaneLegacy, AudienceDataPlane}, 0, "", ""},
		{"ARM alias allowed", mgmt, []string{"https://management.core.windows.net/"}, 0, "", ""},
		{"ARM alias in token", issue(t, i, "https://management.core.windows.net"), []string{AudienceManagement}, 0, "", ""},
		{"just before expiry", mgmt, []string{AudienceManagement}, time.Hour - time.Second, "", ""},
		{"within clock skew", issue(t, skewed, AudienceManagement), []string{AudienceManagement}, 0, "", ""},
		{"empty", "", []string{AudienceManagement}, 0, CodeInvalidToken, "is invalid"},
		{"not a JWT", "hello", []string{AudienceManagement}, 0, CodeInvalidToken, "is invalid"},
		{"bad base64", "a.b.c", []string{AudienceManagement}, 0, CodeInvalidToken, "is invalid"},
		{"four parts", mgmt + ".x", []string{AudienceManagement}, 0, CodeInvalidToken, "is invalid"},
		{"too long", mgmt + strings.Repeat("A", maxTokenLen), []string{AudienceManagement}, 0, CodeInvalidToken, "too long"},
		{"tampered payload", tamper(t, mgmt), []string{AudienceManagement}, 0, CodeInvalidToken, "invalid signature"},
		{"other key, same kid", issue(t, sameKid, AudienceManagement), []string{AudienceManagement}, 0, CodeInvalidToken, "invalid signature"},
		{"unknown kid", issue(t, otherKid, AudienceManagement), []string{AudienceManagement}, 0, CodeInvalidToken, "unknown key"},
		{"alg none", forge(t, i, AudienceManagement, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType), []string{AudienceManagement}, 0, CodeInvalidToken, "invalid signature"},
		{"HS256 keyed with public key", forge(t, i, AudienceManagement, jwt.SigningMethodHS256, pubPEM), []string{AudienceManagement}, 0, CodeInvalidToken, "invalid signature"},
		{"RS256", forge(t, i, AudienceManagement, jwt.SigningMethodRS256, rsaKey), []string{AudienceManagement}, 0, CodeInvalidToken, "invalid signature"},
		{"wrong issuer", issue(t, otherURL, AudienceManagement), []string{AudienceManagement}, 0, CodeInvalidToken, "wrong issuer 'http://elsewhere:7380/"},
		{"not yet valid", issue(t, early, AudienceManagement), []string{AudienceManagement}, 0, CodeInvalidToken, "not valid yet"},
		{"expired at exp", mgmt, []string{AudienceManagement}, time.Hour, CodeExpiredToken,
			"expiry UTC time '3/1/2025 1:00:00 PM' is earlier than current UTC time '3/1/2025 1:00:00 PM'"},
		{"expired", mgmt, []string{AudienceManagement}, 2 * time.Hour, CodeExpiredToken, "earlier than current UTC time"},
		{"wrong audience", mgmt, []string{AudienceDataPlane, AudienceDataPlaneLegacy}, 0, CodeInvalidAudience,
			"wrong audience or resource 'https://management.azure.com/'. It should exactly match with one of the allowed audiences 'https://dynamicsessions.io','https://acasessions.io'."},
		{"no audiences", mgmt, nil, 0, CodeInvalidAudience, "wrong audience"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.t = testStart.Add(tt.after)
			claims, err := i.Verify(tt.token, tt.audiences...)
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if claims.ObjectID != testPrincipal.ObjectID || claims.AppID != testPrincipal.ClientID || claims.TenantID != testTenant {
					t.Errorf("claims = %+v", claims)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Verify: err = %v, want *Error", err)
			}
			if e.Code != tt.wantCode || !strings.Contains(e.Message, tt.wantMsg) {
				t.Errorf("Verify: %s %q, want %s containing %q", e.Code, e.Message, tt.wantCode, tt.wantMsg)
			}
			if len(tt.token) > 20 && strings.Contains(e.Error(), tt.token[len(tt.token)-20:]) {
				t.Errorf("error repeats the token: %v", e)
			}
		})
	}
}

// tamper changes the subject of token without re-signing it.
func tamper(t *testing.T, token string) string {
	parts := strings.Split(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	b = []byte(strings.Replace(string(b), testPrincipal.ObjectID, "00000000-0000-0000-0000-000000000000", -1))
	parts[1] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

// TestVerifyCache shows that a cached token costs no signature work: after
// the first Verify, the issuer's kid changes, which would fail any fresh
// verification, yet the cached token still verifies.
func TestVerifyCache(t *testing.T) {
	i, c := newTestIssuer(t, nil)
	tok := issue(t, i, AudienceManagement)
	if _, err := i.Verify(tok, AudienceManagement); err != nil {
		t.Fatalf("first Verify: %v", err)
	}
	i.keyID = "rotated"
	if _, err := i.Verify(issue(t, i, AudienceManagement)+"x", AudienceManagement); err == nil {
		t.Fatal("Verify of an uncached token succeeded; the test cannot tell cached from fresh")
	}
	claims, err := i.Verify(tok, AudienceManagement)
	if err != nil {
		t.Fatalf("cached Verify: %v", err)
	}
	claims.ObjectID = "changed by caller"

	// The cached claims are the caller's own copy, and the audience and
	// expiry are still checked on every call.
	if claims, err := i.Verify(tok, AudienceManagement); err != nil || claims.ObjectID != testPrincipal.ObjectID {
		t.Errorf("cached Verify = %+v, %v", claims, err)
	}
	if _, err := i.Verify(tok, AudienceDataPlane); !hasCode(err, CodeInvalidAudience) {
		t.Errorf("cached Verify, wrong audience: %v", err)
	}
	c.t = c.t.Add(time.Hour)
	if _, err := i.Verify(tok, AudienceManagement); !hasCode(err, CodeExpiredToken) {
		t.Errorf("cached Verify, expired: %v", err)
	}
}

func hasCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

func TestTokenCacheBound(t *testing.T) {
	c := tokenCache{entries: make(map[string]*cacheEntry)}
	live := &cacheEntry{claims: Claims{Expires: testStart.Add(time.Hour)}}
	dead := &cacheEntry{claims: Claims{Expires: testStart.Add(time.Minute)}}
	for n := range maxCachedTokens {
		e := live
		if n%2 == 0 {
			e = dead
		}
		c.put(fmt.Sprint(n), e, testStart)
	}
	if len(c.entries) != maxCachedTokens {
		t.Fatalf("cache holds %d, want %d", len(c.entries), maxCachedTokens)
	}
	// A full cache drops its expired half.
	later := testStart.Add(2 * time.Minute)
	c.put("new", live, later)
	if got, want := len(c.entries), maxCachedTokens/2+1; got != want {
		t.Errorf("after expiry sweep: %d entries, want %d", got, want)
	}
	for len(c.entries) < maxCachedTokens {
		c.put(fmt.Sprint("live", len(c.entries)), live, later)
	}
	// A cache full of live tokens drops some of them.
	c.put("newer", live, later)
	if got := len(c.entries); got >= maxCachedTokens || got < maxCachedTokens*3/4 {
		t.Errorf("after eviction: %d entries", got)
	}
	if c.get("newer") == nil {
		t.Error("the new token is not cached")
	}
	c.put("expired", dead, later)
	if c.get("expired") != nil {
		t.Error("an expired token was cached")
	}
}

func TestVerifyConcurrent(t *testing.T) {
	i, _ := newTestIssuer(t, nil)
	tokens := make([]string, 8)
	for n := range tokens {
		tokens[n] = issue(t, i, AudienceDataPlane)
	}
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for n := range 50 {
				if _, err := i.Verify(tokens[(g+n)%len(tokens)], AudienceDataPlane); err != nil {
					t.Errorf("Verify: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestAuthenticate(t *testing.T) {
	i, _ := newTestIssuer(t, nil)
	tok := issue(t, i, AudienceDataPlane)
	tests := []struct {
		name      string
		header    string // Authorization; "" for none
		wantCode  string
		challenge string // WWW-Authenticate
	}{
		{"bearer", "Bearer " + tok, "", ""},
		{"scheme case", "bEaReR " + tok, "", ""},
		{"missing", "", CodeAuthenticationFailed,
			`Bearer authorization_uri="http://127.0.0.1:7380/` + testTenant + `/oauth2/v2.0/authorize"`},
		{"basic", "Basic dXNlcjpwYXNz", CodeAuthenticationFailed,
			`Bearer authorization_uri="http://127.0.0.1:7380/` + testTenant + `/oauth2/v2.0/authorize", error="invalid_request", error_description="Authentication failed. The 'Authorization' header is provided in an invalid format."`},
		{"bearer without token", "Bearer ", CodeAuthenticationFailed, ""},
		{"token without scheme", tok, CodeAuthenticationFailed, ""},
		{"garbage token", "Bearer x.y.z", CodeInvalidToken,
			`Bearer authorization_uri="http://127.0.0.1:7380/` + testTenant + `/oauth2/v2.0/authorize", error="invalid_token", error_description="The access token is invalid."`},
		{"wrong audience", "Bearer " + issue(t, i, AudienceManagement), CodeInvalidAudience, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			claims, err := i.Authenticate(r, AudienceDataPlane)
			if tt.wantCode == "" {
				if err != nil || claims.ObjectID != testPrincipal.ObjectID {
					t.Fatalf("Authenticate = %+v, %v", claims, err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Code != tt.wantCode {
				t.Fatalf("Authenticate: err = %v, want code %s", err, tt.wantCode)
			}
			if tt.challenge != "" && e.WWWAuthenticate() != tt.challenge {
				t.Errorf("WWWAuthenticate:\n got %s\nwant %s", e.WWWAuthenticate(), tt.challenge)
			}
		})
	}
}

func TestWWWAuthenticateQuoting(t *testing.T) {
	e := &Error{Code: CodeInvalidToken, Message: "a \"quoted\" \\ and\r\nnewline", authorizeURL: "u", oauthError: "invalid_token"}
	want := `Bearer authorization_uri="u", error="invalid_token", error_description="a \"quoted\" \\ and  newline"`
	if got := e.WWWAuthenticate(); got != want {
		t.Errorf("WWWAuthenticate:\n got %s\nwant %s", got, want)
	}
}

func FuzzVerify(f *testing.F) {
	i, _ := newTestIssuer(f, nil)
	tok := issue(f, i, AudienceManagement)
	f.Add(tok)
	f.Add("")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add(tok[:len(tok)-4])
	f.Fuzz(func(t *testing.T, s string) {
		claims, err := i.Verify(s, AudienceManagement)
		// Other spellings of the genuine token may pass (ECDSA signatures
		// are malleable), but no input may claim another identity.
		if err == nil && (claims.ObjectID != testPrincipal.ObjectID || claims.AppID != testPrincipal.ClientID) {
			t.Errorf("Verify accepted %q: %+v", s, claims)
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("Verify: error %T is not *Error", err)
			}
		}
	})
}

func BenchmarkVerifyCold(b *testing.B) {
	i, _ := newTestIssuer(b, nil)
	tokens := make([]string, b.N)
	for n := range tokens {
		tokens[n] = issue(b, i, AudienceDataPlane)
	}
	b.ResetTimer()
	for n := range b.N {
		if _, err := i.Verify(tokens[n], AudienceDataPlane); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyCached(b *testing.B) {
	i, _ := newTestIssuer(b, nil)
	tok := issue(b, i, AudienceDataPlane)
	for b.Loop() {
		if _, err := i.Verify(tok, AudienceDataPlane); err != nil {
			b.Fatal(err)
		}
	}
}
