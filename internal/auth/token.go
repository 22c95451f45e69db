package auth

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tidepool-dev/tidepool/internal/store"
)

// PrincipalLookup finds the principal that a token request names.
type PrincipalLookup interface {
	// GetPrincipalByClientID returns the principal with the client id, or
	// an error wrapping store.ErrNotFound.
	GetPrincipalByClientID(ctx context.Context, clientID string) (*store.Principal, error)
	// Federate returns nil if the subject of a verified assertion may
	// obtain tokens as p (a managed identity it manages), and an error
	// saying why not otherwise.
	Federate(ctx context.Context, subject *Claims, p *store.Principal) error
}

// AssertionType is the client_assertion_type of a JWT client assertion
// (RFC 7523).
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// maxTokenRequest bounds the body of a token request. Real ones are a few
// hundred bytes.
const maxTokenRequest = 64 << 10

// TokenHandler serves the OAuth2 token endpoint, POST
// /{tenantId}/oauth2/v2.0/token, in the shape of Entra's v2 endpoint. It
// implements the client-credentials grant (RFC 6749 §4.4): the client
// authenticates with client_id and client_secret in the form or with HTTP
// Basic authentication (§2.3.1), and names the resource as
// scope=<resource>/.default or, as Entra v1 clients do, resource=<resource>.
// The first path segment must be the issuer's tenant.
//
// Failures are Entra's JSON errors with AADSTS codes, which the Azure SDKs
// show to their users.
func (i *Issuer) TokenHandler(lookup PrincipalLookup) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Neither tokens nor errors about credentials may be cached.
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		body, oerr := i.token(w, r, lookup)
		if oerr != nil {
			i.writeOAuthError(w, oerr)
			return
		}
		writeJSON(w, http.StatusOK, body)
	})
}

// tokenResponse is a successful token response (RFC 6749 §5.1) as Entra
// writes it.
type tokenResponse struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	ExtExpiresIn int64  `json:"ext_expires_in"`
	AccessToken  string `json:"access_token"`
}

func (i *Issuer) token(w http.ResponseWriter, r *http.Request, lookup PrincipalLookup) ([]byte, *oauthError) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return nil, &oauthError{http.StatusMethodNotAllowed, "invalid_request", 900561,
			fmt.Sprintf("The endpoint only accepts POST requests. Received a %s request.", r.Method)}
	}
	if t := pathTenant(r); !strings.EqualFold(t, i.tenantID) {
		return nil, tenantNotFound("invalid_request", t)
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenRequest)
	if err := r.ParseForm(); err != nil {
		return nil, invalidRequest(9002313, "Invalid request. Request is malformed or invalid.")
	}
	// Parameters in the URL query are ignored: secrets do not belong there.
	form := r.PostForm
	switch g := form.Get("grant_type"); g {
	case "client_credentials":
	case "password":
		return i.passwordGrant(r, form, lookup)
	case "":
		return nil, missingParameter("grant_type")
	default:
		return nil, &oauthError{http.StatusBadRequest, "unsupported_grant_type", 70003,
			fmt.Sprintf("The app requested an unsupported grant type '%s'.", g)}
	}
	clientID, secret, oerr := clientCredentials(r)
	if oerr != nil {
		return nil, oerr
	}
	audience, oerr := requestedAudience(form)
	if oerr != nil {
		return nil, oerr
	}
	assertion := form.Get("client_assertion")
	switch {
	case assertion != "" && secret != "":
		return nil, invalidRequest(9002313, "Invalid request. The client is authenticated with both a secret and an assertion.")
	case assertion != "" && form.Get("client_assertion_type") != AssertionType:
		return nil, invalidRequest(50027, "The client_assertion_type must be '"+AssertionType+"'.")
	case assertion == "" && secret == "":
		return nil, &oauthError{http.StatusUnauthorized, "invalid_client", 7000218,
			"The request body must contain the following parameter: 'client_assertion' or 'client_secret'."}
	}

	p, err := lookup.GetPrincipalByClientID(r.Context(), clientID)
	if err == nil && p.Kind == KindUser {
		// A user is not an application: its password opens the password
		// grant only.
		err = store.ErrNotFound
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, &oauthError{http.StatusUnauthorized, "invalid_client", 700016,
			fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. "+
				"This can happen if the application has not been installed by the administrator of the tenant. "+
				"You may have sent your authentication request to the wrong tenant.", clientID, i.tenantID)}
	}
	if err != nil {
		return nil, errTransient
	}
	if assertion != "" {
		subject, err := i.Verify(assertion, AudienceTokenExchange)
		if err != nil {
			return nil, &oauthError{http.StatusUnauthorized, "invalid_client", 700211,
				"The client assertion is not a valid token of this issuer for the audience '" + AudienceTokenExchange + "'."}
		}
		if err := lookup.Federate(r.Context(), subject, p); err != nil {
			return nil, &oauthError{http.StatusUnauthorized, "invalid_client", 70021,
				fmt.Sprintf("No matching federated identity record found for presented assertion subject '%s': %v", subject.ObjectID, err)}
		}
	} else {
		switch secretStatus(p, secret, i.now()) {
		case secretExpired:
			return nil, &oauthError{http.StatusUnauthorized, "invalid_client", 7000222,
				fmt.Sprintf("The provided client secret keys for app '%s' are expired. Create a new secret for the app.", clientID)}
		case secretWrong:
			return nil, &oauthError{http.StatusUnauthorized, "invalid_client", 7000215,
				fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, "+
					"not the client secret ID, for a secret added to app '%s'.", clientID)}
		}
	}

	return i.tokenResponse(p, audience)
}

// tokenResponse issues a token for p and encodes the answer.
func (i *Issuer) tokenResponse(p *store.Principal, audience string) ([]byte, *oauthError) {
	token, _, err := i.Issue(p, audience)
	if err != nil {
		return nil, errTransient
	}
	// Like Entra, report one second less than the lifetime, so that a
	// client's notion of expiry errs early.
	ttl := int64(i.ttl/time.Second) - 1
	body, _ := json.Marshal(tokenResponse{ // cannot fail: strings and numbers only
		TokenType:    "Bearer",
		ExpiresIn:    ttl,
		ExtExpiresIn: ttl,
		AccessToken:  token,
	})
	return body, nil
}

// passwordGrant serves the resource owner password credentials grant (RFC
// 6749 §4.3) for users, as az login -u -p uses it: username, password and
// the resource. Users sign in through a public client: client_id is
// optional and carries no secret.
func (i *Issuer) passwordGrant(r *http.Request, form url.Values, lookup PrincipalLookup) ([]byte, *oauthError) {
	username, password := form.Get("username"), form.Get("password")
	switch {
	case username == "":
		return nil, missingParameter("username")
	case password == "":
		return nil, missingParameter("password")
	}
	audience, oerr := requestedAudience(form)
	if oerr != nil {
		return nil, oerr
	}
	invalid := &oauthError{http.StatusBadRequest, "invalid_grant", 50126,
		"Error validating credentials due to invalid username or password."}
	p, err := lookup.GetPrincipalByClientID(r.Context(), strings.ToLower(username))
	switch {
	case errors.Is(err, store.ErrNotFound):
		HashPassword(password) // the same work as a real check: no timing oracle for names
		return nil, invalid
	case err != nil:
		return nil, errTransient
	case p.Kind != KindUser || secretStatus(p, password, i.now()) != secretOK:
		return nil, invalid
	}
	return i.tokenResponse(p, audience)
}

// clientCredentials returns the client id and secret from the form or from
// HTTP Basic authentication. A missing secret is left for the caller to
// report, after the other parameters are checked, as Entra does.
func clientCredentials(r *http.Request) (clientID, secret string, oerr *oauthError) {
	clientID, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if user, pass, ok := r.BasicAuth(); ok {
		// RFC 6749 §2.3.1: both parts are form-encoded before Basic encoding.
		id, err1 := url.QueryUnescape(user)
		s, err2 := url.QueryUnescape(pass)
		switch {
		case err1 != nil || err2 != nil:
			return "", "", invalidRequest(9002313, "Invalid request. The Authorization header is malformed.")
		case secret != "" || (clientID != "" && clientID != id):
			// RFC 6749 §2.3: one authentication method per request.
			return "", "", invalidRequest(9002313, "Invalid request. The client is authenticated both in the Authorization header and in the request body.")
		}
		clientID, secret = id, s
	}
	if clientID == "" {
		return "", "", missingParameter("client_id")
	}
	return clientID, secret, nil
}

// requestedAudience returns the audience for the resource the form asks for.
func requestedAudience(form url.Values) (string, *oauthError) {
	resource := form.Get("resource")
	if scope := form.Get("scope"); scope != "" {
		var scopes []string
		for s := range strings.FieldsSeq(scope) {
			// MSAL adds the OpenID scopes to every request; Entra ignores
			// them in the client-credentials grant.
			if !oidcScopes[s] {
				scopes = append(scopes, s)
			}
		}
		res, ok := "", false
		if len(scopes) == 1 {
			res, ok = strings.CutSuffix(scopes[0], "/.default")
		}
		if !ok {
			return "", &oauthError{http.StatusBadRequest, "invalid_scope", 70011,
				fmt.Sprintf("The provided value for the input parameter 'scope' is not valid. The scope '%s' is not valid: "+
					"client credential flows must have one scope, a resource identifier followed by '/.default'.", scope)}
		}
		resource = res
	} else if resource == "" {
		return "", missingParameter("scope")
	}
	aud, ok := knownResources[strings.ToLower(resource)]
	if !ok {
		return "", &oauthError{http.StatusBadRequest, "invalid_scope", 70011,
			fmt.Sprintf("The provided value for the input parameter 'scope' is not valid. The resource '%s' is not known to this server.", resource)}
	}
	return aud, nil
}

var oidcScopes = map[string]bool{"openid": true, "profile": true, "offline_access": true, "email": true}

type secretCheck int

const (
	secretOK secretCheck = iota
	secretWrong
	secretExpired
)

// secretStatus checks secret against p's secrets. It is expired if it
// matches only secrets that have expired; a zero Expires never expires.
func secretStatus(p *store.Principal, secret string, now time.Time) secretCheck {
	status := secretWrong
	for _, s := range p.Secrets {
		if CheckSecret(s.Hash, secret) {
			if s.Expires.IsZero() || now.Before(s.Expires) {
				return secretOK
			}
			status = secretExpired
		}
	}
	return status
}

// oauthError is a failed token request: an OAuth2 error code (RFC 6749
// §5.2) and Entra's AADSTS number and description.
type oauthError struct {
	status int
	code   string
	aadsts int
	desc   string
}

// errTransient hides a server-side failure (the store, signing) from the
// client, which may retry.
var errTransient = &oauthError{http.StatusServiceUnavailable, "temporarily_unavailable", 90033,
	"A transient error has occurred. Please try again."}

func invalidRequest(aadsts int, desc string) *oauthError {
	return &oauthError{http.StatusBadRequest, "invalid_request", aadsts, desc}
}

func missingParameter(name string) *oauthError {
	return invalidRequest(900144, fmt.Sprintf("The request body must contain the following parameter: '%s'.", name))
}

func tenantNotFound(code, tenant string) *oauthError {
	return &oauthError{http.StatusBadRequest, code, 90002,
		fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID.", tenant)}
}

// writeOAuthError writes e as Entra does, with trace and correlation ids and
// a timestamp repeated at the end of the description.
func (i *Issuer) writeOAuthError(w http.ResponseWriter, e *oauthError) {
	traceID, correlationID := newUUID(), newUUID()
	ts := i.now().UTC().Format("2006-01-02 15:04:05Z")
	body, _ := json.Marshal(struct { // cannot fail: strings and numbers only
		Error         string `json:"error"`
		Description   string `json:"error_description"`
		Codes         []int  `json:"error_codes"`
		Timestamp     string `json:"timestamp"`
		TraceID       string `json:"trace_id"`
		CorrelationID string `json:"correlation_id"`
	}{
		Error: e.code,
		Description: fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s",
			e.aadsts, e.desc, traceID, correlationID, ts),
		Codes:         []int{e.aadsts},
		Timestamp:     ts,
		TraceID:       traceID,
		CorrelationID: correlationID,
	})
	writeJSON(w, e.status, body)
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	b := randomBytes(16)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
