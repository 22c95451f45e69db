package cli

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// TestSeedExamples runs every example command of the published CLI
// reference (cli.md §8) against a live server, with tidepool in place of
// az, and checks the pool through a GET.
func TestSeedExamples(t *testing.T) {
	e := newEnv(t, nil)
	sub := e.creds.SubscriptionID
	e.mustRun("provider", "register", "--namespace", "Microsoft.App")
	e.mustRun("group", "create", "-n", "MyResourceGroup", "-l", "eastasia")
	e.mustRun("containerapp", "env", "create", "-n", "myenvironment", "-g", "MyResourceGroup", "-l", "eastasia")
	// The examples name this identity; a pool may only name identities that exist.
	e.mustRun("identity", "create", "-g", "MyResourceGroup", "-n", "MyUserIdentityResourceId", "-l", "eastasia")
	poolPath := "/subscriptions/" + sub + "/resourceGroups/MyResourceGroup/providers/Microsoft.App/sessionPools/mysessionpool"
	envID := "/subscriptions/" + sub + "/resourceGroups/MyResourceGroup/providers/Microsoft.App/managedEnvironments/MyEnvironment"
	uami := "/subscriptions/" + sub + "/resourceGroups/MyResourceGroup/providers/Microsoft.ManagedIdentity/userAssignedIdentities/MyUserIdentityResourceId"
	base := []string{"containerapp", "sessionpool", "create", "-n", "mysessionpool", "-g", "MyResourceGroup"}
	custom := []string{"--container-type", "CustomContainer", "--environment", "MyEnvironment"}
	tests := []struct {
		name string
		args []string
		want map[string]any // dotted path → JSON value
	}{
		{"python defaults", []string{"--location", "eastasia"}, map[string]any{
			"location": "eastasia", "properties.containerType": "PythonLTS", "properties.poolManagementType": "Dynamic",
			"properties.scaleConfiguration.maxConcurrentSessions": 10.0, "properties.scaleConfiguration.readySessionInstances": 5.0,
			"properties.sessionNetworkConfiguration.status":                                      "EgressDisabled",
			"properties.dynamicPoolConfiguration.lifecycleConfiguration.lifecycleType":           "Timed",
			"properties.dynamicPoolConfiguration.lifecycleConfiguration.cooldownPeriodInSeconds": 300.0,
		}},
		{"python 30/20", []string{"--container-type", "PythonLTS", "--max-sessions", "30", "--ready-sessions", "20", "--location", "eastasia"}, map[string]any{
			"properties.scaleConfiguration.maxConcurrentSessions": 30.0, "properties.scaleConfiguration.readySessionInstances": 20.0,
		}},
		{"custom quickstart", append(append([]string{}, custom...), "--cpu", "0.5", "--memory", "1Gi", "--target-port", "80", "--location", "eastasia", "--image", "mcr.microsoft.com/k8se/quickstart:latest"), map[string]any{
			"properties.containerType": "CustomContainer", "properties.environmentId": envID,
			"properties.customContainerTemplate.containers": []any{map[string]any{"name": "mysessionpool", "image": "mcr.microsoft.com/k8se/quickstart:latest",
				"resources": map[string]any{"cpu": 0.5, "memory": "1Gi"}}},
			"properties.customContainerTemplate.ingress.targetPort": 80.0,
		}},
		{"custom secrets env", append(append([]string{}, custom...), "--cpu", "0.5", "--memory", "1Gi", "--target-port", "80", "--image", "MyImage",
			"--env-vars", "GREETING=Hello, world", "SECRETENV=secretref:anothersecret", "--secrets", "mysecret=secretvalue1", "anothersecret=secret value 2", "--location", "eastasia"), map[string]any{
			"properties.customContainerTemplate.containers": []any{map[string]any{"name": "mysessionpool", "image": "MyImage",
				"env":       []any{map[string]any{"name": "GREETING", "value": "Hello, world"}, map[string]any{"name": "SECRETENV", "secretRef": "anothersecret"}},
				"resources": map[string]any{"cpu": 0.5, "memory": "1Gi"}}},
			"properties.secrets": []any{map[string]any{"name": "mysecret"}, map[string]any{"name": "anothersecret"}},
		}},
		{"custom registry", append(append([]string{}, custom...), "--image", "MyImage", "--cpu", "0.5", "--memory", "1Gi", "--target-port", "80",
			"--registry-server", "myregistry.azurecr.io", "--registry-username", "myregistry", "--registry-password", "s3cret", "--location", "eastasia"), map[string]any{
			"properties.customContainerTemplate.registryCredentials": map[string]any{"server": "myregistry.azurecr.io", "username": "myregistry", "passwordSecretRef": "myregistryazurecrio-myregistry"},
			"properties.secrets": []any{map[string]any{"name": "myregistryazurecrio-myregistry"}},
		}},
		{"custom registry identity", append(append([]string{}, custom...), "--image", "MyImage", "--cpu", "0.5", "--memory", "1Gi", "--target-port", "80",
			"--registry-server", "myregistry.azurecr.io", "--registry-identity", uami, "--location", "eastasia"), map[string]any{
			"properties.customContainerTemplate.registryCredentials": map[string]any{"server": "myregistry.azurecr.io", "identity": uami},
			"identity.type": "UserAssigned",
		}},
		{"custom identities", append(append([]string{}, custom...), "--image", "MyImage", "--cpu", "0.5", "--memory", "1Gi", "--target-port", "80",
			"--mi-system-assigned", "--mi-user-assigned", "MyUserIdentityResourceId", "--location", "eastasia"), map[string]any{
			"identity.type":                      "SystemAssigned,UserAssigned",
			"properties.managedIdentitySettings": []any{map[string]any{"identity": "system", "lifecycle": "Main"}, map[string]any{"identity": strings.ToLower(uami), "lifecycle": "Main"}},
		}},
		{"custom cooldown", []string{"--environment", "MyEnvironment", "--cpu", "0.5", "--memory", "1Gi", "--target-port", "80", "--container-type", "CustomContainer",
			"--cooldown-period", "360", "--location", "eastasia"}, map[string]any{
			"properties.dynamicPoolConfiguration.lifecycleConfiguration.cooldownPeriodInSeconds": 360.0,
			"properties.customContainerTemplate.containers":                                      []any{map[string]any{"name": "mysessionpool", "image": defaultImage, "resources": map[string]any{"cpu": 0.5, "memory": "1Gi"}}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.mustRun(append(append([]string{}, base...), tt.args...)...)
			code, pool := e.get(poolPath, poolVersion)
			if code != 200 {
				t.Fatalf("GET pool = %d %v", code, pool)
			}
			for path, want := range tt.want {
				if got := dig(pool, path); !subset(want, got) {
					g, _ := json.Marshal(got)
					w, _ := json.Marshal(want)
					t.Errorf("%s = %s, want %s", path, g, w)
				}
			}
			e.mustRun("containerapp", "sessionpool", "delete", "-n", "mysessionpool", "-g", "MyResourceGroup", "--yes")
			if code, _ := e.get(poolPath, poolVersion); code != 404 {
				t.Errorf("GET after delete = %d, want 404", code)
			}
		})
	}

	// Update max sessions and image; show, list, delete.
	e.mustRun(append(append([]string{}, base...), append(append([]string{}, custom...), "--image", "MyImage", "--target-port", "80", "--location", "eastasia")...)...)
	e.mustRun("containerapp", "sessionpool", "update", "-n", "mysessionpool", "-g", "MyResourceGroup", "--max-sessions", "20", "--image", "MyNewImage")
	_, pool := e.get(poolPath, poolVersion)
	if got := dig(pool, "properties.scaleConfiguration.maxConcurrentSessions"); got != 20.0 {
		t.Errorf("after update: maxConcurrentSessions = %v", got)
	}
	if got := dig(pool, "properties.customContainerTemplate.containers"); !subset([]any{map[string]any{"image": "MyNewImage"}}, got) {
		t.Errorf("after update: containers = %v", got)
	}
	show := e.mustJSON("containerapp", "sessionpool", "show", "-n", "mysessionpool", "-g", "MyResourceGroup")
	if dig(show, "resourceGroup") != "MyResourceGroup" || dig(show, "name") != "mysessionpool" {
		t.Errorf("show = %v", show)
	}
	ep := strings.TrimSpace(e.mustRun("containerapp", "sessionpool", "show", "-n", "mysessionpool", "-g", "MyResourceGroup", "--query", "properties.poolManagementEndpoint", "-o", "tsv"))
	if ep != dig(pool, "properties.poolManagementEndpoint") || ep == "" {
		t.Errorf("show --query endpoint = %q, want %v", ep, dig(pool, "properties.poolManagementEndpoint"))
	}
	for _, args := range [][]string{{"containerapp", "sessionpool", "list"}, {"containerapp", "sessionpool", "list", "-g", "MyResourceGroup"}, {"sessionpool", "list"}} {
		l, _ := e.mustJSON(args...).([]any)
		if len(l) != 1 || dig(l[0], "name") != "mysessionpool" {
			t.Errorf("%v = %v", args, l)
		}
	}
	table := e.mustRun("containerapp", "sessionpool", "list", "-g", "MyResourceGroup", "-o", "table")
	if want := "Location  Name           ResourceGroup  \n--------  -------------  ---------------\neastasia  mysessionpool  MyResourceGroup\n"; table != want {
		t.Errorf("list -o table =\n%q\nwant\n%q", table, want)
	}
	r := e.run("containerapp", "sessionpool", "delete", "-n", "mysessionpool", "-g", "MyResourceGroup", "--yes")
	if r.err != nil || r.stdout != "" || !strings.Contains(r.stderr, "Session pool successfully deleted") {
		t.Errorf("delete: %v, stdout %q, stderr %q", r.err, r.stdout, r.stderr)
	}
	if r := e.run("containerapp", "sessionpool", "show", "-n", "mysessionpool", "-g", "MyResourceGroup"); r.code != 3 {
		t.Errorf("show after delete: exit %d, want 3 (%s)", r.code, r.stderr)
	}
}

// subset reports whether want is contained in got: objects may have more
// keys, lists must match item by item.
func subset(want, got any) bool {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range w {
			if !subset(v, g[k]) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !subset(w[i], g[i]) {
				return false
			}
		}
		return true
	case string:
		// identity types: "SystemAssigned, UserAssigned" in either spelling.
		if gs, ok := got.(string); ok && strings.Contains(w, ",") {
			return strings.ReplaceAll(gs, " ", "") == strings.ReplaceAll(w, " ", "")
		}
	}
	return reflect.DeepEqual(want, got)
}

// TestPoolValidation checks az's validation messages and exit codes.
func TestPoolValidation(t *testing.T) {
	e := newEnv(t, nil)
	e.mustRun("group", "create", "-n", "rg", "-l", "westus")
	create := []string{"sessionpool", "create", "-n", "pool", "-g", "rg", "-l", "westus"}
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"sessionpool", "create", "-n", "Bad--name", "-g", "rg"}, 1, "Invalid SessionPool name Bad--name."},
		{[]string{"sessionpool", "create", "-n", "pool", "-g", "rg", "-l", "mars"}, 1, "Location 'mars' is not currently supported."},
		{append(create, "--container-type", "CustomContainer"), 1, "Must provide environment name when container type is CustomContainer"},
		{append(create, "--environment", "env"), 1, "Do not pass environment name when using container type PythonLTS"},
		{append(create, "--lifecycle-type", "OnContainerExit"), 1, "The container type PythonLTS only supports lifecycle type 'Timed'."},
		{append(create, "--max-alive-period", "10"), 1, "The container type PythonLTS does not support --max-alive-period."},
		{append(create, "--container-type", "CustomContainer", "--environment", "env", "--max-alive-period", "10", "--cooldown-period", "5"), 1, "--max-alive-period and --cooldown-period cannot be set at the same time."},
		{append(create, "--container-type", "CustomContainer", "--environment", "env", "--max-alive-period", "10"), 1, "--max-alive-period can only be set when --lifecycle-type is 'OnContainerExit'."},
		{append(create, "--container-type", "CustomContainer", "--environment", "env", "--lifecycle-type", "OnContainerExit", "--cooldown-period", "10"), 1, "--cooldown-period can only be set when --lifecycle-type is 'Timed'."},
		{append(create, "--container-type", "CustomContainer", "--environment", "env"), 1, "Required argument 'target_port' is not specified."},
		{append(create, "--container-type", "CustomContainer", "--environment", "env", "--target-port", "0"), 1, "Port must be in range [1, 65535]."},
		{append(create, "--container-type", "CustomContainer", "--environment", "env", "--target-port", "80", "--cpu", "x"), 1, `Usage error: --cpu must be a number eg. "0.5"`},
		{append(create, "--container-type", "CustomContainer", "--environment", "env", "--target-port", "80", "--memory", "1Mi"), 1, `Usage error: --memory must be a number ending with "Gi"`},
		{append(create, "--container-type", "CustomContainer", "--environment", "env", "--target-port", "80", "--env-vars", "A"), 1, `Environment variables must be in the format`},
		{append(create, "--container-type", "CustomContainer", "--environment", "env", "--target-port", "80", "--env-vars", "A=1", "A=2"), 1, `Duplicate environment variable A found`},
		{append(create, "--secrets", "a=1", "a=2"), 1, `Duplicate secret "a" found, secret names must be unique.`},
		{append(create, "--secrets", "novalue"), 1, `Secrets must be in format`},
		{append(create, "--container-type", "CustomContainer", "--environment", "env", "--target-port", "80", "--registry-server", "r.io", "--registry-username", "u", "--registry-password", "secretref:missing"), 1,
			"Registry password secret with name 'missing' does not exist. Add the secret using --secrets"},
		{append(create, "--container-type", "Java"), 2, "argument --container-type: invalid choice: 'Java'"},
		{append(create, "--max-sessions", "many"), 2, "invalid argument"},
		{[]string{"sessionpool", "create", "-g", "rg"}, 2, "the following arguments are required: --name/-n"},
		{[]string{"sessionpool", "show", "-n", "nope", "-g", "rg"}, 3, ""},
		{[]string{"sessionpool", "show", "-n", "x", "-o", "xml"}, 2, "argument --output/-o: invalid choice: 'xml'"},
		{[]string{"sessionpool", "delete", "-n", "x", "-g", "rg"}, 1, "Unable to prompt for confirmation as no tty available. Use --yes."},
		{[]string{"containerapp", "sessionpool", "frobnicate"}, 2, "'frobnicate' is not in the 'tidepool containerapp sessionpool' command group."},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[2:], " "), func(t *testing.T) {
			r := e.run(tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.msg) {
				t.Errorf("exit %d, stderr %q; want exit %d with %q", r.code, r.stderr, tt.code, tt.msg)
			}
			if tt.code != 0 && !strings.Contains(r.stderr, "ERROR: ") {
				t.Errorf("stderr %q has no ERROR:", r.stderr)
			}
		})
	}
	// The prompt accepts y on stdin; --no-wait prints nothing.
	e.mustRun(append(create, "--no-wait")...)
	if r := e.runIn("n\n", "sessionpool", "delete", "-n", "pool", "-g", "rg"); r.code != 1 || !strings.Contains(r.stderr, "Operation cancelled.") {
		t.Errorf("delete answered n: exit %d, stderr %q", r.code, r.stderr)
	}
	waitState(t, e, "/subscriptions/"+e.creds.SubscriptionID+"/resourceGroups/rg/providers/Microsoft.App/sessionPools/pool")
	if r := e.runIn("y\n", "sessionpool", "delete", "-n", "pool", "-g", "rg"); r.err != nil {
		t.Errorf("delete answered y: %v %s", r.err, r.stderr)
	}
}

// waitState waits until a pool's provisioning state is terminal.
func waitState(t *testing.T, e *env, path string) {
	t.Helper()
	for i := 0; i < 500; i++ {
		_, p := e.get(path, poolVersion)
		switch fmt.Sprint(dig(p, "properties.provisioningState")) {
		case "Succeeded", "Failed", "Canceled":
			return
		}
		e.mustRun("group", "list") // a round trip instead of a sleep
	}
	t.Fatalf("%s never reached a terminal state", path)
}
