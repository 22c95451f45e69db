package arm_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"
)

// TestSecretsNeverReturned: secret values are stored (the data plane needs
// them) but no response carries them.
func TestSecretsNeverReturned(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.createGroup("rg", "eastus")
	a.createEnv("rg", "env")
	const (
		first  = "tp-FIRST-secret-9f27c1"
		second = "tp-SECOND-secret-4be0d3"
		mcp    = "tp-MCP-secret-77aa01"
	)
	var responses []*response
	record := func(r *response) *response {
		responses = append(responses, r)
		return r
	}

	body := customBody(t, latest, "rg", "env")
	jset(body, "properties.secrets", []any{
		map[string]any{"name": "registrypassword", "value": first},
		map[string]any{"name": "apikey", "value": first + "-api"},
	})
	put := record(a.must(http.StatusCreated, "PUT", poolPath("rg", "secretive", latest), body))
	record(a.do("GET", put.Header.Get("Azure-AsyncOperation"), nil, nil))
	a.waitAsync(put.Header.Get("Azure-AsyncOperation"), "Succeeded")
	record(a.must(http.StatusOK, "PUT", poolPath("rg", "secretive", latest), body))

	legacy := customBody(t, "2024-02-02-preview", "rg", "env")
	jset(legacy, "properties.secrets", []any{
		map[string]any{"name": "registrypassword", "value": first},
		map[string]any{"name": "apikey", "value": first + "-api"},
	})
	record(a.putPool("rg", "legacy", "2024-02-02-preview", legacy))

	patch := record(a.must(http.StatusAccepted, "PATCH", poolPath("rg", "secretive", latest),
		`{"properties":{"secrets":[{"name":"registrypassword","value":"`+second+`"},{"name":"apikey","value":"`+second+`-api"}]}}`))
	record(a.do("GET", patch.Header.Get("Azure-AsyncOperation"), nil, nil))
	record(a.waitLocation(patch.Header.Get("Location")))
	a.waitAsync(patch.Header.Get("Azure-AsyncOperation"), "Succeeded")

	for _, v := range allVersions {
		record(a.must(http.StatusOK, "GET", poolPath("rg", "secretive", v), nil))
		record(a.must(http.StatusOK, "GET", poolPath("rg", "legacy", v), nil))
		record(a.must(http.StatusOK, "GET", poolsInGroup("rg", v), nil))
		record(a.must(http.StatusOK, "GET", poolsInSub(v), nil))
	}
	// Refused requests do not echo them either.
	bad := clone(body)
	jset(bad, "properties.secrets[0].name", "Not Valid")
	jset(bad, "properties.secrets[0].value", mcp)
	record(a.do("PUT", poolPath("rg", "refused", latest), bad, nil))
	record(a.do("PATCH", poolPath("rg", "secretive", latest), `{"properties":{"secrets":[{"name":"x","value":`+"\""+mcp+"\""+`}],"scaleConfiguration":{"maxConcurrentSessions":"`+mcp+`"}}}`, nil))
	record(a.do("PATCH", poolPath("rg", "secretive", latest), `{"properties":{"secrets":[{"name":"x","value":"`+mcp+`"}],"scaleConfiguration":{"maxConcurrentSessions":0}}}`, nil))

	for _, r := range responses {
		for _, secret := range []string{first, second, mcp} {
			if bytes.Contains(r.Body, []byte(secret)) {
				t.Errorf("%s: the response carries the secret value %q", r, secret)
			}
			for k, vs := range r.Header {
				for _, v := range vs {
					if bytes.Contains([]byte(v), []byte(secret)) {
						t.Errorf("%s: header %s carries the secret value", r, k)
					}
				}
			}
		}
	}

	// The values are kept: the second PATCH's are stored.
	res, err := a.st.GetResource(context.Background(), poolID("rg", "secretive"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(res.Body, []byte(second)) {
		t.Errorf("stored pool lacks the patched secret value: %s", res.Body)
	}
	// A PATCH that does not mention secrets keeps their values.
	a.waitLocation(a.must(http.StatusAccepted, "PATCH", poolPath("rg", "secretive", latest), `{"tags":{"k":"v"}}`).Header.Get("Location"))
	res, err = a.st.GetResource(context.Background(), poolID("rg", "secretive"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(res.Body, []byte(second)) {
		t.Errorf("a PATCH of tags dropped the secret values: %s", res.Body)
	}
}
