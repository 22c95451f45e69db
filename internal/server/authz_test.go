package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tidepool-dev/tidepool/internal/auth"
	"github.com/tidepool-dev/tidepool/internal/rbac"
	"github.com/tidepool-dev/tidepool/internal/server"
	"github.com/tidepool-dev/tidepool/internal/store"
)

// need is what a route asks of its caller.
type need int

const (
	anyone need = iota // any authenticated caller
	read               // Reader, Contributor, Owner, User Access Administrator
	write              // Contributor, Owner
	assign             // Owner, User Access Administrator (role assignments)
	data               // Session Executor, Contributor, Owner (the pool's data plane)
	root               // Owner or User Access Administrator at the root scope (the directory)
)

// roleGrants says which needs each built-in role meets.
var roleGrants = map[string]map[need]bool{
	rbac.OwnerID:                   {read: true, write: true, assign: true, data: true},
	rbac.ContributorID:             {read: true, write: true, data: true},
	rbac.ReaderID:                  {read: true},
	rbac.UserAccessAdministratorID: {read: true, assign: true},
	rbac.SessionExecutorID:         {data: true},
}

type route struct {
	method, path string // path relative to the endpoint, with its query
	body         any
	need         need
	plane        string // "mgmt" or "data"
}

// TestRoutesByRole walks every route of both APIs with every kind of bad
// token, and with each built-in role assigned at the route's resource
// group and at a sibling group: nothing is reachable that should not be.
func TestRoutesByRole(t *testing.T) {
	dir := t.TempDir()
	info := startServer(t, server.Config{DataDir: dir, Sessions: noSessions{}})
	creds := readCredentials(t, dir)
	ctx := t.Context()
	c := http.DefaultClient
	admin, err := managementToken(ctx, c, creds)
	if err != nil {
		t.Fatal(err)
	}

	sub := "/subscriptions/" + info.SubscriptionID
	rg, other := sub+"/resourceGroups/rg", sub+"/resourceGroups/other"
	poolID := rg + "/providers/Microsoft.App/sessionPools/pool1"
	uami := rg + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uami"
	for _, g := range []string{rg, other} {
		mustDo(t, c, "PUT", creds.Endpoint+g+"?api-version=2021-04-01", admin, map[string]string{"location": "westus2"}, 201)
	}
	mustDo(t, c, "PUT", creds.Endpoint+uami+"?api-version=2023-01-31", admin, map[string]string{"location": "westus2"}, 201)
	poolBody := map[string]any{"location": "westus2", "properties": map[string]any{
		"containerType": "PythonLTS", "poolManagementType": "Dynamic",
		"scaleConfiguration":       map[string]any{"maxConcurrentSessions": 5, "readySessionInstances": 0},
		"dynamicPoolConfiguration": map[string]any{"lifecycleConfiguration": map[string]any{"lifecycleType": "Timed", "cooldownPeriodInSeconds": 300}},
	}}
	r := mustDo(t, c, "PUT", creds.Endpoint+poolID+"?api-version=2025-10-02-preview", admin, poolBody, 201)
	opURL, _ := url.Parse(r.Header.Get("Azure-AsyncOperation"))

	const av = "?api-version=2025-10-02-preview"
	const dq = av + "&identifier=session-1"
	ghostPool := rg + "/providers/Microsoft.App/sessionPools/ghost"
	assignmentName := uuid.NewString()
	uamiPrincipal := getJSON(t, c, creds.Endpoint+uami+"?api-version=2023-01-31", admin)["properties"].(map[string]any)["principalId"]
	routes := []route{
		{"GET", "/providers/Microsoft.App/operations" + av, nil, anyone, "mgmt"},
		{"GET", sub + "/providers/Microsoft.Authorization/roleDefinitions?api-version=2022-04-01", nil, anyone, "mgmt"},
		{"GET", rg + "?api-version=2021-04-01", nil, read, "mgmt"},
		{"HEAD", rg + "?api-version=2021-04-01", nil, read, "mgmt"},
		{"PATCH", rg + "?api-version=2021-04-01", map[string]any{"tags": map[string]string{"a": "b"}}, write, "mgmt"},
		{"GET", rg + "/providers/Microsoft.App/sessionPools" + av, nil, read, "mgmt"},
		{"GET", poolID + av, nil, read, "mgmt"},
		{"PATCH", poolID + av, map[string]any{"tags": map[string]string{"a": "b"}}, write, "mgmt"},
		{"PUT", ghostPool + av, poolBody, write, "mgmt"},
		{"DELETE", rg + "/providers/Microsoft.App/sessionPools/nothere" + av, nil, write, "mgmt"},
		{"POST", poolID + "/fetchMcpServerCredentials" + av, nil, write, "mgmt"},
		{"GET", opURL.Path + "?" + opURL.RawQuery, nil, read, "mgmt"},
		{"GET", rg + "/providers/Microsoft.App/managedEnvironments?api-version=2025-01-01", nil, read, "mgmt"},
		{"PUT", rg + "/providers/Microsoft.App/managedEnvironments/env1?api-version=2025-01-01", map[string]string{"location": "westus2"}, write, "mgmt"},
		{"DELETE", rg + "/providers/Microsoft.App/managedEnvironments/nothere?api-version=2025-01-01", nil, write, "mgmt"},
		{"GET", rg + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities?api-version=2023-01-31", nil, read, "mgmt"},
		{"GET", uami + "?api-version=2023-01-31", nil, read, "mgmt"},
		{"PUT", uami + "?api-version=2023-01-31", map[string]string{"location": "westus2"}, write, "mgmt"},
		{"DELETE", rg + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/nothere?api-version=2023-01-31", nil, write, "mgmt"},
		{"GET", rg + "/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01", nil, read, "mgmt"},
		{"PUT", rg + "/providers/Microsoft.Authorization/roleAssignments/" + assignmentName + "?api-version=2022-04-01",
			map[string]any{"properties": map[string]any{"roleDefinitionId": sub + "/providers/Microsoft.Authorization/roleDefinitions/" + rbac.ReaderID, "principalId": uamiPrincipal}}, assign, "mgmt"},
		{"DELETE", rg + "/providers/Microsoft.Authorization/roleAssignments/" + uuid.NewString() + "?api-version=2022-04-01", nil, assign, "mgmt"},
		{"GET", rg + "/providers/Microsoft.Resources/deployments?api-version=2021-04-01", nil, read, "mgmt"},
		{"GET", rg + "/providers/Microsoft.Resources/deployments/nothere?api-version=2021-04-01", nil, read, "mgmt"},
		{"PUT", rg + "/providers/Microsoft.Resources/deployments/empty?api-version=2021-04-01", map[string]any{"properties": map[string]any{
			"mode": "Incremental", "template": map[string]any{"contentVersion": "1.0.0.0", "resources": []any{}}}}, write, "mgmt"},
		{"GET", "/v1.0/me", nil, anyone, "mgmt"},
		{"GET", "/v1.0/servicePrincipals", nil, anyone, "mgmt"},
		{"POST", "/v1.0/servicePrincipals", map[string]string{"displayName": "made-by-test"}, root, "mgmt"},
		{"POST", "/v1.0/servicePrincipals/" + adminObjectID(t, dir) + "/addPassword", map[string]any{}, root, "mgmt"},
		{"DELETE", "/v1.0/servicePrincipals/" + uuid.NewString(), nil, root, "mgmt"},
		{"GET", "/v1.0/users", nil, anyone, "mgmt"},
		{"POST", "/v1.0/users", map[string]any{"userPrincipalName": "made@by.test", "passwordProfile": map[string]string{"password": "a long enough password"}}, root, "mgmt"},
		{"DELETE", "/v1.0/users/" + uuid.NewString(), nil, root, "mgmt"},
	}
	base := "/subscriptions/" + info.SubscriptionID + "/resourceGroups/rg/sessionPools/pool1/"
	for _, d := range []struct{ method, path string }{
		{"POST", "executions" + dq}, {"GET", "executions/" + uuid.NewString() + dq},
		{"POST", "code/execute" + dq}, {"POST", "python/execute" + dq},
		{"POST", "files/upload" + dq}, {"GET", "files" + dq}, {"GET", "files/content/a.txt" + dq},
		{"GET", "files/a.txt" + dq}, {"DELETE", "files/a.txt" + dq},
		{"GET", "session" + dq}, {"DELETE", "session" + dq},
		{"GET", "listSessions" + av}, {"GET", "metadata" + av},
		{"POST", ".management/listSessions" + av}, {"POST", ".management/getSession" + dq}, {"POST", ".management/stopSession" + dq},
	} {
		routes = append(routes, route{d.method, base + d.path, map[string]any{"code": "1"}, data, "data"})
	}

	// Bad tokens: 401 everywhere.
	issuer := serverIssuer(t, dir, info, time.Now().Add(-3*time.Hour))
	adminP := &store.Principal{ObjectID: adminObjectID(t, dir), ClientID: creds.ClientID, Kind: "ServicePrincipal"}
	expired, _, _ := issuer.Issue(adminP, auth.AudienceManagement)
	foreignKey, _ := auth.GenerateKey()
	forger, _ := auth.NewIssuer(auth.Config{TenantID: info.TenantID, PublicURL: info.Endpoint, Key: foreignKey})
	forged, _, _ := forger.Issue(adminP, auth.AudienceManagement)
	dataTok := tokenFor(t, creds, "https://dynamicsessions.io/.default")
	graphTok := tokenFor(t, creds, "https://graph.microsoft.com/.default")
	for _, rt := range routes {
		wrongAudience := dataTok
		if rt.plane == "data" {
			wrongAudience = graphTok
		}
		for name, tok := range map[string]string{"no token": "", "expired": expired, "wrong signature": forged, "wrong audience": wrongAudience, "garbage": "not.a.token"} {
			r := send(t, c, rt.method, creds.Endpoint+rt.path, tok, rt.body)
			if r.Status != 401 {
				t.Errorf("%s %s with %s: %s, want 401", rt.method, rt.path, name, r)
			}
		}
	}

	// Each role at the route's group, at a sibling group, and none.
	roleStore := openStore(t, dir)
	liveIssuer := serverIssuer(t, dir, info, time.Now())
	for role, grants := range roleGrants {
		for _, at := range []string{"none", "rg", "sibling"} {
			p := &store.Principal{ObjectID: uuid.NewString(), ClientID: uuid.NewString(), DisplayName: role + "@" + at, Kind: "ServicePrincipal"}
			if err := roleStore.PutPrincipal(ctx, p); err != nil {
				t.Fatal(err)
			}
			switch at {
			case "rg":
				assignRole(t, c, creds.Endpoint, admin, rg, p.ObjectID, role)
			case "sibling":
				assignRole(t, c, creds.Endpoint, admin, other, p.ObjectID, role)
			}
			mgmtTok, _, _ := liveIssuer.Issue(p, auth.AudienceManagement)
			dpTok, _, _ := liveIssuer.Issue(p, auth.AudienceDataPlane)
			for _, rt := range routes {
				tok := mgmtTok
				if rt.plane == "data" {
					tok = dpTok
				}
				allowed := rt.need == anyone || (at == "rg" && grants[rt.need])
				r := send(t, c, rt.method, creds.Endpoint+rt.path, tok, rt.body)
				denied := r.Status == 401 || r.Status == 403
				if allowed == denied {
					t.Errorf("%s at %s: %s %s: %s (allowed=%v)", roleName(role), at, rt.method, rt.path, r, allowed)
				}
			}
		}
	}
}

func roleName(id string) string {
	r, _ := rbac.RoleByID(id)
	return r.Name
}

// openStore opens the server's database beside it, for what no API does:
// reading the signing key, adding principals.
func openStore(t *testing.T, dir string) *store.SQLite {
	t.Helper()
	st, err := store.OpenSQLite(t.Context(), filepath.Join(dir, "tidepool.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// serverIssuer returns an issuer with the server's key whose clock says
// now: it mints tokens the server accepts (or, from the past, expired ones).
func serverIssuer(t *testing.T, dir string, info server.Info, now time.Time) *auth.Issuer {
	t.Helper()
	st := openStore(t, dir)
	pem, err := st.Setting(t.Context(), "signing_key")
	if err != nil {
		t.Fatal(err)
	}
	key, err := auth.ParseKey(pem)
	if err != nil {
		t.Fatal(err)
	}
	i, err := auth.NewIssuer(auth.Config{TenantID: info.TenantID, PublicURL: info.Endpoint, Key: key, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func adminObjectID(t *testing.T, dir string) string {
	t.Helper()
	id, err := openStore(t, dir).Setting(t.Context(), "admin_object_id")
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// tokenFor gets a token for scope with the admin's credentials.
func tokenFor(t *testing.T, creds server.Credentials, scope string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {creds.ClientID}, "client_secret": {creds.ClientSecret}, "scope": {scope}}
	r := mustDo(t, http.DefaultClient, "POST", creds.Endpoint+"/"+creds.TenantID+"/oauth2/v2.0/token", "", form, 200)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(r.Body, &tok); err != nil {
		t.Fatal(err)
	}
	return tok.AccessToken
}

func getJSON(t *testing.T, c *http.Client, u, token string) map[string]any {
	t.Helper()
	r := mustDo(t, c, "GET", u, token, nil, 200)
	var v map[string]any
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return v
}

// assignRole assigns role to principal at scope, as the admin.
func assignRole(t *testing.T, c *http.Client, endpoint, admin, scope, principal, role string) {
	t.Helper()
	body := map[string]any{"properties": map[string]any{
		"roleDefinitionId": fmt.Sprintf("/providers/Microsoft.Authorization/roleDefinitions/%s", role), "principalId": principal}}
	mustDo(t, c, "PUT", endpoint+scope+"/providers/Microsoft.Authorization/roleAssignments/"+uuid.NewString()+"?api-version=2022-04-01", admin, body, 201)
}

// send is do that fails the test on a transport error only.
func send(t *testing.T, c *http.Client, method, u, token string, body any) *response {
	t.Helper()
	r, err := do(t.Context(), c, method, u, token, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	return r
}

// TestStrictAudiences: by default a management token opens the data plane
// (the tutorial's plain get-access-token); with StrictAudiences only
// data-plane tokens do. Roles apply either way.
func TestStrictAudiences(t *testing.T) {
	for _, strict := range []bool{false, true} {
		t.Run(fmt.Sprintf("strict=%v", strict), func(t *testing.T) {
			dir := t.TempDir()
			info := startServer(t, server.Config{DataDir: dir, Sessions: noSessions{}, StrictAudiences: strict})
			creds := readCredentials(t, dir)
			u := creds.Endpoint + "/subscriptions/" + info.SubscriptionID + "/resourceGroups/rg/sessionPools/nopool/listSessions?api-version=2025-10-02-preview"
			mgmt := tokenFor(t, creds, "https://management.azure.com/.default")
			data := tokenFor(t, creds, "https://dynamicsessions.io/.default")
			legacy := tokenFor(t, creds, "https://acasessions.io/.default")
			wantMgmt := 404 // past authorization: the pool does not exist
			if strict {
				wantMgmt = 401
			}
			for tok, want := range map[string]int{mgmt: wantMgmt, data: 404, legacy: 404} {
				if r := send(t, http.DefaultClient, "GET", u, tok, nil); r.Status != want {
					t.Errorf("%s: want %d", r, want)
				}
			}
		})
	}
}
