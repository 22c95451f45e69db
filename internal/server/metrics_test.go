package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidepool-dev/tidepool/internal/sandbox/sandboxtest"
	"github.com/tidepool-dev/tidepool/internal/server"
)

// TestMetricsEndpoint runs a server with a process runtime and a metrics
// listener, claims a session through the data plane, and reads /metrics:
// the expected names are there, the values moved, the main listener does
// not serve them, and a distinctive identifier appears neither in the
// metrics nor in the logs (debug level), whose request records carry a
// request id.
func TestMetricsEndpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the tidepool binary")
	}
	bin := filepath.Join(t.TempDir(), "tidepool")
	build := exec.Command("go", "build", "-o", bin, "github.com/tidepool-dev/tidepool/cmd/tidepool")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	root, err := os.MkdirTemp("", "tpm") // short: unix socket paths
	if err != nil {
		t.Fatal(err)
	}
	rt := sandboxtest.NewProcessRuntime(bin, root)
	t.Cleanup(func() {
		if err := rt.Close(); err != nil {
			t.Errorf("destroy leftover sandboxes: %v", err)
		}
		os.RemoveAll(root)
	})

	logs := &logBuffer{}
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, server.Config{
		DataDir:         dir,
		Runtime:         rt,
		MetricsListener: mln,
		Logger:          slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, ln)
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
		if t.Failed() {
			t.Logf("server log:\n%s", logs)
		}
	})
	info := srv.Info()
	metricsURL := "http://" + mln.Addr().String() + "/metrics"
	c := &http.Client{Timeout: 30 * time.Second}
	tok, err := managementToken(t.Context(), c, readCredentials(t, dir))
	if err != nil {
		t.Fatal(err)
	}

	// A Shell pool with two ready sandboxes.
	mustDo(t, c, http.MethodPut, info.Endpoint+"/subscriptions/"+info.SubscriptionID+"/resourcegroups/Ops?api-version=2021-04-01", tok,
		map[string]any{"location": "eastus"}, http.StatusCreated, http.StatusOK)
	poolURL := info.Endpoint + "/subscriptions/" + info.SubscriptionID + "/resourceGroups/Ops/providers/Microsoft.App/sessionPools/metricspool?api-version=2025-02-02-preview"
	mustDo(t, c, http.MethodPut, poolURL, tok, map[string]any{
		"location": "eastus",
		"properties": map[string]any{
			"containerType":      "Shell",
			"poolManagementType": "Dynamic",
			"scaleConfiguration": map[string]any{"maxConcurrentSessions": 4, "readySessionInstances": 2},
			"dynamicPoolConfiguration": map[string]any{
				"lifecycleConfiguration": map[string]any{"lifecycleType": "Timed", "cooldownPeriodInSeconds": 300},
			},
		},
	}, http.StatusCreated, http.StatusOK)
	var endpoint string
	waitUntil(t, "pool Succeeded", func() bool {
		r := mustDo(t, c, http.MethodGet, poolURL, tok, nil, http.StatusOK)
		var p struct {
			Properties struct {
				ProvisioningState      string `json:"provisioningState"`
				PoolManagementEndpoint string `json:"poolManagementEndpoint"`
			} `json:"properties"`
		}
		json.Unmarshal(r.Body, &p)
		if p.Properties.ProvisioningState == "Failed" {
			t.Fatalf("pool failed: %s", r)
		}
		endpoint = p.Properties.PoolManagementEndpoint
		return p.Properties.ProvisioningState == "Succeeded"
	})
	poolLabel := fmt.Sprintf(`pool="/subscriptions/%s/resourcegroups/ops/providers/microsoft.app/sessionpools/metricspool"`, strings.ToLower(info.SubscriptionID))

	scrape := func() string {
		t.Helper()
		r := mustDo(t, c, http.MethodGet, metricsURL, "", nil, http.StatusOK)
		return string(r.Body)
	}
	before := scrape()
	if got := sample(t, before, "tidepool_pool_ready_sandboxes{"+poolLabel+"}"); got != "2" {
		t.Errorf("ready gauge = %s, want 2 (the warm set)", got)
	}

	secret := "metrics-test-SECRET-identifier-5e1d"
	u := endpoint + "/executions?api-version=2025-02-02-preview&identifier=" + url.QueryEscape(secret)
	r := mustDo(t, c, http.MethodPost, u, tok, map[string]any{"shellCommand": "echo hi"}, http.StatusOK, http.StatusAccepted)
	reqID, execStatus := r.Header.Get("x-ms-request-id"), r.Status
	// An error path, which the data plane logs, with the identifier too.
	mustDo(t, c, http.MethodGet, endpoint+"/files/nope.txt?api-version=2025-02-02-preview&identifier="+url.QueryEscape(secret), tok, nil, http.StatusNotFound)

	var after string
	waitUntil(t, "refill after the claim", func() bool {
		after = scrape()
		return sample(t, after, "tidepool_pool_ready_sandboxes{"+poolLabel+"}") == "2" &&
			sample(t, after, "tidepool_pool_starting_sandboxes{"+poolLabel+"}") == "0"
	})
	for _, want := range []struct{ series, value string }{
		{"tidepool_pool_claimed_sessions{" + poolLabel + "}", "1"},
		{"tidepool_pool_claims_total{allocation=\"claimed\"," + poolLabel + "}", "1"},
		{"tidepool_pool_claim_duration_seconds_count{allocation=\"claimed\"," + poolLabel + "}", "1"},
		{"tidepool_pool_max_sessions{" + poolLabel + "}", "4"},
		{fmt.Sprintf(`tidepool_dataplane_requests_total{code="%d",route="execute"}`, execStatus), "1"},
		{`tidepool_dataplane_requests_total{code="404",route="files"}`, "1"},
		{"tidepool_dataplane_execution_duration_seconds_count{kind=\"shell\"," + poolLabel + "}", "1"},
	} {
		if got := sample(t, after, want.series); got != want.value {
			t.Errorf("%s = %q, want %s", want.series, got, want.value)
		}
	}
	for _, name := range []string{
		"tidepool_pool_ready_sandboxes", "tidepool_pool_claimed_sessions", "tidepool_pool_starting_sandboxes",
		"tidepool_pool_stopping_sandboxes", "tidepool_pool_ready_target", "tidepool_pool_max_sessions",
		"tidepool_pool_claims_total", "tidepool_pool_claim_duration_seconds",
		"tidepool_pool_sandbox_start_duration_seconds", "tidepool_dataplane_requests_total",
		"tidepool_dataplane_execution_duration_seconds", "go_goroutines", "process_resident_memory_bytes",
	} {
		if !strings.Contains(after, "# TYPE "+name+" ") {
			t.Errorf("/metrics has no %s", name)
		}
	}
	if strings.Contains(after, secret) {
		t.Errorf("the identifier appears in /metrics")
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("the identifier appears in the logs:\n%s", logs)
	}
	if reqID == "" || !strings.Contains(logs.String(), `"request_id":"`+reqID+`"`) {
		t.Errorf("no log record carries the execution's request id %q", reqID)
	}

	// The main listener does not serve metrics, with or without a token;
	// the metrics listener serves nothing else.
	for _, token := range []string{"", tok} {
		r := mustDo(t, c, http.MethodGet, info.Endpoint+"/metrics", token, nil, http.StatusNotFound)
		if strings.Contains(string(r.Body), "tidepool_pool") {
			t.Errorf("main listener /metrics answered metrics")
		}
	}
	mustDo(t, c, http.MethodGet, "http://"+mln.Addr().String()+"/healthz", "", nil, http.StatusNotFound)
	mustDo(t, c, http.MethodPost, metricsURL, "", nil, http.StatusMethodNotAllowed)
}

// sample returns the value of series (name{labels} as exposed, labels
// sorted) in a text exposition, or "" when it is absent.
func sample(t *testing.T, exposition, series string) string {
	t.Helper()
	for _, line := range strings.Split(exposition, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// waitUntil polls cond (the server works in the background) until it
// holds or a generous deadline passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 30s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
