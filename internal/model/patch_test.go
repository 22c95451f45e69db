package model

import (
	"errors"
	"maps"
	"strings"
	"testing"
)

func TestPatch(t *testing.T) {
	lcOf := func(p *SessionPool) *LifecycleConfiguration { return p.Lifecycle() }
	tests := []struct {
		name   string
		stored func(testing.TB) *SessionPool
		body   string
		valid  bool // the result passes Validate
		check  func(t *testing.T, p *SessionPool)
	}{
		{"nested merge keeps siblings", fullPool, `{"properties":{"scaleConfiguration":{"readySessionInstances":7}}}`, true, func(t *testing.T, p *SessionPool) {
			sc := p.Properties.ScaleConfiguration
			if *sc.MaxConcurrentSessions != 500 || *sc.ReadySessionInstances != 7 {
				t.Errorf("scaleConfiguration = %d/%d, want 500/7", *sc.MaxConcurrentSessions, *sc.ReadySessionInstances)
			}
			if c := p.Properties.CustomContainerTemplate.Containers[0]; len(c.Probes) != 2 || c.Image != "repo/testcontainer:v5" {
				t.Errorf("container = %+v, want it untouched", c)
			}
		}},
		{"deep merge into the registry", fullPool, `{"properties":{"customContainerTemplate":{"registryCredentials":{"username":"other"}}}}`, true, func(t *testing.T, p *SessionPool) {
			rc := p.Properties.CustomContainerTemplate.RegistryCredentials
			if rc.Username != "other" || rc.Server != "test.azurecr.io" || rc.PasswordSecretRef != "registrypassword" {
				t.Errorf("registryCredentials = %+v, want username other, the rest kept", rc)
			}
		}},
		{"arrays replaced: secrets", fullPool, `{"properties":{"secrets":[{"name":"registrypassword","value":"new"},{"name":"apikey","value":"k2"}]}}`, true, func(t *testing.T, p *SessionPool) {
			if s := p.Properties.Secrets; len(s) != 2 || s[0].Value != "new" || s[1].Value != "k2" {
				t.Errorf("secrets = %+v, want the patch's", s)
			}
		}},
		{"arrays replaced: containers lose their probes", fullPool, `{"properties":{"customContainerTemplate":{"containers":[{"name":"testinitcontainer","image":"repo/testcontainer:v6"}]}}}`, true, func(t *testing.T, p *SessionPool) {
			c := p.Properties.CustomContainerTemplate.Containers
			if len(c) != 1 || c[0].Image != "repo/testcontainer:v6" || c[0].Probes != nil || c[0].Env != nil {
				t.Errorf("containers = %+v, want exactly the patch's", c)
			}
		}},
		{"null deletes; Normalize fills the default", fullPool, `{"properties":{"scaleConfiguration":{"readySessionInstances":null}}}`, true, func(t *testing.T, p *SessionPool) {
			if r := *p.Properties.ScaleConfiguration.ReadySessionInstances; r != 5 {
				t.Errorf("readySessionInstances = %d, want the default 5", r)
			}
		}},
		{"null deletes an object", fullPool, `{"properties":{"customContainerTemplate":{"registryCredentials":null}}}`, true, func(t *testing.T, p *SessionPool) {
			if rc := p.Properties.CustomContainerTemplate.RegistryCredentials; rc != nil {
				t.Errorf("registryCredentials = %+v, want nil", rc)
			}
		}},
		{"tags replaced whole", fullPool, `{"tags":{"new":"1"}}`, true, func(t *testing.T, p *SessionPool) {
			if !maps.Equal(p.Tags, map[string]string{"new": "1"}) {
				t.Errorf("tags = %v, want only new=1", p.Tags)
			}
		}},
		{"tags null removes all", fullPool, `{"tags":null}`, true, func(t *testing.T, p *SessionPool) {
			if len(p.Tags) != 0 {
				t.Errorf("tags = %v, want none", p.Tags)
			}
		}},
		{"null tag is no tag", fullPool, `{"Tags":{"team":null,"b":"2"}}`, true, func(t *testing.T, p *SessionPool) {
			if !maps.Equal(p.Tags, map[string]string{"b": "2"}) {
				t.Errorf("tags = %v, want only b=2", p.Tags)
			}
		}},
		{"keys match case-insensitively", fullPool, `{"PROPERTIES":{"ScaleConfiguration":{"MAXCONCURRENTSESSIONS":42,"readysessioninstances":4},"SESSIONNETWORKCONFIGURATION":{"Status":"egressdisabled"}}}`, true, func(t *testing.T, p *SessionPool) {
			sc := p.Properties.ScaleConfiguration
			if *sc.MaxConcurrentSessions != 42 || *sc.ReadySessionInstances != 4 {
				t.Errorf("scaleConfiguration = %d/%d, want 42/4", *sc.MaxConcurrentSessions, *sc.ReadySessionInstances)
			}
			if s := p.Properties.SessionNetworkConfiguration.Status; s != EgressDisabled {
				t.Errorf("network status = %q, want EgressDisabled", s)
			}
		}},
		{"same location in another spelling", fullPool, `{"location":"eastus"}`, true, func(t *testing.T, p *SessionPool) {
			if p.Location != "East US" {
				t.Errorf("location = %q, want the stored East US", p.Location)
			}
		}},
		{"immutables repeated", fullPool, `{"properties":{
			"environmentId":"/SUBSCRIPTIONS/34adfa4f-cedf-4dc0-ba29-b6d1a69ab345/resourceGroups/RG/providers/Microsoft.App/managedEnvironments/demokube",
			"containerType":"customcontainer","poolManagementType":"dynamic",
			"mcPServerSettings":{"isMCPServerEnabled":true}}}`, true, func(t *testing.T, p *SessionPool) {
			if p.Properties.ContainerType != ContainerTypeCustomContainer {
				t.Errorf("containerType = %q, want CustomContainer", p.Properties.ContainerType)
			}
		}},
		{"immutables null ignored", fullPool, `{"properties":{"environmentId":null,"containerType":null,"mcpServerSettings":null}}`, true, func(t *testing.T, p *SessionPool) {
			if p.Properties.EnvironmentID == nil || p.Properties.McpServerSettings == nil {
				t.Errorf("environmentId %v, mcpServerSettings %v; want both kept", p.Properties.EnvironmentID, p.Properties.McpServerSettings)
			}
		}},
		{"read-only and unknown properties ignored", fullPool, `{"id":"x","name":"y","type":"z","properties":{"provisioningState":"Succeeded","nodeCount":9,"poolManagementEndpoint":"https://evil","bogus":{"a":1}}}`, true, func(t *testing.T, p *SessionPool) {
			if p.Name != "testsessionpool" || p.Properties.ProvisioningState != StateFailed || *p.Properties.NodeCount != 1 || p.Properties.PoolManagementEndpoint != "https://testsessionpool.tidepool.local" {
				t.Errorf("pool = name %q, state %q, nodeCount %d, endpoint %q; want them untouched", p.Name, p.Properties.ProvisioningState, *p.Properties.NodeCount, p.Properties.PoolManagementEndpoint)
			}
		}},
		{"switch Timed→OnContainerExit drops the cooldown", fullPool, `{"properties":{"dynamicPoolConfiguration":{"lifecycleConfiguration":{"lifecycleType":"OnContainerExit"}}}}`, true, func(t *testing.T, p *SessionPool) {
			if lc := lcOf(p); lc.LifecycleType != LifecycleOnContainerExit || lc.CooldownPeriodInSeconds != nil || *lc.MaxAlivePeriodInSeconds != DefaultMaxAliveSeconds {
				t.Errorf("lifecycle = %+v, want OnContainerExit, no cooldown, maxAlive 3600", lc)
			}
		}},
		{"switch Timed→OnContainerExit with maxAlive", fullPool, `{"properties":{"dynamicPoolConfiguration":{"lifecycleConfiguration":{"lifecycleType":"oncontainerexit","maxAlivePeriodInSeconds":600}}}}`, true, func(t *testing.T, p *SessionPool) {
			if lc := lcOf(p); lc.LifecycleType != LifecycleOnContainerExit || lc.CooldownPeriodInSeconds != nil || *lc.MaxAlivePeriodInSeconds != 600 {
				t.Errorf("lifecycle = %+v, want OnContainerExit/600 without cooldown", lc)
			}
		}},
		{"switch Timed→OnContainerExit keeping a cooldown given", fullPool, `{"properties":{"dynamicPoolConfiguration":{"lifecycleConfiguration":{"lifecycleType":"OnContainerExit","cooldownPeriodInSeconds":600}}}}`, false, func(t *testing.T, p *SessionPool) {
			if lc := lcOf(p); lc.CooldownPeriodInSeconds == nil {
				t.Errorf("lifecycle = %+v, want the cooldown given kept (for Validate to reject)", lc)
			}
		}},
		{"switch OnContainerExit→Timed drops maxAlive", onContainerExitPool, `{"properties":{"dynamicPoolConfiguration":{"lifecycleConfiguration":{"lifecycleType":"Timed"}}}}`, true, func(t *testing.T, p *SessionPool) {
			if lc := lcOf(p); lc.LifecycleType != LifecycleTimed || lc.MaxAlivePeriodInSeconds != nil || *lc.CooldownPeriodInSeconds != DefaultCooldownSeconds {
				t.Errorf("lifecycle = %+v, want Timed/300 without maxAlive", lc)
			}
		}},
		{"same type in other casing keeps the period", fullPool, `{"properties":{"dynamicPoolConfiguration":{"lifecycleConfiguration":{"lifecycleType":"TIMED"}}}}`, true, func(t *testing.T, p *SessionPool) {
			if lc := lcOf(p); *lc.CooldownPeriodInSeconds != 600 {
				t.Errorf("lifecycle = %+v, want cooldown 600 kept", lc)
			}
		}},
		{"period alone (az update --cooldown-period, a string)", fullPool, `{"properties":{"dynamicPoolConfiguration":{"lifecycleConfiguration":{"cooldownPeriodInSeconds":"900"}}}}`, true, func(t *testing.T, p *SessionPool) {
			if lc := lcOf(p); lc.LifecycleType != LifecycleTimed || *lc.CooldownPeriodInSeconds != 900 {
				t.Errorf("lifecycle = %+v, want Timed/900", lc)
			}
		}},
		{"legacy patch overrides OnContainerExit", onContainerExitPool, `{"properties":{"dynamicPoolConfiguration":{"executionType":"Timed","cooldownPeriodInSeconds":900}}}`, true, func(t *testing.T, p *SessionPool) {
			if lc := lcOf(p); lc.LifecycleType != LifecycleTimed || *lc.CooldownPeriodInSeconds != 900 || lc.MaxAlivePeriodInSeconds != nil {
				t.Errorf("lifecycle = %+v, want Timed/900 without maxAlive", lc)
			}
			if d := p.Properties.DynamicPoolConfiguration; d.ExecutionType != "" || d.CooldownPeriodInSeconds != nil {
				t.Errorf("dynamicPoolConfiguration = %+v, want no legacy fields", d)
			}
		}},
		{"legacy patch of the cooldown alone", fullPool, `{"properties":{"dynamicPoolConfiguration":{"cooldownPeriodInSeconds":1200}}}`, true, func(t *testing.T, p *SessionPool) {
			if lc := lcOf(p); lc.LifecycleType != LifecycleTimed || *lc.CooldownPeriodInSeconds != 1200 {
				t.Errorf("lifecycle = %+v, want Timed/1200", lc)
			}
		}},
		{"legacy patch of executionType alone keeps the cooldown", fullPool, `{"properties":{"dynamicPoolConfiguration":{"executionType":"Timed"}}}`, true, func(t *testing.T, p *SessionPool) {
			if lc := lcOf(p); lc.LifecycleType != LifecycleTimed || *lc.CooldownPeriodInSeconds != 600 {
				t.Errorf("lifecycle = %+v, want Timed/600 (the stored cooldown)", lc)
			}
		}},
		{"legacy patch of executionType on OnContainerExit", onContainerExitPool, `{"properties":{"dynamicPoolConfiguration":{"executionType":"timed"}}}`, true, func(t *testing.T, p *SessionPool) {
			if lc := lcOf(p); lc.LifecycleType != LifecycleTimed || *lc.CooldownPeriodInSeconds != DefaultCooldownSeconds || lc.MaxAlivePeriodInSeconds != nil {
				t.Errorf("lifecycle = %+v, want Timed/300", lc)
			}
		}},
		{"legacy registryServer patch", fullPool, `{"properties":{"customContainerTemplate":{"registryCredentials":{"registryServer":"new.azurecr.io"}}}}`, true, func(t *testing.T, p *SessionPool) {
			if rc := p.Properties.CustomContainerTemplate.RegistryCredentials; rc.Server != "new.azurecr.io" || rc.RegistryServer != "" {
				t.Errorf("registryCredentials = %+v, want server new.azurecr.io", rc)
			}
		}},
		{"secrets kept with their values when not mentioned", fullPool, `{"properties":{"sessionNetworkConfiguration":{"status":"EgressDisabled"}}}`, true, func(t *testing.T, p *SessionPool) {
			if s := p.Properties.Secrets; len(s) != 2 || s[0].Value != "s3cr3t-registry-value" || s[1].Value != "s3cr3t-api-value" {
				t.Errorf("secrets = %+v, want the stored ones with values", s)
			}
		}},
		{"managedIdentitySettings accepted (the CLI sends them)", fullPool, `{"properties":{"managedIdentitySettings":[{"identity":"system","lifecycle":"None"}]}}`, true, func(t *testing.T, p *SessionPool) {
			if m := p.Properties.ManagedIdentitySettings; len(m) != 1 || m[0].Lifecycle != "None" {
				t.Errorf("managedIdentitySettings = %+v, want the patch's", m)
			}
		}},
		{"identity switched to SystemAssigned drops user identities", fullPool, `{"identity":{"type":"SystemAssigned"},"properties":{"managedIdentitySettings":[{"identity":"system","lifecycle":"Main"}]}}`, true, func(t *testing.T, p *SessionPool) {
			if id := p.Identity; id.Type != IdentitySystemAssigned || id.UserAssignedIdentities != nil {
				t.Errorf("identity = %+v, want SystemAssigned without user identities", id)
			}
		}},
		{"identity adds a user identity", fullPool, `{"identity":{"type":"SystemAssigned, UserAssigned","userAssignedIdentities":{"/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/second":{}}}}`, true, func(t *testing.T, p *SessionPool) {
			if n := len(p.Identity.UserAssignedIdentities); n != 2 || p.Identity.Type != IdentitySystemAssignedUserAssigned {
				t.Errorf("identity = %+v, want both user identities", p.Identity)
			}
		}},
		{"identity removes a user identity with null", fullPool, `{"identity":{"type":"SystemAssigned","userAssignedIdentities":{"` + uami + `":null}},"properties":{"managedIdentitySettings":[],"customContainerTemplate":{"registryCredentials":{"identity":"system"}}}}`, true, func(t *testing.T, p *SessionPool) {
			if n := len(p.Identity.UserAssignedIdentities); n != 0 {
				t.Errorf("identity = %+v, want no user identities", p.Identity)
			}
		}},
		{"spec §9.4", fullPool, specPatch, true, func(t *testing.T, p *SessionPool) {
			c := p.Properties.CustomContainerTemplate
			if c.Containers[0].Image != "repo/testcontainer:v4" || *c.Ingress.TargetPort != 80 || c.RegistryCredentials.Server != "test.azurecr.io" {
				t.Errorf("customContainerTemplate = %+v, want image v4, port 80, registry kept", c)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stored := tt.stored(t)
			before := mustJSON(t, stored)
			p, err := stored.Patch([]byte(tt.body))
			if err != nil {
				t.Fatalf("Patch(%s) = %v, want no error", tt.body, err)
			}
			if after := mustJSON(t, stored); after != before {
				t.Errorf("Patch changed the stored pool: %q", jsonDiff(after, before))
			}
			tt.check(t, p)
			if err := p.Validate(); (err == nil) != tt.valid {
				t.Errorf("Validate() after Patch(%s) = %v, want valid=%v", tt.body, err, tt.valid)
			}
		})
	}
}

func TestPatchErrors(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		code    string
		targets []string
	}{
		{"location changed", `{"location":"West US"}`, CodeInvalidParameter, []string{"location"}},
		{"environmentId changed", `{"properties":{"environmentId":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.App/managedEnvironments/other"}}`, CodeInvalidParameter, []string{"properties.environmentId"}},
		{"containerType changed", `{"properties":{"ContainerType":"PythonLTS"}}`, CodeInvalidParameter, []string{"properties.containerType"}},
		{"poolManagementType changed", `{"properties":{"poolManagementType":"Manual"}}`, CodeInvalidParameter, []string{"properties.poolManagementType"}},
		{"mcpServerSettings changed", `{"properties":{"mcpServerSettings":{"isMcpServerEnabled":false}}}`, CodeInvalidParameter, []string{"properties.mcpServerSettings"}},
		{"mcpServerSettings member removed", `{"properties":{"mcpServerSettings":{"mcpServerEndpoint":null}}}`, CodeInvalidParameter, []string{"properties.mcpServerSettings"}},
		{"several at once", `{"location":"westus","properties":{"containerType":"Shell"}}`, CodeInvalidParameter, []string{"location", "properties.containerType"}},
		{"immutable given another type", `{"properties":{"poolManagementType":1,"mcpServerSettings":{"isMcpServerEnabled":[true]}}}`, CodeInvalidParameter, []string{"properties.mcpServerSettings", "properties.poolManagementType"}},
		{"properties not an object", `{"properties":1}`, CodeInvalidParameter, []string{"properties"}},
		{"body an array", `[]`, CodeInvalidRequestContent, []string{""}},
		{"body null", `null`, CodeInvalidRequestContent, []string{""}},
		{"body malformed", `{"properties":`, CodeInvalidRequestContent, []string{""}},
		{"wrong type in a patched value", `{"properties":{"scaleConfiguration":{"maxConcurrentSessions":"many"}}}`, CodeInvalidRequestContent, []string{"properties.scaleConfiguration.maxConcurrentSessions"}},
		{"tags not an object", `{"tags":"x"}`, CodeInvalidRequestContent, []string{"tags"}},
		{"identity not an object", `{"identity":5}`, CodeInvalidRequestContent, []string{"identity"}},
		{"lifecycleType not a string", `{"properties":{"dynamicPoolConfiguration":{"lifecycleConfiguration":{"lifecycleType":1}}}}`, CodeInvalidRequestContent, []string{"properties.dynamicPoolConfiguration.lifecycleConfiguration.lifecycleType"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := fullPool(t).Patch([]byte(tt.body))
			if err == nil {
				t.Fatalf("Patch(%s) = %+v, want an error", tt.body, p)
			}
			got := targets(err)
			if strings.Join(got, "|") != strings.Join(tt.targets, "|") {
				t.Errorf("Patch(%s) error targets = %q, want %q (%v)", tt.body, got, tt.targets, err)
			}
			for _, fe := range fieldErrors(err) {
				if fe.Code != tt.code {
					t.Errorf("Patch(%s) error code = %q, want %q", tt.body, fe.Code, tt.code)
				}
			}
		})
	}
	t.Run("errors.As", func(t *testing.T) {
		_, err := fullPool(t).Patch([]byte(`{"location":"x"}`))
		var es Errors
		if !errors.As(err, &es) || len(es) != 1 {
			t.Errorf("Patch(location) error = %T %v, want Errors of one", err, err)
		}
	})
}

func TestPatchOddStoredPools(t *testing.T) {
	for _, stored := range []*SessionPool{{}, {Properties: &PoolProperties{}}, {Location: "x", Tags: map[string]string{"a": "b"}}} {
		p, err := stored.Patch([]byte(`{"tags":{"c":"d"},"identity":{"type":"SystemAssigned"},"properties":{"scaleConfiguration":{"maxConcurrentSessions":3},"dynamicPoolConfiguration":{"executionType":"Timed"},"containerType":"Shell"}}`))
		if err == nil {
			_ = p.Validate()
			continue
		}
		if !hasTarget(err, "properties.containerType") {
			t.Errorf("Patch on %+v = %v, want at most a containerType error", stored, err)
		}
	}
}
