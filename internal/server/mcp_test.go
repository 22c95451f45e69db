package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tidepool-dev/tidepool/internal/server"
)

// TestMCPTutorialWiring runs the shell MCP tutorial (DOC-SHELL-MCP)
// through the whole server: the pool at 2025-02-02-preview, its
// mcpServerEndpoint, fetchMCPServerCredentials, then JSON-RPC with the
// x-ms-apikey header and no bearer token. The sessions are a stub that
// has none, so the launch ends in a tool error; the session tools are
// tested in internal/dataplane.
func TestMCPTutorialWiring(t *testing.T) {
	dir := t.TempDir()
	info := startServer(t, server.Config{DataDir: dir, Sessions: noSessions{}})
	c := &http.Client{}
	tok, err := managementToken(t.Context(), c, readCredentials(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	group := info.Endpoint + "/subscriptions/" + info.SubscriptionID + "/resourceGroups/mcprg"
	mustDo(t, c, http.MethodPut, group+"?api-version=2021-04-01", tok, map[string]any{"location": "northcentralus"}, 201, 200)
	pool := group + "/providers/Microsoft.App/sessionPools/mcppool"
	mustDo(t, c, http.MethodPut, pool+"?api-version=2025-02-02-preview", tok, `{
		"location": "northcentralus",
		"properties": {
			"poolManagementType": "Dynamic",
			"containerType": "Shell",
			"scaleConfiguration": {"maxConcurrentSessions": 5},
			"sessionNetworkConfiguration": {"status": "EgressEnabled"},
			"dynamicPoolConfiguration": {"lifecycleConfiguration": {"lifecycleType": "Timed", "coolDownPeriodInSeconds": 300}},
			"mcpServerSettings": {"isMCPServerEnabled": true}
		}
	}`, 201)

	g := mustDo(t, c, http.MethodGet, pool+"?api-version=2025-02-02-preview", tok, nil, 200)
	var p struct {
		Properties struct {
			McpServerSettings struct {
				McpServerEndpoint string `json:"mcpServerEndpoint"`
			} `json:"mcpServerSettings"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(g.Body, &p); err != nil || p.Properties.McpServerSettings.McpServerEndpoint == "" {
		t.Fatalf("GET pool: no mcpServerEndpoint: %s", g)
	}
	endpoint := p.Properties.McpServerSettings.McpServerEndpoint

	fetchKey := func(action string) string {
		t.Helper()
		r := mustDo(t, c, http.MethodPost, pool+"/"+action+"?api-version=2025-02-02-preview", tok, nil, 200)
		var k struct {
			APIKey string `json:"apiKey"`
		}
		if err := json.Unmarshal(r.Body, &k); err != nil || k.APIKey == "" {
			t.Fatalf("%s: %s", action, r)
		}
		return k.APIKey
	}
	key := fetchKey("fetchMCPServerCredentials")

	mcp := func(key, body string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, endpoint, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("x-ms-apikey", key)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	status, b := mcp(key, `{ "jsonrpc": "2.0", "id": "1", "method": "initialize" }`)
	if status != 200 || !strings.Contains(string(b), `"protocolVersion":"2025-03-26"`) || !strings.Contains(string(b), `"serverInfo"`) {
		t.Errorf("initialize: %d %s, want protocolVersion and serverInfo", status, b)
	}
	status, b = mcp(key, `{ "jsonrpc": "2.0", "id": "2", "method": "tools/call", "params": { "name": "launchShell", "arguments": {} } }`)
	if status != 200 || !strings.Contains(string(b), `"isError":true`) || !strings.Contains(string(b), `"id":"2"`) {
		t.Errorf("launchShell with no sessions to give: %d %s, want a tool error", status, b)
	}
	if status, b = mcp("", `{ "jsonrpc": "2.0", "id": "1", "method": "initialize" }`); status != 401 {
		t.Errorf("without a key: %d %s, want 401", status, b)
	}

	rotated := fetchKey("rotateMcpServerCredentials")
	if status, b = mcp(key, `{"jsonrpc":"2.0","id":1,"method":"ping"}`); status != 401 {
		t.Errorf("old key after rotation: %d %s, want 401", status, b)
	}
	if status, b = mcp(rotated, `{"jsonrpc":"2.0","id":1,"method":"ping"}`); status != 200 {
		t.Errorf("rotated key: %d %s, want 200", status, b)
	}
}
