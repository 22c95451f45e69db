package arm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"testing"
)

// FuzzRouter sends arbitrary requests with a valid token to the handler.
// Whatever the method, path, query and body, it must not panic or answer
// 5xx, and every error must be an ARM error envelope.
func FuzzRouter(f *testing.F) {
	a := newTestAPIIn(f, memDir(f))
	a.createGroup("rg", "eastus")
	a.createEnv("rg", "env")
	a.putPool("rg", "seeded", latest, customBody(f, latest, "rg", "env"))

	sub := "/subscriptions/" + testSub
	pool := sub + "/resourceGroups/rg/providers/Microsoft.App/sessionPools/"
	python, _ := json.Marshal(pythonBody(f, latest))
	custom, _ := json.Marshal(fullBody(f, "rg", "env"))
	legacy, _ := json.Marshal(customBody(f, "2024-02-02-preview", "rg", "env"))
	for _, s := range []struct {
		method, path, query string
		body                []byte
	}{
		{"PUT", pool + "fuzzpool", "api-version=" + latest, python},
		{"PUT", pool + "fuzzcustom", "api-version=" + latest, custom},
		{"PUT", pool + "fuzzlegacy", "api-version=2024-02-02-preview", legacy},
		{"PUT", pool + "fuzzpool", "api-version=" + latest, []byte(`{"location":"eastus","properties":{"containerType":"Shell","mcpServerSettings":{"isMcpServerEnabled":true}}}`)},
		{"PATCH", pool + "seeded", "api-version=" + latest, []byte(`{"properties":{"scaleConfiguration":{"maxConcurrentSessions":"7"}},"tags":null}`)},
		{"PATCH", pool + "seeded", "api-version=2024-08-02-preview", []byte(`{"properties":{"dynamicPoolConfiguration":{"cooldownPeriodInSeconds":900}}}`)},
		{"PATCH", pool + "seeded", "api-version=" + latest, []byte(`{"identity":{"type":"SystemAssigned, UserAssigned"},"properties":null}`)},
		{"GET", pool + "seeded", "api-version=" + stable, nil},
		{"DELETE", pool + "fuzzpool", "api-version=" + stable, nil},
		{"POST", pool + "seeded/fetchMcpServerCredentials", "api-version=" + latest, nil},
		{"POST", pool + "fuzzpool/rotateMCPServerCredentials", "api-version=2025-02-02-preview", nil},
		{"GET", pool, "api-version=" + stable + "&$top=1&$skipToken=abc", nil},
		{"GET", sub + "/providers/Microsoft.App/sessionPools", "api-version=" + stable + "&$skipToken=%%%", nil},
		{"PUT", sub + "/resourceGroups/fuzzrg", "api-version=2021-04-01", []byte(`{"location":"westus","tags":{"a":"b"}}`)},
		{"PATCH", sub + "/resourceGroups/rg", "api-version=2021-04-01", []byte(`{"tags":{"a":null},"managedBy":"x"}`)},
		{"DELETE", sub + "/resourceGroups/fuzzrg", "api-version=2021-04-01", nil},
		{"HEAD", sub + "/resourceGroups/rg", "api-version=2021-04-01", nil},
		{"PUT", sub + "/resourceGroups/rg/providers/Microsoft.App/managedEnvironments/fuzzenv", "api-version=" + stable, []byte(`{"location":"eastus","properties":{"x":[1,2]}}`)},
		{"DELETE", sub + "/resourceGroups/rg/providers/Microsoft.App/managedEnvironments/env", "api-version=" + stable, nil},
		{"GET", sub + "/providers/Microsoft.App/locations/eastus/operationResults/x", "api-version=" + stable, nil},
		{"GET", sub + "/providers/Microsoft.App", "api-version=2021-04-01", nil},
		{"POST", sub + "/providers/Microsoft.App/register", "api-version=2021-04-01", nil},
		{"GET", "/providers/Microsoft.App/operations", "api-version=" + stable, nil},
		{"GET", "/subscriptions", "api-version=2022-12-01", nil},
		{"GET", "//subscriptions//" + testSub + "//resourcegroups//rg//", "api-version=x", nil},
		{"BREW", "/subscriptions/\x00/resourceGroups/\xff", "api-version=2025-01-01&api-version=2026-01-01", []byte{0xff, '{'}},
		{"PUT", pool + "fuzzpool", "api-version=" + latest, []byte(`[1,{"location":1e999}]`)},
		{"PUT", pool + "fuzzpool", "api-version=" + latest, []byte(`{"location":"x","properties":{"customContainerTemplate":{"containers":[{"probes":[{"httpGet":{"port":"99999999999"}}]}]}}}`)},
	} {
		f.Add(s.method, s.path, s.query, s.body)
	}

	f.Fuzz(func(t *testing.T, method, path, query string, body []byte) {
		req := (&http.Request{
			Method:     method,
			URL:        &url.URL{Path: path, RawQuery: query},
			Proto:      "HTTP/1.1",
			ProtoMajor: 1,
			ProtoMinor: 1,
			Header: http.Header{
				"Authorization": {"Bearer " + a.token},
				"Content-Type":  {"application/json"},
			},
			Body:          io.NopCloser(bytes.NewReader(body)),
			ContentLength: int64(len(body)),
			Host:          "tidepool.test",
		}).WithContext(context.Background())
		w := httptest.NewRecorder()
		a.h.ServeHTTP(w, req)

		desc := method + " " + path + "?" + query
		status := w.Code
		var env struct {
			Error *struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		isError := status >= 400 && method != "HEAD"
		if isError {
			if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || env.Error == nil || env.Error.Code == "" || env.Error.Message == "" {
				t.Errorf("%s → %d: not an ARM error envelope: %q", desc, status, w.Body.Bytes())
			} else if got := w.Header().Get("x-ms-error-code"); got != env.Error.Code {
				t.Errorf("%s → %d: x-ms-error-code %q, body code %q", desc, status, got, env.Error.Code)
			}
		}
		if status >= 500 {
			t.Errorf("%s with body %q → %d %s", desc, body, status, w.Body.Bytes())
		}
		if w.Header().Get("x-ms-request-id") == "" {
			t.Errorf("%s → %d: no x-ms-request-id", desc, status)
		}
	})
}

// memDir returns a temporary directory in memory when the system has one:
// the store syncs every commit, and on a disk that makes each fuzz
// execution, and the minimisation of every new input, slow.
func memDir(t testing.TB) string {
	dir, err := os.MkdirTemp("/dev/shm", "tidepool-arm-fuzz-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
