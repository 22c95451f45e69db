package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/tidepool-dev/tidepool/internal/pool"
	"github.com/tidepool-dev/tidepool/internal/server"
)

// noSessions is a Sessions with no sessions at all.
type noSessions struct{}

func (noSessions) Acquire(context.Context, string, string) (*pool.Session, error) {
	return nil, pool.ErrPoolNotReady
}
func (noSessions) Lookup(context.Context, string, string) (*pool.Session, error) {
	return nil, pool.ErrSessionNotFound
}
func (noSessions) Sessions(context.Context, string) ([]pool.Session, error) { return nil, nil }
func (noSessions) Stop(context.Context, string, string) error               { return pool.ErrSessionNotFound }

func errorCode(t *testing.T, r interface{ String() string }, body []byte) string {
	t.Helper()
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("not an error envelope: %s", r)
	}
	return e.Error.Code
}

func TestDataPlaneWiring(t *testing.T) {
	for _, tt := range []struct {
		name     string
		sessions bool
		status   int
		code     string
	}{
		{"no sessions: 501 after auth", false, http.StatusNotImplemented, "NotImplemented"},
		{"sessions: the data plane answers", true, http.StatusNotFound, "SessionPoolNotFound"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := server.Config{DataDir: dir}
			if tt.sessions {
				cfg.Sessions = noSessions{}
			}
			info := startServer(t, cfg)
			c := &http.Client{}
			u := info.Endpoint + "/subscriptions/" + info.SubscriptionID + "/resourceGroups/rg/sessionPools/nope/executions?identifier=abcd&api-version=2025-10-02-preview"
			r := mustDo(t, c, http.MethodPost, u, "", map[string]any{"code": "1"}, http.StatusUnauthorized)
			if r.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			tok, err := managementToken(t.Context(), c, readCredentials(t, dir))
			if err != nil {
				t.Fatal(err)
			}
			r = mustDo(t, c, http.MethodPost, u, tok, map[string]any{"code": "1"}, tt.status)
			if got := errorCode(t, r, r.Body); got != tt.code || r.Header.Get("x-ms-error-code") != tt.code {
				t.Errorf("code %q, want %q", got, tt.code)
			}
		})
	}
}
