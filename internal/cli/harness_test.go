package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/tidepool-dev/tidepool/internal/sandbox"
	"github.com/tidepool-dev/tidepool/internal/server"
)

// env is a live in-process tidepool server and a CLI profile logged in to it.
type env struct {
	t         *testing.T
	dataDir   string
	configDir string
	endpoint  string
	creds     credentialsFile
	http      *http.Client
	rec       *recorder
	// terminal is what App.Terminal reports (spinner, prompts).
	terminal bool
	// environ is the CLI's environment besides TIDEPOOL_CONFIG_DIR.
	environ map[string]string
}

// recorder records the requests the CLI sends.
type recorder struct {
	rt   http.RoundTripper
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	method, url string
	body        []byte
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	r.mu.Lock()
	r.reqs = append(r.reqs, recorded{req.Method, req.URL.String(), body})
	r.mu.Unlock()
	return r.rt.RoundTrip(req)
}

// last returns the body of the last request with the method whose URL
// contains part.
func (r *recorder) last(method, part string) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.reqs) - 1; i >= 0; i-- {
		if r.reqs[i].method == method && strings.Contains(r.reqs[i].url, part) {
			return r.reqs[i].body
		}
	}
	return nil
}

// result is one CLI run.
type result struct {
	stdout, stderr string
	code           int
	err            error
}

// newEnv starts a server (rt may be nil: pools hold no sandboxes) and logs
// the CLI in with the admin credentials file.
func newEnv(t *testing.T, rt sandbox.Runtime) *env {
	t.Helper()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, server.Config{DataDir: dir, Runtime: rt,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, ln)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		srv.Close()
	})
	e := &env{t: t, dataDir: dir, configDir: filepath.Join(t.TempDir(), "cfg"), rec: &recorder{rt: http.DefaultTransport}}
	e.http = &http.Client{Timeout: time.Minute, Transport: e.rec}
	data, err := os.ReadFile(filepath.Join(dir, server.CredentialsFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &e.creds); err != nil {
		t.Fatal(err)
	}
	e.endpoint = e.creds.Endpoint
	e.mustRun("login", "--credentials-file", filepath.Join(dir, server.CredentialsFile))
	return e
}

// run runs one CLI command line, with stdin.
func (e *env) runIn(stdin string, args ...string) result {
	e.t.Helper()
	var out, errb bytes.Buffer
	app := &App{
		Stdout: &out, Stderr: &errb,
		Getenv: func(k string) string {
			if k == "TIDEPOOL_CONFIG_DIR" {
				return e.configDir
			}
			return e.environ[k]
		},
		HTTPClient:   e.http,
		Terminal:     func() bool { return e.terminal },
		PollInterval: 20 * time.Millisecond,
	}
	if stdin != "" {
		app.Stdin = strings.NewReader(stdin)
	}
	root := &cobra.Command{Use: "tidepool", SilenceErrors: true, SilenceUsage: true}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &cliError{msg: err.Error(), code: 2} })
	AddCommands(root, app)
	root.SetArgs(NormalizeArgs(root, args))
	root.SetOut(&out)
	root.SetErr(&errb)
	err := root.ExecuteContext(context.Background())
	r := result{stdout: out.String(), stderr: errb.String(), err: err}
	if err != nil {
		r.code = ExitCode(err)
		r.stderr += "ERROR: " + err.Error() + "\n"
	}
	return r
}

func (e *env) run(args ...string) result {
	e.t.Helper()
	return e.runIn("", args...)
}

// mustRun runs a command that must succeed and returns its stdout.
func (e *env) mustRun(args ...string) string {
	e.t.Helper()
	r := e.run(args...)
	if r.err != nil {
		e.t.Fatalf("tidepool %s: exit %d: %v\nstderr: %s", strings.Join(args, " "), r.code, r.err, r.stderr)
	}
	return r.stdout
}

// mustJSON runs a command and decodes its JSON output.
func (e *env) mustJSON(args ...string) any {
	e.t.Helper()
	out := e.mustRun(args...)
	var v any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		e.t.Fatalf("tidepool %s: output is not JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
	return v
}

// get GETs a management path directly (not through the CLI) with an admin
// token and decodes the answer.
func (e *env) get(path, version string) (int, map[string]any) {
	e.t.Helper()
	tok, err := requestToken(context.Background(), &App{HTTPClient: e.http},
		&loginInfo{Endpoint: e.endpoint, TenantID: e.creds.TenantID, ClientID: e.creds.ClientID, ClientSecret: e.creds.ClientSecret}, resourceARM)
	if err != nil {
		e.t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, e.endpoint+withVersion(path, version), nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}
