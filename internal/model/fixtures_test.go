package model

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// Request bodies from the reference (docs: /work/shared/reference), verbatim.
const (
	// management-api.md §9.1: custom container, Timed, system identity,
	// and a registry identity that is not among the pool's identities.
	specTimedCustom = `{
  "location": "East US",
  "identity": { "type": "SystemAssigned" },
  "properties": {
    "environmentId": "/subscriptions/34adfa4f-cedf-4dc0-ba29-b6d1a69ab345/resourceGroups/rg/providers/Microsoft.App/managedEnvironments/demokube",
    "poolManagementType": "Dynamic",
    "containerType": "CustomContainer",
    "scaleConfiguration": { "maxConcurrentSessions": 500, "readySessionInstances": 100 },
    "dynamicPoolConfiguration": {
      "lifecycleConfiguration": { "lifecycleType": "Timed", "cooldownPeriodInSeconds": 600 }
    },
    "customContainerTemplate": {
      "containers": [{
        "image": "repo/testcontainer:v4",
        "name": "testinitcontainer",
        "resources": { "cpu": 0.25, "memory": "0.5Gi" },
        "command": ["/bin/sh"],
        "args": ["-c", "while true; do echo hello; sleep 10;done"]
      }],
      "ingress": { "targetPort": 80 },
      "registryCredentials": {
        "server": "test.azurecr.io",
        "identity": "/subscriptions/7a497526-bb8d-4816-9795-db1418a1f977/resourcegroups/test/providers/Microsoft.ManagedIdentity/userAssignedIdentities/testSP"
      }
    },
    "sessionNetworkConfiguration": { "status": "EgressEnabled" },
    "managedIdentitySettings": [ { "identity": "system", "lifecycle": "Main" } ]
  }
}`

	// management-api.md §9.3: Shell pool with MCP, in the example's casing.
	specMcpShell = `{
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

	// management-api.md §9.4: PATCH.
	specPatch = `{
  "properties": {
    "scaleConfiguration": { "maxConcurrentSessions": 500, "readySessionInstances": 100 },
    "dynamicPoolConfiguration": { "lifecycleConfiguration": { "lifecycleType": "Timed", "cooldownPeriodInSeconds": 600 } },
    "customContainerTemplate": {
      "containers": [ { "image": "repo/testcontainer:v4", "name": "testinitcontainer",
        "resources": { "cpu": 0.25, "memory": "0.5Gi" },
        "command": ["/bin/sh"], "args": ["-c", "while true; do echo hello; sleep 10;done"] } ],
      "ingress": { "targetPort": 80 }
    },
    "sessionNetworkConfiguration": { "status": "EgressEnabled" }
  }
}`

	// management-api.md §9.9: az containerapp sessionpool create -n mypool -g rg --location eastus.
	specCLICreate = `{
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

	// cli.md §3.3: custom container with env vars and secrets (newer CLI
	// cores add keyVaultUrl and identity to each secret).
	specCLICustom = `{
  "location": "eastasia",
  "properties": {
    "poolManagementType": "Dynamic",
    "environmentId": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/MyResourceGroup/providers/Microsoft.App/managedEnvironments/MyEnvironment",
    "containerType": "CustomContainer",
    "secrets": [
      { "name": "mysecret", "value": "secretvalue1", "keyVaultUrl": "", "identity": "" },
      { "name": "anothersecret", "value": "secret value 2", "keyVaultUrl": "", "identity": "" }
    ],
    "customContainerTemplate": {
      "containers": [ {
        "name": "mysessionpool",
        "image": "MyImage",
        "env": [ { "name": "GREETING", "value": "Hello, world" }, { "name": "SECRETENV", "secretRef": "anothersecret" } ],
        "resources": { "cpu": 0.5, "memory": "1Gi" }
      } ],
      "ingress": { "targetPort": 80 }
    },
    "dynamicPoolConfiguration": { "lifecycleConfiguration": { "lifecycleType": "Timed", "maxAlivePeriodInSeconds": null, "cooldownPeriodInSeconds": 300 } },
    "sessionNetworkConfiguration": { "status": "EgressDisabled" },
    "scaleConfiguration": { "maxConcurrentSessions": 10, "readySessionInstances": 5 }
  }
}`

	// cli.md §9: the Shell tutorial's pool as the deployment engine PUTs it
	// at 2025-02-02-preview (the template's resource, as given).
	specShellTutorial = `{
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
    }`

	// management-api.md §9.10: the legacy shapes (2024-02-02-preview
	// registry), completed into a pool as DOC-POOL's template has it.
	specLegacy = `{
  "location": "eastus",
  "properties": {
    "environmentId": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.App/managedEnvironments/env",
    "poolManagementType": "Dynamic",
    "containerType": "CustomContainer",
    "scaleConfiguration": { "maxConcurrentSessions": 10, "readySessionInstances": 2 },
    "secrets": [ { "name": "registrypassword", "value": "p4ss" } ],
    "dynamicPoolConfiguration": { "executionType": "Timed", "cooldownPeriodInSeconds": 600 },
    "customContainerTemplate": {
      "registryCredentials": { "registryServer": "myregistry.azurecr.io", "username": "myregistry", "passwordSecretRef": "registrypassword" },
      "containers": [ { "image": "myregistry.azurecr.io/app:1", "name": "app" } ],
      "ingress": { "targetPort": 8080 }
    }
  }
}`
)

// specOnContainerExit is §9.2: §9.1 with an OnContainerExit lifecycle.
var specOnContainerExit = strings.Replace(specTimedCustom,
	`"lifecycleConfiguration": { "lifecycleType": "Timed", "cooldownPeriodInSeconds": 600 }`,
	`"lifecycleConfiguration": { "lifecycleType": "OnContainerExit", "maxAlivePeriodInSeconds": 86400 }`, 1)

// uami is the user-assigned identity of testdata/full_pool.json.
const uami = "/subscriptions/34adfa4f-cedf-4dc0-ba29-b6d1a69ab345/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/puller"

// fullPool returns testdata/full_pool.json: a valid, normalised pool that
// sets every field of the superset.
func fullPool(t testing.TB) *SessionPool {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "full_pool.json"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := DecodeSessionPool(data)
	if err != nil {
		t.Fatalf("DecodeSessionPool(full_pool.json): %v", err)
	}
	return p
}

// onContainerExitPool is fullPool with an OnContainerExit lifecycle.
func onContainerExitPool(t testing.TB) *SessionPool {
	p := fullPool(t)
	p.Properties.DynamicPoolConfiguration.LifecycleConfiguration = &LifecycleConfiguration{
		LifecycleType: LifecycleOnContainerExit, MaxAlivePeriodInSeconds: Int32(7200),
	}
	return p
}

// decodeNormalized decodes and normalises a body, failing the test on error.
func decodeNormalized(t testing.TB, body string) *SessionPool {
	t.Helper()
	p, err := DecodeSessionPool([]byte(body))
	if err != nil {
		t.Fatalf("DecodeSessionPool: %v", err)
	}
	p.Normalize()
	return p
}

// mustJSON renders v as indented JSON.
func mustJSON(t testing.TB, v any) string {
	t.Helper()
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	return string(data)
}

// fieldErrors returns the FieldErrors in err (a *FieldError or Errors).
func fieldErrors(err error) []*FieldError {
	switch e := err.(type) {
	case nil:
		return nil
	case *FieldError:
		return []*FieldError{e}
	case Errors:
		return e
	}
	return []*FieldError{{Message: "not a model error: " + err.Error()}}
}

// targets returns the Targets of the FieldErrors in err.
func targets(err error) []string {
	var out []string
	for _, fe := range fieldErrors(err) {
		out = append(out, fe.Target)
	}
	return out
}

// hasTarget reports whether err has a FieldError with the given Target.
func hasTarget(err error, target string) bool {
	for _, fe := range fieldErrors(err) {
		if fe.Target == target {
			return true
		}
	}
	return false
}

func str(s string) *string { return &s }

// jsonDiff lists the JSON paths where a and b (JSON texts) differ.
func jsonDiff(a, b string) []string {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return []string{"(not JSON)"}
	}
	var out []string
	var walk func(path string, x, y any)
	walk = func(path string, x, y any) {
		xm, xok := x.(map[string]any)
		ym, yok := y.(map[string]any)
		if xok && yok {
			for k := range xm {
				walk(path+"."+k, xm[k], ym[k])
			}
			for k := range ym {
				if _, ok := xm[k]; !ok {
					walk(path+"."+k, nil, ym[k])
				}
			}
			return
		}
		xa, xok := x.([]any)
		ya, yok := y.([]any)
		if xok && yok && len(xa) == len(ya) {
			for i := range xa {
				walk(fmt.Sprintf("%s[%d]", path, i), xa[i], ya[i])
			}
			return
		}
		if fmt.Sprint(x) != fmt.Sprint(y) {
			out = append(out, fmt.Sprintf("%s: %v ≠ %v", path, x, y))
		}
	}
	walk("", x, y)
	sort.Strings(out)
	return out
}
