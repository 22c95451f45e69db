package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tidepool-dev/tidepool/internal/rbac"
	"github.com/tidepool-dev/tidepool/internal/server"
)

// TestServicePrincipals: an administrator creates a service principal,
// gives it a secret and a role; the principal signs in with the secret and
// gets exactly that role; a removed secret no longer signs in; a deleted
// principal takes its role assignments with it.
func TestServicePrincipals(t *testing.T) {
	dir := t.TempDir()
	info := startServer(t, server.Config{DataDir: dir})
	creds := readCredentials(t, dir)
	c := http.DefaultClient
	ep := creds.Endpoint
	admin := tokenFor(t, creds, "https://management.azure.com/.default")

	var sp struct {
		ID, AppID, DisplayName string
	}
	json.Unmarshal(mustDo(t, c, "POST", ep+"/v1.0/servicePrincipals", admin, map[string]string{"displayName": "ci-robot"}, 201).Body, &sp)
	var pw struct {
		KeyID, SecretText string
	}
	json.Unmarshal(mustDo(t, c, "POST", ep+"/v1.0/servicePrincipals/"+sp.ID+"/addPassword", admin, map[string]any{"passwordCredential": map[string]string{"displayName": "ci"}}, 200).Body, &pw)
	if pw.SecretText == "" || pw.KeyID == "" {
		t.Fatalf("addPassword gave no secret")
	}
	// The secret is shown once: reads give its hint only.
	got := mustDo(t, c, "GET", ep+"/v1.0/servicePrincipals/"+sp.ID, admin, nil, 200)
	if contains(got.Body, pw.SecretText) {
		t.Errorf("GET shows the secret: %s", got)
	}
	list := getJSON(t, c, ep+"/v1.0/servicePrincipals?$filter="+url.QueryEscape("appId eq '"+sp.AppID+"'"), admin)["value"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["id"] != sp.ID {
		t.Errorf("filter by appId: %v", list)
	}

	robotCreds := creds
	robotCreds.ClientID, robotCreds.ClientSecret = sp.AppID, pw.SecretText
	robot := tokenFor(t, robotCreds, "https://management.azure.com/.default")
	sub := "/subscriptions/" + info.SubscriptionID
	mustDo(t, c, "GET", ep+sub+"/resourcegroups?api-version=2021-04-01", robot, nil, 403) // no role yet
	mustDo(t, c, "PUT", ep+sub+"/resourcegroups/rg?api-version=2021-04-01", admin, map[string]string{"location": "westus2"}, 201)
	assignRole(t, c, ep, admin, sub, sp.ID, rbac.ReaderID)
	mustDo(t, c, "GET", ep+sub+"/resourcegroups/rg?api-version=2021-04-01", robot, nil, 200)
	mustDo(t, c, "DELETE", ep+sub+"/resourcegroups/rg?api-version=2021-04-01", robot, nil, 403)
	me := getJSON(t, c, ep+"/v1.0/me", robot)
	if me["id"] != sp.ID || me["appId"] != sp.AppID {
		t.Errorf("/me = %v", me)
	}
	// Reader cannot create principals.
	mustDo(t, c, "POST", ep+"/v1.0/servicePrincipals", robot, map[string]string{"displayName": "x"}, 403)

	mustDo(t, c, "POST", ep+"/v1.0/servicePrincipals/"+sp.ID+"/removePassword", admin, map[string]string{"keyId": pw.KeyID}, 204)
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {sp.AppID}, "client_secret": {pw.SecretText}, "scope": {"https://management.azure.com/.default"}}
	mustDo(t, c, "POST", ep+"/"+creds.TenantID+"/oauth2/v2.0/token", "", form, 401)

	mustDo(t, c, "DELETE", ep+"/v1.0/servicePrincipals/"+sp.ID, admin, nil, 204)
	mustDo(t, c, "GET", ep+"/v1.0/servicePrincipals/"+sp.ID, admin, nil, 404)
	left := getJSON(t, c, ep+sub+"/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter="+url.QueryEscape("principalId eq '"+sp.ID+"'"), admin)["value"].([]any)
	if len(left) != 0 {
		t.Errorf("%d role assignments outlive their principal", len(left))
	}
	mustDo(t, c, "DELETE", ep+"/v1.0/servicePrincipals/"+adminObjectID(t, dir), admin, nil, 400)
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }

// TestUsers: a user created in the directory signs in with its name and
// password (the password grant, as az login -u -p), holds the roles
// assigned to it, and nothing else; its password is no client secret.
func TestUsers(t *testing.T) {
	dir := t.TempDir()
	info := startServer(t, server.Config{DataDir: dir})
	creds := readCredentials(t, dir)
	c := http.DefaultClient
	ep := creds.Endpoint
	admin := tokenFor(t, creds, "https://management.azure.com/.default")
	const upn, password = "ada@example.test", "correct horse battery staple"

	mustDo(t, c, "POST", ep+"/v1.0/users", admin, map[string]any{"displayName": "Ada", "userPrincipalName": upn, "passwordProfile": map[string]string{"password": "short"}}, 400)
	var u struct{ ID, UserPrincipalName string }
	json.Unmarshal(mustDo(t, c, "POST", ep+"/v1.0/users", admin, map[string]any{"displayName": "Ada", "userPrincipalName": upn, "passwordProfile": map[string]string{"password": password}}, 201).Body, &u)
	mustDo(t, c, "POST", ep+"/v1.0/users", admin, map[string]any{"userPrincipalName": "ADA@example.test", "passwordProfile": map[string]string{"password": password}}, 400)

	tokenURL := ep + "/" + creds.TenantID + "/oauth2/v2.0/token"
	signIn := func(name, pw string) *response {
		return send(t, c, "POST", tokenURL, "", url.Values{"grant_type": {"password"}, "username": {name}, "password": {pw}, "scope": {"https://management.azure.com/.default"}})
	}
	if r := signIn(upn, "wrong password!!"); r.Status != 400 || !contains(r.Body, "invalid_grant") {
		t.Errorf("wrong password: %s", r)
	}
	if r := signIn("nobody@example.test", password); r.Status != 400 {
		t.Errorf("unknown user: %s", r)
	}
	// The password is not a client secret.
	if r := send(t, c, "POST", tokenURL, "", url.Values{"grant_type": {"client_credentials"}, "client_id": {upn}, "client_secret": {password}, "scope": {"https://management.azure.com/.default"}}); r.Status != 401 {
		t.Errorf("client credentials with a user's password: %s", r)
	}
	r := signIn("Ada@Example.test", password)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if json.Unmarshal(r.Body, &tok); r.Status != 200 || tok.AccessToken == "" {
		t.Fatalf("sign in: %s", r)
	}
	me := getJSON(t, c, ep+"/v1.0/me", tok.AccessToken)
	if me["id"] != u.ID || me["userPrincipalName"] != upn || me["@odata.type"] != "#microsoft.graph.user" {
		t.Errorf("/me = %v", me)
	}
	sub := "/subscriptions/" + info.SubscriptionID
	mustDo(t, c, "GET", ep+sub+"/resourcegroups?api-version=2021-04-01", tok.AccessToken, nil, 403)
	assignRole(t, c, ep, admin, sub, u.ID, rbac.ReaderID)
	mustDo(t, c, "GET", ep+sub+"/resourcegroups?api-version=2021-04-01", tok.AccessToken, nil, 200)
	list := getJSON(t, c, ep+sub+"/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter="+url.QueryEscape("principalId eq '"+u.ID+"'"), admin)["value"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["properties"].(map[string]any)["principalType"] != "User" {
		t.Errorf("the user's assignment: %v", list)
	}
	// Users are not service principals.
	if sps := getJSON(t, c, ep+"/v1.0/servicePrincipals", admin)["value"].([]any); contains(mustJSON(t, sps), u.ID) {
		t.Error("the user is listed among service principals")
	}
	mustDo(t, c, "DELETE", ep+"/v1.0/users/"+u.ID, tok.AccessToken, nil, 403)
	mustDo(t, c, "DELETE", ep+"/v1.0/users/"+u.ID, admin, nil, 204)
	if r := signIn(upn, password); r.Status != 400 {
		t.Errorf("sign in after deletion: %s", r)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
