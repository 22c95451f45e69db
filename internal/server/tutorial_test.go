package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tidepool-dev/tidepool/internal/auth"
	"github.com/tidepool-dev/tidepool/internal/rbac"
)

// TestShellTutorialFlow runs the Shell session pool tutorial through HTTP:
// a pool, a user-assigned identity, Session Executor for the identity on
// the pool, a token for the identity, an execution, the assignments at the
// pool's scope, and the resource group's deletion taking pool, identity
// and assignment with it.
func TestShellTutorialFlow(t *testing.T) {
	dir, info := startProcessServer(t)
	creds := readCredentials(t, dir)
	c := &http.Client{Timeout: time.Minute}
	admin := tokenFor(t, creds, "https://management.azure.com/.default")
	ep := creds.Endpoint

	const apiVersion = "2025-02-02-preview"
	sub := "/subscriptions/" + info.SubscriptionID
	rg := sub + "/resourceGroups/tutorial-rg"
	poolID := rg + "/providers/Microsoft.App/sessionpools/myshellpool"
	mustDo(t, c, "PUT", ep+rg+"?api-version=2021-04-01", admin, map[string]string{"location": "northcentralus"}, 201)
	shellPool := func(id string) {
		mustDo(t, c, "PUT", ep+id+"?api-version="+apiVersion, admin, map[string]any{
			"location": "North Central US",
			"properties": map[string]any{
				"poolManagementType":          "Dynamic",
				"containerType":               "Shell",
				"scaleConfiguration":          map[string]any{"maxConcurrentSessions": 5},
				"dynamicPoolConfiguration":    map[string]any{"lifecycleConfiguration": map[string]any{"lifecycleType": "Timed", "cooldownPeriodInSeconds": 300}},
				"sessionNetworkConfiguration": map[string]any{"status": "EgressEnabled"},
			},
		}, 201)
		waitUntil(t, id+" Succeeded", func() bool {
			return provisioningState(mustDo(t, c, "GET", ep+id+"?api-version="+apiVersion, admin, nil, 200).Body) == "Succeeded"
		})
	}
	shellPool(poolID)
	otherPool := rg + "/providers/Microsoft.App/sessionPools/otherpool"
	shellPool(otherPool)

	// az identity create; az identity show --query principalId.
	uami := rg + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/myshellpool-uami"
	mustDo(t, c, "PUT", ep+uami+"?api-version=2023-01-31", admin, map[string]string{"location": "northcentralus"}, 201)
	props := getJSON(t, c, ep+uami+"?api-version=2023-01-31", admin)["properties"].(map[string]any)
	principalID, clientID := props["principalId"].(string), props["clientId"].(string)

	// az role assignment create --assignee $UAMI_PRINCIPAL --role 0fb8eba5-... --scope $POOL_ID
	assignment := poolID + "/providers/Microsoft.Authorization/roleAssignments/" + uuid.NewString()
	mustDo(t, c, "PUT", ep+assignment+"?api-version=2022-04-01", admin, map[string]any{"properties": map[string]any{
		"roleDefinitionId": sub + "/providers/Microsoft.Authorization/roleDefinitions/" + rbac.SessionExecutorID,
		"principalId":      principalID,
	}}, 201)

	// A token for the identity: the admin presents its own token for
	// api://AzureADTokenExchange as the identity's client assertion.
	identityToken := func() *response {
		assertion := tokenFor(t, creds, auth.AudienceTokenExchange+"/.default")
		return send(t, c, "POST", ep+"/"+creds.TenantID+"/oauth2/v2.0/token", "", url.Values{
			"grant_type": {"client_credentials"}, "client_id": {clientID},
			"client_assertion_type": {auth.AssertionType}, "client_assertion": {assertion},
			"scope": {"https://dynamicsessions.io/.default"},
		})
	}
	r := identityToken()
	if r.Status != 200 {
		t.Fatalf("token for the identity: %s", r)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(r.Body, &tok); err != nil {
		t.Fatal(err)
	}

	// The tutorial's execution, as the identity and as the admin with a
	// plain management token.
	execURL := func(pool string) string {
		name := pool[strings.LastIndex(pool, "/")+1:]
		return ep + sub + "/resourceGroups/tutorial-rg/sessionPools/" + name + "/executions?api-version=" + apiVersion + "&identifier=" + uuid.NewString()
	}
	body := map[string]any{
		"codeInputType": "inline", "executionType": "synchronous",
		"command":          []string{"/bin/bash", "-c", "echo 'hello world'; echo 'hi'"},
		"timeoutInSeconds": 600,
	}
	for who, token := range map[string]string{"identity": tok.AccessToken, "admin": admin} {
		r := mustDo(t, c, "POST", execURL(poolID), token, body, 200, 202)
		if !strings.Contains(string(r.Body), "hello world") {
			t.Errorf("execution as %s: %s", who, r)
		}
	}
	// The identity holds its role on one pool only.
	if r := send(t, c, "POST", execURL(otherPool), tok.AccessToken, body); r.Status != 403 {
		t.Errorf("execution as the identity on another pool: %s, want 403", r)
	}

	// az role assignment list --scope $POOL_ID
	list := getJSON(t, c, ep+poolID+"/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01", admin)["value"].([]any)
	found := false
	for _, v := range list {
		p := v.(map[string]any)["properties"].(map[string]any)
		found = found || (p["principalId"] == principalID && strings.HasSuffix(p["roleDefinitionId"].(string), rbac.SessionExecutorID))
	}
	if !found {
		t.Errorf("role assignments at the pool do not hold the identity's Session Executor: %v", list)
	}

	// az group delete: pool, identity and assignment go.
	mustDo(t, c, "DELETE", ep+rg+"?api-version=2021-04-01", admin, nil, 202)
	waitUntil(t, "the group deleted", func() bool {
		return send(t, c, "GET", ep+rg+"?api-version=2021-04-01", admin, nil).Status == 404
	})
	for _, id := range []string{poolID + "?api-version=" + apiVersion, uami + "?api-version=2023-01-31", assignment + "?api-version=2022-04-01"} {
		if r := send(t, c, "GET", ep+id, admin, nil); r.Status != 404 {
			t.Errorf("GET %s after the group's deletion: %s, want 404", id, r)
		}
	}
	mine := getJSON(t, c, ep+sub+"/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter="+url.QueryEscape("principalId eq '"+principalID+"'"), admin)["value"].([]any)
	if len(mine) != 0 {
		t.Errorf("the identity still holds %d role assignments", len(mine))
	}
	if r := identityToken(); r.Status != 401 {
		t.Errorf("token for the deleted identity: %s, want 401", r)
	}
}
