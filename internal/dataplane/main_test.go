package dataplane

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidepool-dev/tidepool/internal/agent/client"
	"github.com/tidepool-dev/tidepool/internal/arm"
	"github.com/tidepool-dev/tidepool/internal/auth"
	"github.com/tidepool-dev/tidepool/internal/model"
	"github.com/tidepool-dev/tidepool/internal/pool"
	"github.com/tidepool-dev/tidepool/internal/sandbox"
	"github.com/tidepool-dev/tidepool/internal/store"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// tidepoolBin is the agent binary (tidepool-agent) built once for the test's agents.
var tidepoolBin string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "dataplane-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tidepoolBin = filepath.Join(dir, "tidepool-agent")
	build := exec.Command("go", "build", "-o", tidepoolBin, "./cmd/tidepool-agent")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build tidepool for the agents: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// agentProc is a tidepool agent process serving one session.
type agentProc struct {
	cmd    *exec.Cmd
	dir    string
	client *client.Client
	done   chan struct{}
}

// startAgent starts `tidepool agent` for a session of kind, with files
// under its own directory, and waits until it is ready.
func startAgent(t testing.TB, kind string, targetPort int) *agentProc {
	t.Helper()
	dir, err := os.MkdirTemp("", "agent-")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "a.sock")
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"agent", "--init=false", "--socket", sock, "--files-root", data, "--workdir", data, "--log-level", "warn"}
	switch kind {
	case sandbox.KindPython:
		args = append(args, "--kernel", "python")
	case sandbox.KindNode:
		args = append(args, "--kernel", "node")
	case sandbox.KindCustom:
		args = append(args, "--target-port", strconv.Itoa(targetPort))
	}
	cmd := exec.Command(tidepoolBin, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &agentProc{cmd: cmd, dir: dir, client: client.New(sock), done: make(chan struct{})}
	go func() { cmd.Wait(); close(a.done) }()
	// Wait for the agent to answer and its kernel (if any) to be ready.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		h, err := a.client.Health(ctx)
		if err == nil && h.Ready && (kind != sandbox.KindPython && kind != sandbox.KindNode || h.Kernels[kind] == "ready") {
			return a
		}
		select {
		case <-a.done:
			a.stop()
			t.Fatalf("agent for %s exited before it was ready", kind)
		case <-ctx.Done():
			a.stop()
			t.Fatalf("agent for %s not ready: %v (last health %+v)", kind, err, h)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (a *agentProc) stop() {
	a.client.Close()
	if a.cmd.Process != nil {
		a.cmd.Process.Kill()
	}
	<-a.done
	os.RemoveAll(a.dir)
}

// fakeSessions implements Sessions with a real agent process per
// session; the limit per pool makes Acquire return pool.ErrPoolFull.
type fakeSessions struct {
	t          testing.TB
	kinds      map[string]string // pool id (lower case) -> sandbox kind
	limits     map[string]int
	targetPort int
	now        func() time.Time

	mu       sync.Mutex // guards sessions
	sessions map[string]*fakeSession
	acquires int
}

type fakeSession struct {
	s     pool.Session
	agent *agentProc
}

func key(poolID, id string) string { return strings.ToLower(poolID) + "\x00" + id }

func (f *fakeSessions) Acquire(ctx context.Context, poolID, identifier string) (*pool.Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.acquires++
	kind, ok := f.kinds[strings.ToLower(poolID)]
	if !ok {
		return nil, pool.ErrPoolNotFound
	}
	if fs := f.sessions[key(poolID, identifier)]; fs != nil {
		fs.s.LastActivity = f.now()
		fs.s.Allocation, fs.s.AllocationDuration = "existing", 0
		c := fs.s
		return &c, nil
	}
	n := 0
	for _, fs := range f.sessions {
		if strings.EqualFold(fs.s.PoolID, poolID) {
			n++
		}
	}
	if lim, ok := f.limits[strings.ToLower(poolID)]; ok && n >= lim {
		return nil, fmt.Errorf("claim: %w", pool.ErrPoolFull)
	}
	start := time.Now()
	a := startAgent(f.t, kind, f.targetPort)
	now := f.now()
	fs := &fakeSession{agent: a, s: pool.Session{
		PoolID: poolID, Identifier: identifier, SandboxID: fmt.Sprintf("sbx-%d", len(f.sessions)+1), Kind: kind,
		Agent: a.client, Created: now, LastActivity: now, Expires: now.Add(5 * time.Minute),
		Allocation: "cold", AllocationDuration: time.Since(start),
	}}
	f.sessions[key(poolID, identifier)] = fs
	c := fs.s
	return &c, nil
}

func (f *fakeSessions) Lookup(ctx context.Context, poolID, identifier string) (*pool.Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fs := f.sessions[key(poolID, identifier)]; fs != nil {
		c := fs.s
		return &c, nil
	}
	return nil, pool.ErrSessionNotFound
}

func (f *fakeSessions) Sessions(ctx context.Context, poolID string) ([]pool.Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []pool.Session
	for _, fs := range f.sessions {
		if strings.EqualFold(fs.s.PoolID, poolID) {
			out = append(out, fs.s)
		}
	}
	return out, nil
}

func (f *fakeSessions) Stop(ctx context.Context, poolID, identifier string) error {
	f.mu.Lock()
	fs := f.sessions[key(poolID, identifier)]
	delete(f.sessions, key(poolID, identifier))
	f.mu.Unlock()
	if fs == nil {
		return pool.ErrSessionNotFound
	}
	fs.agent.stop()
	return nil
}

func (f *fakeSessions) close() {
	f.mu.Lock()
	all := f.sessions
	f.sessions = map[string]*fakeSession{}
	f.mu.Unlock()
	for _, fs := range all {
		fs.agent.stop()
	}
}

// env is a data plane on a loopback server with pools of every type.
type env struct {
	t        *testing.T
	srv      *httptest.Server
	h        *Handler
	sessions *fakeSessions
	issuer   *auth.Issuer
	tokens   map[string]string // audience -> token
	target   *httptest.Server  // the custom container's app
	sub, rg  string
}

const testMaxUpload = 2 << 20

// Pool names of the test env and their container types.
var testPools = map[string]string{
	"py":    model.ContainerTypePythonLTS,
	"node":  model.ContainerTypeNodeLTS,
	"sh":    model.ContainerTypeShell,
	"cc":    model.ContainerTypeCustomContainer,
	"small": model.ContainerTypePythonLTS,
}

func kindOf(containerType string) string {
	switch containerType {
	case model.ContainerTypeNodeLTS:
		return sandbox.KindNode
	case model.ContainerTypeShell:
		return sandbox.KindShell
	case model.ContainerTypeCustomContainer:
		return sandbox.KindCustom
	}
	return sandbox.KindPython
}

func newEnv(t *testing.T, opts ...func(*Config)) *env {
	t.Helper()
	e := &env{t: t, sub: "00000000-0000-0000-0000-000000000001", rg: "rg1", tokens: map[string]string{}}
	e.target = httptest.NewServer(http.HandlerFunc(targetApp))
	t.Cleanup(e.target.Close)
	port := e.target.Listener.Addr().(*net.TCPAddr).Port
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "db.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.sessions = &fakeSessions{t: t, kinds: map[string]string{}, limits: map[string]int{}, targetPort: port,
		now: time.Now, sessions: map[string]*fakeSession{}}
	t.Cleanup(e.sessions.close)
	created := time.Date(2025, 1, 5, 22, 18, 41, 495000000, time.UTC)
	for name, ct := range testPools {
		id := arm.PoolID(e.sub, e.rg, name)
		p := model.SessionPool{ID: id, Name: name, Type: model.SessionPoolType, Location: "local",
			SystemData: &model.SystemData{CreatedAt: &created, LastModifiedAt: &created},
			Properties: &model.PoolProperties{ContainerType: ct, ProvisioningState: model.StateSucceeded}}
		if ct == model.ContainerTypeCustomContainer {
			tp := int32(port)
			p.Properties.CustomContainerTemplate = &model.CustomContainerTemplate{Ingress: &model.SessionIngress{TargetPort: &tp}}
		}
		body, _ := json.Marshal(p)
		if err := st.PutResource(ctx, &store.Resource{ID: id, Type: model.SessionPoolType,
			Scope: "/subscriptions/" + e.sub + "/resourceGroups/" + e.rg, Body: body}); err != nil {
			t.Fatal(err)
		}
		e.sessions.kinds[strings.ToLower(id)] = kindOf(ct)
	}
	e.sessions.limits[strings.ToLower(arm.PoolID(e.sub, e.rg, "small"))] = 1

	var h *Handler
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(e.srv.Close)
	key, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	e.issuer, err = auth.NewIssuer(auth.Config{TenantID: "00000000-0000-0000-0000-0000000000aa", PublicURL: e.srv.URL, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Sessions: e.sessions, Pools: StorePools(st), Auth: e.issuer, PublicURL: e.srv.URL,
		MaxUploadBytes: testMaxUpload, Logger: testLogger(t)}
	for _, o := range opts {
		o(&cfg)
	}
	h = New(cfg)
	e.h = h
	t.Cleanup(func() { h.Close() })
	return e
}

// token returns a bearer token for audience.
func (e *env) token(audience string) string {
	if tok, ok := e.tokens[audience]; ok {
		return tok
	}
	tok, _, err := e.issuer.Issue(&store.Principal{ObjectID: "11111111-1111-1111-1111-111111111111",
		ClientID: "22222222-2222-2222-2222-222222222222", Kind: "ServicePrincipal"}, audience)
	if err != nil {
		e.t.Fatal(err)
	}
	e.tokens[audience] = tok
	return tok
}

// endpoint is a pool's poolManagementEndpoint.
func (e *env) endpoint(pool string) string {
	return arm.PoolEndpoint(e.srv.URL, e.sub, e.rg, pool)
}

// do sends a request with a data-plane token (unless headers set
// Authorization) and returns the answer with its body read.
func (e *env) do(method, url string, body io.Reader, headers map[string]string) (*http.Response, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.token(auth.AudienceDataPlane))
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp, b
}

// doJSON sends v as JSON.
func (e *env) doJSON(method, url string, v any, headers map[string]string) (*http.Response, []byte) {
	e.t.Helper()
	var body io.Reader
	switch v := v.(type) {
	case nil:
	case string:
		body = strings.NewReader(v)
	default:
		b, _ := json.Marshal(v)
		body = bytes.NewReader(b)
	}
	h := map[string]string{"Content-Type": "application/json"}
	for k, val := range headers {
		h[k] = val
	}
	return e.do(method, url, body, h)
}

// decodeMap decodes a JSON object answer.
func decodeMap(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("answer is not a JSON object: %v: %s", err, b)
	}
	return m
}

// wantStatus fails unless resp has status.
func wantStatus(t *testing.T, what string, resp *http.Response, body []byte, status int) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s: status %d, want %d; body %s", what, resp.StatusCode, status, body)
	}
}

// want2xx fails unless resp is a success, as every client checks.
func want2xx(t *testing.T, what string, resp *http.Response, body []byte) {
	t.Helper()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s: status %d, want 2xx; body %s", what, resp.StatusCode, body)
	}
}

// golden compares got (JSON, normalized) with testdata/name.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(got, &v); err != nil {
		t.Fatalf("golden %s: %v", name, err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	enc.Encode(v)
	norm := buf.Bytes()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, norm, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("golden %s: %v (run with -update)", name, err)
	}
	if !bytes.Equal(want, norm) {
		t.Errorf("golden %s differs:\n got: %s\nwant: %s", name, norm, want)
	}
}

// testLogger logs to the test at debug level.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// targetApp is the custom container's app: it echoes what it received,
// upgrades /ws to an echoing raw protocol, and streams /stream.
func targetApp(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/ws":
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "want an upgrade", http.StatusBadRequest)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
		buf := make([]byte, 1024)
		for {
			n, err := rw.Read(buf)
			if n > 0 {
				rw.Write(bytes.ToUpper(buf[:n]))
				rw.Flush()
			}
			if err != nil {
				return
			}
		}
	case "/stream":
		rc := http.NewResponseController(w)
		for i := range 3 {
			fmt.Fprintf(w, "chunk %d\n", i)
			rc.Flush()
		}
		return
	}
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-From-Target", "yes")
	json.NewEncoder(w).Encode(map[string]any{
		"method": r.Method, "path": r.URL.Path, "rawPath": r.URL.RawPath, "query": r.URL.RawQuery,
		"authorization": r.Header.Get("Authorization"), "xForwardedFor": r.Header.Get("X-Forwarded-For"),
		"xForwardedProto": r.Header.Get("X-Forwarded-Proto"), "xForwardedHost": r.Header.Get("X-Forwarded-Host"),
		"custom": r.Header.Get("X-Custom"), "body": string(body),
	})
}
