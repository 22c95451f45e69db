package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

func TestJWKS(t *testing.T) {
	i, _ := newTestIssuer(t, nil)
	srv := newTestServer(t, i, principals{})
	for _, path := range []string{"/.well-known/jwks.json", "/" + testTenant + "/discovery/v2.0/keys"} {
		t.Run(path, func(t *testing.T) {
			var set struct {
				Keys []map[string]string `json:"keys"`
			}
			getJSON(t, srv.URL+path, &set)
			if len(set.Keys) != 1 {
				t.Fatalf("%d keys, want 1", len(set.Keys))
			}
			k := set.Keys[0]
			for field, want := range map[string]string{"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": i.keyID} {
				if k[field] != want {
					t.Errorf("%s = %q, want %q", field, k[field], want)
				}
			}
			x, err1 := base64.RawURLEncoding.DecodeString(k["x"])
			y, err2 := base64.RawURLEncoding.DecodeString(k["y"])
			if err1 != nil || err2 != nil || len(x) != 32 || len(y) != 32 {
				t.Fatalf("x, y = %q, %q", k["x"], k["y"])
			}
			pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
			if err != nil {
				t.Fatal(err)
			}
			if !pub.Equal(&testKey.PublicKey) {
				t.Error("JWKS key differs from the signing key")
			}
		})
	}
}

func TestOpenIDConfig(t *testing.T) {
	i, _ := newTestIssuer(t, nil)
	srv := newTestServer(t, i, principals{})
	var cfg map[string]any
	getJSON(t, srv.URL+"/"+testTenant+"/v2.0/.well-known/openid-configuration", &cfg)
	base := testPublicURL + "/" + testTenant
	want := map[string]any{
		"issuer":                                base + "/v2.0",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"id_token_signing_alg_values_supported": []any{"ES256"},
		"grant_types_supported":                 []any{"client_credentials"},
		"token_endpoint_auth_methods_supported": []any{"client_secret_post", "client_secret_basic"},
	}
	for field, w := range want {
		if got, _ := json.Marshal(cfg[field]); string(got) != mustJSON(t, w) {
			t.Errorf("%s = %s, want %s", field, got, mustJSON(t, w))
		}
	}

	resp, err := http.Get(srv.URL + "/other-tenant/v2.0/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("wrong tenant: status %d", resp.StatusCode)
	}
	checkOAuthError(t, body, "invalid_tenant", 90002)
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
