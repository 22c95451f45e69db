package arm_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// checkShape checks that a pool rendered at version v has exactly the
// fields v defines. full says the pool was created with every field, so
// those v defines must be present.
func checkShape(t testing.TB, r *response, v string, full bool) {
	t.Helper()
	p := r.json(t)
	has := func(path string) bool { _, ok := jget(p, path); return ok }
	want := func(path string, present bool) {
		t.Helper()
		if has(path) != present {
			t.Errorf("%s: %s present = %v, want %v at %s", r, path, has(path), present, v)
		}
	}
	if got := jstring(p, "type"); got != "Microsoft.App/sessionPools" {
		t.Errorf("%s: type %q, want Microsoft.App/sessionPools", r, got)
	}
	for _, f := range []string{"id", "name", "location", "properties.provisioningState", "properties.poolManagementEndpoint"} {
		want(f, true)
	}

	dpc := "properties.dynamicPoolConfiguration."
	if jstring(p, dpc+"lifecycleConfiguration.lifecycleType") != "OnContainerExit" {
		want(dpc+"executionType", legacyLifecycle(v))
		want(dpc+"cooldownPeriodInSeconds", legacyLifecycle(v))
		want(dpc+"lifecycleConfiguration", !legacyLifecycle(v))
	}

	rc := "properties.customContainerTemplate.registryCredentials"
	if has(rc) {
		want(rc+".registryServer", hasRegistryServer(v))
		want(rc+".server", !hasRegistryServer(v))
		if hasRegistryServer(v) {
			want(rc+".identity", false)
		}
	}
	if !hasIdentity(v) || full {
		want("identity", full && hasIdentity(v))
		want("properties.managedIdentitySettings", full && hasIdentity(v))
	}
	if !hasProbes(v) || full {
		want("properties.customContainerTemplate.containers[0].probes", full && hasProbes(v))
	}
	if !hasMCP(v) || full {
		want("properties.mcpServerSettings", full && hasMCP(v))
	}
	if !hasTemplateStatus(v) {
		want("properties.templateUpdateStatus", false)
	}
	secrets, _ := jget(p, "properties.secrets")
	list, _ := secrets.([]any)
	for i := range list {
		want(fmt.Sprintf("properties.secrets[%d].name", i), true)
		want(fmt.Sprintf("properties.secrets[%d].value", i), false)
	}
}

func TestPoolCreateEveryVersion(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.createGroup("rg", "eastus")
	a.createEnv("rg", "env")
	for i, v := range allVersions {
		for _, kind := range []string{"python", "custom"} {
			t.Run(v+"/"+kind, func(t *testing.T) {
				a := a.with(t)
				name := fmt.Sprintf("%s%d", kind, i)
				body := pythonBody(t, v)
				if kind == "custom" {
					body = customBody(t, v, "rg", "env")
				}
				r := a.do("PUT", poolPath("rg", name, v), body, nil)
				if r.Status != http.StatusCreated {
					t.Fatalf("%s: want 201", r)
				}
				p := r.json(t)
				if got := jstring(p, "properties.provisioningState"); got != "InProgress" {
					t.Errorf("%s: provisioningState %q, want InProgress", r, got)
				}
				if got, want := jstring(p, "id"), poolID("rg", name); got != want {
					t.Errorf("%s: id %q, want %q", r, got, want)
				}
				if got := jstring(p, "name"); got != name {
					t.Errorf("%s: name %q, want %q", r, got, name)
				}
				checkShape(t, r, v, false)
				async := r.Header.Get("Azure-AsyncOperation")
				if !strings.Contains(async, "api-version="+v) {
					t.Errorf("%s: Azure-AsyncOperation %q lacks api-version=%s", r, async, v)
				}
				a.waitAsync(async, "Succeeded")

				g := a.must(http.StatusOK, "GET", poolPath("rg", name, v), nil)
				if got := jstring(g.json(t), "properties.provisioningState"); got != "Succeeded" {
					t.Errorf("%s: provisioningState %q, want Succeeded", g, got)
				}
				checkShape(t, g, v, false)

				r = a.do("PUT", poolPath("rg", name, v), body, nil)
				if r.Status != http.StatusOK {
					t.Fatalf("%s: second PUT: want 200", r)
				}
				a.waitAsync(r.Header.Get("Azure-AsyncOperation"), "Succeeded")
			})
		}
	}
}

// TestPoolGetGolden fixes the GET shape of a pool with every field at each
// version in testdata/pool_get_<version>.json.
func TestPoolGetGolden(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.createGroup("rg", "westus2")
	a.createEnv("rg", "env")
	a.putPool("rg", "fullpool", latest, fullBody(t, "rg", "env"))
	for _, v := range allVersions {
		t.Run(v, func(t *testing.T) {
			a := a.with(t)
			r := a.must(http.StatusOK, "GET", poolPath("rg", "fullpool", v), nil)
			checkShape(t, r, v, true)
			golden(t, "pool_get_"+v+".json", a.normalize(r.Body))
		})
	}
}

// comparable strips what differs between two pools with the same content.
func comparable(t testing.TB, r *response) string {
	p := r.json(t)
	for _, f := range []string{"id", "name", "systemData", "properties.poolManagementEndpoint", "properties.templateUpdateStatus.activeTemplate.createdTime"} {
		jset(p, f, remove)
	}
	data, _ := json.Marshal(p)
	return string(data)
}

// TestPoolReadAcrossVersions creates a pool at each version and reads it at
// every version: a pool reads the same whichever version created it.
func TestPoolReadAcrossVersions(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.createGroup("rg", "westus2")
	a.createEnv("rg", "env")
	for i, v := range allVersions {
		a.putPool("rg", fmt.Sprintf("created%d", i), v, customBody(t, v, "rg", "env"))
	}
	for _, gv := range allVersions {
		want := comparable(t, a.must(http.StatusOK, "GET", poolPath("rg", fmt.Sprintf("created%d", versionIndex(gv)), gv), nil))
		for i, cv := range allVersions {
			t.Run("created "+cv+"/read "+gv, func(t *testing.T) {
				a := a.with(t)
				r := a.must(http.StatusOK, "GET", poolPath("rg", fmt.Sprintf("created%d", i), gv), nil)
				checkShape(t, r, gv, false)
				if got := comparable(t, r); got != want {
					t.Errorf("%s:\n got %s\nwant %s (the pool created at %s)", r, got, want, gv)
				}
				for path, want := range map[string]any{
					"properties.scaleConfiguration.maxConcurrentSessions":                      20.0,
					"properties.customContainerTemplate.containers[0].image":                   "myregistry.azurecr.io/app:v1",
					"properties.customContainerTemplate.containers[0].env[1].secretRef":        "apikey",
					"properties.customContainerTemplate.registryCredentials.username":          "myregistry",
					"properties.customContainerTemplate.ingress.targetPort":                    8080.0,
					"properties.sessionNetworkConfiguration.status":                            "EgressEnabled",
					"properties.customContainerTemplate.containers[0].resources.memory":        "1Gi",
					"properties.customContainerTemplate.registryCredentials.passwordSecretRef": "registrypassword",
				} {
					if got, _ := jget(r.json(t), path); got != want {
						t.Errorf("%s: %s = %v, want %v", r, path, got, want)
					}
				}
				cooldown := "properties.dynamicPoolConfiguration.lifecycleConfiguration.cooldownPeriodInSeconds"
				if legacyLifecycle(gv) {
					cooldown = "properties.dynamicPoolConfiguration.cooldownPeriodInSeconds"
				}
				if got, _ := jget(r.json(t), cooldown); got != 600.0 {
					t.Errorf("%s: %s = %v, want 600", r, cooldown, got)
				}
			})
		}
	}
}

// TestPoolPutOlderVersionKeepsNewerFields: a PUT at a version that cannot
// express identity, probes, MCP settings or the registry identity keeps
// them; a PUT at a version that can express them and leaves them out
// removes them.
func TestPoolPutOlderVersionKeepsNewerFields(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.createGroup("rg", "westus2")
	a.createEnv("rg", "env")
	for i, v := range allVersions {
		t.Run(v, func(t *testing.T) {
			a := a.with(t)
			name := fmt.Sprintf("keep%d", i)
			a.putPool("rg", name, latest, fullBody(t, "rg", "env"))
			r := a.putPool("rg", name, v, customBody(t, v, "rg", "env"))
			if r.Status != http.StatusOK {
				t.Errorf("%s: want 200", r)
			}
			g := a.must(http.StatusOK, "GET", poolPath("rg", name, latest), nil)
			p := g.json(t)
			for path, kept := range map[string]bool{
				"identity":                           !hasIdentity(v),
				"properties.managedIdentitySettings": !hasIdentity(v),
				"properties.customContainerTemplate.containers[0].probes":         !hasProbes(v),
				"properties.mcpServerSettings":                                    !hasMCP(v),
				"properties.customContainerTemplate.registryCredentials.identity": hasRegistryServer(v),
			} {
				if _, ok := jget(p, path); ok != kept {
					t.Errorf("PUT at %s without %s, then %s: present = %v, want %v", v, path, g, ok, kept)
				}
			}
		})
	}
}

func mustGet(t testing.TB, v any, path string) any {
	t.Helper()
	x, ok := jget(v, path)
	if !ok {
		t.Fatalf("%s missing", path)
	}
	return x
}

// TestPoolShellTutorial deploys the Shell pool of the sessions tutorial:
// lower-case sessionpools, "North Central US", Shell at 2025-02-02-preview,
// no readySessionInstances, then reads it as az resource show does.
func TestPoolShellTutorial(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.createGroup("shellrg", "northcentralus")
	resource := obj(t, `{
		"apiVersion": "2025-02-02-preview",
		"name": "myshellpool",
		"type": "Microsoft.App/sessionpools",
		"location": "North Central US",
		"properties": {
			"poolManagementType": "Dynamic",
			"containerType": "Shell",
			"scaleConfiguration": { "maxConcurrentSessions": 5 },
			"dynamicPoolConfiguration": { "lifecycleConfiguration": { "lifecycleType": "Timed", "cooldownPeriodInSeconds": 300 } },
			"sessionNetworkConfiguration": { "status": "EgressEnabled" }
		}
	}`)
	id := "/subscriptions/" + testSub + "/resourceGroups/shellrg/providers/Microsoft.App/sessionpools/myshellpool"
	r := a.do("PUT", id+"?api-version=2025-02-02-preview", resource, nil)
	if r.Status != http.StatusCreated {
		t.Fatalf("%s: want 201", r)
	}
	a.waitAsync(r.Header.Get("Azure-AsyncOperation"), "Succeeded")

	for _, v := range []string{"2025-02-02-preview", "2026-01-01"} {
		g := a.must(http.StatusOK, "GET", id+"?api-version="+v, nil)
		p := g.json(t)
		for path, want := range map[string]string{
			"name":                         "myshellpool",
			"location":                     "North Central US",
			"type":                         "Microsoft.App/sessionPools",
			"properties.provisioningState": "Succeeded",
			"properties.containerType":     "Shell",
			"properties.sessionNetworkConfiguration.status": "EgressEnabled",
		} {
			if got := jstring(p, path); got != want {
				t.Errorf("%s: %s = %q, want %q", g, path, got, want)
			}
		}
		if ep := jstring(p, "properties.poolManagementEndpoint"); !strings.HasPrefix(ep, a.URL+"/") || !strings.HasSuffix(ep, "/myshellpool") {
			t.Errorf("%s: poolManagementEndpoint %q is not an absolute URL of this server ending in the pool", g, ep)
		}
	}
}

// TestPoolCLIBodyWithNulls creates a pool with the body az containerapp
// sessionpool create sends: explicit nulls stand for absent fields.
func TestPoolCLIBodyWithNulls(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.createGroup("rg", "eastus")
	body := `{
	  "location": "eastus",
	  "properties": {
	    "poolManagementType": "Dynamic",
	    "environmentId": null,
	    "containerType": "PythonLTS",
	    "customContainerTemplate": null,
	    "secrets": null,
	    "dynamicPoolConfiguration": {
	      "lifecycleConfiguration": { "lifecycleType": "Timed", "maxAlivePeriodInSeconds": null, "cooldownPeriodInSeconds": 300 }
	    },
	    "sessionNetworkConfiguration": { "status": "EgressDisabled" },
	    "scaleConfiguration": { "maxConcurrentSessions": 10, "readySessionInstances": 5 }
	  }
	}`
	r := a.putPool("rg", "mypool", "2025-02-02-preview", body)
	if r.Status != http.StatusCreated {
		t.Errorf("%s: want 201", r)
	}
	g := a.must(http.StatusOK, "GET", poolPath("rg", "mypool", "2025-02-02-preview"), nil)
	p := g.json(t)
	for _, absent := range []string{"properties.environmentId", "properties.customContainerTemplate", "properties.secrets",
		"properties.dynamicPoolConfiguration.lifecycleConfiguration.maxAlivePeriodInSeconds"} {
		if v, ok := jget(p, absent); ok {
			t.Errorf("%s: %s = %v, want absent", g, absent, v)
		}
	}
	if got, _ := jget(p, "properties.scaleConfiguration.readySessionInstances"); got != 5.0 {
		t.Errorf("%s: readySessionInstances %v, want 5", g, got)
	}
}

// TestPoolCLICustomContainer creates a custom container pool the way newer
// CLIs do: secrets with empty keyVaultUrl and identity, numbers as strings,
// an identity type with a space.
func TestPoolCLICustomContainer(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.createGroup("rg", "eastus")
	a.createEnv("rg", "env")
	body := `{
	  "location": "eastus",
	  "identity": {"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {"/subscriptions/` + testSub + `/resourcegroups/rg/providers/microsoft.managedidentity/userassignedidentities/uami": {}}},
	  "properties": {
	    "poolManagementType": "Dynamic",
	    "environmentId": "` + envID("rg", "env") + `",
	    "containerType": "CustomContainer",
	    "secrets": [{"name": "pw", "value": "hunter2", "keyVaultUrl": "", "identity": ""}],
	    "dynamicPoolConfiguration": {"lifecycleConfiguration": {"lifecycleType": "OnContainerExit", "maxAlivePeriodInSeconds": "3600", "cooldownPeriodInSeconds": null}},
	    "customContainerTemplate": {
	      "registryCredentials": {"server": "reg.example.io", "username": "u", "passwordSecretRef": "pw", "identity": null},
	      "containers": [{"image": "reg.example.io/app:1", "name": "app", "resources": {"cpu": "0.5", "memory": "1.0Gi"}, "env": null, "command": null, "args": null}],
	      "ingress": {"targetPort": "8080"}
	    },
	    "sessionNetworkConfiguration": {"status": "EgressDisabled"},
	    "scaleConfiguration": {"maxConcurrentSessions": "10", "readySessionInstances": "2"},
	    "managedIdentitySettings": [{"identity": "system", "lifecycle": "Main"}]
	  }
	}`
	a.putPool("rg", "clipool", "2025-02-02-preview", body)
	g := a.must(http.StatusOK, "GET", poolPath("rg", "clipool", "2025-02-02-preview"), nil)
	p := g.json(t)
	for path, want := range map[string]any{
		"identity.type": "SystemAssigned,UserAssigned",
		"properties.dynamicPoolConfiguration.lifecycleConfiguration.maxAlivePeriodInSeconds": 3600.0,
		"properties.customContainerTemplate.containers[0].resources.cpu":                     0.5,
		"properties.customContainerTemplate.ingress.targetPort":                              8080.0,
		"properties.scaleConfiguration.readySessionInstances":                                2.0,
	} {
		if got, _ := jget(p, path); got != want {
			t.Errorf("%s: %s = %v, want %v", g, path, got, want)
		}
	}
	// A legacy version cannot show OnContainerExit: no dynamicPoolConfiguration.
	g = a.must(http.StatusOK, "GET", poolPath("rg", "clipool", "2024-08-02-preview"), nil)
	if v, ok := jget(g.json(t), "properties.dynamicPoolConfiguration"); ok {
		t.Errorf("%s: dynamicPoolConfiguration %v at a legacy version, want none for OnContainerExit", g, v)
	}
}

// TestPoolMCPExample creates the published MCP example (Shell pool, odd
// property casing) and reads the MCP endpoint back.
func TestPoolMCPExample(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.createGroup("rg", "eastus")
	body := `{
	  "location": "East US",
	  "properties": {
	    "poolManagementType": "Dynamic",
	    "containerType": "Shell",
	    "scaleConfiguration": { "maxConcurrentSessions": 50 },
	    "dynamicPoolConfiguration": { "lifecycleConfiguration": { "lifecycleType": "Timed", "cooldownPeriodInSeconds": 600 } },
	    "sessionNetworkConfiguration": { "status": "EgressEnabled" },
	    "mcPServerSettings": { "isMCpServerEnabled": true }
	  }
	}`
	a.putPool("rg", "testsessionpool", latest, body)
	g := a.must(http.StatusOK, "GET", poolPath("rg", "testsessionpool", latest), nil)
	p := g.json(t)
	endpoint := jstring(p, "properties.poolManagementEndpoint")
	if got, _ := jget(p, "properties.mcpServerSettings.isMcpServerEnabled"); got != true {
		t.Errorf("%s: isMcpServerEnabled %v, want true", g, got)
	}
	if got := jstring(p, "properties.mcpServerSettings.mcpServerEndpoint"); got != endpoint+"/mcp" {
		t.Errorf("%s: mcpServerEndpoint %q, want %q", g, got, endpoint+"/mcp")
	}
	for _, v := range allVersions {
		g := a.must(http.StatusOK, "GET", poolPath("rg", "testsessionpool", v), nil)
		if _, ok := jget(g.json(t), "properties.mcpServerSettings"); ok != hasMCP(v) {
			t.Errorf("%s: mcpServerSettings present %v at %s, want %v", g, ok, v, hasMCP(v))
		}
	}
}

// TestPoolNamesCaseInsensitive: names, keywords and types in the URL
// compare without case.
func TestPoolNamesCaseInsensitive(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.createGroup("MyRG", "eastus")
	a.putPool("MyRG", "mypool", stable, pythonBody(t, stable))

	for _, path := range []string{
		poolPath("myrg", "mypool", stable),
		poolPath("MYRG", "MyPool", stable),
		"/SUBSCRIPTIONS/" + testSub + "/resourcegroups/myrg/PROVIDERS/microsoft.app/SESSIONPOOLS/mypool?api-version=" + stable,
		"/subscriptions/" + testSub + "/resourceGroups/myrg/providers/Microsoft.App/sessionpools/mypool?api-version=" + stable,
		"/subscriptions/" + testSub + "/resourceGroups/myrg/providers/Microsoft.App/sessionPools/mypool/?api-version=" + stable,
	} {
		t.Run(path, func(t *testing.T) {
			a := a.with(t)
			r := a.must(http.StatusOK, "GET", path, nil)
			if got := jstring(r.json(t), "name"); got != "mypool" {
				t.Errorf("%s: name %q, want mypool", r, got)
			}
		})
	}
	t.Run("second PUT with other casing", func(t *testing.T) {
		a := a.with(t)
		r := a.putPool("myrg", "mypool", stable, pythonBody(t, stable))
		if r.Status != http.StatusOK {
			t.Errorf("%s: want 200 (the pool exists)", r)
		}
		l := a.must(http.StatusOK, "GET", poolsInGroup("MYRG", stable), nil)
		if n := len(mustGet(t, l.json(t), "value").([]any)); n != 1 {
			t.Errorf("%s: %d pools, want 1", l, n)
		}
	})
	t.Run("api-version casing", func(t *testing.T) {
		a := a.with(t)
		a.must(http.StatusOK, "GET", poolPath("myrg", "mypool", "2025-02-02-PREVIEW"), nil)
	})
	t.Run("resource group casing", func(t *testing.T) {
		a := a.with(t)
		r := a.must(http.StatusOK, "GET", groupPath("myrg"), nil)
		if got := jstring(r.json(t), "name"); got != "MyRG" {
			t.Errorf("%s: name %q, want MyRG as created", r, got)
		}
	})
}

func TestPoolPatch(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.createGroup("rg", "westus2")
	a.createEnv("rg", "env")
	a.createEnv("rg", "env2")

	t.Run("202 then Location 200 with the pool", func(t *testing.T) {
		a := a.with(t)
		a.putPool("rg", "lro", latest, customBody(t, latest, "rg", "env"))
		a.gate.hold()
		defer a.gate.release()
		r := a.do("PATCH", poolPath("rg", "lro", latest), `{"properties":{"scaleConfiguration":{"maxConcurrentSessions":30}}}`, nil)
		if r.Status != http.StatusAccepted {
			t.Fatalf("%s: want 202", r)
		}
		loc, async := r.Header.Get("Location"), r.Header.Get("Azure-AsyncOperation")
		for name, u := range map[string]string{"Location": loc, "Azure-AsyncOperation": async} {
			if !strings.HasPrefix(u, a.URL+"/subscriptions/"+testSub+"/providers/Microsoft.App/locations/") {
				t.Errorf("%s: %s %q is not an absolute subscription-scope operation URL", r, name, u)
			}
		}
		g := a.must(http.StatusOK, "GET", poolPath("rg", "lro", latest), nil)
		if got := jstring(g.json(t), "properties.provisioningState"); got != "InProgress" {
			t.Errorf("%s: provisioningState %q during the update, want InProgress", g, got)
		}
		l := a.do("GET", loc, nil, nil)
		if l.Status != http.StatusAccepted || len(l.Body) != 0 {
			t.Errorf("%s: Location while running: want 202 without a body", l)
		}
		s := a.must(http.StatusOK, "GET", async, nil)
		if got := jstring(s.json(t), "status"); got != "InProgress" {
			t.Errorf("%s: status %q, want InProgress", s, got)
		}
		a.gate.release()
		done := a.waitLocation(loc)
		if done.Status != http.StatusOK {
			t.Fatalf("%s: Location when done: want 200 with the pool", done)
		}
		p := done.json(t)
		if got := jstring(p, "id"); got != poolID("rg", "lro") {
			t.Errorf("%s: id %q", done, got)
		}
		if got, _ := jget(p, "properties.scaleConfiguration.maxConcurrentSessions"); got != 30.0 {
			t.Errorf("%s: maxConcurrentSessions %v, want 30", done, got)
		}
		if got := jstring(p, "properties.provisioningState"); got != "Succeeded" {
			t.Errorf("%s: provisioningState %q, want Succeeded", done, got)
		}
		a.waitAsync(async, "Succeeded")
	})

	// Each merge case patches a fresh pool and checks the GET afterwards.
	for _, tc := range []struct {
		name    string
		version string
		patch   string
		want    map[string]any // path → value; remove means absent
	}{
		{"scale merges", latest, `{"properties":{"scaleConfiguration":{"maxConcurrentSessions":40}}}`,
			map[string]any{"properties.scaleConfiguration.maxConcurrentSessions": 40.0, "properties.scaleConfiguration.readySessionInstances": 1.0, "tags.team": "tidepool"}},
		{"tags replaced whole", latest, `{"tags":{"owner":"me"}}`,
			map[string]any{"tags.owner": "me", "tags.team": remove}},
		{"null removes", latest, `{"properties":{"customContainerTemplate":{"registryCredentials":null}}}`,
			map[string]any{"properties.customContainerTemplate.registryCredentials": remove, "properties.customContainerTemplate.ingress.targetPort": 8080.0}},
		{"arrays replaced whole", latest, `{"properties":{"customContainerTemplate":{"containers":[{"name":"main","image":"myregistry.azurecr.io/app:v2"}]}}}`,
			map[string]any{"properties.customContainerTemplate.containers[0].image": "myregistry.azurecr.io/app:v2", "properties.customContainerTemplate.containers[0].env": remove}},
		{"lifecycle merges", latest, `{"properties":{"dynamicPoolConfiguration":{"lifecycleConfiguration":{"cooldownPeriodInSeconds":900}}}}`,
			map[string]any{"properties.dynamicPoolConfiguration.lifecycleConfiguration.cooldownPeriodInSeconds": 900.0, "properties.dynamicPoolConfiguration.lifecycleConfiguration.lifecycleType": "Timed"}},
		{"lifecycle type switch", latest, `{"properties":{"dynamicPoolConfiguration":{"lifecycleConfiguration":{"lifecycleType":"OnContainerExit","maxAlivePeriodInSeconds":7200}}}}`,
			map[string]any{"properties.dynamicPoolConfiguration.lifecycleConfiguration.maxAlivePeriodInSeconds": 7200.0, "properties.dynamicPoolConfiguration.lifecycleConfiguration.cooldownPeriodInSeconds": remove}},
		{"legacy lifecycle", "2024-08-02-preview", `{"properties":{"dynamicPoolConfiguration":{"cooldownPeriodInSeconds":1200}}}`,
			map[string]any{"properties.dynamicPoolConfiguration.lifecycleConfiguration.cooldownPeriodInSeconds": 1200.0, "properties.dynamicPoolConfiguration.lifecycleConfiguration.lifecycleType": "Timed"}},
		{"property names without case", latest, `{"Properties":{"ScaleConfiguration":{"ReadySessionInstances":3}}}`,
			map[string]any{"properties.scaleConfiguration.readySessionInstances": 3.0, "properties.scaleConfiguration.maxConcurrentSessions": 20.0}},
		{"immutable repeated", latest, `{"location":"West US 2","properties":{"containerType":"customcontainer","poolManagementType":"Dynamic"}}`,
			map[string]any{"properties.containerType": "CustomContainer"}},
		{"managedIdentitySettings accepted", latest, `{"identity":{"type":"SystemAssigned"},"properties":{"managedIdentitySettings":[{"identity":"system","lifecycle":"Main"}]}}`,
			map[string]any{"properties.managedIdentitySettings[0].lifecycle": "Main", "identity.type": "SystemAssigned"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := a.with(t)
			name := "p" + strings.ToLower(strings.ReplaceAll(tc.name, " ", ""))
			a.putPool("rg", name, latest, customBody(t, latest, "rg", "env"))
			r := a.do("PATCH", poolPath("rg", name, tc.version), tc.patch, nil)
			if r.Status != http.StatusAccepted {
				t.Fatalf("%s: want 202", r)
			}
			if done := a.waitLocation(r.Header.Get("Location")); done.Status != http.StatusOK {
				t.Fatalf("%s: want 200", done)
			}
			g := a.must(http.StatusOK, "GET", poolPath("rg", name, latest), nil)
			p := g.json(t)
			for path, want := range tc.want {
				got, ok := jget(p, path)
				switch {
				case want == remove && ok:
					t.Errorf("PATCH %s then %s: %s = %v, want absent", tc.patch, g, path, got)
				case want != remove && !reflect.DeepEqual(got, want):
					t.Errorf("PATCH %s then %s: %s = %v, want %v", tc.patch, g, path, got, want)
				}
			}
		})
	}

	a.putPool("rg", "fixed", latest, customBody(t, latest, "rg", "env"))
	for _, tc := range []struct {
		name, path, patch string
		status            int
		code, target      string
	}{
		{"containerType", poolPath("rg", "fixed", latest), `{"properties":{"containerType":"PythonLTS"}}`, 400, "InvalidParameter", "properties.containerType"},
		{"environmentId", poolPath("rg", "fixed", latest), `{"properties":{"environmentId":"` + envID("rg", "env2") + `"}}`, 400, "InvalidParameter", "properties.environmentId"},
		{"poolManagementType", poolPath("rg", "fixed", latest), `{"properties":{"poolManagementType":"Manual"}}`, 400, "InvalidParameter", "properties.poolManagementType"},
		{"location", poolPath("rg", "fixed", latest), `{"location":"eastus"}`, 400, "InvalidParameter", "location"},
		{"mcpServerSettings", poolPath("rg", "fixed", latest), `{"properties":{"mcpServerSettings":{"isMcpServerEnabled":true}}}`, 400, "InvalidParameter", "properties.mcpServerSettings"},
		{"invalid result", poolPath("rg", "fixed", latest), `{"properties":{"scaleConfiguration":{"maxConcurrentSessions":0}}}`, 400, "InvalidParameter", "properties.scaleConfiguration.maxConcurrentSessions"},
		{"wrong type", poolPath("rg", "fixed", latest), `{"properties":{"scaleConfiguration":{"maxConcurrentSessions":"many"}}}`, 400, "InvalidRequestContent", "properties.scaleConfiguration.maxConcurrentSessions"},
		{"malformed", poolPath("rg", "fixed", latest), `{"properties":`, 400, "InvalidRequestContent", ""},
		{"empty body", poolPath("rg", "fixed", latest), ``, 400, "InvalidRequestContent", ""},
		{"missing pool", poolPath("rg", "nosuchpool", latest), `{"tags":{}}`, 404, "ResourceNotFound", ""},
		{"missing group", poolPath("nosuchrg", "fixed", latest), `{"tags":{}}`, 404, "ResourceGroupNotFound", ""},
		{"missing api-version", poolID("rg", "fixed"), `{"tags":{}}`, 400, "MissingApiVersionParameter", ""},
	} {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			a := a.with(t)
			wantError(t, a.do("PATCH", tc.path, tc.patch, nil), tc.status, tc.code, tc.target)
		})
	}
	t.Run("refused patch changes nothing", func(t *testing.T) {
		a := a.with(t)
		g := a.must(http.StatusOK, "GET", poolPath("rg", "fixed", latest), nil)
		p := g.json(t)
		if got := jstring(p, "properties.containerType"); got != "CustomContainer" {
			t.Errorf("%s: containerType %q", g, got)
		}
		if got, _ := jget(p, "properties.scaleConfiguration.maxConcurrentSessions"); got != 20.0 {
			t.Errorf("%s: maxConcurrentSessions %v, want 20", g, got)
		}
	})
}

func TestPoolDelete(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.createGroup("rg", "eastus")
	a.putPool("rg", "doomed", stable, pythonBody(t, stable))

	a.gate.hold()
	defer a.gate.release()
	r := a.do("DELETE", poolPath("rg", "doomed", stable), nil, nil)
	if r.Status != http.StatusAccepted {
		t.Fatalf("%s: want 202", r)
	}
	loc := r.Header.Get("Location")
	if !strings.HasPrefix(loc, a.URL+"/subscriptions/"+testSub+"/providers/Microsoft.App/locations/eastus/operationResults/") {
		t.Errorf("%s: Location %q is not this server's operation result URL", r, loc)
	}
	g := a.must(http.StatusOK, "GET", poolPath("rg", "doomed", stable), nil)
	if got := jstring(g.json(t), "properties.provisioningState"); got != "Deleting" {
		t.Errorf("%s: provisioningState %q, want Deleting", g, got)
	}
	if l := a.do("GET", loc, nil, nil); l.Status != http.StatusAccepted {
		t.Errorf("%s: Location while deleting: want 202", l)
	}
	wantError(t, a.do("PUT", poolPath("rg", "doomed", stable), pythonBody(t, stable), nil), http.StatusConflict, "Conflict", "")
	wantError(t, a.do("PATCH", poolPath("rg", "doomed", stable), `{"tags":{}}`, nil), http.StatusConflict, "Conflict", "")
	if again := a.do("DELETE", poolPath("rg", "doomed", stable), nil, nil); again.Status != http.StatusAccepted {
		t.Errorf("%s: DELETE while deleting: want 202", again)
	}

	a.gate.release()
	done := a.waitLocation(loc)
	if done.Status != http.StatusNoContent && done.Status != http.StatusOK {
		t.Errorf("%s: Location when done: want 200 or 204", done)
	}
	wantError(t, a.do("GET", poolPath("rg", "doomed", stable), nil, nil), http.StatusNotFound, "ResourceNotFound", "")
	if r := a.do("DELETE", poolPath("rg", "doomed", stable), nil, nil); r.Status != http.StatusNoContent || len(r.Body) != 0 {
		t.Errorf("%s: DELETE of a missing pool: want 204 without a body", r)
	}
	if r := a.do("DELETE", poolPath("rg", "neverwas", stable), nil, nil); r.Status != http.StatusNoContent {
		t.Errorf("%s: want 204", r)
	}
	l := a.must(http.StatusOK, "GET", poolsInGroup("rg", stable), nil)
	if n := len(mustGet(t, l.json(t), "value").([]any)); n != 0 {
		t.Errorf("%s: %d pools listed after the delete, want 0", l, n)
	}
	wantError(t, a.do("DELETE", poolPath("nosuchrg", "doomed", stable), nil, nil), http.StatusNotFound, "ResourceGroupNotFound", "")

	// The name is free again.
	if r := a.putPool("rg", "doomed", stable, pythonBody(t, stable)); r.Status != http.StatusCreated {
		t.Errorf("%s: re-create: want 201", r)
	}
}

// listAll follows nextLink from path and returns the names in order and
// the pages read.
func (a *testAPI) listAll(path string) (names []string, pages int) {
	a.t.Helper()
	next := path
	for next != "" {
		pages++
		if pages > 100 {
			a.t.Fatalf("more than 100 pages from %s", path)
		}
		r := a.must(http.StatusOK, "GET", next, nil)
		page := r.json(a.t)
		link, ok := page["nextLink"]
		if !ok {
			a.t.Errorf("%s: no nextLink member (want a link or null)", r)
		}
		value, ok := page["value"].([]any)
		if !ok {
			a.t.Fatalf("%s: value is not an array", r)
		}
		for _, v := range value {
			names = append(names, jstring(v, "name"))
		}
		switch l := link.(type) {
		case nil:
			next = ""
		case string:
			if !strings.HasPrefix(l, a.URL+"/") || !strings.Contains(l, "$skipToken=") && !strings.Contains(l, "%24skipToken=") {
				a.t.Fatalf("%s: nextLink %q is not absolute with $skipToken", r, l)
			}
			next = l
		default:
			a.t.Fatalf("%s: nextLink is %T", r, link)
		}
	}
	return names, pages
}

func TestPoolLists(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, func(c *armConfig) { c.PageSize = 2 })
	a.createGroup("rg1", "eastus")
	a.createGroup("rg2", "eastus")
	a.createGroup("empty", "eastus")
	want1 := []string{"alpha", "bravo", "charlie", "delta", "echo"}
	want2 := []string{"foxtrot", "golf"}
	for _, n := range want1 {
		a.putPool("rg1", n, stable, pythonBody(t, stable))
	}
	for _, n := range want2 {
		a.putPool("rg2", n, stable, pythonBody(t, stable))
	}
	once := func(t *testing.T, got, want []string) {
		t.Helper()
		seen := map[string]int{}
		for _, n := range got {
			seen[n]++
		}
		for _, n := range want {
			if seen[n] != 1 {
				t.Errorf("pool %s listed %d times, want once (got %v)", n, seen[n], got)
			}
		}
		if len(got) != len(want) {
			t.Errorf("listed %v, want %v", got, want)
		}
	}
	for _, tc := range []struct {
		name      string
		path      string
		want      []string
		wantPages int
	}{
		{"resource group", poolsInGroup("rg1", stable), want1, 3},
		{"subscription", poolsInSub(stable), append(append([]string{}, want1...), want2...), 4},
		{"legacy version", poolsInSub("2024-02-02-preview"), append(append([]string{}, want1...), want2...), 4},
		{"empty group", poolsInGroup("empty", stable), nil, 1},
		{"top", poolsInGroup("rg1", stable) + "&$top=1", want1, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := a.with(t)
			got, pages := a.listAll(tc.path)
			once(t, got, tc.want)
			if pages != tc.wantPages {
				t.Errorf("GET %s: %d pages, want %d", tc.path, pages, tc.wantPages)
			}
		})
	}
	t.Run("last page nextLink is null", func(t *testing.T) {
		a := a.with(t)
		r := a.must(http.StatusOK, "GET", poolsInGroup("rg2", stable), nil)
		if !strings.Contains(string(r.Body), `"nextLink":null`) {
			t.Errorf("%s: want \"nextLink\":null", r)
		}
		if strings.Contains(string(r.Body), `"nextLink":""`) {
			t.Errorf("%s: nextLink must never be empty", r)
		}
	})
	t.Run("items in the version's shape", func(t *testing.T) {
		a := a.with(t)
		r := a.must(http.StatusOK, "GET", poolsInGroup("rg2", "2024-02-02-preview"), nil)
		for _, p := range mustGet(t, r.json(t), "value").([]any) {
			if got := jstring(p, "properties.dynamicPoolConfiguration.executionType"); got != "Timed" {
				t.Errorf("%s: executionType %q, want Timed at 2024-02-02-preview", r, got)
			}
		}
	})
	for _, tc := range []struct {
		name, path string
		status     int
		code       string
	}{
		{"bad skipToken", poolsInGroup("rg1", stable) + "&$skipToken=%21%21not-base64%21%21", 400, "InvalidSkipToken"},
		{"top zero", poolsInGroup("rg1", stable) + "&$top=0", 400, "InvalidParameter"},
		{"top not a number", poolsInGroup("rg1", stable) + "&$top=ten", 400, "InvalidParameter"},
		{"missing group", poolsInGroup("nosuchrg", stable), 404, "ResourceGroupNotFound"},
		{"missing subscription", "/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.App/sessionPools?api-version=" + stable, 404, "SubscriptionNotFound"},
		{"unknown version", poolsInSub("2023-01-01"), 400, "InvalidApiVersionParameter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := a.with(t)
			wantError(t, a.do("GET", tc.path, nil, nil), tc.status, tc.code, "")
		})
	}
}

// TestPoolConcurrentCreates: 20 PUTs of distinct pools at once all succeed.
func TestPoolConcurrentCreates(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.createGroup("rg", "eastus")
	const n = 20
	var wg sync.WaitGroup
	results := make([]*response, n)
	body := pythonBody(t, stable)
	for i := range n {
		wg.Go(func() {
			results[i] = a.doAsync("PUT", poolPath("rg", fmt.Sprintf("pool%02d", i), stable), body)
		})
	}
	wg.Wait()
	for _, r := range results {
		if r.Status != http.StatusCreated {
			t.Errorf("%s: want 201", r)
			continue
		}
		a.waitAsync(r.Header.Get("Azure-AsyncOperation"), "Succeeded")
	}
	names, _ := a.listAll(poolsInGroup("rg", stable))
	if len(names) != n {
		t.Errorf("listed %d pools, want %d: %v", len(names), n, names)
	}
	for _, name := range names {
		g := a.must(http.StatusOK, "GET", poolPath("rg", name, stable), nil)
		if got := jstring(g.json(t), "properties.provisioningState"); got != "Succeeded" {
			t.Errorf("%s: provisioningState %q", g, got)
		}
	}
}

// TestPoolBackToBackWrites: one client writing a pool again before the
// controller has finished with its last write never gets a 409; the
// controller's own writes are not "another request".
func TestPoolBackToBackWrites(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.createGroup("rg", "eastus")
	var async []string
	for i := range 20 {
		var r *response
		switch i % 3 {
		case 0:
			r = a.do("PUT", poolPath("rg", "hasty", stable), pythonBody(t, stable), nil)
		case 1:
			r = a.do("PATCH", poolPath("rg", "hasty", stable), fmt.Sprintf(`{"tags":{"round":"%d"}}`, i), nil)
		case 2:
			r = a.do("PATCH", poolPath("rg", "hasty", stable), fmt.Sprintf(`{"properties":{"scaleConfiguration":{"readySessionInstances":%d}}}`, i%10), nil)
		}
		if r.Status >= 300 {
			t.Fatalf("round %d: %s: want success", i, r)
		}
		async = append(async, r.Header.Get("Azure-AsyncOperation"))
	}
	for _, u := range async {
		a.waitAsync(u, "Succeeded")
	}
	g := a.must(http.StatusOK, "GET", poolPath("rg", "hasty", stable), nil)
	if got := jstring(g.json(t), "properties.provisioningState"); got != "Succeeded" {
		t.Errorf("%s: provisioningState %q", g, got)
	}
}

// TestPoolConcurrentWritesToOnePool: clients racing each other on one pool
// get success or 409 Conflict, never anything else; exactly one PUT
// creates, and every accepted write's operation ends.
func TestPoolConcurrentWritesToOnePool(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.createGroup("rg", "eastus")
	const n = 8
	var wg sync.WaitGroup
	results := make([]*response, 2*n)
	body := pythonBody(t, stable)
	for i := range n {
		wg.Go(func() {
			results[i] = a.doAsync("PUT", poolPath("rg", "contended", stable), body)
		})
	}
	wg.Wait()
	for i := range n {
		wg.Go(func() {
			results[n+i] = a.doAsync("PATCH", poolPath("rg", "contended", stable), fmt.Sprintf(`{"tags":{"writer":"%d"}}`, i))
		})
	}
	wg.Wait()
	created := 0
	for _, r := range results {
		switch r.Status {
		case http.StatusCreated:
			created++
		case http.StatusOK, http.StatusAccepted:
		case http.StatusConflict:
			if code := r.armError(t).Code; code != "Conflict" {
				t.Errorf("%s: 409 with code %q, want Conflict", r, code)
			}
		default:
			t.Errorf("%s: want 200, 201, 202 or 409", r)
		}
	}
	if created != 1 {
		t.Errorf("%d PUTs answered 201, want exactly 1", created)
	}
	for _, r := range results {
		if u := r.Header.Get("Azure-AsyncOperation"); u != "" {
			a.waitAsync(u, "Succeeded")
		}
	}
	g := a.must(http.StatusOK, "GET", poolPath("rg", "contended", stable), nil)
	if got := jstring(g.json(t), "properties.provisioningState"); got != "Succeeded" {
		t.Errorf("%s: provisioningState %q", g, got)
	}
}

// TestTemplateUpdateStatus: while a CustomContainer pool rolls to a new
// template, templateUpdateStatus shows the old one active and the new one
// desired (Updating); when the roll is done, the new one is active.
func TestTemplateUpdateStatus(t *testing.T) {
	a := newTestAPI(t)
	a.createGroup("rg", "westus2")
	a.createEnv("rg", "env")
	a.putPool("rg", "rolling", latest, customBody(t, latest, "rg", "env"))
	get := func(p map[string]any, path string) any {
		v, _ := jget(p, path)
		return v
	}
	image := func(p map[string]any, which string) any {
		return get(p, "properties.templateUpdateStatus."+which+".containers[0].image")
	}
	p := a.must(http.StatusOK, "GET", poolPath("rg", "rolling", latest), nil).json(t)
	if image(p, "activeTemplate") != "myregistry.azurecr.io/app:v1" || get(p, "properties.templateUpdateStatus.desiredTemplate") != nil {
		t.Fatalf("after create: %v", get(p, "properties.templateUpdateStatus"))
	}

	a.gate.hold()
	patch := map[string]any{"properties": map[string]any{"customContainerTemplate": map[string]any{
		"containers": []any{map[string]any{"image": "myregistry.azurecr.io/app:v2", "name": "main", "resources": map[string]any{"cpu": 0.5, "memory": "1Gi"}}},
		"ingress":    map[string]any{"targetPort": 8080}}}}
	r := a.must(http.StatusAccepted, "PATCH", poolPath("rg", "rolling", latest), patch)
	p = a.must(http.StatusOK, "GET", poolPath("rg", "rolling", latest), nil).json(t)
	if image(p, "activeTemplate") != "myregistry.azurecr.io/app:v1" || image(p, "desiredTemplate") != "myregistry.azurecr.io/app:v2" ||
		get(p, "properties.templateUpdateStatus.desiredTemplate.details") != "Updating" || get(p, "properties.provisioningState") != "InProgress" {
		t.Errorf("during the roll: %v", get(p, "properties.templateUpdateStatus"))
	}
	a.gate.release()
	a.waitAsync(r.Header.Get("Azure-AsyncOperation"), "Succeeded")
	p = a.must(http.StatusOK, "GET", poolPath("rg", "rolling", latest), nil).json(t)
	if image(p, "activeTemplate") != "myregistry.azurecr.io/app:v2" || get(p, "properties.templateUpdateStatus.desiredTemplate") != nil ||
		get(p, "properties.templateUpdateStatus.activeTemplate.details") != "Running" {
		t.Errorf("after the roll: %v", get(p, "properties.templateUpdateStatus"))
	}
	// Changing the scale is no roll.
	a.must(http.StatusAccepted, "PATCH", poolPath("rg", "rolling", latest), map[string]any{"properties": map[string]any{"scaleConfiguration": map[string]any{"maxConcurrentSessions": 30}}})
	p = a.must(http.StatusOK, "GET", poolPath("rg", "rolling", latest), nil).json(t)
	if get(p, "properties.templateUpdateStatus.desiredTemplate") != nil {
		t.Errorf("a scale change shows a desired template: %v", get(p, "properties.templateUpdateStatus"))
	}
}
