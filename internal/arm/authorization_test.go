package arm_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/tidepool-dev/tidepool/internal/auth"
	"github.com/tidepool-dev/tidepool/internal/rbac"
	"github.com/tidepool-dev/tidepool/internal/store"
)

const authzAV = "2022-04-01"

// as returns a copy of a that calls as a new service principal, stored so
// that roles can be assigned to it.
func (a *testAPI) as(name string) (*testAPI, *store.Principal) {
	a.t.Helper()
	p := &store.Principal{ObjectID: uuid.NewString(), ClientID: uuid.NewString(), DisplayName: name, Kind: "ServicePrincipal"}
	if err := a.st.PutPrincipal(context.Background(), p); err != nil {
		a.t.Fatalf("PutPrincipal: %v", err)
	}
	c := *a
	tok, _, err := a.issuer.Issue(p, auth.AudienceManagement)
	if err != nil {
		a.t.Fatalf("Issue: %v", err)
	}
	c.token = tok
	return &c, p
}

func groupID(rg string) string { return "/subscriptions/" + testSub + "/resourceGroups/" + rg }

func roleDefID(role string) string {
	return "/subscriptions/" + testSub + "/providers/Microsoft.Authorization/roleDefinitions/" + role
}

// assign gives principal the role at scope, as the admin.
func (a *testAPI) assign(scope, principal, role string) string {
	a.t.Helper()
	name := uuid.NewString()
	a.must(http.StatusCreated, "PUT", scope+"/providers/Microsoft.Authorization/roleAssignments/"+name+"?api-version="+authzAV,
		map[string]any{"properties": map[string]any{"roleDefinitionId": roleDefID(role), "principalId": principal}})
	return name
}

func TestManagedIdentities(t *testing.T) {
	a := newTestAPI(t)
	a.createGroup("ids", "westus2")
	path := identityPath("ids", "worker")
	r := a.must(http.StatusCreated, "PUT", path, map[string]any{"location": "westus2", "tags": map[string]string{"a": "b"}})
	created := r.json(t)
	props := created["properties"].(map[string]any)
	for _, k := range []string{"principalId", "clientId", "tenantId"} {
		if props[k] == "" || props[k] == nil {
			t.Errorf("properties.%s is empty: %s", k, r)
		}
	}
	if created["type"] != "Microsoft.ManagedIdentity/userAssignedIdentities" {
		t.Errorf("type = %v", created["type"])
	}
	// A second PUT keeps the ids.
	again := a.must(http.StatusOK, "PUT", path, map[string]any{"location": "westus2"}).json(t)
	if again["properties"].(map[string]any)["principalId"] != props["principalId"] {
		t.Errorf("principalId changed on update: %v → %v", props["principalId"], again["properties"])
	}
	wantError(t, a.do("PUT", path, map[string]any{"location": "eastus"}, nil), 400, "InvalidResourceLocation", "location")
	wantError(t, a.do("PUT", identityPath("ids", "x"), map[string]any{"location": "eastus"}, nil), 400, "InvalidResourceName", "name")
	wantError(t, a.do("PUT", identityPath("ids", "nolocation"), map[string]any{}, nil), 400, "LocationRequired", "location")

	list := a.must(200, "GET", "/subscriptions/"+testSub+"/providers/Microsoft.ManagedIdentity/userAssignedIdentities?api-version=2023-01-31", nil).json(t)
	if n := len(list["value"].([]any)); n != 2 { // worker and the "uami" of createGroup
		t.Errorf("subscription list has %d identities, want 2", n)
	}
	a.must(200, "DELETE", path, nil)
	a.must(204, "DELETE", path, nil)
	wantError(t, a.do("GET", path, nil, nil), 404, "ResourceNotFound", "")
}

func TestRoleDefinitions(t *testing.T) {
	a := newTestAPI(t)
	base := "/subscriptions/" + testSub + "/providers/Microsoft.Authorization/roleDefinitions"
	all := a.must(200, "GET", base+"?api-version="+authzAV, nil).json(t)["value"].([]any)
	if len(all) != len(rbac.BuiltIn) {
		t.Errorf("listed %d role definitions, want %d", len(all), len(rbac.BuiltIn))
	}
	one := a.must(200, "GET", base+"?api-version="+authzAV+"&$filter=roleName%20eq%20'Azure%20ContainerApps%20Session%20Executor'", nil).json(t)["value"].([]any)
	if len(one) != 1 || one[0].(map[string]any)["name"] != rbac.SessionExecutorID {
		t.Fatalf("filter by roleName: %v", one)
	}
	def := a.must(200, "GET", base+"/"+rbac.ReaderID+"?api-version="+authzAV, nil).json(t)
	if def["id"] != roleDefID(rbac.ReaderID) || def["properties"].(map[string]any)["roleName"] != "Reader" {
		t.Errorf("GET Reader: %v", def)
	}
	wantError(t, a.do("GET", base+"/"+uuid.NewString()+"?api-version="+authzAV, nil, nil), 404, "RoleDefinitionDoesNotExist", "")
	wantError(t, a.do("GET", base+"?api-version="+authzAV+"&$filter=foo", nil, nil), 400, "InvalidFilter", "")
}

func TestRoleAssignments(t *testing.T) {
	a := newTestAPI(t)
	a.createGroup("rg", "westus2")
	a.putPool("rg", "pool1", latest, pythonBody(t, latest))
	identity := a.must(200, "GET", identityPath("rg", "uami"), nil).json(t)
	principal := identity["properties"].(map[string]any)["principalId"].(string)

	pool := poolID("rg", "pool1")
	name := uuid.NewString()
	path := pool + "/providers/Microsoft.Authorization/roleAssignments/" + name + "?api-version=" + authzAV
	// The tutorial's body: roleDefinitionId below the pool's scope.
	body := map[string]any{"properties": map[string]any{
		"roleDefinitionId": pool + "/providers/Microsoft.Authorization/roleDefinitions/" + rbac.SessionExecutorID,
		"principalId":      principal,
	}}
	got := a.must(http.StatusCreated, "PUT", path, body).json(t)
	props := got["properties"].(map[string]any)
	if props["scope"] != pool || props["principalId"] != principal || props["principalType"] != "ServicePrincipal" ||
		props["roleDefinitionId"] != roleDefID(rbac.SessionExecutorID) {
		t.Errorf("created assignment: %v", got)
	}
	a.must(http.StatusCreated, "PUT", path, body) // repeated: the same
	wantError(t, a.do("PUT", pool+"/providers/Microsoft.Authorization/roleAssignments/"+uuid.NewString()+"?api-version="+authzAV, body, nil), 409, "RoleAssignmentExists", "")
	wantError(t, a.do("PUT", pool+"/providers/Microsoft.Authorization/roleAssignments/not-a-guid?api-version="+authzAV, body, nil), 400, "InvalidRoleAssignmentId", "")
	wantError(t, a.do("PUT", pool+"/providers/Microsoft.Authorization/roleAssignments/"+uuid.NewString()+"?api-version="+authzAV,
		map[string]any{"properties": map[string]any{"roleDefinitionId": roleDefID(rbac.ReaderID), "principalId": uuid.NewString()}}, nil), 400, "PrincipalNotFound", "properties.principalId")
	wantError(t, a.do("PUT", pool+"/providers/Microsoft.Authorization/roleAssignments/"+uuid.NewString()+"?api-version="+authzAV,
		map[string]any{"properties": map[string]any{"roleDefinitionId": roleDefID(uuid.NewString()), "principalId": principal}}, nil), 400, "RoleDefinitionDoesNotExist", "properties.roleDefinitionId")
	wantError(t, a.do("PUT", poolID("rg", "nopool")+"/providers/Microsoft.Authorization/roleAssignments/"+uuid.NewString()+"?api-version="+authzAV, body, nil), 404, "ResourceNotFound", "")

	list := func(scope, filter string) int {
		t.Helper()
		q := "?api-version=" + authzAV
		if filter != "" {
			q += "&$filter=" + strings.ReplaceAll(filter, " ", "%20")
		}
		return len(a.must(200, "GET", scope+"/providers/Microsoft.Authorization/roleAssignments"+q, nil).json(t)["value"].([]any))
	}
	// At the pool: its own and the test principal's Owner at the root.
	if n := list(pool, ""); n != 2 {
		t.Errorf("list at pool: %d, want 2", n)
	}
	if n := list(pool, "principalId eq '"+principal+"'"); n != 1 {
		t.Errorf("list at pool for the identity: %d, want 1", n)
	}
	if n := list(groupID("rg"), "atScope()"); n != 1 { // the root Owner only
		t.Errorf("list atScope() at the group: %d, want 1", n)
	}
	if n := list(groupID("rg"), ""); n != 2 { // and the pool's, below
		t.Errorf("list at the group: %d, want 2", n)
	}

	a.must(200, "GET", path, nil)
	a.must(200, "DELETE", path, nil)
	a.must(204, "DELETE", path, nil)
	wantError(t, a.do("GET", path, nil, nil), 404, "RoleAssignmentNotFound", "")
}

func TestAuthorization(t *testing.T) {
	a := newTestAPI(t)
	a.createGroup("mine", "westus2")
	a.createGroup("theirs", "westus2")
	a.putPool("mine", "pool1", latest, pythonBody(t, latest))
	a.putPool("theirs", "pool2", latest, pythonBody(t, latest))

	bob, bobP := a.as("bob")
	// No role: nothing, with ARM's message naming who, what and where.
	r := bob.do("GET", poolPath("mine", "pool1", latest), nil, nil)
	e := wantError(t, r, 403, "AuthorizationFailed", "")
	if !strings.Contains(e.Message, bobP.ObjectID) || !strings.Contains(e.Message, "Microsoft.App/sessionPools/read") || !strings.Contains(e.Message, poolID("mine", "pool1")) {
		t.Errorf("403 message does not name principal, action and scope: %s", e.Message)
	}
	wantError(t, bob.do("GET", "/subscriptions/"+testSub+"?api-version="+groupAV, nil, nil), 403, "AuthorizationFailed", "")
	if subs := bob.must(200, "GET", "/subscriptions?api-version="+groupAV, nil).json(t)["value"].([]any); len(subs) != 0 {
		t.Errorf("bob sees %d subscriptions without any role", len(subs))
	}

	// Reader on one group: reads there, nothing else; lists are filtered.
	a.assign(groupID("mine"), bobP.ObjectID, rbac.ReaderID)
	bob.must(200, "GET", poolPath("mine", "pool1", latest), nil)
	wantError(t, bob.do("GET", poolPath("theirs", "pool2", latest), nil, nil), 403, "AuthorizationFailed", "")
	wantError(t, bob.do("PUT", poolPath("mine", "pool3", latest), pythonBody(t, latest), nil), 403, "AuthorizationFailed", "")
	wantError(t, bob.do("DELETE", poolPath("mine", "pool1", latest), nil, nil), 403, "AuthorizationFailed", "")
	if pools := bob.must(200, "GET", poolsInSub(latest), nil).json(t)["value"].([]any); len(pools) != 1 {
		t.Errorf("bob lists %d pools in the subscription, want 1 (his group's)", len(pools))
	}
	if groups := bob.must(200, "GET", "/subscriptions/"+testSub+"/resourceGroups?api-version="+groupAV, nil).json(t)["value"].([]any); len(groups) != 1 {
		t.Errorf("bob lists %d groups, want 1", len(groups))
	}
	wantError(t, bob.do("GET", poolsInGroup("theirs", latest), nil, nil), 403, "AuthorizationFailed", "")
	bob.must(200, "GET", "/subscriptions/"+testSub+"?api-version="+groupAV, nil)

	// Contributor: writes resources, but not role assignments, and may
	// attach only identities it may assign.
	carol, carolP := a.as("carol")
	a.assign(groupID("mine"), carolP.ObjectID, rbac.ContributorID)
	carol.putPool("mine", "pool3", latest, pythonBody(t, latest))
	wantError(t, carol.do("PUT", groupID("mine")+"/providers/Microsoft.Authorization/roleAssignments/"+uuid.NewString()+"?api-version="+authzAV,
		map[string]any{"properties": map[string]any{"roleDefinitionId": roleDefID(rbac.OwnerID), "principalId": carolP.ObjectID}}, nil), 403, "AuthorizationFailed", "")
	withIdentity := func(rg string) map[string]any {
		p := pythonBody(t, latest)
		p["identity"] = map[string]any{"type": "UserAssigned", "userAssignedIdentities": map[string]any{
			"/subscriptions/" + testSub + "/resourceGroups/" + rg + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uami": map[string]any{}}}
		return p
	}
	carol.putPool("mine", "pool4", latest, withIdentity("mine"))
	r = carol.do("PUT", poolPath("mine", "pool5", latest), withIdentity("theirs"), nil)
	if e := wantError(t, r, 403, "AuthorizationFailed", ""); !strings.Contains(e.Message, "assign/action") {
		t.Errorf("attaching another group's identity: %s", e.Message)
	}

	// Data-plane tokens never open the management API.
	dp, _, _ := a.issuer.Issue(testPrincipal, auth.AudienceDataPlane)
	wantError(t, a.do("GET", poolPath("mine", "pool1", latest), nil, headers{"Authorization": "Bearer " + dp}), 401, "InvalidAuthenticationTokenAudience", "")
}

func TestGroupDeleteTakesIdentitiesAndAssignments(t *testing.T) {
	a := newTestAPI(t)
	a.createGroup("gone", "westus2")
	a.putPool("gone", "pool1", latest, pythonBody(t, latest))
	identity := a.must(200, "GET", identityPath("gone", "uami"), nil).json(t)
	principal := identity["properties"].(map[string]any)["principalId"].(string)
	a.assign(poolID("gone", "pool1"), principal, rbac.SessionExecutorID)

	a.must(202, "DELETE", groupPath("gone"), nil)
	a.poll("the group to go", func() bool { return a.do("GET", groupPath("gone"), nil, nil).Status == 404 })
	ctx := context.Background()
	left, err := a.st.ListResources(ctx, store.ListOptions{Scope: groupID("gone"), Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(left.Items) != 0 {
		t.Errorf("%d resources left in the deleted group, first %s", len(left.Items), left.Items[0].ID)
	}
	all, err := rbac.ListAssignments(ctx, a.st)
	if err != nil {
		t.Fatal(err)
	}
	for _, as := range all {
		if as.PrincipalID == principal {
			t.Errorf("assignment %s survived its group", as.ID)
		}
	}
}
