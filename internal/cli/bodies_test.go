package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRequestBodies records the JSON the CLI sends for create and update
// and compares it with testdata/bodies (the reference's §3.3 and §4.2
// bodies, with the test's subscription as {sub}). -update rewrites them.
func TestRequestBodies(t *testing.T) {
	e := newEnv(t, nil)
	e.mustRun("group", "create", "-n", "MyResourceGroup", "-l", "eastasia")
	e.mustRun("containerapp", "env", "create", "-n", "myenvironment", "-g", "MyResourceGroup")
	e.mustRun("identity", "create", "-g", "MyResourceGroup", "-n", "MyUserIdentityResourceId", "-l", "eastasia")
	probes := filepath.Join(t.TempDir(), "probes.yaml")
	os.WriteFile(probes, []byte("probes:\n- type: Liveness\n  httpGet:\n    path: /health\n    port: 8080\n  periodSeconds: 10\n"), 0o644)
	create := []string{"containerapp", "sessionpool", "create", "-n", "mysessionpool", "-g", "MyResourceGroup", "--location", "eastasia"}
	custom := append(append([]string{}, create...), "--container-type", "CustomContainer", "--environment", "MyEnvironment", "--cpu", "0.5", "--memory", "1Gi", "--target-port", "80")
	tests := []struct {
		name   string
		method string
		args   []string
	}{
		{"create-default", "PUT", []string{"containerapp", "sessionpool", "create", "-n", "pythonpool", "-g", "MyResourceGroup", "--location", "eastasia"}},
		{"create-custom-env-secrets", "PUT", append(append([]string{}, custom...), "--image", "MyImage",
			"--env-vars", "GREETING=Hello, world", "SECRETENV=secretref:anothersecret", "--secrets", "mysecret=secretvalue1", "anothersecret=secret value 2")},
		{"create-registry", "PUT", append(append([]string{}, custom...), "--image", "MyImage", "--registry-server", "myregistry.azurecr.io",
			"--registry-username", "myregistry", "--registry-password", "s3cret")},
		{"create-identities", "PUT", append(append([]string{}, custom...), "--image", "MyImage", "--mi-system-assigned", "--mi-user-assigned", "MyUserIdentityResourceId")},
		{"create-oncontainerexit", "PUT", append(append([]string{}, custom...), "--lifecycle-type", "OnContainerExit", "--max-alive-period", "600",
			"--command", "/bin/sh", "--args=-c", "--args", "sleep 1", "--container-name", "main", "--probe-yaml", probes, "--network-status", "EgressEnabled")},
		{"update-custom", "PATCH", []string{"containerapp", "sessionpool", "update", "-n", "mysessionpool", "-g", "MyResourceGroup", "--max-sessions", "20", "--image", "MyNewImage", "--ready-sessions", "0"}},
		{"update-lifecycle-secrets", "PATCH", []string{"containerapp", "sessionpool", "update", "-n", "mysessionpool", "-g", "MyResourceGroup",
			"--lifecycle-type", "Timed", "--cooldown-period", "600", "--secrets", "a=b", "--network-status", "EgressDisabled", "--env-vars", "X=1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.mustRun(tt.args...)
			body := e.rec.last(tt.method, "api-version="+poolVersion)
			var v any
			if err := json.Unmarshal(body, &v); err != nil {
				t.Fatalf("request body %q: %v", body, err)
			}
			got, _ := json.MarshalIndent(v, "", "  ")
			got = bytes.ReplaceAll(got, []byte(e.creds.SubscriptionID), []byte("{sub}"))
			got = append(got, '\n')
			golden := filepath.Join("testdata", "bodies", tt.name+".json")
			if *update {
				os.WriteFile(golden, got, 0o644)
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s body =\n%s\nwant\n%s", strings.Join(tt.args, " "), got, want)
			}
		})
	}
}

// TestUpdateValidation checks update's messages and --ids.
func TestUpdateValidation(t *testing.T) {
	e := newEnv(t, nil)
	e.mustRun("group", "create", "-n", "rg", "-l", "westus")
	e.mustRun("sessionpool", "create", "-n", "pyone", "-g", "rg")
	e.mustRun("sessionpool", "create", "-n", "pytwo", "-g", "rg")
	upd := []string{"sessionpool", "update", "-n", "pyone", "-g", "rg"}
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{append(upd, "--image", "x"), 1, "'--image or -i' can not be set when container type is not 'CustomContainer'."},
		{append(upd, "--target-port", "80"), 1, "'--target-port' can not be set when container type is not 'CustomContainer'."},
		{append(upd, "--max-alive-period", "100"), 1, "--max-alive-period is not supported for the current --lifecycle-type 'Timed'."},
		{append(upd, "--lifecycle-type", "OnContainerExit"), 1, "The container type PythonLTS only supports lifecycle type 'Timed'."},
		{append(upd, "--environment", "other"), 1, "containerType and environmentId cannot be updated."},
		{[]string{"sessionpool", "update", "--ids", "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Foo/bars/b"}, 2, "invalid session pool resource ID"},
		{[]string{"sessionpool", "update", "--ids", "/subscriptions/x/resourceGroups/rg/providers/Microsoft.App/sessionPools/p", "-n", "p"}, 2, "--ids cannot be combined"},
	}
	for _, tt := range tests {
		r := e.run(tt.args...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.msg) {
			t.Errorf("%v: exit %d, stderr %q; want %d %q", tt.args, r.code, r.stderr, tt.code, tt.msg)
		}
	}
	e.mustRun(append(upd, "--max-sessions", "7", "--network-status", "EgressEnabled")...)
	prefix := "/subscriptions/" + e.creds.SubscriptionID + "/resourceGroups/rg/providers/Microsoft.App/sessionPools/"
	out := e.mustRun("sessionpool", "show", "--ids", prefix+"pyone", prefix+"pytwo", "--query", "[].[name, properties.scaleConfiguration.maxConcurrentSessions, properties.sessionNetworkConfiguration.status]", "-o", "tsv")
	if out != "pyone\t7\tEgressEnabled\npytwo\t10\tEgressDisabled\n" {
		t.Errorf("show --ids a b = %q", out)
	}
	if out := e.mustRun("sessionpool", "update", "--ids", prefix+"pytwo", "--max-sessions", "30", "--no-wait"); out != "" {
		t.Errorf("update --no-wait printed %q", out)
	}
	e.mustRun("sessionpool", "delete", "--ids", prefix+"pyone", prefix+"pytwo", "--yes")
	if l, _ := e.mustJSON("sessionpool", "list", "-g", "rg").([]any); len(l) != 0 {
		t.Errorf("list after delete --ids = %v", l)
	}
}
