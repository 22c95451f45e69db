package auth

import (
	"crypto/ecdsa"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tidepool-dev/tidepool/internal/store"
)

// Well-known audiences: the resources that Azure clients request tokens for.
const (
	// AudienceManagement is the management API (ARM). Verify also accepts
	// the other names ARM answers to; see [Issuer.Verify].
	AudienceManagement = "https://management.azure.com/"
	// AudienceDataPlane is the session pool data plane.
	AudienceDataPlane = "https://dynamicsessions.io"
	// AudienceDataPlaneLegacy is the data plane's name in older clients.
	AudienceDataPlaneLegacy = "https://acasessions.io"
	// AudienceGraph is the directory API (principals), Microsoft Graph's
	// name.
	AudienceGraph = "https://graph.microsoft.com"
	// AudienceTokenExchange is the audience of the assertions a caller
	// presents to obtain a token as a managed identity (Entra's name for
	// workload identity federation).
	AudienceTokenExchange = "api://AzureADTokenExchange"
)

// knownResources maps a resource identifier as clients spell it (lower case)
// to the audience of the tokens issued for it. ARM is known by several names,
// and clients add or drop trailing slashes.
var knownResources = map[string]string{
	"https://management.azure.com/":        AudienceManagement,
	"https://management.azure.com":         AudienceManagement,
	"https://management.core.windows.net/": AudienceManagement,
	"https://management.core.windows.net":  AudienceManagement,
	"https://dynamicsessions.io":           AudienceDataPlane,
	"https://dynamicsessions.io/":          AudienceDataPlane,
	"https://acasessions.io":               AudienceDataPlaneLegacy,
	"https://acasessions.io/":              AudienceDataPlaneLegacy,
	"https://graph.microsoft.com":          AudienceGraph,
	"https://graph.microsoft.com/":         AudienceGraph,
	"api://azureadtokenexchange":           AudienceTokenExchange,
}

// canonicalAudience returns the audience that aud names: a known resource's
// canonical form, or aud itself.
func canonicalAudience(aud string) string {
	if a, ok := knownResources[strings.ToLower(aud)]; ok {
		return a
	}
	return aud
}

// Config configures an [Issuer].
type Config struct {
	// TenantID is the directory tenant the issuer speaks for. It appears in
	// the issuer URL and in the tid claim. Required.
	TenantID string
	// PublicURL is the server's base URL as clients reach it, for example
	// "http://127.0.0.1:7380". The issuer is PublicURL/TenantID/v2.0.
	// Required; a trailing slash is ignored.
	PublicURL string
	// Key signs tokens. It must be a P-256 key. Required.
	Key *ecdsa.PrivateKey
	// KeyID is the kid of Key. If empty, it is the key's RFC 7638 thumbprint.
	KeyID string
	// TokenTTL is the lifetime of issued tokens: one hour if zero, at least
	// one minute otherwise.
	TokenTTL time.Duration
	// Now returns the current time; time.Now if nil.
	Now func() time.Time
}

// Issuer issues and verifies access tokens. Its methods are safe for
// concurrent use.
type Issuer struct {
	tenantID  string
	publicURL string
	issuer    string
	key       *ecdsa.PrivateKey
	keyID     string
	ttl       time.Duration
	now       func() time.Time
	parser    *jwt.Parser

	// jwks and openIDConfig are the JSON documents the handlers serve;
	// they never change.
	jwks         []byte
	openIDConfig []byte

	cache tokenCache
}

// NewIssuer returns an issuer for cfg.
func NewIssuer(cfg Config) (*Issuer, error) {
	if cfg.TenantID == "" || strings.ContainsAny(cfg.TenantID, "/?#") {
		return nil, fmt.Errorf("new issuer: invalid tenant id %q", cfg.TenantID)
	}
	publicURL := strings.TrimSuffix(cfg.PublicURL, "/")
	if u, err := url.Parse(publicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("new issuer: public URL %q is not an absolute http(s) URL", cfg.PublicURL)
	}
	if cfg.Key == nil {
		return nil, errors.New("new issuer: no key")
	}
	k, err := publicJWK(&cfg.Key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("new issuer: %w", err)
	}
	k.Kid = cfg.KeyID
	if k.Kid == "" {
		k.Kid = k.thumbprint()
	}
	ttl := cfg.TokenTTL
	if ttl == 0 {
		ttl = time.Hour
	}
	if ttl < time.Minute {
		return nil, fmt.Errorf("new issuer: token TTL %v is under one minute", ttl)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	i := &Issuer{
		tenantID:  cfg.TenantID,
		publicURL: publicURL,
		issuer:    publicURL + "/" + cfg.TenantID + "/v2.0",
		key:       cfg.Key,
		keyID:     k.Kid,
		ttl:       ttl,
		now:       now,
		// Claims are checked by Verify itself: the parser's leeway would
		// also stretch exp, and its errors do not carry ARM's messages.
		// Strict base64 leaves fewer spellings of one token to cache.
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{"ES256"}),
			jwt.WithoutClaimsValidation(),
			jwt.WithStrictDecoding(),
		),
		cache: tokenCache{entries: make(map[string]*cacheEntry)},
	}
	i.jwks = marshalJWKS(k)
	i.openIDConfig = i.marshalOpenIDConfig()
	return i, nil
}

// KindUser is the store.Principal Kind of users: principals that sign in
// with a user name (their ClientID) and a password.
const KindUser = "User"

// UserClientID is the appid of user tokens: the Azure CLI's public client
// id, which Entra writes in the tokens of users signed in through az.
const UserClientID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"

// tokenClaims is the payload of an access token, shaped like an Entra v2
// app-only token. The aud claim is a single string, as Entra writes it.
type tokenClaims struct {
	Audience  string           `json:"aud"`
	Issuer    string           `json:"iss"`
	IssuedAt  *jwt.NumericDate `json:"iat"`
	NotBefore *jwt.NumericDate `json:"nbf"`
	ExpiresAt *jwt.NumericDate `json:"exp"`
	AZP       string           `json:"azp"`
	AppID     string           `json:"appid"`
	IDType    string           `json:"idtyp"`
	UPN       string           `json:"upn,omitempty"`
	ObjectID  string           `json:"oid"`
	Subject   string           `json:"sub"`
	TenantID  string           `json:"tid"`
	UTI       string           `json:"uti"`
	Version   string           `json:"ver"`
}

// The jwt.Claims methods. The parser does not call them (Verify checks
// claims itself), but jwt.ParseWithClaims requires them.

func (c *tokenClaims) GetExpirationTime() (*jwt.NumericDate, error) { return c.ExpiresAt, nil }
func (c *tokenClaims) GetIssuedAt() (*jwt.NumericDate, error)       { return c.IssuedAt, nil }
func (c *tokenClaims) GetNotBefore() (*jwt.NumericDate, error)      { return c.NotBefore, nil }
func (c *tokenClaims) GetIssuer() (string, error)                   { return c.Issuer, nil }
func (c *tokenClaims) GetSubject() (string, error)                  { return c.Subject, nil }
func (c *tokenClaims) GetAudience() (jwt.ClaimStrings, error) {
	return jwt.ClaimStrings{c.Audience}, nil
}

// Issue mints an access token for p with the given audience, valid from now
// for the issuer's TTL. It returns the token and its expiry.
func (i *Issuer) Issue(p *store.Principal, audience string) (token string, expires time.Time, err error) {
	// JWT times have whole seconds; truncate so expires equals the exp claim.
	now := i.now().Truncate(time.Second)
	expires = now.Add(i.ttl)
	// A user signs in through a public client application, as with the
	// Azure CLI, whose client id Entra puts in user tokens; the user's name
	// is its client id in the store.
	appID, idType, upn := p.ClientID, "app", ""
	if p.Kind == KindUser {
		appID, idType, upn = UserClientID, "user", p.ClientID
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, &tokenClaims{
		Audience:  audience,
		Issuer:    i.issuer,
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(expires),
		AZP:       appID,
		AppID:     appID,
		IDType:    idType,
		UPN:       upn,
		ObjectID:  p.ObjectID,
		Subject:   p.ObjectID,
		TenantID:  i.tenantID,
		UTI:       base64.RawURLEncoding.EncodeToString(randomBytes(16)),
		Version:   "2.0",
	})
	t.Header["kid"] = i.keyID
	token, err = t.SignedString(i.key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("issue token for %s: %w", p.ClientID, err)
	}
	return token, expires, nil
}

// authorizeURL is the authorization endpoint advertised in metadata and in
// WWW-Authenticate challenges. Tidepool has no interactive flows, so nothing
// serves it, but Azure clients expect the URL to exist.
func (i *Issuer) authorizeURL() string {
	return i.publicURL + "/" + i.tenantID + "/oauth2/v2.0/authorize"
}
