package server_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tidepool-dev/tidepool/internal/rbac"
)

// TestSessionIdentity: code in a session of a pool whose system identity
// has lifecycle Main gets tokens for it from IDENTITY_ENDPOINT, and they
// work with the identity's roles; with lifecycle None no endpoint exists.
func TestSessionIdentity(t *testing.T) {
	dir, info := startProcessServer(t)
	creds := readCredentials(t, dir)
	c := &http.Client{Timeout: time.Minute}
	admin := tokenFor(t, creds, "https://management.azure.com/.default")
	ep := creds.Endpoint
	const av = "?api-version=2025-02-02-preview"
	rg := "/subscriptions/" + info.SubscriptionID + "/resourceGroups/idrg"
	mustDo(t, c, "PUT", ep+rg+"?api-version=2021-04-01", admin, map[string]string{"location": "westus2"}, 201)

	pool := func(name, lifecycle string) (id, principal string) {
		id = rg + "/providers/Microsoft.App/sessionPools/" + name
		r := mustDo(t, c, "PUT", ep+id+av, admin, map[string]any{
			"location": "westus2",
			"identity": map[string]any{"type": "SystemAssigned"},
			"properties": map[string]any{
				"poolManagementType": "Dynamic", "containerType": "Shell",
				"scaleConfiguration":       map[string]any{"maxConcurrentSessions": 2, "readySessionInstances": 1},
				"dynamicPoolConfiguration": map[string]any{"lifecycleConfiguration": map[string]any{"lifecycleType": "Timed", "cooldownPeriodInSeconds": 300}},
				"managedIdentitySettings":  []any{map[string]any{"identity": "system", "lifecycle": lifecycle}},
			},
		}, 201)
		var p struct {
			Identity struct{ PrincipalID string } `json:"identity"`
		}
		json.Unmarshal(r.Body, &p)
		waitUntil(t, name+" Succeeded", func() bool {
			return provisioningState(mustDo(t, c, "GET", ep+id+av, admin, nil, 200).Body) == "Succeeded"
		})
		return id, p.Identity.PrincipalID
	}
	mainPool, principal := pool("mainpool", "Main")
	nonePool, _ := pool("nonepool", "None")
	// The identity may read its group.
	assignRole(t, c, ep, admin, rg, principal, rbac.ReaderID)

	run := func(poolID, command string) string {
		name := poolID[strings.LastIndex(poolID, "/")+1:]
		u := ep + "/subscriptions/" + info.SubscriptionID + "/resourceGroups/idrg/sessionPools/" + name + "/executions" + av + "&identifier=" + uuid.NewString()
		r := mustDo(t, c, "POST", u, admin, map[string]any{"shellCommand": command}, 200, 202)
		var out struct {
			Result struct{ Stdout, Stderr string } `json:"result"`
		}
		if err := json.Unmarshal(r.Body, &out); err != nil {
			t.Fatalf("%s: %v", r, err)
		}
		return strings.TrimSpace(out.Result.Stdout)
	}
	body := run(mainPool, `curl -s -H "X-IDENTITY-HEADER: $IDENTITY_HEADER" "$IDENTITY_ENDPOINT?resource=https://management.azure.com/&api-version=2019-08-01"`)
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresOn   string `json:"expires_on"`
		TokenType   string `json:"token_type"`
	}
	if err := json.Unmarshal([]byte(body), &tok); err != nil || tok.AccessToken == "" || tok.TokenType != "Bearer" {
		t.Fatalf("token from IDENTITY_ENDPOINT: %q (%v)", body, err)
	}
	parts := strings.Split(tok.AccessToken, ".")
	claims := map[string]any{}
	if len(parts) == 3 {
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		json.Unmarshal(payload, &claims)
	}
	if claims["oid"] != principal {
		t.Errorf("token oid = %v, want the pool's system identity %s", claims["oid"], principal)
	}
	// The token works, with the identity's roles: it reads, it does not write.
	mustDo(t, c, "GET", ep+mainPool+av, tok.AccessToken, nil, 200)
	mustDo(t, c, "DELETE", ep+mainPool+av, tok.AccessToken, nil, 403)

	// A wrong header is refused.
	if got := run(mainPool, `curl -s -o /dev/null -w '%{http_code}' -H "X-IDENTITY-HEADER: wrong" "$IDENTITY_ENDPOINT?resource=https://management.azure.com/"`); got != "401" {
		t.Errorf("wrong X-IDENTITY-HEADER: HTTP %s, want 401", got)
	}
	// Lifecycle None: no endpoint in the session.
	if got := run(nonePool, `echo "[$IDENTITY_ENDPOINT]"`); got != "[]" {
		t.Errorf("IDENTITY_ENDPOINT with lifecycle None = %s, want empty", got)
	}
}
