package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidepool-dev/tidepool/internal/sandbox"
	"github.com/tidepool-dev/tidepool/internal/sandbox/oci"
	"github.com/tidepool-dev/tidepool/internal/server"
)

// e2eCgroupParent keeps the test's sandboxes' cgroups apart from those of
// a tidepool server running on the same host.
const e2eCgroupParent = "tidepool-e2e"

// needRootOrSkip skips a test that needs root when not root, unless CI is
// set: then it fails, because CI runs the tests as root.
func needRootOrSkip(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		tb.Fatal("CI is set but the tests do not run as root: the end-to-end test needs root (OCI runtime, mounts, namespaces)")
	}
	tb.Skip("skipping: needs root (runc, mounts, namespaces); CI runs it as root")
}

var (
	agentOnce sync.Once
	agentPath string
	agentErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if agentPath != "" {
		os.RemoveAll(filepath.Dir(agentPath))
	}
	os.Exit(code)
}

// agentBinary builds cmd/tidepool (static, as `make build` does) once per
// test process into a temporary directory TestMain removes; sandboxes run
// its `agent` subcommand.
func agentBinary(tb testing.TB) string {
	tb.Helper()
	agentOnce.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
			if _, err := os.Stat(goBin); err != nil {
				goBin = "/usr/local/go/bin/go"
			}
		}
		out, err := exec.Command(goBin, "env", "GOMOD").Output()
		if err != nil {
			agentErr = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		gomod := strings.TrimSpace(string(out))
		if gomod == "" || gomod == os.DevNull {
			agentErr = fmt.Errorf("go env GOMOD = %q: not inside the module", gomod)
			return
		}
		dir, err := os.MkdirTemp("", "tpagent")
		if err != nil {
			agentErr = err
			return
		}
		// World-searchable: sandboxes run as unprivileged ids (the runtime
		// copies the binary, but ProcessRuntime runs it in place).
		if err := os.Chmod(dir, 0o711); err != nil {
			agentErr = err
			return
		}
		bin := filepath.Join(dir, "tidepool-agent")
		cmd := exec.Command(goBin, "build", "-trimpath", "-o", bin, "./cmd/tidepool-agent")
		cmd.Dir = filepath.Dir(gomod)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			agentErr = fmt.Errorf("go build ./cmd/tidepool-agent: %v\n%s", err, out)
			return
		}
		agentPath = bin
	})
	if agentErr != nil {
		tb.Fatal(agentErr)
	}
	return agentPath
}

// searchableTempDir returns a t.TempDir() that it and its parent are
// searchable by others (o+x, never o+r): sandboxes run as unprivileged ids
// in user namespaces and must traverse the data dir to reach their bundles
// (cmd/tidepool's makeSearchable does the same for the data dir).
func searchableTempDir(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		fi, err := os.Stat(d)
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.Chmod(d, fi.Mode().Perm()|0o011); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

// newOCIRuntime returns a runc Runtime under root. At the end of the test
// (after the server has stopped, when registered before startServer) it
// destroys whatever sandbox is left, checks that nothing stays mounted
// under root, and removes the test's cgroup parent.
func newOCIRuntime(tb testing.TB, root string) *oci.Runtime {
	tb.Helper()
	rt, err := oci.New(root, oci.WithBinary("runc"), oci.WithAgentBinary(agentBinary(tb)), oci.WithCgroupParent(e2eCgroupParent))
	if errors.Is(err, sandbox.ErrRuntimeMissing) && os.Getenv("CI") == "" {
		tb.Skipf("skipping: %v", err)
	}
	if err != nil {
		tb.Fatalf("oci.New: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		left, err := rt.List(ctx)
		if err != nil {
			tb.Errorf("cleanup: List: %v", err)
		}
		for _, sb := range left {
			if err := rt.Destroy(ctx, sb.ID); err != nil && !errors.Is(err, sandbox.ErrNotFound) {
				tb.Errorf("cleanup: Destroy(%s): %v", sb.ID, err)
			}
		}
		if m := mountsUnder(tb, root); len(m) > 0 {
			tb.Errorf("cleanup: still mounted under %s: %v", root, m)
		}
		removeCgroupParent(e2eCgroupParent)
	})
	return rt
}

// mountsUnder returns the mount points at or below dir in this process's
// mount namespace.
func mountsUnder(tb testing.TB, dir string) []string {
	tb.Helper()
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(mi), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		// Field 5 is the mount point, with spaces and the like octal-escaped.
		if p := f[4]; p == dir || strings.HasPrefix(p, dir+"/") {
			out = append(out, p)
		}
	}
	return out
}

// runcList returns the containers runc knows in the runtime's state root.
func runcList(tb testing.TB, root string) []string {
	tb.Helper()
	out, err := exec.Command("runc", "--root", filepath.Join(root, ".oci", "runc"), "list", "-q").CombinedOutput()
	if err != nil {
		tb.Fatalf("runc list: %v\n%s", err, out)
	}
	return strings.Fields(string(out))
}

// removeCgroupParent removes the (empty) cgroup parent the runtime made
// below this process's cgroup, in every hierarchy. Best effort.
func removeCgroupParent(parent string) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		own := f[2]
		if filepath.Base(own) == "supervisor" {
			own = filepath.Dir(own)
		}
		var mounts []string
		if f[1] == "" {
			mounts = []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}
		}
		for _, c := range strings.Split(f[1], ",") {
			if c != "" {
				mounts = append(mounts, filepath.Join("/sys/fs/cgroup", strings.TrimPrefix(c, "name=")))
			}
		}
		for _, m := range mounts {
			_ = os.Remove(filepath.Join(m, own, parent))
		}
	}
}

// e2eClient is what the end-to-end test talks through: one base URL, one
// token, one client.
type e2eClient struct {
	t     *testing.T
	hc    *http.Client
	token string
	base  string // the server's endpoint
	sub   string
}

func (c *e2eClient) do(method, u string, body any, want ...int) *response {
	c.t.Helper()
	return mustDo(c.t, c.hc, method, u, c.token, body, want...)
}

// poolURL is the management URL of a pool.
func (c *e2eClient) poolURL(rg, name string) string {
	return fmt.Sprintf("%s/subscriptions/%s/resourceGroups/%s/providers/Microsoft.App/sessionPools/%s?api-version=2025-02-02-preview", c.base, c.sub, rg, name)
}

// createPool PUTs a pool and polls it until it is Succeeded; it returns
// its poolManagementEndpoint.
func (c *e2eClient) createPool(rg, name, containerType string, ready, max int) string {
	c.t.Helper()
	body := map[string]any{
		"location": "eastus",
		"properties": map[string]any{
			"containerType":      containerType,
			"poolManagementType": "Dynamic",
			"scaleConfiguration": map[string]any{"maxConcurrentSessions": max, "readySessionInstances": ready},
			"dynamicPoolConfiguration": map[string]any{
				"lifecycleConfiguration": map[string]any{"lifecycleType": "Timed", "cooldownPeriodInSeconds": 300},
			},
			"sessionNetworkConfiguration": map[string]any{"status": "EgressDisabled"},
		},
	}
	c.do(http.MethodPut, c.poolURL(rg, name), body, http.StatusCreated)
	deadline := time.Now().Add(45 * time.Second)
	for {
		r := c.do(http.MethodGet, c.poolURL(rg, name), nil, http.StatusOK)
		switch state := provisioningState(r.Body); state {
		case "Succeeded":
			var p struct {
				Properties struct {
					PoolManagementEndpoint string `json:"poolManagementEndpoint"`
				} `json:"properties"`
			}
			if err := json.Unmarshal(r.Body, &p); err != nil || p.Properties.PoolManagementEndpoint == "" {
				c.t.Fatalf("pool %s: no poolManagementEndpoint in %s", name, r)
			}
			return p.Properties.PoolManagementEndpoint
		case "Failed", "Canceled":
			c.t.Fatalf("pool %s: provisioning %s: %s", name, state, r)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("pool %s: not Succeeded after 45s: %s", name, r)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// v1Result is the v1 execution shape.
type v1Result struct {
	Properties struct {
		Status string          `json:"status"`
		Stdout string          `json:"stdout"`
		Stderr string          `json:"stderr"`
		Result json.RawMessage `json:"result"`
	} `json:"properties"`
}

// execV1 runs code with the v1 code/execute route.
func (c *e2eClient) execV1(endpoint, ident, code string) v1Result {
	c.t.Helper()
	u := endpoint + "/code/execute?api-version=2024-02-02-preview&identifier=" + url.QueryEscape(ident)
	body := map[string]any{"properties": map[string]any{"codeInputType": "inline", "executionType": "synchronous", "code": code}}
	r := c.do(http.MethodPost, u, body, http.StatusOK)
	var res v1Result
	if err := json.Unmarshal(r.Body, &res); err != nil {
		c.t.Fatalf("code/execute: %v: %s", err, r)
	}
	if res.Properties.Status != "Success" {
		c.t.Fatalf("code/execute %q: %s", code, r)
	}
	return res
}

// TestEndToEndOCI drives a server with the real OCI runtime (runc) through
// HTTP only: create pools, execute code and shell commands, move files,
// fill a pool, and delete everything, leaving no container and no mount.
func TestEndToEndOCI(t *testing.T) {
	needRootOrSkip(t)
	if _, err := exec.LookPath("runc"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("runc is not installed: %v", err)
		}
		t.Skipf("skipping: runc is not installed (%v)", err)
	}
	began := time.Now()
	defer func() { t.Logf("TestEndToEndOCI took %v", time.Since(began).Round(time.Millisecond)) }()

	dataDir := searchableTempDir(t)
	root := filepath.Join(dataDir, "sandboxes")
	rt := newOCIRuntime(t, root) // its cleanup runs after the server's
	t.Logf("agent built and runtime ready after %v", time.Since(began).Round(time.Millisecond))
	info := startServer(t, server.Config{DataDir: dataDir, Runtime: rt})

	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer hc.CloseIdleConnections()
	token, err := managementToken(t.Context(), hc, readCredentials(t, dataDir))
	if err != nil {
		t.Fatal(err)
	}
	c := &e2eClient{t: t, hc: hc, token: token, base: info.Endpoint, sub: info.SubscriptionID}

	const rg = "e2e-rg"
	groupURL := fmt.Sprintf("%s/subscriptions/%s/resourcegroups/%s?api-version=2021-04-01", c.base, c.sub, rg)
	c.do(http.MethodPut, groupURL, map[string]string{"location": "eastus"}, http.StatusCreated)

	py := c.createPool(rg, "e2epython", "PythonLTS", 2, 4)
	t.Logf("python pool Succeeded after %v", time.Since(began).Round(time.Millisecond))

	// A new identifier gets a session; its state persists.
	if res := c.execV1(py, "first", "x = 41\nprint('hello')"); res.Properties.Stdout != "hello\n" {
		t.Errorf("stdout = %q, want %q", res.Properties.Stdout, "hello\n")
	}
	if res := c.execV1(py, "first", "x + 1"); string(res.Properties.Result) != "42" {
		t.Errorf("x + 1: result = %s, want 42 (state kept between executions)", res.Properties.Result)
	}

	// A file uploaded to the session is read back, over HTTP and from Python.
	content := []byte("tidepool end to end\n")
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, err := mw.CreateFormFile("file", "hello.txt")
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(content)
	mw.Close()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, py+"/files/upload?api-version=2024-02-02-preview&identifier=first", &buf)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	up := new(bytes.Buffer)
	up.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(up.String(), "hello.txt") {
		t.Fatalf("upload: HTTP %d: %s", resp.StatusCode, up)
	}
	r := c.do(http.MethodGet, py+"/files/content/hello.txt?api-version=2024-02-02-preview&identifier=first", nil, http.StatusOK)
	if !bytes.Equal(r.Body, content) {
		t.Errorf("download: %q, want %q", r.Body, content)
	}
	if res := c.execV1(py, "first", "open('/mnt/data/hello.txt').read()"); string(res.Properties.Result) != fmt.Sprintf("%q", content) {
		t.Errorf("reading the file in the session: result %s, want %q", res.Properties.Result, content)
	}

	// A v2 Shell pool runs shell commands.
	sh := c.createPool(rg, "e2eshell", "Shell", 1, 2)
	r = c.do(http.MethodPost, sh+"/executions?api-version=2025-10-02-preview&identifier=shell1",
		map[string]any{"shellCommand": "echo $((6 * 7)) && id -u"}, http.StatusOK)
	var v2 struct {
		Status string `json:"status"`
		Result struct {
			Stdout string `json:"stdout"`
			Stderr string `json:"stderr"`
		} `json:"result"`
	}
	if err := json.Unmarshal(r.Body, &v2); err != nil {
		t.Fatalf("executions: %v: %s", err, r)
	}
	if v2.Status != "0" || !strings.HasPrefix(v2.Result.Stdout, "42\n") {
		t.Errorf("shell execution: status %q stdout %q stderr %q, want status \"0\" and 42", v2.Status, v2.Result.Stdout, v2.Result.Stderr)
	}

	// The python pool holds at most 4 sessions: three more identifiers
	// fill it, a fifth is refused with 404 SessionPoolFull.
	for _, ident := range []string{"second", "third", "fourth"} {
		if res := c.execV1(py, ident, "print(1)"); res.Properties.Stdout != "1\n" {
			t.Errorf("%s: stdout %q", ident, res.Properties.Stdout)
		}
	}
	r = c.do(http.MethodPost, py+"/code/execute?api-version=2024-02-02-preview&identifier=fifth",
		map[string]any{"properties": map[string]any{"code": "print(1)"}}, http.StatusNotFound)
	if code := errorCode(t, r, r.Body); code != "SessionPoolFull" {
		t.Errorf("fifth identifier: code %q, want SessionPoolFull: %s", code, r)
	}
	// The sessions still answer.
	if res := c.execV1(py, "first", "x"); string(res.Properties.Result) != "41" {
		t.Errorf("x after filling the pool: %s, want 41", res.Properties.Result)
	}
	live, err := rt.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(live) < 5 { // 4 python sessions, 1 shell session (+ its warm one)
		t.Errorf("runtime lists %d sandboxes, want at least 5", len(live))
	}

	// Deleting the resource group deletes the pools and every sandbox.
	r = c.do(http.MethodDelete, groupURL, nil, http.StatusAccepted)
	loc := r.Header.Get("Location")
	if loc == "" {
		t.Fatalf("DELETE resource group: no Location: %s", r)
	}
	deadline := time.Now().Add(45 * time.Second)
	for {
		r = c.do(http.MethodGet, loc, nil, http.StatusAccepted, http.StatusOK, http.StatusNoContent)
		if r.Status != http.StatusAccepted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("resource group deletion not done after 45s: %s", r)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.do(http.MethodGet, groupURL, nil, http.StatusNotFound)
	// The deletion is done when its operation is: nothing may be left.
	if left, err := rt.List(t.Context()); err != nil || len(left) > 0 {
		ids := make([]string, len(left))
		for i, sb := range left {
			ids[i] = sb.ID
		}
		t.Errorf("after deleting the resource group, the runtime lists %v (err %v)", ids, err)
	}
	if ids := runcList(t, root); len(ids) > 0 {
		t.Errorf("after deleting the resource group, runc lists %v", ids)
	}
	if m := mountsUnder(t, root); len(m) > 0 {
		t.Errorf("after deleting the resource group, still mounted under %s: %v", root, m)
	}
}
