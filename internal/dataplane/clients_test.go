package dataplane

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/textproto"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tidepool-dev/tidepool/internal/auth"
)

// Each test here sends exactly what a client of the reference's §5 sends
// and checks exactly what that client reads.

// multipartFile builds a multipart body with one part.
func multipartFile(t *testing.T, field, filename, contentType string, data []byte) (*bytes.Buffer, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, field, filename))
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	pw, err := mw.CreatePart(h)
	if err != nil {
		t.Fatal(err)
	}
	pw.Write(data)
	mw.Close()
	return &buf, mw.FormDataContentType()
}

// v1Props returns the properties of a v1 execution answer, checking that
// every key SK-PY indexes and the recommendation lists is present.
func v1Props(t *testing.T, b []byte) map[string]any {
	t.Helper()
	m := decodeMap(t, b)
	props, ok := m["properties"].(map[string]any)
	if !ok {
		t.Fatalf("no properties object: %s", b)
	}
	for _, k := range []string{"$id", "status", "stdout", "stderr", "result", "executionResult", "executionTimeInMilliseconds"} {
		if _, ok := props[k]; !ok {
			t.Errorf("properties lacks %q: %s", k, b)
		}
	}
	return props
}

func TestLangChainPythonREPL(t *testing.T) {
	e := newEnv(t)
	ep := e.endpoint("py")
	id := uuid.NewString()
	ua := map[string]string{"User-Agent": "langchain-azure-dynamic-sessions/1.0.3 (Language=Python)"}
	build := func(path, apiVersion string) string {
		return ep + "/" + path + "?identifier=" + url.QueryEscape(id) + "&api-version=" + apiVersion
	}
	resp, b := e.doJSON("POST", build("code/execute", "2024-02-02-preview"), map[string]any{"properties": map[string]any{
		"codeInputType": "inline", "executionType": "synchronous", "code": "print('hello world')\n1 + 1"}}, ua)
	wantStatus(t, "execute", resp, b, 200)
	props := v1Props(t, b)
	if props["result"] != float64(2) || props["stdout"] != "hello world\n" || props["stderr"] != "" {
		t.Errorf("execute: result %#v stdout %#v stderr %#v, want 2, \"hello world\\n\", \"\"", props["result"], props["stdout"], props["stderr"])
	}
	if props["status"] != "Success" {
		t.Errorf("status %v, want Success", props["status"])
	}

	// Upload: multipart file=(remote_name, data, application/octet-stream).
	body, ctype := multipartFile(t, "file", "test1.txt", "application/octet-stream", []byte("0123456789abcdef"))
	resp, b = e.do("POST", build("files/upload", "2024-02-02-preview"), body, map[string]string{"Content-Type": ctype})
	wantStatus(t, "upload", resp, b, 200)
	up := decodeMap(t, b)
	v0 := up["value"].([]any)[0].(map[string]any)["properties"].(map[string]any)
	if v0["filename"] != "test1.txt" || v0["size"] != float64(16) {
		t.Errorf("upload: value[0].properties = %v, want filename test1.txt size 16", v0)
	}

	resp, b = e.do("GET", build("files", "2024-02-02-preview"), nil, ua)
	wantStatus(t, "list", resp, b, 200)
	var list struct {
		Value []struct {
			Properties struct {
				Filename string `json:"filename"`
				Size     int64  `json:"size"`
			} `json:"properties"`
		} `json:"value"`
	}
	json.Unmarshal(b, &list)
	if len(list.Value) != 1 || list.Value[0].Properties.Filename != "test1.txt" || list.Value[0].Properties.Size != 16 {
		t.Errorf("list: %s", b)
	}

	resp, b = e.do("GET", build("files/content/"+url.PathEscape("test1.txt"), "2024-02-02-preview"), nil, ua)
	wantStatus(t, "download", resp, b, 200)
	if string(b) != "0123456789abcdef" {
		t.Errorf("download: %q", b)
	}

	// close(): DELETE session at 2025-10-02-preview.
	resp, b = e.do("DELETE", build("session", "2025-10-02-preview"), nil, ua)
	wantStatus(t, "delete session", resp, b, 204)
	if _, err := e.sessions.Lookup(t.Context(), "/subscriptions/"+e.sub+"/resourceGroups/"+e.rg+"/providers/Microsoft.App/sessionPools/py", id); err == nil {
		t.Error("the session still exists after DELETE session")
	}
}

func TestLangChainBashTool(t *testing.T) {
	e := newEnv(t)
	ep := e.endpoint("sh")
	id := uuid.NewString()
	build := func(path, extra string) string {
		return ep + "/" + path + "?identifier=" + url.QueryEscape(id) + "&api-version=2025-02-02-preview" + extra
	}
	resp, b := e.doJSON("POST", build("executions", ""), map[string]any{"shellCommand": "echo hi; echo oops >&2; pwd; exit 3"}, nil)
	want2xx(t, "execute", resp, b)
	var x struct {
		Status string `json:"status"`
		Result struct {
			Stdout string `json:"stdout"`
			Stderr string `json:"stderr"`
		} `json:"result"`
	}
	if err := json.Unmarshal(b, &x); err != nil {
		t.Fatal(err)
	}
	if code, err := strconv.Atoi(x.Status); err != nil || code != 3 {
		t.Errorf("int(status) = %v (%v), want 3: %s", code, err, b)
	}
	if !strings.HasPrefix(x.Result.Stdout, "hi\n") || x.Result.Stderr != "oops\n" {
		t.Errorf("stdout %q stderr %q", x.Result.Stdout, x.Result.Stderr)
	}
	if !strings.HasSuffix(strings.TrimSpace(x.Result.Stdout), "/data") {
		t.Errorf("the command's working directory is not the file root: %q", x.Result.Stdout)
	}

	body, ctype := multipartFile(t, "file", "notes.txt", "application/octet-stream", []byte("bash notes"))
	resp, b = e.do("POST", build("files", "&path=/mnt/data"), body, map[string]string{"Content-Type": ctype})
	want2xx(t, "upload", resp, b)
	up := decodeMap(t, b)
	if up["name"] != "notes.txt" || up["sizeInBytes"] != float64(10) {
		t.Errorf("upload: %s", b)
	}
	resp, b = e.do("GET", build("files/"+url.PathEscape("notes.txt")+"/content", ""), nil, nil)
	want2xx(t, "download", resp, b)
	if string(b) != "bash notes" {
		t.Errorf("download: %q", b)
	}
	resp, b = e.do("GET", build("files", ""), nil, nil)
	want2xx(t, "list", resp, b)
	var list struct {
		Value []struct {
			Name        string `json:"name"`
			SizeInBytes int64  `json:"sizeInBytes"`
		} `json:"value"`
	}
	json.Unmarshal(b, &list)
	if len(list.Value) != 1 || list.Value[0].Name != "notes.txt" || list.Value[0].SizeInBytes != 10 {
		t.Errorf("list: %s", b)
	}
	// The shell saw the upload in its working directory.
	resp, b = e.doJSON("POST", build("executions", ""), map[string]any{"shellCommand": "cat notes.txt"}, nil)
	want2xx(t, "cat", resp, b)
	json.Unmarshal(b, &x)
	if x.Status != "0" || x.Result.Stdout != "bash notes" {
		t.Errorf("cat: %s", b)
	}
}

func TestLangChainJS(t *testing.T) {
	e := newEnv(t)
	ep := e.endpoint("py")
	id := uuid.NewString()
	tok := map[string]string{"Authorization": "Bearer " + e.token(auth.AudienceDataPlaneLegacy),
		"User-Agent": "langchainjs-azure-dynamic-sessions @langchain/azure-dynamic-sessions/0.2.0 (Language=JavaScript; node.js/20; linux; x64)"}
	build := func(path string) string {
		return ep + "/" + path + "?identifier=" + url.QueryEscape(id) + "&api-version=2024-02-02-preview"
	}
	resp, b := e.doJSON("POST", build("code/execute"), map[string]any{"properties": map[string]any{
		"codeInputType": "inline", "executionType": "synchronous", "code": "x = 21\nprint(x)\nx * 2"}}, tok)
	wantStatus(t, "execute", resp, b, 200)
	props := v1Props(t, b)
	if props["result"] != float64(42) || props["stdout"] != "21\n" || props["stderr"] != "" {
		t.Errorf("execute: %s", b)
	}
	body, ctype := multipartFile(t, "file", "data.csv", "", []byte("a,b\n1,2\n"))
	tok["Content-Type"] = ctype
	resp, b = e.do("POST", build("files/upload"), body, tok)
	wantStatus(t, "upload", resp, b, 200)
	props0 := decodeMap(t, b)["value"].([]any)[0].(map[string]any)["properties"].(map[string]any)
	if props0["filename"] != "data.csv" || props0["size"] != float64(8) || props0["$id"] == nil || props0["lastModifiedTime"] == nil {
		t.Errorf("upload value[0].properties: %v", props0)
	}
	delete(tok, "Content-Type")
	resp, b = e.do("GET", build("files/content/data.csv"), nil, tok)
	wantStatus(t, "download", resp, b, 200)
	if string(b) != "a,b\n1,2\n" {
		t.Errorf("download %q", b)
	}
	resp, b = e.do("GET", build("files"), nil, tok)
	wantStatus(t, "list", resp, b, 200)
	if v := decodeMap(t, b)["value"].([]any); len(v) != 1 {
		t.Errorf("list: %s", b)
	}
}

func TestSemanticKernelPython(t *testing.T) {
	e := newEnv(t)
	ep := e.endpoint("py")
	id := uuid.NewString()
	hd := map[string]string{"Authorization": "Bearer " + e.token(auth.AudienceDataPlaneLegacy),
		"User-Agent": "semantic-kernel-python/1.0 (Language=Python)"}
	// SK-PY joins key=value raw.
	build := func(path string) string {
		return ep + "/" + path + "?identifier=" + id + "&api-version=2024-02-02-preview"
	}
	resp, b := e.doJSON("POST", build("code/execute"), map[string]any{"properties": map[string]any{
		"codeInputType": "inline", "executionType": "synchronous", "code": "import math\nmath.sqrt(16)", "timeoutInSeconds": 100}}, hd)
	wantStatus(t, "execute", resp, b, 200)
	props := v1Props(t, b)
	if props["status"] != "Success" || props["result"] != float64(4) {
		t.Errorf("execute: %s", b)
	}
	// Upload named /mnt/data/<name>; SK-PY then lists and matches
	// "/mnt/data/" + filename.
	body, ctype := multipartFile(t, "file", "/mnt/data/report.txt", "application/octet-stream", []byte("report"))
	hd["Content-Type"] = ctype
	resp, b = e.do("POST", build("files/upload"), body, hd)
	want2xx(t, "upload", resp, b)
	delete(hd, "Content-Type")
	resp, b = e.do("GET", build("files"), nil, hd)
	wantStatus(t, "list", resp, b, 200)
	found := false
	for _, v := range decodeMap(t, b)["value"].([]any) {
		p := v.(map[string]any)["properties"].(map[string]any)
		if "/mnt/data/"+p["filename"].(string) == "/mnt/data/report.txt" && p["size"] == float64(6) {
			found = true
		}
	}
	if !found {
		t.Errorf("list does not show /mnt/data/report.txt: %s", b)
	}
	resp, b = e.do("GET", build("files/content/report.txt"), nil, hd)
	wantStatus(t, "download", resp, b, 200)
	if string(b) != "report" {
		t.Errorf("download %q", b)
	}
	// The kernel sees the file in its working directory.
	resp, b = e.doJSON("POST", build("code/execute"), map[string]any{"properties": map[string]any{
		"codeInputType": "inline", "executionType": "synchronous", "code": "open('report.txt').read()", "timeoutInSeconds": 100}}, hd)
	wantStatus(t, "read back", resp, b, 200)
	if p := v1Props(t, b); p["result"] != "report" {
		t.Errorf("read back: %s", b)
	}
}

func TestSemanticKernelDotNet(t *testing.T) {
	e := newEnv(t)
	ep := e.endpoint("py") + "/" // SK-NET ensures a trailing slash
	id := "my-session"
	hd := map[string]string{"User-Agent": "Semantic-Kernel/1.30.0 (Language=dotnet)"}
	build := func(path string) string { return ep + path + "?identifier=" + id + "&api-version=2024-10-02-preview" }
	resp, b := e.doJSON("POST", build("executions"), `{"codeInputType":"Inline","executionType":"Synchronous","timeoutInSeconds":100,"code":"print('hi')\n6*7"}`, hd)
	want2xx(t, "execute", resp, b)
	var x struct {
		Status *string `json:"status"`
		Result struct {
			Stdout          string  `json:"stdout"`
			Stderr          string  `json:"stderr"`
			ExecutionResult *string `json:"executionResult"`
		} `json:"result"`
	}
	if err := json.Unmarshal(b, &x); err != nil {
		t.Fatalf("SK-NET cannot deserialize: %v: %s", err, b)
	}
	if x.Status == nil || *x.Status != "Succeeded" || x.Result.Stdout != "hi\n" || x.Result.ExecutionResult == nil || *x.Result.ExecutionResult != "42" {
		t.Errorf("execute: %s", b)
	}
	if resp.Header.Get("operation-id") == "" || resp.Header.Get("Operation-Location") == "" {
		t.Errorf("operation headers missing: %v", resp.Header)
	}
	body, ctype := multipartFile(t, "file", "my file.json", "application/octet-stream", []byte(`{"a":1}`))
	resp, b = e.do("POST", build("files"), body, map[string]string{"Content-Type": ctype})
	want2xx(t, "upload", resp, b)
	type fileMeta struct {
		Name           *string    `json:"name"`
		SizeInBytes    *int32     `json:"sizeInBytes"`
		LastModifiedAt *time.Time `json:"lastModifiedAt"`
		ContentType    *string    `json:"contentType"`
		Type           *string    `json:"type"`
	}
	var fm fileMeta
	if err := json.Unmarshal(b, &fm); err != nil {
		t.Fatalf("upload answer: %v: %s", err, b)
	}
	if fm.Name == nil || *fm.Name != "my file.json" || fm.SizeInBytes == nil || *fm.SizeInBytes != 7 || fm.LastModifiedAt == nil || fm.Type == nil {
		t.Errorf("upload: %s", b)
	}
	// Uri.EscapeDataString("my file.json") = "my%20file.json".
	resp, b = e.do("GET", build("files/my%20file.json/content"), nil, nil)
	want2xx(t, "download", resp, b)
	if string(b) != `{"a":1}` {
		t.Errorf("download %q", b)
	}
	resp, b = e.do("GET", build("files"), nil, nil)
	want2xx(t, "list", resp, b)
	var list struct {
		Value []fileMeta `json:"value"`
	}
	if err := json.Unmarshal(b, &list); err != nil || len(list.Value) != 1 || *list.Value[0].Name != "my file.json" {
		t.Errorf("list: %v %s", err, b)
	}
}

func TestAutoGen(t *testing.T) {
	e := newEnv(t)
	ep := e.endpoint("py")
	id := uuid.NewString()
	// AG: token for "https://dynamicsessions.io"; no User-Agent.
	build := func(path string) string {
		return ep + "/" + path + "?api-version=2024-02-02-preview&identifier=" + id
	}
	run := func(code string) (exitcode int, logs string) {
		t.Helper()
		resp, b := e.doJSON("POST", build("code/execute"), map[string]any{"properties": map[string]any{
			"codeInputType": "inline", "executionType": "synchronous", "code": code}}, nil)
		want2xx(t, "execute", resp, b)
		data := v1Props(t, b)
		stderr, _ := data["stderr"].(string)
		stdout, _ := data["stdout"].(string)
		logs = stderr + stdout
		status := data["status"].(string)
		if strings.Contains(status, "Success") {
			logs += pyStr(data["result"])
		} else if strings.Contains(status, "Failure") {
			exitcode = 1
		}
		return exitcode, logs
	}
	// get_available_packages.
	code, out := run("\nimport pkg_resources\n[d.project_name for d in pkg_resources.working_set]\n")
	if code != 0 {
		t.Fatalf("package listing failed: %s", out)
	}
	pkgs := map[string]bool{}
	for _, p := range strings.Split(strings.Trim(out, "[]"), ",\n") {
		pkgs[strings.Trim(p, " '")] = true
	}
	if len(pkgs) < 3 || !(pkgs["pip"] || pkgs["setuptools"]) {
		t.Errorf("AutoGen's parse of the package listing found %d packages (%v); output %q", len(pkgs), keys(pkgs, 5), out)
	}
	// _setup_functions with no functions.
	if code, out := run("\n\n"); code != 0 {
		t.Errorf("empty functions module: %s", out)
	}
	// _setup_cwd.
	if _, err := os.Stat("/mnt/data"); err == nil {
		if code, out := run("import os; os.chdir('/mnt/data')"); code != 0 {
			t.Errorf("chdir /mnt/data: %s", out)
		}
	} else {
		code, out := run("import os; os.chdir('/mnt/data')")
		if code != 1 || !strings.Contains(out, "FileNotFoundError") {
			t.Errorf("chdir to a missing /mnt/data: exit %d, %q", code, out)
		}
		t.Log("this host has no /mnt/data (sandboxes do): checked the failure shape of os.chdir instead")
	}
	// upload_files, get_file_list, download_files.
	body, ctype := multipartFile(t, "file", "input.txt", "application/octet-stream", []byte("autogen"))
	resp, b := e.do("POST", build("files/upload"), body, map[string]string{"Content-Type": ctype})
	want2xx(t, "upload", resp, b)
	resp, b = e.do("GET", build("files"), nil, nil)
	want2xx(t, "list", resp, b)
	var names []string
	for _, v := range decodeMap(t, b)["value"].([]any) {
		names = append(names, v.(map[string]any)["properties"].(map[string]any)["filename"].(string))
	}
	if len(names) != 1 || names[0] != "input.txt" {
		t.Errorf("file list %v", names)
	}
	resp, b = e.do("GET", build("files/content/input.txt"), nil, nil)
	want2xx(t, "download", resp, b)
	if string(b) != "autogen" {
		t.Errorf("download %q", b)
	}
	// A failing block gives exit code 1.
	if code, out := run("1/0"); code != 1 || !strings.Contains(out, "ZeroDivisionError") {
		t.Errorf("failing block: exit %d, %q", code, out)
	}
}

// pyStr is Python's str() of a decoded JSON value, as AutoGen applies it.
func pyStr(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		if v == float64(int64(v)) {
			return strconv.FormatInt(int64(v), 10)
		}
		return strconv.FormatFloat(v, 'g', -1, 64)
	case bool:
		if v {
			return "True"
		}
		return "False"
	case nil:
		return "None"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func keys(m map[string]bool, n int) []string {
	var out []string
	for k := range m {
		if len(out) == n {
			break
		}
		out = append(out, k)
	}
	return out
}

// fakePyplot installs a stand-in matplotlib.pyplot that has one figure
// whose PNG is the 8-byte PNG signature, so the kernel's figure capture
// runs without matplotlib.
const fakePyplot = `
import sys, types
_plt = types.ModuleType("matplotlib.pyplot")
_figs = [1]
class _Fig:
    def savefig(self, buf, format=None, bbox_inches=None):
        buf.write(b"\x89PNG\r\n\x1a\n")
_plt.get_fignums = lambda: list(_figs)
_plt.figure = lambda num=None: _Fig()
def _close(which=None):
    _figs.clear()
_plt.close = _close
sys.modules["matplotlib.pyplot"] = _plt
`

func TestLlamaIndexPython(t *testing.T) {
	e := newEnv(t)
	ep := e.endpoint("py")
	id := uuid.NewString()
	build := func(path string) string {
		return ep + "/" + path + "?identifier=" + id + "&api-version=2024-02-02-preview"
	}
	ua := map[string]string{"User-Agent": "llamaindex-azure-code-interpreter/0.3.0 (Language=Python)"}
	// LI-PY appends "\n" and returns the whole JSON.
	resp, b := e.doJSON("POST", build("code/execute"), map[string]any{"properties": map[string]any{
		"codeInputType": "inline", "executionType": "synchronous", "code": fakePyplot + "\n"}}, ua)
	wantStatus(t, "execute", resp, b, 200)
	res, ok := v1Props(t, b)["result"].(map[string]any)
	if !ok || res["type"] != "image" || res["format"] != "png" || res["base64_data"] != "iVBORw0KGgo=" {
		t.Errorf("image result: %s", b)
	}
	golden(t, "v1_image.json", normalizeTimes(b))

	body, ctype := multipartFile(t, "file", "/mnt/data/chart.txt", "application/octet-stream", []byte("llama"))
	resp, b = e.do("POST", build("files/upload"), body, map[string]string{"Content-Type": ctype})
	wantStatus(t, "upload", resp, b, 200)
	p := decodeMap(t, b)["value"].([]any)[0].(map[string]any)["properties"].(map[string]any)
	if p["filename"] != "chart.txt" || p["size"] != float64(5) {
		t.Errorf("upload: %s", b)
	}
	resp, b = e.do("GET", build("files/content/chart.txt"), nil, nil)
	wantStatus(t, "download", resp, b, 200)
	if string(b) != "llama" {
		t.Errorf("download %q", b)
	}
}

// normalizeTimes replaces the volatile executionTimeInMilliseconds and
// times of an answer for golden comparison.
func normalizeTimes(b []byte) []byte {
	var v any
	json.Unmarshal(b, &v)
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				switch k {
				case "executionTimeInMilliseconds":
					v[k] = 0
				case "lastModifiedTime", "lastModifiedAt", "expireAt", "expiresAt", "createdAt", "lastAccessedAt", "id", "etag":
					if _, ok := x.(string); ok {
						v[k] = "<" + k + ">"
					}
				default:
					walk(x)
				}
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
	out, _ := json.Marshal(v)
	return out
}

func TestLlamaIndexTS(t *testing.T) {
	e := newEnv(t)
	id := uuid.NewString()
	// _buildUrl("/code/execute") on an endpoint without a trailing slash.
	u := e.endpoint("py") + "//code/execute?identifier=" + url.QueryEscape(id) + "&api-version=2024-02-02-preview"
	resp, b := e.doJSON("POST", u, map[string]any{"properties": map[string]any{
		"identifier": id, "codeInputType": "inline", "executionType": "synchronous", "pythonCode": "print('ts')\n'done'"}}, nil)
	wantStatus(t, "execute", resp, b, 200)
	props := v1Props(t, b)
	if props["stdout"] != "ts\n" || props["result"] != "done" {
		t.Errorf("execute: %s", b)
	}
	body, ctype := multipartFile(t, "file", "ts.txt", "", []byte("ts file"))
	resp, b = e.do("POST", e.endpoint("py")+"//files/upload?identifier="+id+"&api-version=2024-02-02-preview", body, map[string]string{"Content-Type": ctype})
	wantStatus(t, "upload", resp, b, 200)
	if p := decodeMap(t, b)["value"].([]any)[0].(map[string]any)["properties"].(map[string]any); p["filename"] != "ts.txt" {
		t.Errorf("upload: %s", b)
	}
	resp, b = e.do("GET", e.endpoint("py")+"//files/content/ts.txt?identifier="+id+"&api-version=2024-02-02-preview", nil, nil)
	wantStatus(t, "download", resp, b, 200)
	if string(b) != "ts file" {
		t.Errorf("download %q", b)
	}
}

func TestAzCLICodeInterpreter(t *testing.T) {
	e := newEnv(t)
	ep := e.endpoint("py")
	id := "cli-session-1"
	v := "2025-02-02-preview"
	resp, b := e.doJSON("POST", ep+"/executions?identifier="+id+"&api-version="+v, map[string]any{"properties": map[string]any{
		"identifier": id, "codeInputType": "inline", "executionType": "synchronous", "timeoutInSeconds": 60, "code": "print('cli')"}}, nil)
	if resp.StatusCode == 201 || resp.StatusCode/100 != 2 {
		t.Fatalf("execute: status %d (201 makes the CLI poll): %s", resp.StatusCode, b)
	}
	m := decodeMap(t, b)
	if m["status"] != "Succeeded" || m["result"].(map[string]any)["stdout"] != "cli\n" || m["identifier"] != id {
		t.Errorf("execute: %s", b)
	}
	golden(t, "v2_execution_2025-02-02.json", normalizeTimes(b))

	// upload-file --path sub (a "/" in --filename becomes a path prefix).
	body, ctype := multipartFile(t, "file", "c.txt", "", []byte("cli file"))
	resp, b = e.do("POST", ep+"/files?path=a/b&identifier="+id+"&api-version="+v, body, map[string]string{"Content-Type": ctype})
	if resp.StatusCode != 200 && resp.StatusCode != 201 && resp.StatusCode != 204 {
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
	resp, b = e.do("GET", ep+"/files/c.txt/content?path=a/b&identifier="+id+"&api-version="+v, nil, nil)
	wantStatus(t, "show-file-content", resp, b, 200)
	if string(b) != "cli file" {
		t.Errorf("content %q", b)
	}
	resp, b = e.do("GET", ep+"/files/c.txt?path=a/b&identifier="+id+"&api-version="+v, nil, nil)
	wantStatus(t, "show-file-metadata", resp, b, 200)
	if md := decodeMap(t, b); md["name"] != "c.txt" || md["sizeInBytes"] != float64(8) || md["type"] != "File" {
		t.Errorf("metadata: %s", b)
	}
	resp, b = e.do("GET", ep+"/files?identifier="+id+"&path=&api-version="+v, nil, nil)
	wantStatus(t, "list-files", resp, b, 200)
	if l := decodeMap(t, b); len(l["value"].([]any)) != 1 || l["value"].([]any)[0].(map[string]any)["type"] != "Directory" {
		t.Errorf("list: %s", b)
	}
	resp, b = e.do("GET", ep+"/files?identifier="+id+"&path=a&recursive=true&api-version=2025-10-02-preview", nil, nil)
	wantStatus(t, "list recursive", resp, b, 200)
	golden(t, "v2_files_recursive.json", normalizeTimes(b))
	resp, b = e.do("DELETE", ep+"/files/c.txt?path=a/b&identifier="+id+"&api-version="+v, nil, nil)
	wantStatus(t, "delete-file", resp, b, 204)
	resp, b = e.do("GET", ep+"/files/c.txt?path=a/b&identifier="+id+"&api-version="+v, nil, nil)
	wantStatus(t, "metadata after delete", resp, b, 404)
}

func TestShellTutorial(t *testing.T) {
	e := newEnv(t)
	ep := e.endpoint("sh")
	// DOC-SHELL 2025-10-30: token without --resource (management
	// audience), lower-case header names, the command array.
	id := "0b4ae1c8-7d4e-4c39-9a55-1f2d8e3c4b5a" // New-Guid
	hd := map[string]string{"authorization": "Bearer " + e.token(auth.AudienceManagement), "content-type": "application/json"}
	resp, b := e.doJSON("POST", ep+"/executions?api-version=2025-02-02-preview&identifier="+id,
		`{"codeInputType":"inline","executionType":"synchronous","command":["/bin/bash","-c","echo 'hello world'; echo 'hi'"],"timeoutInSeconds":600}`, hd)
	want2xx(t, "command array", resp, b)
	m := decodeMap(t, b)
	if m["status"] != "0" || m["result"].(map[string]any)["stdout"] != "hello world\nhi\n" {
		t.Errorf("command array: %s", b)
	}
	golden(t, "v2_shell.json", normalizeTimes(b))
	// The current revision: shellCommand as a string.
	resp, b = e.doJSON("POST", ep+"/executions?api-version=2025-02-02-preview&identifier="+id,
		`{"codeInputType":"inline","executionType":"synchronous","shellCommand":"echo Hello world!","timeoutInSeconds":600}`, hd)
	want2xx(t, "shellCommand", resp, b)
	if m := decodeMap(t, b); m["status"] != "0" || m["result"].(map[string]any)["stdout"] != "Hello world!\n" {
		t.Errorf("shellCommand: %s", b)
	}
	// The older mirror: shellCommand as an array; SPEC-2510: execCommandAndArgs and stdin.
	resp, b = e.doJSON("POST", ep+"/executions?api-version=2025-10-02-preview&identifier="+id,
		`{"shellCommand":["/bin/bash","-c","echo array"]}`, hd)
	wantStatus(t, "shellCommand array", resp, b, 200)
	if m := decodeMap(t, b); m["result"].(map[string]any)["stdout"] != "array\n" {
		t.Errorf("shellCommand array: %s", b)
	}
	resp, b = e.doJSON("POST", ep+"/executions?api-version=2025-10-02-preview&identifier="+id,
		`{"execCommandAndArgs":["cat"],"stdin":"first_input:testinputlineline\n"}`, hd)
	wantStatus(t, "execCommandAndArgs", resp, b, 200)
	if m := decodeMap(t, b); m["status"] != "0" || m["result"].(map[string]any)["stdout"] != "first_input:testinputlineline\n" {
		t.Errorf("execCommandAndArgs: %s", b)
	}
}
