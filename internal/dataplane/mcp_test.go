package dataplane

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidepool-dev/tidepool/internal/arm"
	"github.com/tidepool-dev/tidepool/internal/auth"
	"github.com/tidepool-dev/tidepool/internal/mcpkeys"
	"github.com/tidepool-dev/tidepool/internal/model"
	"github.com/tidepool-dev/tidepool/internal/store"
)

// mcpEnv is the test data plane with pools whose MCP server is on or off,
// kept in a store the handler's MCPKeys read.
type mcpEnv struct {
	*env
	st   *store.SQLite
	keys *mcpkeys.Keys
}

// MCP pools of mcpEnv: container type, MCP on, API keys off.
var mcpPools = map[string]struct {
	containerType    string
	enabled, keysOff bool
	noSettings       bool
}{
	"mcpsh":  {model.ContainerTypeShell, true, false, false},
	"mcppy":  {model.ContainerTypePythonLTS, true, false, false},
	"nomcp":  {model.ContainerTypeShell, false, false, false},
	"bare":   {model.ContainerTypePythonLTS, false, false, true},
	"nokeys": {model.ContainerTypeShell, true, true, false},
	"cc":     {model.ContainerTypeCustomContainer, false, false, true},
	"mcpcc":  {model.ContainerTypeCustomContainer, true, false, false},
}

func newMCPEnv(t *testing.T) *mcpEnv {
	t.Helper()
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "mcp.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	keys := mcpkeys.New(st)
	e := newEnv(t, func(c *Config) {
		c.Pools = StorePools(st)
		c.MCPKeys = keys
	})
	port := int32(e.target.Listener.Addr().(*net.TCPAddr).Port)
	for name, mp := range mcpPools {
		id := arm.PoolID(e.sub, e.rg, name)
		p := model.SessionPool{ID: id, Name: name, Type: model.SessionPoolType, Location: "local",
			Properties: &model.PoolProperties{ContainerType: mp.containerType, ProvisioningState: model.StateSucceeded}}
		if !mp.noSettings {
			on, off := mp.enabled, mp.keysOff
			p.Properties.McpServerSettings = &model.McpServerSettings{IsMcpServerEnabled: &on, IsMcpServerAPIKeyDisabled: &off,
				McpServerEndpoint: e.endpoint(name) + "/mcp"}
		}
		if mp.containerType == model.ContainerTypeCustomContainer {
			p.Properties.CustomContainerTemplate = &model.CustomContainerTemplate{Ingress: &model.SessionIngress{TargetPort: &port}}
		}
		body, _ := json.Marshal(p)
		if err := st.PutResource(ctx, &store.Resource{ID: id, Type: model.SessionPoolType,
			Scope: "/subscriptions/" + e.sub + "/resourceGroups/" + e.rg, Body: body}); err != nil {
			t.Fatal(err)
		}
		e.sessions.kinds[strings.ToLower(id)] = kindOf(mp.containerType)
	}
	return &mcpEnv{env: e, st: st, keys: keys}
}

// key fetches the pool's key as fetchMcpServerCredentials does.
func (e *mcpEnv) key(pool string) string {
	e.t.Helper()
	k, err := e.keys.Fetch(context.Background(), arm.PoolID(e.sub, e.rg, pool))
	if err != nil {
		e.t.Fatal(err)
	}
	return k
}

// mcp posts body to the pool's MCP endpoint with only the headers given
// (no bearer token unless headers has Authorization).
func (e *mcpEnv) mcp(method, pool, body string, headers map[string]string) (*http.Response, []byte) {
	e.t.Helper()
	h := map[string]string{"Authorization": "", "Content-Type": "application/json"}
	for k, v := range headers {
		h[k] = v
	}
	return e.doJSON(method, e.endpoint(pool)+"/mcp", body, h)
}

const rpcInitialize = `{ "jsonrpc": "2.0", "id": "1", "method": "initialize" }`

func TestMCPAuth(t *testing.T) {
	e := newMCPEnv(t)
	shKey, pyKey := e.key("mcpsh"), e.key("mcppy")
	// Keys of pools that do not accept them (fetched behind the
	// management API's back).
	noKeysKey, noMCPKey := e.key("nokeys"), e.key("nomcp")
	bearer := "Bearer " + e.token(auth.AudienceDataPlane)
	tests := []struct {
		name, method, pool string
		headers            map[string]string
		status             int
		code               string // ARM error code; "" for a JSON-RPC answer
	}{
		{"key", "POST", "mcpsh", map[string]string{"x-ms-apikey": shKey}, 200, ""},
		{"key, header name in capitals", "POST", "mcpsh", map[string]string{"X-MS-APIKEY": shKey}, 200, ""},
		{"no credentials", "POST", "mcpsh", nil, 401, "AuthenticationFailed"},
		{"wrong key", "POST", "mcpsh", map[string]string{"x-ms-apikey": shKey + "x"}, 401, "InvalidApiKey"},
		{"empty key", "POST", "mcpsh", map[string]string{"x-ms-apikey": " "}, 401, "InvalidApiKey"},
		{"another pool's key", "POST", "mcpsh", map[string]string{"x-ms-apikey": pyKey}, 401, "InvalidApiKey"},
		{"key and a valid bearer token", "POST", "mcpsh", map[string]string{"x-ms-apikey": pyKey, "Authorization": bearer}, 401, "InvalidApiKey"},
		{"key, API keys disabled", "POST", "nokeys", map[string]string{"x-ms-apikey": noKeysKey}, 401, "InvalidApiKey"},
		{"key, MCP disabled", "POST", "nomcp", map[string]string{"x-ms-apikey": noMCPKey}, 401, "InvalidApiKey"},
		{"key, unknown pool", "POST", "nosuchpool", map[string]string{"x-ms-apikey": shKey}, 401, "InvalidApiKey"},
		{"bearer", "POST", "mcpsh", map[string]string{"Authorization": bearer}, 200, ""},
		{"bearer, API keys disabled", "POST", "nokeys", map[string]string{"Authorization": bearer}, 200, ""},
		{"bearer, MCP disabled", "POST", "nomcp", map[string]string{"Authorization": bearer}, 404, "SessionMCPServerNotEnabled"},
		{"bearer, no MCP settings", "POST", "bare", map[string]string{"Authorization": bearer}, 404, "SessionMCPServerNotEnabled"},
		{"bearer, unknown pool", "POST", "nosuchpool", map[string]string{"Authorization": bearer}, 404, "SessionPoolNotFound"},
		{"bad bearer", "POST", "mcpsh", map[string]string{"Authorization": "Bearer x.y.z"}, 401, "InvalidAuthenticationToken"},
		{"GET with key", "GET", "mcpsh", map[string]string{"x-ms-apikey": shKey}, 405, "MethodNotAllowed"},
		{"GET without credentials", "GET", "mcpsh", nil, 401, "AuthenticationFailed"},
		{"key on a custom container pool", "POST", "mcpcc", map[string]string{"x-ms-apikey": e.key("mcpcc")}, 404, "SessionMCPServerNotEnabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := e.mcp(tt.method, tt.pool, rpcInitialize, tt.headers)
			if tt.code != "" {
				wantError(t, tt.name, resp, b, tt.status, tt.code)
				if tt.status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
					t.Errorf("401 without WWW-Authenticate")
				}
				if strings.Contains(string(b), shKey) {
					t.Errorf("the answer echoes a key: %s", b)
				}
				return
			}
			wantStatus(t, tt.name, resp, b, tt.status)
			if got := decodeMap(t, b)["result"]; got == nil {
				t.Errorf("%s: no result: %s", tt.name, b)
			}
		})
	}

	t.Run("custom container pool proxies /mcp", func(t *testing.T) {
		resp, b := e.doJSON("POST", e.endpoint("cc")+"/mcp?identifier=abcd", rpcInitialize, map[string]string{"Authorization": bearer})
		wantStatus(t, "proxied", resp, b, 200)
		if resp.Header.Get("X-From-Target") != "yes" || decodeMap(t, b)["path"] != "/mcp" {
			t.Errorf("POST /mcp on a custom container pool was not proxied: %s", b)
		}
		resp, b = e.mcp("POST", "cc", rpcInitialize, nil)
		wantError(t, "unauthenticated proxy", resp, b, 401, "AuthenticationFailed")
	})
}

// TestMCPRotationInvalidatesOldKey: after rotateMcpServerCredentials the
// old key fails at once and the new one works.
func TestMCPRotationInvalidatesOldKey(t *testing.T) {
	e := newMCPEnv(t)
	old := e.key("mcpsh")
	resp, b := e.mcp("POST", "mcpsh", rpcInitialize, map[string]string{"x-ms-apikey": old})
	wantStatus(t, "old key before rotation", resp, b, 200)
	rotated, err := e.keys.Rotate(context.Background(), arm.PoolID(e.sub, e.rg, "mcpsh"))
	if err != nil {
		t.Fatal(err)
	}
	resp, b = e.mcp("POST", "mcpsh", rpcInitialize, map[string]string{"x-ms-apikey": old})
	wantError(t, "old key after rotation", resp, b, 401, "InvalidApiKey")
	resp, b = e.mcp("POST", "mcpsh", rpcInitialize, map[string]string{"x-ms-apikey": rotated})
	wantStatus(t, "new key", resp, b, 200)
}

// rpcAnswer is a JSON-RPC response as a test reads it.
type rpcAnswer struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   *rpcError       `json:"error"`
}

func TestMCPJSONRPC(t *testing.T) {
	e := newMCPEnv(t)
	key := map[string]string{"x-ms-apikey": e.key("mcpsh")}
	tests := []struct {
		name, body string
		status     int
		id         string // the answer's raw id
		code       int    // JSON-RPC error code; 0 for a result
		result     string // a substring of the raw result
	}{
		{"parse error", `{"jsonrpc":"2.0","id":1,`, 400, "null", rpcParseError, ""},
		{"empty body", ``, 400, "null", rpcInvalidRequest, ""},
		{"not an object", `42`, 400, "null", rpcInvalidRequest, ""},
		{"empty batch", `[]`, 400, "null", rpcInvalidRequest, ""},
		{"wrong version", `{"jsonrpc":"1.0","id":"a","method":"ping"}`, 400, `"a"`, rpcInvalidRequest, ""},
		{"no version", `{"id":5,"method":"ping"}`, 400, `5`, rpcInvalidRequest, ""},
		{"object id", `{"jsonrpc":"2.0","id":{},"method":"ping"}`, 400, "null", rpcInvalidRequest, ""},
		{"null id", `{"jsonrpc":"2.0","id":null,"method":"ping"}`, 400, "null", rpcInvalidRequest, ""},
		{"method not a string", `{"jsonrpc":"2.0","id":2,"method":7}`, 400, "2", rpcInvalidRequest, ""},
		{"params a string", `{"jsonrpc":"2.0","id":3,"method":"ping","params":"x"}`, 400, "3", rpcInvalidRequest, ""},
		{"unknown method", `{"jsonrpc":"2.0","id":1,"method":"resources/list"}`, 200, "1", rpcMethodNotFound, ""},
		{"method names are case-sensitive", `{"jsonrpc":"2.0","id":1,"method":"Initialize"}`, 200, "1", rpcMethodNotFound, ""},
		{"ping", `{"jsonrpc":"2.0","id":7,"method":"ping"}`, 200, "7", 0, `{}`},
		{"fractional id", `{"jsonrpc":"2.0","id":1.5,"method":"ping"}`, 200, "1.5", 0, `{}`},
		{"initialize echoes a known version", `{"jsonrpc":"2.0","id":"i","method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`,
			200, `"i"`, 0, `"protocolVersion":"2024-11-05"`},
		{"initialize answers its own version to an unknown one", `{"jsonrpc":"2.0","id":"i","method":"initialize","params":{"protocolVersion":"1999-01-01"}}`,
			200, `"i"`, 0, `"protocolVersion":"2025-03-26"`},
		{"initialize with array params", `{"jsonrpc":"2.0","id":"i","method":"initialize","params":[]}`, 200, `"i"`, rpcInvalidParams, ""},
		{"tools/list", `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`, 200, "1", 0, `"name":"runPythonCodeInRemoteEnvironment"`},
		{"tools/call without params", `{"jsonrpc":"2.0","id":1,"method":"tools/call"}`, 200, "1", rpcInvalidParams, ""},
		{"tools/call without a name", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{}}}`, 200, "1", rpcInvalidParams, ""},
		{"unknown tool", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"rm"}}`, 200, "1", rpcInvalidParams, ""},
		{"arguments not an object", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"launchShell","arguments":[1]}}`, 200, "1", rpcInvalidParams, ""},
		{"run without environmentId", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"runShellCommandInRemoteEnvironment","arguments":{"shellCommand":"ls"}}}`,
			200, "1", rpcInvalidParams, ""},
		{"run without a command", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"runShellCommandInRemoteEnvironment","arguments":{"environmentId":"abcd"}}}`,
			200, "1", rpcInvalidParams, ""},
		{"python without code", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"runPythonCodeInRemoteEnvironment","arguments":{"environmentId":"abcd"}}}`,
			200, "1", rpcInvalidParams, ""},
		{"environmentId with a control character", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"runPythonCodeInRemoteEnvironment","arguments":{"environmentId":"a\u0001b","pythonCode":"1"}}}`,
			200, "1", rpcInvalidParams, ""},
		{"unknown environment", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"runShellCommandInRemoteEnvironment","arguments":{"environmentId":"never-launched","shellCommand":"ls"}}}`,
			200, "1", 0, `"isError":true`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := e.mcp("POST", "mcpsh", tt.body, key)
			wantStatus(t, tt.name, resp, b, tt.status)
			var a rpcAnswer
			if err := json.Unmarshal(b, &a); err != nil {
				t.Fatalf("answer is not a JSON-RPC response: %v: %s", err, b)
			}
			if a.JSONRPC != "2.0" || string(a.ID) != tt.id {
				t.Errorf("jsonrpc %q id %s, want 2.0 and %s: %s", a.JSONRPC, a.ID, tt.id, b)
			}
			switch {
			case tt.code != 0 && (a.Error == nil || a.Error.Code != tt.code || a.Error.Message == "" || a.Result != nil):
				t.Errorf("want error %d and no result: %s", tt.code, b)
			case tt.code == 0 && (a.Error != nil || !strings.Contains(string(a.Result), tt.result)):
				t.Errorf("want a result containing %s: %s", tt.result, b)
			}
		})
	}

	t.Run("notifications and responses are accepted", func(t *testing.T) {
		for _, body := range []string{
			`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
			`{"jsonrpc":"2.0","method":"ping"}`,
			`{"jsonrpc":"2.0","id":9,"result":{}}`,
			`[{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}},{"jsonrpc":"2.0","id":"x","error":{"code":1,"message":"m"}}]`,
		} {
			resp, b := e.mcp("POST", "mcpsh", body, key)
			if resp.StatusCode != http.StatusAccepted || len(b) != 0 {
				t.Errorf("%s: %d %s, want 202 and no body", body, resp.StatusCode, b)
			}
		}
	})

	t.Run("batch", func(t *testing.T) {
		body := `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"},` +
			`{"bad":1},{"jsonrpc":"2.0","id":"z","method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"nope"}]`
		resp, b := e.mcp("POST", "mcpsh", body, key)
		wantStatus(t, "batch", resp, b, 200)
		var got []rpcAnswer
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("batch answer is not an array: %v: %s", err, b)
		}
		want := []struct {
			id   string
			code int
		}{{"1", 0}, {"null", rpcInvalidRequest}, {`"z"`, 0}, {"2", rpcMethodNotFound}}
		if len(got) != len(want) {
			t.Fatalf("batch answer has %d responses, want %d: %s", len(got), len(want), b)
		}
		for i, w := range want {
			code := 0
			if got[i].Error != nil {
				code = got[i].Error.Code
			}
			if string(got[i].ID) != w.id || code != w.code {
				t.Errorf("batch answer %d: id %s code %d, want %s %d", i, got[i].ID, code, w.id, w.code)
			}
		}
	})

	t.Run("oversized batch", func(t *testing.T) {
		body := "[" + strings.Repeat(`{"jsonrpc":"2.0","id":1,"method":"ping"},`, maxRPCBatch) + `{"jsonrpc":"2.0","id":1,"method":"ping"}]`
		resp, b := e.mcp("POST", "mcpsh", body, key)
		wantStatus(t, "oversized batch", resp, b, 400)
	})

	t.Run("oversized body", func(t *testing.T) {
		body := `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"` + strings.Repeat("x", maxMCPBody) + `"}}`
		resp, b := e.mcp("POST", "mcpsh", body, key)
		wantError(t, "oversized body", resp, b, 413, "RequestBodyTooLarge")
	})
}

// callTool calls a tool and returns its CallToolResult.
func (e *mcpEnv) callTool(t *testing.T, pool, key, name string, args any) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call",
		"params": map[string]any{"name": name, "arguments": args}})
	resp, b := e.mcp("POST", pool, string(body), map[string]string{"x-ms-apikey": key})
	wantStatus(t, name, resp, b, 200)
	var a rpcAnswer
	if err := json.Unmarshal(b, &a); err != nil || a.Error != nil {
		t.Fatalf("%s: not a result: %s", name, b)
	}
	var res map[string]any
	if err := json.Unmarshal(a.Result, &res); err != nil {
		t.Fatal(err)
	}
	content, _ := res["content"].([]any)
	if len(content) == 0 {
		t.Errorf("%s: result without content: %s", name, b)
	}
	return res
}

func structured(t *testing.T, res map[string]any) map[string]any {
	t.Helper()
	s, ok := res["structuredContent"].(map[string]any)
	if !ok {
		t.Fatalf("no structuredContent in %v", res)
	}
	return s
}

func TestMCPTools(t *testing.T) {
	e := newMCPEnv(t)
	shKey, pyKey := e.key("mcpsh"), e.key("mcppy")

	sh := structured(t, e.callTool(t, "mcpsh", shKey, "launchShell", map[string]any{}))["environmentId"].(string)
	py := structured(t, e.callTool(t, "mcppy", pyKey, "launchPythonEnvironment", nil))["environmentId"].(string)
	if sh == "" || py == "" || sh == py {
		t.Fatalf("environment ids %q and %q, want two different ids", sh, py)
	}
	if _, err := e.sessions.Lookup(context.Background(), arm.PoolID(e.sub, e.rg, "mcpsh"), sh); err != nil {
		t.Errorf("launchShell bound no session to %s: %v", sh, err)
	}

	tests := []struct {
		name, pool, tool string
		args             map[string]any
		isError          bool
		want             map[string]any // structuredContent members
	}{
		{"echo", "mcpsh", toolRunShellCommand, map[string]any{"environmentId": sh, "shellCommand": "echo hi; echo err >&2"},
			false, map[string]any{"stdout": "hi\n", "stderr": "err\n", "exitCode": 0.0}},
		{"state persists", "mcpsh", toolRunShellCommand, map[string]any{"environmentId": sh, "shellCommand": "echo kept > f.txt"},
			false, map[string]any{"exitCode": 0.0}},
		{"argv", "mcpsh", toolRunShellCommand, map[string]any{"environmentId": sh, "execCommandAndArgs": []string{"cat", "f.txt"}},
			false, map[string]any{"stdout": "kept\n"}},
		{"stdin", "mcpsh", toolRunShellCommand, map[string]any{"environmentId": sh, "shellCommand": "tr a-z A-Z", "stdin": "abc"},
			false, map[string]any{"stdout": "ABC"}},
		{"exit code", "mcpsh", toolRunShellCommand, map[string]any{"environmentId": sh, "execCommandAndArgs": []string{"sh", "-c", "exit 3"}},
			true, map[string]any{"exitCode": 3.0}},
		{"python on a Shell pool", "mcpsh", toolRunPythonCode, map[string]any{"environmentId": sh, "pythonCode": "print(6*7)"},
			false, map[string]any{"stdout": "42\n"}},
		{"python variable", "mcppy", toolRunPythonCode, map[string]any{"environmentId": py, "pythonCode": "x = 21"},
			false, map[string]any{"stdout": ""}},
		{"python state persists", "mcppy", toolRunPythonCode, map[string]any{"environmentId": py, "pythonCode": "print(x * 2)\nx + 1"},
			false, map[string]any{"stdout": "42\n", "result": "22"}},
		{"python exception", "mcppy", toolRunPythonCode, map[string]any{"environmentId": py, "pythonCode": "1/0"},
			true, nil},
		{"shell on a Python pool", "mcppy", toolRunShellCommand, map[string]any{"environmentId": py, "shellCommand": "echo from-shell"},
			false, map[string]any{"stdout": "from-shell\n"}},
		{"another pool's environment", "mcppy", toolRunShellCommand, map[string]any{"environmentId": sh, "shellCommand": "true"},
			true, nil},
	}
	keys := map[string]string{"mcpsh": shKey, "mcppy": pyKey}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.callTool(t, tt.pool, keys[tt.pool], tt.tool, tt.args)
			if res["isError"] != tt.isError {
				t.Errorf("isError %v, want %v: %v", res["isError"], tt.isError, res)
			}
			if tt.want == nil {
				return
			}
			s := structured(t, res)
			for k, v := range tt.want {
				if s[k] != v {
					t.Errorf("structuredContent.%s = %#v, want %#v (%v)", k, s[k], v, s)
				}
			}
			// The text block is the structured content as JSON.
			text := res["content"].([]any)[0].(map[string]any)["text"].(string)
			var fromText map[string]any
			if err := json.Unmarshal([]byte(text), &fromText); err != nil || len(fromText) != len(s) {
				t.Errorf("content[0].text %q is not the structured content", text)
			}
		})
	}

	t.Run("python exception text", func(t *testing.T) {
		res := e.callTool(t, "mcppy", pyKey, toolRunPythonCode, map[string]any{"environmentId": py, "pythonCode": "1/0"})
		if s := structured(t, res); !strings.Contains(s["stderr"].(string), "ZeroDivisionError") {
			t.Errorf("stderr %q, want the traceback", s["stderr"])
		}
	})

	t.Run("pool full", func(t *testing.T) {
		e.sessions.mu.Lock()
		e.sessions.limits[strings.ToLower(arm.PoolID(e.sub, e.rg, "mcpsh"))] = 1
		e.sessions.mu.Unlock()
		res := e.callTool(t, "mcpsh", shKey, toolLaunchShell, nil)
		if res["isError"] != true || !strings.Contains(res["content"].([]any)[0].(map[string]any)["text"].(string), "maxConcurrentSessions") {
			t.Errorf("launch on a full pool: %v, want a tool error naming maxConcurrentSessions", res)
		}
	})
}

// TestMCPTutorials sends the requests of the MCP tutorials (DOC-SHELL-MCP,
// DOC-PY-MCP) byte for byte, with their headers only, and reads the
// answers where the tutorials do.
func TestMCPTutorials(t *testing.T) {
	e := newMCPEnv(t)
	for _, tc := range []struct {
		pool, launch, run, wantStdout string
	}{
		{"mcpsh", `{ "jsonrpc": "2.0", "id": "2", "method": "tools/call", "params": { "name": "launchShell", "arguments": {} } }`,
			`{
    "jsonrpc": "2.0",
    "id": "3",
    "method": "tools/call",
    "params": {
      "name": "runShellCommandInRemoteEnvironment",
      "arguments": {
        "environmentId": "<ENVIRONMENT_ID>",
        "shellCommand": "echo Hello from Azure Container Apps Shell Session!"
      }
    }
  }`, "Hello from Azure Container Apps Shell Session!\n"},
		{"mcppy", `{ "jsonrpc": "2.0", "id": "2", "method": "tools/call", "params": { "name": "launchPythonEnvironment", "arguments": {} } }`,
			`{
    "jsonrpc": "2.0",
    "id": "3",
    "method": "tools/call",
    "params": {
      "name": "runPythonCodeInRemoteEnvironment",
      "arguments": {
        "environmentId": "<ENVIRONMENT_ID>",
        "pythonCode": "print(\"Hello from Azure Container Apps Python session!\")"
      }
    }
  }`, "Hello from Azure Container Apps Python session!\n"},
	} {
		t.Run(tc.pool, func(t *testing.T) {
			// API_KEY=$(az rest --method POST .../fetchMCPServerCredentials ... --query "apiKey" -o tsv)
			headers := map[string]string{"Content-Type": "application/json", "x-ms-apikey": e.key(tc.pool)}

			resp, b := e.mcp("POST", tc.pool, `{ "jsonrpc": "2.0", "id": "1", "method": "initialize" }`, headers)
			wantStatus(t, "initialize", resp, b, 200)
			var init struct {
				ID     string `json:"id"`
				Result struct {
					ProtocolVersion string `json:"protocolVersion"`
					ServerInfo      struct {
						Name string `json:"name"`
					} `json:"serverInfo"`
					Capabilities struct {
						Tools map[string]bool `json:"tools"`
					} `json:"capabilities"`
				} `json:"result"`
			}
			if err := json.Unmarshal(b, &init); err != nil || init.ID != "1" || init.Result.ProtocolVersion != "2025-03-26" ||
				init.Result.ServerInfo.Name == "" || !init.Result.Capabilities.Tools["call"] || !init.Result.Capabilities.Tools["list"] {
				t.Errorf("initialize answer %s, want id 1, protocolVersion 2025-03-26, serverInfo and tools call/list", b)
			}

			resp, b = e.mcp("POST", tc.pool, tc.launch, headers)
			wantStatus(t, "launch", resp, b, 200)
			var launch struct {
				ID     string `json:"id"`
				Result struct {
					StructuredContent struct {
						EnvironmentID string `json:"environmentId"`
					} `json:"structuredContent"`
				} `json:"result"`
			}
			if err := json.Unmarshal(b, &launch); err != nil || launch.ID != "2" || launch.Result.StructuredContent.EnvironmentID == "" {
				t.Fatalf("launch answer %s, want id 2 and structuredContent.environmentId", b)
			}

			run := strings.Replace(tc.run, "<ENVIRONMENT_ID>", launch.Result.StructuredContent.EnvironmentID, 1)
			resp, b = e.mcp("POST", tc.pool, run, headers)
			wantStatus(t, "run", resp, b, 200)
			var out struct {
				ID     string `json:"id"`
				Result struct {
					StructuredContent struct {
						Stdout string `json:"stdout"`
					} `json:"structuredContent"`
					IsError bool `json:"isError"`
				} `json:"result"`
			}
			if err := json.Unmarshal(b, &out); err != nil || out.ID != "3" || out.Result.StructuredContent.Stdout != tc.wantStdout || out.Result.IsError {
				t.Errorf("run answer %s, want id 3 and stdout %q", b, tc.wantStdout)
			}
		})
	}
}
