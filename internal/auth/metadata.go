package auth

import (
	"encoding/json"
	"net/http"
	"strings"
)

// marshalJWKS returns the key set holding k.
func marshalJWKS(k jwk) []byte {
	b, _ := json.Marshal(struct { // cannot fail: strings only

		Keys []jwk `json:"keys"`
	}{[]jwk{k}})
	return b
}

// JWKSHandler serves the issuer's public key as a JSON Web Key Set. Mount it
// at GET /.well-known/jwks.json and at GET /{tenantId}/discovery/v2.0/keys,
// where Entra clients look; the path is not checked.
func (i *Issuer) JWKSHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		writeJSON(w, http.StatusOK, i.jwks)
	})
}

// openIDConfig is the OpenID Provider Metadata (OpenID Connect Discovery
// 1.0 §3) in the subset Entra publishes and MSAL reads: MSAL requires
// authorization_endpoint, token_endpoint and an issuer on the authority's
// host.
type openIDConfig struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	ClaimsSupported                   []string `json:"claims_supported"`
	TenantRegionScope                 *string  `json:"tenant_region_scope"`
}

func (i *Issuer) marshalOpenIDConfig() []byte {
	base := i.publicURL + "/" + i.tenantID
	b, _ := json.Marshal(openIDConfig{ // cannot fail: strings only
		Issuer:                i.issuer,
		AuthorizationEndpoint: i.authorizeURL(),
		TokenEndpoint:         base + "/oauth2/v2.0/token",
		JWKSURI:               base + "/discovery/v2.0/keys",
		// No interactive flows: tokens come only from the client-credentials grant.
		ResponseTypesSupported:            []string{},
		SubjectTypesSupported:             []string{"public"},
		IDTokenSigningAlgValuesSupported:  []string{"ES256"},
		GrantTypesSupported:               []string{"client_credentials"},
		TokenEndpointAuthMethodsSupported: []string{"client_secret_post", "client_secret_basic"},
		ClaimsSupported:                   []string{"aud", "iss", "iat", "nbf", "exp", "azp", "appid", "idtyp", "oid", "sub", "tid", "uti", "ver"},
	})
	return b
}

// OpenIDConfigHandler serves the OpenID metadata at
// GET /{tenantId}/v2.0/.well-known/openid-configuration. The first path
// segment must be the issuer's tenant.
func (i *Issuer) OpenIDConfigHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if t := pathTenant(r); !strings.EqualFold(t, i.tenantID) {
			i.writeOAuthError(w, tenantNotFound("invalid_tenant", t))
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		writeJSON(w, http.StatusOK, i.openIDConfig)
	})
}

// pathTenant returns the first segment of r's path, where Entra URLs carry
// the tenant.
func pathTenant(r *http.Request) string {
	t, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	return t
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(body)
}
