package arm_test

import (
	"slices"
	"testing"
)

// Request bodies. Each builder returns a fresh document the caller may
// change with jset.

// versionIndex is v's place in allVersions.
func versionIndex(v string) int { return slices.Index(allVersions, v) }

func legacyLifecycle(v string) bool   { return versionIndex(v) < versionIndex("2025-01-01") }
func hasRegistryServer(v string) bool { return v == "2024-02-02-preview" }
func hasIdentity(v string) bool       { return versionIndex(v) >= versionIndex("2024-10-02-preview") }
func hasProbes(v string) bool         { return v == "2025-02-02-preview" || v == "2025-10-02-preview" }
func hasMCP(v string) bool            { return v == "2025-02-02-preview" || v == "2025-10-02-preview" }
func hasTemplateStatus(v string) bool { return v == "2025-10-02-preview" }

// lifecycle returns dynamicPoolConfiguration for a Timed pool in v's shape.
func lifecycle(v string, cooldown int) map[string]any {
	if legacyLifecycle(v) {
		return map[string]any{"executionType": "Timed", "cooldownPeriodInSeconds": cooldown}
	}
	return map[string]any{"lifecycleConfiguration": map[string]any{"lifecycleType": "Timed", "cooldownPeriodInSeconds": cooldown}}
}

// pythonBody is a code-interpreter pool in v's shape.
func pythonBody(t testing.TB, v string) map[string]any {
	m := obj(t, `{
		"location": "eastus",
		"properties": {
			"poolManagementType": "Dynamic",
			"containerType": "PythonLTS",
			"scaleConfiguration": {"maxConcurrentSessions": 10, "readySessionInstances": 2},
			"sessionNetworkConfiguration": {"status": "EgressDisabled"}
		}
	}`)
	jset(m, "properties.dynamicPoolConfiguration", lifecycle(v, 300))
	return m
}

// customBody is a CustomContainer pool in v's shape, in environment env of
// resource group rg, with the fields every version has: secrets, registry
// credentials with a password, env from a secret, resources and ingress.
func customBody(t testing.TB, v, rg, env string) map[string]any {
	m := obj(t, `{
		"location": "westus2",
		"tags": {"team": "tidepool"},
		"properties": {
			"poolManagementType": "Dynamic",
			"containerType": "CustomContainer",
			"scaleConfiguration": {"maxConcurrentSessions": 20, "readySessionInstances": 1},
			"secrets": [{"name": "registrypassword", "value": "hunter2-registry"}, {"name": "apikey", "value": "hunter2-apikey"}],
			"customContainerTemplate": {
				"registryCredentials": {"server": "myregistry.azurecr.io", "username": "myregistry", "passwordSecretRef": "registrypassword"},
				"containers": [{
					"name": "main",
					"image": "myregistry.azurecr.io/app:v1",
					"command": ["/bin/sh"],
					"args": ["-c", "serve"],
					"env": [{"name": "MODE", "value": "test"}, {"name": "API_KEY", "secretRef": "apikey"}],
					"resources": {"cpu": 0.5, "memory": "1Gi"}
				}],
				"ingress": {"targetPort": 8080}
			},
			"sessionNetworkConfiguration": {"status": "EgressEnabled"}
		}
	}`)
	jset(m, "properties.environmentId", envID(rg, env))
	jset(m, "properties.dynamicPoolConfiguration", lifecycle(v, 600))
	if hasRegistryServer(v) {
		jset(m, "properties.customContainerTemplate.registryCredentials.server", remove)
		jset(m, "properties.customContainerTemplate.registryCredentials.registryServer", "myregistry.azurecr.io")
	}
	return m
}

// fullBody is a CustomContainer pool with every field of
// 2025-10-02-preview: identities, managedIdentitySettings, a registry
// identity, probes and MCP settings.
func fullBody(t testing.TB, rg, env string) map[string]any {
	m := customBody(t, latest, rg, env)
	uami := "/subscriptions/" + testSub + "/resourceGroups/" + rg + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uami"
	jset(m, "identity", map[string]any{"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": map[string]any{uami: map[string]any{}}})
	jset(m, "properties.managedIdentitySettings", []any{
		map[string]any{"identity": "system", "lifecycle": "Main"},
		map[string]any{"identity": uami, "lifecycle": "None"},
	})
	jset(m, "properties.customContainerTemplate.registryCredentials.identity", "system")
	jset(m, "properties.customContainerTemplate.containers[0].probes", []any{
		map[string]any{"type": "Liveness", "httpGet": map[string]any{"path": "/healthz", "port": 8080, "httpHeaders": []any{map[string]any{"name": "X-Probe", "value": "1"}}}, "periodSeconds": 10, "failureThreshold": 3},
		map[string]any{"type": "Startup", "tcpSocket": map[string]any{"port": 8080}, "initialDelaySeconds": 5},
	})
	jset(m, "properties.mcpServerSettings", map[string]any{"isMcpServerEnabled": true})
	return m
}
