package arm_test

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tidepool-dev/tidepool/internal/mcpkeys"
)

// mcpPoolBody is a Shell pool with the given mcpServerSettings JSON.
func mcpPoolBody(settings string) string {
	return `{"location":"eastus","properties":{"poolManagementType":"Dynamic","containerType":"Shell",` +
		`"scaleConfiguration":{"maxConcurrentSessions":5},"mcpServerSettings":` + settings + `}}`
}

func mcpAction(rg, pool, action, version string) string {
	return poolID(rg, pool) + "/" + action + "?api-version=" + version
}

// apiKey reads the {"apiKey"} answer of an MCP action.
func apiKey(t *testing.T, r *response) string {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("%s: want 200", r)
	}
	m := r.json(t)
	if len(m) != 1 {
		t.Errorf("%s: want exactly {\"apiKey\"}", r)
	}
	k, _ := m["apiKey"].(string)
	if len(k) < 40 {
		t.Fatalf("%s: apiKey %q, want a key of 40+ characters", r, k)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("%s: Cache-Control %q, want no-store", r, cc)
	}
	return k
}

func TestMCPCredentials(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	logBuf := &syncBuffer{}
	a := newTestAPIIn(t, dir, func(c *armConfig) {
		c.Logger = slog.New(slog.NewTextHandler(logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	a.createGroup("rg", "eastus")
	a.createEnv("rg", "env")
	a.putPool("rg", "mcpon", latest, mcpPoolBody(`{"isMcpServerEnabled":true}`))
	a.putPool("rg", "mcpoff", latest, mcpPoolBody(`{"isMcpServerEnabled":false}`))
	a.putPool("rg", "nokeys", latest, mcpPoolBody(`{"isMcpServerEnabled":true,"isMcpServerApiKeyDisabled":true}`))
	a.putPool("rg", "plain", stable, pythonBody(t, stable))
	custom := customBody(t, latest, "rg", "env")
	jset(custom, "properties.mcpServerSettings", map[string]any{"isMcpServerEnabled": true})
	a.putPool("rg", "custom", latest, custom)
	keys := mcpkeys.New(a.st)
	ctx := context.Background()
	var issued []string // every key the API returned
	apiKey := func(t *testing.T, r *response) string {
		t.Helper()
		k := apiKey(t, r)
		issued = append(issued, k)
		return k
	}

	t.Run("errors", func(t *testing.T) {
		a := a.with(t)
		for _, tt := range []struct {
			name, method, path string
			status             int
			code               string
		}{
			{"MCP disabled", "POST", mcpAction("rg", "mcpoff", "fetchMcpServerCredentials", latest), 400, "SessionMCPServerNotEnabled"},
			{"no MCP settings", "POST", mcpAction("rg", "plain", "rotateMcpServerCredentials", latest), 400, "SessionMCPServerNotEnabled"},
			{"API keys disabled", "POST", mcpAction("rg", "nokeys", "fetchMcpServerCredentials", latest), 400, "SessionMCPServerApiKeyDisabled"},
			{"API keys disabled, rotate", "POST", mcpAction("rg", "nokeys", "rotateMcpServerCredentials", latest), 400, "SessionMCPServerApiKeyDisabled"},
			{"CustomContainer pool", "POST", mcpAction("rg", "custom", "fetchMcpServerCredentials", latest), 400, "SessionMCPServerNotEnabled"},
			{"unknown pool", "POST", mcpAction("rg", "nosuch", "fetchMcpServerCredentials", latest), 404, "ResourceNotFound"},
			{"unknown action", "POST", mcpAction("rg", "mcpon", "stealMcpServerCredentials", latest), 404, ""},
			{"no api-version", "POST", poolID("rg", "mcpon") + "/fetchMcpServerCredentials", 400, "MissingApiVersionParameter"},
		} {
			r := a.do(tt.method, tt.path, nil, nil)
			if tt.code == "" {
				if r.Status != tt.status {
					t.Errorf("%s: %s, want %d", tt.name, r, tt.status)
				}
				continue
			}
			wantError(t, r, tt.status, tt.code, "")
		}
	})

	var first string
	t.Run("fetch returns the same key", func(t *testing.T) {
		a := a.with(t)
		first = apiKey(t, a.do("POST", mcpAction("rg", "mcpon", "fetchMcpServerCredentials", latest), nil, nil))
		// The tutorials' spelling and api-version.
		again := apiKey(t, a.do("POST", mcpAction("rg", "mcpon", "fetchMCPServerCredentials", "2025-02-02-preview"), nil, nil))
		if again != first {
			t.Errorf("second fetch returned another key")
		}
		if ok, err := keys.Check(ctx, poolID("rg", "mcpon"), first); !ok || err != nil {
			t.Errorf("Check(fetched key) = %v, %v; want true", ok, err)
		}
	})

	t.Run("rotate invalidates the old key", func(t *testing.T) {
		a := a.with(t)
		rotated := apiKey(t, a.do("POST", mcpAction("rg", "mcpon", "rotateMcpServerCredentials", latest), nil, nil))
		if rotated == first {
			t.Fatal("rotate returned the old key")
		}
		if ok, _ := keys.Check(ctx, poolID("rg", "mcpon"), first); ok {
			t.Error("the old key still checks after rotation")
		}
		if ok, _ := keys.Check(ctx, poolID("rg", "mcpon"), rotated); !ok {
			t.Error("the rotated key does not check")
		}
		if got := apiKey(t, a.do("POST", mcpAction("rg", "mcpon", "fetchMcpServerCredentials", latest), nil, nil)); got != rotated {
			t.Error("fetch after rotate does not return the rotated key")
		}
		first = rotated
	})

	t.Run("the database holds only a hash", func(t *testing.T) {
		db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "tidepool.db")+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var body []byte
		if err := db.QueryRow("SELECT body FROM resources WHERE type = ?", mcpkeys.RecordType).Scan(&body); err != nil {
			t.Fatalf("read the key record: %v", err)
		}
		if bytes.Contains(body, []byte(first)) {
			t.Errorf("the key record holds the key in the clear: %s", body)
		}
		if !bytes.Contains(body, []byte(`"hash":"sha256$`)) {
			t.Errorf("the key record holds no hash: %s", body)
		}
		for _, f := range []string{"tidepool.db", "tidepool.db-wal"} {
			data, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			if bytes.Contains(data, []byte(first)) {
				t.Errorf("%s holds the key in the clear", f)
			}
		}
	})

	t.Run("keys are not listed as resources", func(t *testing.T) {
		a := a.with(t)
		r := a.must(http.StatusOK, "GET", poolsInGroup("rg", latest), nil)
		if strings.Contains(string(r.Body), "mcpServerCredentials") || strings.Contains(string(r.Body), first) {
			t.Errorf("%s lists the key record", r)
		}
	})

	t.Run("pool deletion drops the key; a new pool gets a new one", func(t *testing.T) {
		a := a.with(t)
		r := a.do("DELETE", poolPath("rg", "mcpon", latest), nil, nil)
		if r.Status != http.StatusAccepted {
			t.Fatalf("%s: want 202", r)
		}
		a.waitAsync(r.Header.Get("Azure-AsyncOperation"), "Succeeded")
		if _, err := a.st.GetResource(ctx, mcpkeys.RecordID(poolID("rg", "mcpon"))); err == nil {
			t.Error("the key record outlived its pool")
		}
		a.putPool("rg", "mcpon", latest, mcpPoolBody(`{"isMcpServerEnabled":true}`))
		if ok, _ := keys.Check(ctx, poolID("rg", "mcpon"), first); ok {
			t.Error("the old pool's key checks on the new pool")
		}
		if got := apiKey(t, a.do("POST", mcpAction("rg", "mcpon", "fetchMcpServerCredentials", latest), nil, nil)); got == first {
			t.Error("the new pool got the old pool's key")
		}
	})

	t.Run("logs hold no key", func(t *testing.T) {
		logs := logBuf.String()
		if !strings.Contains(logs, "MCP server key rotated") {
			t.Fatalf("the rotation was not logged at all; logs:\n%s", logs)
		}
		for _, k := range issued {
			if strings.Contains(logs, k) {
				t.Errorf("a key reached the log")
			}
		}
	})
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestMCPTutorialsManagement runs the management steps of the MCP
// tutorials (DOC-SHELL-MCP, DOC-PY-MCP): the pool their ARM template
// deploys (apiVersion 2025-02-02-preview, isMCPServerEnabled casing), the
// az rest GET of mcpServerEndpoint and the az rest POST of
// fetchMCPServerCredentials, both at 2025-02-02-preview.
func TestMCPTutorialsManagement(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.createGroup("rg", "northcentralus")
	for _, containerType := range []string{"Shell", "PythonLTS"} {
		t.Run(containerType, func(t *testing.T) {
			a := a.with(t)
			name := "tut" + strings.ToLower(containerType)
			// The template's resource, as the deployment sends it.
			body := `{
				"location": "northcentralus",
				"properties": {
					"poolManagementType": "Dynamic",
					"containerType": "` + containerType + `",
					"scaleConfiguration": {
						"maxConcurrentSessions": 5
					},
					"sessionNetworkConfiguration": {
						"status": "EgressEnabled"
					},
					"dynamicPoolConfiguration": {
						"lifecycleConfiguration": {
							"lifecycleType": "Timed",
							"coolDownPeriodInSeconds": 300
						}
					},
					"mcpServerSettings": {
						"isMCPServerEnabled": true
					}
				}
			}`
			a.putPool("rg", name, "2025-02-02-preview", body)

			// MCP_ENDPOINT=$(az rest --method GET --uri ".../sessionPools/$SESSION_POOL_NAME?api-version=2025-02-02-preview"
			//   --query "properties.mcpServerSettings.mcpServerEndpoint" -o tsv)
			g := a.must(http.StatusOK, "GET", poolPath("rg", name, "2025-02-02-preview"), nil)
			p := g.json(t)
			endpoint := jstring(p, "properties.mcpServerSettings.mcpServerEndpoint")
			if want := jstring(p, "properties.poolManagementEndpoint") + "/mcp"; endpoint != want {
				t.Errorf("%s: mcpServerEndpoint %q, want %q", g, endpoint, want)
			}

			// API_KEY=$(az rest --method POST --uri ".../fetchMCPServerCredentials?api-version=2025-02-02-preview"
			//   --query "apiKey" -o tsv)
			r := a.do("POST", mcpAction("rg", name, "fetchMCPServerCredentials", "2025-02-02-preview"), nil, nil)
			key := apiKey(t, r)
			ok, err := mcpkeys.New(a.st).Check(context.Background(), poolID("rg", name), key)
			if err != nil || !ok {
				t.Errorf("the fetched key does not open the pool's MCP endpoint: %v, %v", ok, err)
			}
		})
	}
}
