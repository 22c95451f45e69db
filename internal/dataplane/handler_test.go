package dataplane

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tidepool-dev/tidepool/internal/arm"
	"github.com/tidepool-dev/tidepool/internal/auth"
)

func wantError(t *testing.T, what string, resp *http.Response, b []byte, status int, code string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("%s: status %d, want %d: %s", what, resp.StatusCode, status, b)
		return
	}
	var er struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &er); err != nil || er.Error.Message == "" {
		t.Errorf("%s: not an error envelope: %s", what, b)
	}
	if er.Error.Code != code || resp.Header.Get("x-ms-error-code") != code {
		t.Errorf("%s: code %q (header %q), want %q", what, er.Error.Code, resp.Header.Get("x-ms-error-code"), code)
	}
}

func TestErrors(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Audiences = []string{auth.AudienceDataPlane, auth.AudienceDataPlaneLegacy}
	})
	ep := e.endpoint("py")
	exec := map[string]any{"code": "1"}
	tests := []struct {
		name, method, url string
		body              any
		headers           map[string]string
		status            int
		code              string
	}{
		{"no token", "POST", ep + "/executions?identifier=abcd", exec, map[string]string{"Authorization": ""}, 401, "AuthenticationFailed"},
		{"management token when strict", "POST", ep + "/executions?identifier=abcd", exec,
			map[string]string{"Authorization": "Bearer " + e.token(auth.AudienceManagement)}, 401, "InvalidAuthenticationTokenAudience"},
		{"unknown pool", "POST", e.endpoint("nope") + "/executions?identifier=abcd", exec, nil, 404, "SessionPoolNotFound"},
		{"missing identifier", "POST", ep + "/executions?api-version=2025-10-02-preview", exec, nil, 400, "MissingSessionIdentifier"},
		{"long identifier", "POST", ep + "/executions?identifier=" + strings.Repeat("a", 257), exec, nil, 400, "InvalidLengthOfSessionIdentifier"},
		{"control character", "POST", ep + "/executions?identifier=ab%01cd", exec, nil, 400, "InvalidSessionIdentifier"},
		{"not JSON", "POST", ep + "/executions?identifier=abcd", "{", nil, 400, "InvalidRequestBody"},
		{"bad enum", "POST", ep + "/executions?identifier=abcd", map[string]any{"code": "1", "executionType": "Later"}, nil, 400, "InvalidExecutionType"},
		{"no code", "POST", ep + "/code/execute?identifier=abcd", map[string]any{"properties": map[string]any{}}, nil, 400, "MissingCode"},
		{"unknown route", "GET", ep + "/nothing/here?identifier=abcd", nil, nil, 404, "NotFound"},
		{"wrong method", "GET", ep + "/code/execute?identifier=abcd", nil, nil, 405, "MethodNotAllowed"},
		{"missing file", "GET", ep + "/files/none.txt/content?identifier=abcd", nil, nil, 404, "FileNotFound"},
		{"escaping path", "GET", ep + "/files/content/..%2F..%2Fetc%2Fpasswd?identifier=abcd", nil, nil, 400, "InvalidFilePath"},
		{"unknown session", "GET", ep + "/session?identifier=zzzz&api-version=2025-02-02-preview", nil, nil, 404, "SessionNotFound"},
		{"unknown session (.management)", "POST", ep + "/.management/getSession?identifier=zzzz", nil, nil, 400, "SessionWithIdentifierNotFound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := e.doJSON(tt.method, tt.url, tt.body, tt.headers)
			wantError(t, tt.name, resp, b, tt.status, tt.code)
			if tt.status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
		})
	}
}

func TestPoolFull(t *testing.T) {
	e := newEnv(t)
	ep := e.endpoint("small")
	resp, b := e.doJSON("POST", ep+"/executions?identifier=first&api-version=2025-10-02-preview", map[string]any{"code": "1"}, nil)
	wantStatus(t, "first", resp, b, 200)
	resp, b = e.doJSON("POST", ep+"/executions?identifier=second&api-version=2025-10-02-preview", map[string]any{"code": "1"}, nil)
	wantError(t, "second", resp, b, 404, "SessionPoolFull")
	// Stopping the first frees the slot.
	resp, b = e.do("POST", ep+"/.management/stopSession?identifier=first&api-version=2025-10-02-preview", nil, nil)
	wantStatus(t, "stop", resp, b, 200)
	if got := string(b); got != "Session first in session pool small stopped." || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("stop answer %q (%s)", got, resp.Header.Get("Content-Type"))
	}
	resp, b = e.doJSON("POST", ep+"/executions?identifier=second&api-version=2025-10-02-preview", map[string]any{"code": "1"}, nil)
	wantStatus(t, "second again", resp, b, 200)
}

func TestAuthorizeHook(t *testing.T) {
	var seen []string
	e := newEnv(t, func(c *Config) {
		c.Authorize = func(r *http.Request, claims *auth.Claims, poolID, action string) error {
			seen = append(seen, action)
			if strings.HasSuffix(poolID, "/sh") {
				return errors.New("no role")
			}
			return nil
		}
	})
	resp, b := e.doJSON("POST", e.endpoint("sh")+"/executions?identifier=abcd", map[string]any{"shellCommand": "true"}, nil)
	wantError(t, "forbidden", resp, b, 403, "AuthorizationFailed")
	resp, b = e.do("GET", e.endpoint("py")+"/listSessions?api-version=2025-02-02-preview", nil, nil)
	wantStatus(t, "list", resp, b, 200)
	resp, b = e.do("POST", e.endpoint("py")+"/.management/stopSession?identifier=x", nil, nil)
	wantError(t, "stop unknown", resp, b, 400, "SessionWithIdentifierNotFound")
	want := []string{ActionExecute, ActionReadSessions, ActionStopSession}
	if strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Errorf("actions %v, want %v", seen, want)
	}
}

func TestExecutionFamilies(t *testing.T) {
	e := newEnv(t)
	ep := e.endpoint("py")
	// Legacy: identifier in the body, no query at all.
	resp, b := e.doJSON("POST", ep+"/python/execute", map[string]any{"properties": map[string]any{
		"identifier": "legacy-1", "codeInputType": "inline", "executionType": "synchronous", "pythonCode": "print(1)"}}, nil)
	wantStatus(t, "legacy", resp, b, 200)
	if p := v1Props(t, b); p["stdout"] != "1\n" || p["result"] != "" {
		t.Errorf("legacy: %s", b)
	}
	// Failure in v1: Failure with the traceback in stderr.
	resp, b = e.doJSON("POST", ep+"/code/execute?identifier=fam-1", map[string]any{"properties": map[string]any{"code": "print('before')\n1/0"}}, nil)
	wantStatus(t, "v1 failure", resp, b, 200)
	if p := v1Props(t, b); p["status"] != "Failure" || p["stdout"] != "before\n" || !strings.Contains(p["stderr"].(string), "ZeroDivisionError: division by zero") {
		t.Errorf("v1 failure: %s", b)
	}
	// v2 failure: Failed with error.
	resp, b = e.doJSON("POST", ep+"/executions?identifier=fam-1&api-version=2025-10-02-preview", map[string]any{"code": "raise ValueError('bad')"}, nil)
	wantStatus(t, "v2 failure", resp, b, 200)
	m := decodeMap(t, b)
	if m["status"] != "Failed" || m["error"].(map[string]any)["code"] != "ExecutionFailed" || !strings.Contains(m["error"].(map[string]any)["message"].(string), "ValueError: bad") {
		t.Errorf("v2 failure: %s", b)
	}
	// Timeout: v1 Failure, v2 Failed ExecutionTimeout; state survives.
	resp, b = e.doJSON("POST", ep+"/code/execute?identifier=fam-1", map[string]any{"properties": map[string]any{
		"code": "keep = 5\nimport time\ntime.sleep(30)", "timeoutInSeconds": 1}}, nil)
	wantStatus(t, "v1 timeout", resp, b, 200)
	if p := v1Props(t, b); p["status"] != "Failure" || !strings.Contains(p["stderr"].(string), "timed out after 1 seconds") {
		t.Errorf("v1 timeout: %s", b)
	}
	resp, b = e.doJSON("POST", ep+"/executions?identifier=fam-1&api-version=2024-10-02-preview", map[string]any{"code": "import time\ntime.sleep(30)", "timeoutInSeconds": "1"}, nil)
	wantStatus(t, "v2 timeout (202 before 2025-10-02)", resp, b, 202)
	if m := decodeMap(t, b); m["status"] != "Failed" || m["error"].(map[string]any)["code"] != "ExecutionTimeout" {
		t.Errorf("v2 timeout: %s", b)
	}
	// 2024-09-01 flat execute.
	resp, b = e.doJSON("POST", ep+"/execute?identifier=fam-1&api-version=2024-09-01", map[string]any{"codeInputType": "Inline", "executionType": "Synchronous", "code": "keep * 2"}, nil)
	wantStatus(t, "flat", resp, b, 200)
	if m := decodeMap(t, b); m["status"] != "Success" || m["result"] != float64(10) {
		t.Errorf("flat: %s", b)
	}
	// InlineBase64 and the Jupyter format.
	resp, b = e.doJSON("POST", ep+"/executions?identifier=fam-1&api-version=2025-10-02-preview", map[string]any{
		"codeInputType": "inlinebase64", "code": "J25hbic=", "returnJupyterFormatExecutionResult": true}, nil)
	wantStatus(t, "base64", resp, b, 200)
	if r := decodeMap(t, b)["result"].(map[string]any); r["executionResult"] != "'nan'" {
		t.Errorf("jupyter string: %s", b)
	}
	resp, b = e.doJSON("POST", ep+"/executions?identifier=fam-1&api-version=2025-10-02-preview", map[string]any{"code": "float('nan')"}, nil)
	if r := decodeMap(t, b)["result"].(map[string]any); r["executionResult"] != "nan" {
		t.Errorf("nan: %s", b)
	}
	// Output caps.
	resp, b = e.doJSON("POST", ep+"/executions?identifier=fam-1&api-version=2025-10-02-preview", map[string]any{"code": "print('x' * 10000)", "outputStreamsMaxLength": 100}, nil)
	if r := decodeMap(t, b)["result"].(map[string]any); len(r["stdout"].(string)) > 100 {
		t.Errorf("outputStreamsMaxLength not honoured: %d bytes", len(r["stdout"].(string)))
	}
	// Headers of executions.
	for _, h := range []string{"x-ms-session-guid", "x-ms-allocation-time", "x-ms-container-execution-duration", "operation-id"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("header %s missing", h)
		}
	}
}

func TestAsyncExecution(t *testing.T) {
	e := newEnv(t)
	ep := e.endpoint("py")
	resp, b := e.doJSON("POST", ep+"/executions?identifier=async-1&api-version=2025-10-02-preview",
		map[string]any{"executionType": "Asynchronous", "code": "import time\ntime.sleep(0.3)\nprint('late')\n7"},
		map[string]string{"operation-id": "my-op-1"})
	wantStatus(t, "start", resp, b, 202)
	m := decodeMap(t, b)
	if m["status"] != "Running" || m["id"] != "my-op-1" || resp.Header.Get("operation-id") != "my-op-1" {
		t.Fatalf("start: %s %v", b, resp.Header)
	}
	loc := resp.Header.Get("Operation-Location")
	u, err := url.Parse(loc)
	if err != nil || !strings.HasSuffix(u.Path, "/executions/my-op-1") || u.Query().Get("identifier") != "async-1" {
		t.Fatalf("Operation-Location %q", loc)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, b = e.do("GET", loc, nil, nil)
		wantStatus(t, "poll", resp, b, 200)
		m = decodeMap(t, b)
		if m["status"] != "Running" || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if m["status"] != "Succeeded" || m["result"].(map[string]any)["stdout"] != "late\n" || m["result"].(map[string]any)["executionResult"] != "7" {
		t.Errorf("final: %s", b)
	}
	resp, b = e.do("GET", ep+"/executions/unknown?identifier=async-1", nil, nil)
	wantError(t, "unknown execution", resp, b, 404, "ExecutionNotFound")
	// Another identifier cannot read it.
	resp, b = e.do("GET", ep+"/executions/my-op-1?identifier=async-2", nil, nil)
	wantError(t, "other identifier", resp, b, 404, "ExecutionNotFound")
}

func TestNodePool(t *testing.T) {
	e := newEnv(t)
	resp, b := e.doJSON("POST", e.endpoint("node")+"/code/execute?identifier=node-1&api-version=2024-02-02-preview",
		map[string]any{"properties": map[string]any{"codeInputType": "inline", "executionType": "synchronous", "code": "console.log('hello-world'); 40 + 2"}}, nil)
	wantStatus(t, "node", resp, b, 200)
	if p := v1Props(t, b); p["stdout"] != "hello-world\n" || p["executionResult"] != float64(42) {
		t.Errorf("node: %s", b)
	}
}

func TestSessionsRoutes(t *testing.T) {
	e := newEnv(t)
	ep := e.endpoint("py")
	for _, id := range []string{"s-1", "s-2"} {
		resp, b := e.doJSON("POST", ep+"/executions?identifier="+id, map[string]any{"code": "1"}, nil)
		want2xx(t, "execute", resp, b)
	}
	resp, b := e.do("GET", ep+"/session?identifier=s-1&api-version=2025-02-02-preview", nil, nil)
	wantStatus(t, "get session", resp, b, 200)
	if m := decodeMap(t, b); m["identifier"] != "s-1" || m["etag"] == "" || m["expireAt"] == nil {
		t.Errorf("session: %s", b)
	}
	resp, b = e.do("GET", ep+"/listSessions?api-version=2025-10-02-preview", nil, nil)
	wantStatus(t, "listSessions", resp, b, 200)
	if l := decodeMap(t, b)["sessions"].([]any); len(l) != 2 {
		t.Errorf("listSessions: %s", b)
	}
	resp, b = e.do("POST", ep+"/.management/listSessions?api-version=2025-02-02-preview", nil, nil)
	wantStatus(t, ".management/listSessions", resp, b, 200)
	m := decodeMap(t, b)
	if m["count"] != float64(2) || len(m["value"].([]any)) != 2 {
		t.Errorf(".management/listSessions: %s", b)
	}
	v0 := m["value"].([]any)[0].(map[string]any)
	for _, k := range []string{"identifier", "etag", "expiresAt", "expireAt", "createdAt", "lastAccessedAt"} {
		if v0[k] == nil {
			t.Errorf("SessionView lacks %s: %s", k, b)
		}
	}
	resp, b = e.do("POST", ep+"/.management/getSession?identifier=s-2&api-version=2025-02-02-preview", nil, nil)
	wantStatus(t, ".management/getSession", resp, b, 200)
	resp, b = e.do("GET", ep+"/metadata?api-version=2025-02-02-preview", nil, nil)
	wantStatus(t, "metadata", resp, b, 200)
	golden(t, "v2_metadata.json", b)
	resp, b = e.do("DELETE", ep+"/session?identifier=s-2&api-version=2025-02-02-preview", nil, nil)
	wantStatus(t, "delete", resp, b, 204)
	resp, b = e.do("DELETE", ep+"/session?identifier=s-2&api-version=2025-02-02-preview", nil, nil)
	wantStatus(t, "delete again", resp, b, 204)
	resp, b = e.do("GET", ep+"/listSessions", nil, nil)
	if l := decodeMap(t, b)["sessions"].([]any); len(l) != 1 {
		t.Errorf("after delete: %s", b)
	}
}

func TestFiles(t *testing.T) {
	e := newEnv(t)
	ep := e.endpoint("py")
	q := "?identifier=files-1&api-version=2024-08-02-preview"
	body, ctype := multipartFile(t, "file", "a.txt", "", []byte("aaa"))
	resp, b := e.do("POST", ep+"/files/upload"+q, body, map[string]string{"Content-Type": ctype})
	wantStatus(t, "upload", resp, b, 200)
	golden(t, "v1_upload.json", normalizeTimes(b))
	resp, b = e.do("GET", ep+"/files/a.txt"+q, nil, nil)
	wantStatus(t, "v1 metadata", resp, b, 200)
	if v := decodeMap(t, b)["value"].([]any); len(v) != 1 {
		t.Errorf("v1 metadata: %s", b)
	}
	resp, b = e.do("DELETE", ep+"/files/a.txt"+q, nil, nil)
	wantStatus(t, "v1 delete", resp, b, 200)
	if m := decodeMap(t, b); m["message"] != "file deleted successfully" {
		t.Errorf("v1 delete: %s", b)
	}
	// Too large: 413, and nothing is left behind.
	big := bytes.Repeat([]byte("x"), testMaxUpload+1)
	body, ctype = multipartFile(t, "file", "big.bin", "", big)
	resp, b = e.do("POST", ep+"/files?identifier=files-1&api-version=2025-10-02-preview", body, map[string]string{"Content-Type": ctype})
	wantError(t, "too large", resp, b, 413, "PayloadTooLarge")
	// Streamed (chunked, no Content-Length) too large.
	body, ctype = multipartFile(t, "file", "big.bin", "", big)
	resp, b = e.do("POST", ep+"/files?identifier=files-1&api-version=2025-10-02-preview", io.MultiReader(body), map[string]string{"Content-Type": ctype})
	wantError(t, "too large, chunked", resp, b, 413, "PayloadTooLarge")
	resp, b = e.do("GET", ep+"/files?identifier=files-1&api-version=2025-10-02-preview", nil, nil)
	if v := decodeMap(t, b)["value"].([]any); len(v) != 0 {
		t.Errorf("files after refused uploads: %s", b)
	}
	// Exactly the limit passes.
	body, ctype = multipartFile(t, "file", "max.bin", "", big[:testMaxUpload])
	resp, b = e.do("POST", ep+"/files?identifier=files-1&api-version=2025-10-02-preview", io.MultiReader(body), map[string]string{"Content-Type": ctype})
	wantStatus(t, "at the limit", resp, b, 200)
	// 2024-09-01: files:uploadFile, :downloadFile.
	body, ctype = multipartFile(t, "file", "s.txt", "", []byte("stable"))
	resp, b = e.do("POST", ep+"/files:uploadFile?identifier=files-1&api-version=2024-09-01", body, map[string]string{"Content-Type": ctype})
	wantStatus(t, "uploadFile", resp, b, 200)
	resp, b = e.do("POST", ep+"/files/s.txt:downloadFile?identifier=files-1&api-version=2024-09-01", nil, nil)
	wantStatus(t, "downloadFile", resp, b, 200)
	if m := decodeMap(t, b); m["content"] != "c3RhYmxl" {
		t.Errorf("downloadFile: %s", b)
	}
	// Not multipart.
	resp, b = e.doJSON("POST", ep+"/files?identifier=files-1", map[string]any{"x": 1}, nil)
	wantError(t, "not multipart", resp, b, 400, "InvalidUpload")
}

func TestCustomContainerProxy(t *testing.T) {
	e := newEnv(t)
	ep := e.endpoint("cc")
	resp, b := e.do("PUT", ep+"/api/items/a%2Fb/?identifier=cc-1&api-version=2025-02-02-preview&x=1", strings.NewReader("payload"),
		map[string]string{"X-Custom": "kept"})
	wantStatus(t, "proxied", resp, b, 200)
	var got map[string]string
	json.Unmarshal(b, &got)
	if got["method"] != "PUT" || got["path"] != "/api/items/a/b/" || got["rawPath"] != "/api/items/a%2Fb/" || got["body"] != "payload" ||
		got["query"] != "identifier=cc-1&api-version=2025-02-02-preview&x=1" || got["custom"] != "kept" || got["authorization"] != "" ||
		got["xForwardedFor"] == "" || got["xForwardedProto"] != "http" || resp.Header.Get("X-From-Target") != "yes" {
		t.Errorf("proxied request: %s", b)
	}
	// session, listSessions and metadata are the container's (as on Azure).
	resp, b = e.do("GET", ep+"/session?identifier=cc-1", nil, nil)
	json.Unmarshal(b, &got)
	if got["path"] != "/session" {
		t.Errorf("/session not proxied: %s", b)
	}
	// .management is tidepool's.
	resp, b = e.do("POST", ep+"/.management/getSession?identifier=cc-1", nil, nil)
	wantStatus(t, ".management/getSession", resp, b, 200)
	if m := decodeMap(t, b); m["identifier"] != "cc-1" {
		t.Errorf("getSession: %s", b)
	}
	// Streaming.
	resp, b = e.do("GET", ep+"/stream?identifier=cc-1", nil, nil)
	if string(b) != "chunk 0\nchunk 1\nchunk 2\n" {
		t.Errorf("stream: %q", b)
	}
	// WebSocket upgrade.
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	u, _ := url.Parse(ep + "/ws?identifier=cc-1")
	req, _ := http.NewRequest("GET", u.String(), nil)
	req.Header.Set("Authorization", "Bearer "+e.token(auth.AudienceDataPlane))
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Write(conn)
	br := bufio.NewReader(conn)
	wsResp, err := http.ReadResponse(br, req)
	if err != nil || wsResp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", err, wsResp)
	}
	conn.Write([]byte("ping"))
	buf := make([]byte, 4)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "PING" {
		t.Errorf("websocket echo %q %v", buf, err)
	}
	// No identifier.
	resp, b = e.do("GET", ep+"/anything", nil, nil)
	wantError(t, "no identifier", resp, b, 400, "MissingSessionIdentifier")
}

func TestStorePools(t *testing.T) {
	e := newEnv(t)
	// Case-insensitive base segments and pool key; trailing slash.
	base := e.srv.URL + "/SUBSCRIPTIONS/" + e.sub + "/resourcegroups/" + strings.ToUpper(e.rg) + "/SessionPools/PY"
	resp, b := e.do("GET", base+"/listSessions/", nil, nil)
	wantStatus(t, "case-insensitive base, trailing slash", resp, b, 200)
	// Collapsed slashes everywhere.
	resp, b = e.do("GET", e.srv.URL+"//subscriptions//"+e.sub+"/resourceGroups/"+e.rg+"/sessionPools/py///metadata", nil, nil)
	wantStatus(t, "double slashes", resp, b, 200)
}

func TestVersionFamily(t *testing.T) {
	for v, want := range map[string]family{"": familyV1, "2024-02-02-preview": familyV1, "2024-08-02-preview": familyV1,
		"2024-09-01": familyV1, "2024-10-02-preview": familyV2, "2025-10-02-preview": familyV2, "bogus": familyV1, "2026-01-01": familyV2} {
		if got := versionFamily(v); got != want {
			t.Errorf("versionFamily(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestPrettyRepr(t *testing.T) {
	short := "['a', 'b']"
	if got := prettyRepr(short); got != short {
		t.Errorf("short: %q", got)
	}
	long := "['" + strings.Repeat("a", 40) + "', 'b, c', ('x', 'y'), '" + strings.Repeat("d", 40) + "']"
	want := "['" + strings.Repeat("a", 40) + "',\n 'b, c',\n ('x', 'y'),\n '" + strings.Repeat("d", 40) + "']"
	if got := prettyRepr(long); got != want {
		t.Errorf("long:\n got %q\nwant %q", got, want)
	}
}

func TestArmErrorFromAuthorize(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Authorize = func(*http.Request, *auth.Claims, string, string) error {
			return &arm.Error{Status: 403, Code: "Custom", Message: "custom"}
		}
	})
	resp, b := e.do("GET", e.endpoint("py")+"/metadata", nil, nil)
	wantError(t, "custom", resp, b, 403, "Custom")
}
