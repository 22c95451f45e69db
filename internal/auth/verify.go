package auth

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Error codes, as ARM reports them. Every one means HTTP 401.
const (
	// CodeAuthenticationFailed: no Authorization header, or not a bearer token.
	CodeAuthenticationFailed = "AuthenticationFailed"
	// CodeInvalidToken: the token is malformed, not signed by this issuer's
	// key, from another issuer, or not valid yet.
	CodeInvalidToken = "InvalidAuthenticationToken"
	// CodeExpiredToken: the token has expired.
	CodeExpiredToken = "ExpiredAuthenticationToken"
	// CodeInvalidAudience: the token is for another resource.
	CodeInvalidAudience = "InvalidAuthenticationTokenAudience"
)

// Error is a failed authentication. The API layer writes Code and Message
// in its own error shape, with status 401 and a WWW-Authenticate header;
// Err is the cause, for logs. Nothing in an Error repeats the token.
type Error struct {
	Code    string
	Message string
	Err     error

	// authorizeURL and oauthError are parameters of the WWW-Authenticate
	// challenge; oauthError is empty when the request had no credentials.
	authorizeURL string
	oauthError   string
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Code + ": " + e.Message
	}
	return e.Code + ": " + e.Message + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// WWWAuthenticate returns the value of the WWW-Authenticate header for the
// 401 response, in ARM's form:
//
//	Bearer authorization_uri="…", error="invalid_token", error_description="…"
//
// As RFC 6750 §3.1 asks, a request that sent no credentials gets no error
// attribute.
func (e *Error) WWWAuthenticate() string {
	var b strings.Builder
	b.WriteString(`Bearer authorization_uri=`)
	writeQuoted(&b, e.authorizeURL)
	if e.oauthError != "" {
		b.WriteString(`, error=`)
		writeQuoted(&b, e.oauthError)
		b.WriteString(`, error_description=`)
		writeQuoted(&b, e.Message)
	}
	return b.String()
}

// writeQuoted writes s as an HTTP quoted-string (RFC 9110 §5.6.4). Control
// characters, which a quoted-string cannot hold, become spaces.
func writeQuoted(b *strings.Builder, s string) {
	b.WriteByte('"')
	for _, c := range []byte(s) {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < ' ' || c == 0x7f:
			b.WriteByte(' ')
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}

func (i *Issuer) authError(code, oauthError string, err error, format string, args ...any) *Error {
	return &Error{
		Code:         code,
		Message:      fmt.Sprintf(format, args...),
		Err:          err,
		authorizeURL: i.authorizeURL(),
		oauthError:   oauthError,
	}
}

// Claims are the facts a verified token states about its bearer.
type Claims struct {
	ObjectID string // oid (and sub): the principal's object id
	TenantID string // tid
	AppID    string // appid (and azp): the principal's client id
	Issuer   string // iss
	Audience string // aud, as the token spells it
	IssuedAt time.Time
	Expires  time.Time
}

const (
	// skew is how far clocks may disagree: a token may be used this long
	// before its nbf or iat. It does not extend exp.
	skew = time.Minute
	// maxTokenLen bounds the work and cache memory one token can cost.
	// Tidepool's tokens are under 1 KiB.
	maxTokenLen = 8 << 10
)

// Verify checks that token is an access token from this issuer: signed with
// its key (ES256 only), with its issuer, not expired, and for one of
// audiences. The audience check accepts each known resource under any of
// its names: AudienceManagement admits tokens for
// "https://management.core.windows.net/" too.
//
// Each distinct token is verified once; its claims are then cached until it
// expires, and later calls check only expiry and audience. Errors are
// *[Error].
func (i *Issuer) Verify(token string, audiences ...string) (*Claims, error) {
	now := i.now()
	e := i.cache.get(token)
	if e == nil {
		var err error
		if e, err = i.verify(token, now); err != nil {
			return nil, err
		}
		i.cache.put(token, e, now)
	}
	if !now.Before(e.claims.Expires) {
		return nil, i.authError(CodeExpiredToken, "invalid_token", nil,
			"The access token expiry UTC time '%s' is earlier than current UTC time '%s'.",
			armTime(e.claims.Expires), armTime(now))
	}
	for _, a := range audiences {
		// Callers usually pass the canonical constants: compare those first.
		if a == e.audience || canonicalAudience(a) == e.audience {
			c := e.claims // a copy: callers must not change the cache
			return &c, nil
		}
	}
	return nil, i.authError(CodeInvalidAudience, "invalid_token", nil,
		"The access token has been obtained for wrong audience or resource '%s'. It should exactly match with one of the allowed audiences '%s'.",
		e.claims.Audience, strings.Join(audiences, "','"))
}

// armTime formats t as ARM does in its messages (.NET's invariant culture).
func armTime(t time.Time) string {
	return t.UTC().Format("1/2/2006 3:04:05 PM")
}

var errUnknownKey = errors.New("unknown signing key")

// verify does the work Verify caches: it checks the signature and the claims
// whose verdict time cannot overturn (nbf and iat only ever become
// satisfied). Expiry and audience are left to Verify.
func (i *Issuer) verify(token string, now time.Time) (*cacheEntry, error) {
	if len(token) > maxTokenLen {
		return nil, i.authError(CodeInvalidToken, "invalid_token", nil, "The access token is too long.")
	}
	var tc tokenClaims
	_, err := i.parser.ParseWithClaims(token, &tc, func(t *jwt.Token) (any, error) {
		if kid, _ := t.Header["kid"].(string); kid != i.keyID {
			return nil, errUnknownKey
		}
		return &i.key.PublicKey, nil
	})
	switch {
	case err == nil:
	case errors.Is(err, errUnknownKey):
		return nil, i.authError(CodeInvalidToken, "invalid_token", err, "The access token was signed by an unknown key.")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return nil, i.authError(CodeInvalidToken, "invalid_token", err, "The access token has an invalid signature.")
	default:
		return nil, i.authError(CodeInvalidToken, "invalid_token", err, "The access token is invalid.")
	}
	if tc.Issuer != i.issuer {
		return nil, i.authError(CodeInvalidToken, "invalid_token", nil,
			"The access token is from the wrong issuer '%s'. It must match the issuer '%s'.", tc.Issuer, i.issuer)
	}
	if tc.ExpiresAt == nil {
		return nil, i.authError(CodeInvalidToken, "invalid_token", nil, "The access token has no expiry time.")
	}
	if (tc.NotBefore != nil && now.Add(skew).Before(tc.NotBefore.Time)) ||
		(tc.IssuedAt != nil && now.Add(skew).Before(tc.IssuedAt.Time)) {
		return nil, i.authError(CodeInvalidToken, "invalid_token", nil, "The access token is not valid yet.")
	}
	e := &cacheEntry{
		claims: Claims{
			ObjectID: tc.ObjectID,
			TenantID: tc.TenantID,
			AppID:    tc.AppID,
			Issuer:   tc.Issuer,
			Audience: tc.Audience,
			Expires:  tc.ExpiresAt.Time,
		},
		audience: canonicalAudience(tc.Audience),
	}
	if tc.IssuedAt != nil {
		e.claims.IssuedAt = tc.IssuedAt.Time
	}
	return e, nil
}

// Authenticate verifies the bearer token in r's Authorization header (the
// scheme is case-insensitive) as [Issuer.Verify] does. Errors are *[Error].
func (i *Issuer) Authenticate(r *http.Request, audiences ...string) (*Claims, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, i.authError(CodeAuthenticationFailed, "", nil,
			"Authentication failed. The 'Authorization' header is missing.")
	}
	scheme, token, _ := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		return nil, i.authError(CodeAuthenticationFailed, "invalid_request", nil,
			"Authentication failed. The 'Authorization' header is provided in an invalid format.")
	}
	return i.Verify(token, audiences...)
}

// maxCachedTokens bounds the verified-token cache. Only valid tokens enter
// it, so reaching the bound takes that many live tokens.
const maxCachedTokens = 10000

// tokenCache remembers the claims of verified tokens until they expire.
type tokenCache struct {
	mu sync.RWMutex
	// entries maps a token to its verified claims; guarded by mu.
	entries map[string]*cacheEntry
}

// cacheEntry is a verified token's claims; never changed after creation.
type cacheEntry struct {
	claims   Claims
	audience string // canonicalAudience(claims.Audience)
}

func (c *tokenCache) get(token string) *cacheEntry {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.entries[token]
}

// put adds a verified token unless it has already expired. A full cache
// first drops expired tokens and, if still full, an arbitrary eighth of the
// rest: a dropped token only costs another verification.
func (c *tokenCache) put(token string, e *cacheEntry, now time.Time) {
	if !now.Before(e.claims.Expires) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxCachedTokens {
		for k, old := range c.entries {
			if !now.Before(old.claims.Expires) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < maxCachedTokens*7/8 {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[token] = e
}
