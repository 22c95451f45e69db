package arm_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tidepool-dev/tidepool/internal/auth"
)

// TestAuthentication sends every kind of bad credential to the management
// API: each is a 401 with WWW-Authenticate and ARM's error code, and none
// gets past authentication.
func TestAuthentication(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.createGroup("rg", "eastus")

	newIssuer := func(modify func(*auth.Config)) *auth.Issuer {
		t.Helper()
		cfg := auth.Config{TenantID: testTenant, PublicURL: a.URL, Key: a.key, KeyID: testKeyID}
		modify(&cfg)
		i, err := auth.NewIssuer(cfg)
		if err != nil {
			t.Fatalf("NewIssuer: %v", err)
		}
		return i
	}
	otherKey, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	// Same key and issuer, a clock two hours behind: the token expired an
	// hour ago.
	expired := a.mint(newIssuer(func(c *auth.Config) {
		c.Now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	}), auth.AudienceManagement)
	notYet := a.mint(newIssuer(func(c *auth.Config) {
		c.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	}), auth.AudienceManagement)
	otherKID := a.mint(newIssuer(func(c *auth.Config) { c.Key, c.KeyID = otherKey, "" }), auth.AudienceManagement)
	sameKID := a.mint(newIssuer(func(c *auth.Config) { c.Key = otherKey }), auth.AudienceManagement)
	otherIss := a.mint(newIssuer(func(c *auth.Config) { c.PublicURL = "https://login.example.test" }), auth.AudienceManagement)
	otherTenant := a.mint(newIssuer(func(c *auth.Config) { c.TenantID = "00000000-0000-0000-0000-0000000000aa" }), auth.AudienceManagement)
	parts := strings.Split(a.token, ".")
	payloadTampered := parts[0] + "." + parts[1] + "x." + parts[2]
	sig := []byte(parts[2])
	sig[len(sig)/2] ^= 1
	sigTampered := parts[0] + "." + parts[1] + "." + string(sig)

	for _, tc := range []struct {
		name, authz, code string
	}{
		{"missing", "", "AuthenticationFailed"},
		{"basic scheme", "Basic dXNlcjpwYXNzd29yZA==", "AuthenticationFailed"},
		{"bearer without token", "Bearer", "AuthenticationFailed"},
		{"token without scheme", a.token, "AuthenticationFailed"},
		{"malformed", "Bearer not-a-jwt", "InvalidAuthenticationToken"},
		{"three garbage parts", "Bearer aaa.bbb.ccc", "InvalidAuthenticationToken"},
		{"payload tampered", "Bearer " + payloadTampered, "InvalidAuthenticationToken"},
		{"signature tampered", "Bearer " + sigTampered, "InvalidAuthenticationToken"},
		{"unsigned", "Bearer " + parts[0] + "." + parts[1] + ".", "InvalidAuthenticationToken"},
		{"another key", "Bearer " + otherKID, "InvalidAuthenticationToken"},
		{"another key under our kid", "Bearer " + sameKID, "InvalidAuthenticationToken"},
		{"another issuer", "Bearer " + otherIss, "InvalidAuthenticationToken"},
		{"another tenant", "Bearer " + otherTenant, "InvalidAuthenticationToken"},
		{"not yet valid", "Bearer " + notYet, "InvalidAuthenticationToken"},
		{"expired", "Bearer " + expired, "ExpiredAuthenticationToken"},
		{"wrong audience", "Bearer " + a.mint(a.issuer, "https://vault.azure.net"), "InvalidAuthenticationTokenAudience"},
		{"data plane audience", "Bearer " + a.mint(a.issuer, auth.AudienceDataPlane), "InvalidAuthenticationTokenAudience"},
		{"legacy data plane audience", "Bearer " + a.mint(a.issuer, auth.AudienceDataPlaneLegacy), "InvalidAuthenticationTokenAudience"},
	} {
		for _, req := range []struct{ method, path string }{
			{"GET", "/subscriptions?api-version=2022-12-01"},
			{"GET", poolPath("rg", "guarded", stable)},
			{"PUT", poolPath("rg", "guarded", stable)},
			{"DELETE", groupPath("rg")},
			{"GET", poolID("rg", "guarded")}, // no api-version: authentication comes first
		} {
			t.Run(tc.name+"/"+req.method+" "+req.path, func(t *testing.T) {
				a := a.with(t)
				var body any
				if req.method == "PUT" {
					body = pythonBody(t, stable)
				}
				r := a.do(req.method, req.path, body, headers{"Authorization": tc.authz})
				wantError(t, r, http.StatusUnauthorized, tc.code, "")
				www := r.Header.Get("WWW-Authenticate")
				if !strings.HasPrefix(www, `Bearer authorization_uri="`) {
					t.Errorf("%s: WWW-Authenticate %q, want a Bearer challenge with authorization_uri", r, www)
				}
				if tc.authz != "" && !strings.Contains(www, `error="`) {
					t.Errorf("%s: WWW-Authenticate %q has no error attribute", r, www)
				}
				checkARMHeaders(t, r, nil)
			})
		}
	}

	t.Run("nothing got through", func(t *testing.T) {
		a := a.with(t)
		wantError(t, a.do("GET", poolPath("rg", "guarded", stable), nil, nil), http.StatusNotFound, "ResourceNotFound", "")
		a.must(http.StatusOK, "GET", groupPath("rg"), nil)
	})

	for _, tc := range []struct{ name, authz string }{
		{"management audience", "Bearer " + a.token},
		{"lower-case scheme", "bearer " + a.token},
		{"management.core.windows.net audience", "Bearer " + a.mint(a.issuer, "https://management.core.windows.net/")},
		{"management audience without slash", "Bearer " + a.mint(a.issuer, "https://management.azure.com")},
	} {
		t.Run("accepted/"+tc.name, func(t *testing.T) {
			a := a.with(t)
			if r := a.do("GET", "/subscriptions?api-version=2022-12-01", nil, headers{"Authorization": tc.authz}); r.Status != http.StatusOK {
				t.Errorf("%s: want 200", r)
			}
		})
	}
}

var uuidOnly = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// checkARMHeaders checks the headers ARM puts on every response. sent are
// the request headers the test added.
func checkARMHeaders(t testing.TB, r *response, sent headers) {
	t.Helper()
	if r.Header.Get("x-ms-request-id") == "" {
		t.Errorf("%s: no x-ms-request-id", r)
	}
	corr := r.Header.Get("x-ms-correlation-request-id")
	switch want := sent["x-ms-correlation-request-id"]; {
	case want != "" && len(want) <= 128:
		if corr != want {
			t.Errorf("%s: x-ms-correlation-request-id %q, want %q echoed", r, corr, want)
		}
	case !uuidOnly.MatchString(corr):
		t.Errorf("%s: x-ms-correlation-request-id %q, want a generated uuid", r, corr)
	}
	cid := r.Header.Get("x-ms-client-request-id")
	wantCID := ""
	if strings.EqualFold(sent["x-ms-return-client-request-id"], "true") {
		wantCID = sent["x-ms-client-request-id"]
	}
	if cid != wantCID {
		t.Errorf("%s: x-ms-client-request-id %q, want %q", r, cid, wantCID)
	}
	if d, err := http.ParseTime(r.Header.Get("Date")); err != nil {
		t.Errorf("%s: Date %q: %v", r, r.Header.Get("Date"), err)
	} else if time.Since(d).Abs() > time.Minute {
		t.Errorf("%s: Date %v is not now", r, d)
	}
	if len(r.Body) > 0 && !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		t.Errorf("%s: Content-Type %q with a body, want application/json", r, r.Header.Get("Content-Type"))
	}
	code := r.Header.Get("x-ms-error-code")
	if r.Status < 400 && code != "" {
		t.Errorf("%s: x-ms-error-code %q on a success", r, code)
	}
	if r.Status >= 400 && len(r.Body) > 0 {
		if e := r.armError(t); code != e.Code {
			t.Errorf("%s: x-ms-error-code %q, want the body's code %q", r, code, e.Code)
		}
	}
}

// TestResponseHeaders checks ARM's headers on successes and errors alike.
func TestResponseHeaders(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.createGroup("rg", "eastus")
	a.putPool("rg", "existing", stable, pythonBody(t, stable))
	put := a.must(http.StatusCreated, "PUT", poolPath("rg", "another", stable), pythonBody(t, stable))
	async := put.Header.Get("Azure-AsyncOperation")
	a.waitAsync(async, "Succeeded")

	requests := []struct {
		name   string
		method string
		path   string
		body   any
		authz  string // "" sends the valid token
		status int
	}{
		{"GET 200", "GET", poolPath("rg", "existing", stable), nil, "", 200},
		{"PUT 200", "PUT", poolPath("rg", "existing", stable), pythonBody(t, stable), "", 200},
		{"PATCH 202", "PATCH", poolPath("rg", "another", stable), `{"tags":{"a":"b"}}`, "", 202},
		{"DELETE 204", "DELETE", poolPath("rg", "nosuchpool", stable), nil, "", 204},
		{"HEAD 204", "HEAD", groupPath("rg"), nil, "", 204},
		{"operation 200", "GET", async, nil, "", 200},
		{"list 200", "GET", poolsInSub(stable), nil, "", 200},
		{"404", "GET", poolPath("rg", "nosuchpool", stable), nil, "", 404},
		{"400", "GET", poolID("rg", "existing"), nil, "", 400},
		{"401", "GET", poolPath("rg", "existing", stable), nil, "Bearer nope", 401},
		{"405", "POST", poolPath("rg", "existing", stable), nil, "", 405},
		{"unknown route", "GET", "/nowhere", nil, "", 404},
	}
	variants := []struct {
		name string
		h    headers
	}{
		{"no ids", headers{}},
		{"correlation id", headers{"x-ms-correlation-request-id": "corr-6a1f"}},
		{"client id not returned", headers{"x-ms-client-request-id": "client-1"}},
		{"client id returned", headers{"x-ms-client-request-id": "client-2", "x-ms-return-client-request-id": "true", "x-ms-correlation-request-id": "corr-2"}},
		{"client id returned TRUE", headers{"x-ms-client-request-id": "client-3", "x-ms-return-client-request-id": "TRUE"}},
		{"client id return false", headers{"x-ms-client-request-id": "client-4", "x-ms-return-client-request-id": "false"}},
		{"correlation id too long", headers{"x-ms-correlation-request-id": strings.Repeat("c", 129)}},
	}
	seen := map[string]string{}
	for _, req := range requests {
		for _, v := range variants {
			t.Run(req.name+"/"+v.name, func(t *testing.T) {
				a := a.with(t)
				h := headers{}
				for k, x := range v.h {
					h[k] = x
				}
				if req.authz != "" {
					h["Authorization"] = req.authz
				}
				r := a.do(req.method, req.path, req.body, h)
				if r.Status != req.status {
					t.Fatalf("%s: want %d", r, req.status)
				}
				checkARMHeaders(t, r, v.h)
				id := r.Header.Get("x-ms-request-id")
				if prev, ok := seen[id]; ok {
					t.Errorf("%s: x-ms-request-id %q was also given to %s", r, id, prev)
				}
				seen[id] = r.req
			})
		}
	}
}

// TestAPIVersion checks the api-version rules on every route.
func TestAPIVersion(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.createGroup("rg", "eastus")
	a.createEnv("rg", "env")
	a.putPool("rg", "versioned", stable, pythonBody(t, stable))

	base := []struct{ method, path string }{
		{"GET", poolID("rg", "versioned")},
		{"PUT", poolID("rg", "versioned")},
		{"PATCH", poolID("rg", "versioned")},
		{"DELETE", poolID("rg", "versioned")},
		{"GET", strings.TrimSuffix(poolsInGroup("rg", ""), "?api-version=")},
		{"GET", strings.TrimSuffix(poolsInSub(""), "?api-version=")},
		{"POST", poolID("rg", "versioned") + "/fetchMcpServerCredentials"},
		{"GET", "/subscriptions/" + testSub + "/resourceGroups/rg"},
		{"HEAD", "/subscriptions/" + testSub + "/resourceGroups/rg"},
		{"GET", "/subscriptions/" + testSub + "/resourceGroups"},
		{"GET", envID("rg", "env")},
		{"GET", "/subscriptions"},
		{"GET", "/subscriptions/" + testSub},
		{"GET", "/subscriptions/" + testSub + "/providers"},
		{"GET", "/subscriptions/" + testSub + "/providers/Microsoft.App"},
		{"POST", "/subscriptions/" + testSub + "/providers/Microsoft.App/register"},
		{"GET", "/providers/Microsoft.App/operations"},
	}
	for _, req := range base {
		t.Run("missing/"+req.method+" "+req.path, func(t *testing.T) {
			a := a.with(t)
			r := a.do(req.method, req.path, `{"location":"eastus"}`, nil)
			if req.method == "HEAD" {
				if r.Status != http.StatusBadRequest || r.Header.Get("x-ms-error-code") != "MissingApiVersionParameter" {
					t.Errorf("%s: want 400 MissingApiVersionParameter", r)
				}
				return
			}
			wantError(t, r, http.StatusBadRequest, "MissingApiVersionParameter", "")
		})
	}
	for _, req := range base[:7] {
		t.Run("unknown/"+req.method+" "+req.path, func(t *testing.T) {
			a := a.with(t)
			r := a.do(req.method, req.path+"?api-version=2023-01-01", `{"location":"eastus"}`, nil)
			e := wantError(t, r, http.StatusBadRequest, "InvalidApiVersionParameter", "")
			for _, v := range allVersions {
				if !strings.Contains(e.Message, v) {
					t.Errorf("%s: message does not list the supported version %s", r, v)
				}
			}
		})
	}
	for _, path := range []string{"/subscriptions", "/subscriptions/" + testSub + "/resourceGroups/rg", envID("rg", "env")} {
		t.Run("malformed/"+path, func(t *testing.T) {
			a := a.with(t)
			wantError(t, a.do("GET", path+"?api-version=latest", nil, nil), http.StatusBadRequest, "InvalidApiVersionParameter", "")
		})
	}
	for _, v := range allVersions {
		t.Run("accepted/"+v, func(t *testing.T) {
			a := a.with(t)
			a.must(http.StatusOK, "GET", poolPath("rg", "versioned", v), nil)
			a.must(http.StatusOK, "GET", poolsInGroup("rg", v), nil)
			a.must(http.StatusOK, "GET", poolsInSub(v), nil)
			r := a.do("PATCH", poolPath("rg", "versioned", v), `{"properties":{"scaleConfiguration":{"readySessionInstances":1}}}`, nil)
			if r.Status != http.StatusAccepted {
				t.Fatalf("%s: want 202", r)
			}
			a.waitAsync(r.Header.Get("Azure-AsyncOperation"), "Succeeded")
			if u := r.Header.Get("Location"); !strings.HasSuffix(u, "api-version="+v) {
				t.Errorf("%s: Location %q does not carry api-version %s", r, u, v)
			}
		})
	}
}
