package model

import (
	"errors"
	"strings"
	"testing"
)

func TestDecodeSessionPool(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		check func(t *testing.T, p *SessionPool)
	}{
		{
			name: "spec casing mcPServerSettings/isMCpServerEnabled",
			body: specMcpShell,
			check: func(t *testing.T, p *SessionPool) {
				m := p.Properties.McpServerSettings
				if m == nil || m.IsMcpServerEnabled == nil || !*m.IsMcpServerEnabled {
					t.Errorf("DecodeSessionPool(§9.3).Properties.McpServerSettings = %+v, want isMcpServerEnabled true", m)
				}
			},
		},
		{
			name: "property names in any casing",
			body: `{"LOCATION":"eastus","Properties":{"ContainerType":"Shell","SCALECONFIGURATION":{"maxconcurrentsessions":7},"customcontainertemplate":{"Containers":[{"IMAGE":"x"}]}}}`,
			check: func(t *testing.T, p *SessionPool) {
				if p.Location != "eastus" {
					t.Errorf("Location = %q, want %q", p.Location, "eastus")
				}
				if got := p.Properties.ContainerType; got != "Shell" {
					t.Errorf("Properties.ContainerType = %q, want %q", got, "Shell")
				}
				if sc := p.Properties.ScaleConfiguration; sc == nil || sc.MaxConcurrentSessions == nil || *sc.MaxConcurrentSessions != 7 {
					t.Errorf("Properties.ScaleConfiguration = %+v, want maxConcurrentSessions 7", sc)
				}
				if c := p.Properties.CustomContainerTemplate; c == nil || len(c.Containers) != 1 || c.Containers[0].Image != "x" {
					t.Errorf("Properties.CustomContainerTemplate = %+v, want one container with image x", c)
				}
			},
		},
		{
			name: "explicit nulls are absent (CLI body §9.9)",
			body: specCLICreate,
			check: func(t *testing.T, p *SessionPool) {
				pr := p.Properties
				if pr.EnvironmentID != nil {
					t.Errorf("Properties.EnvironmentID = %q, want nil", *pr.EnvironmentID)
				}
				if pr.CustomContainerTemplate != nil {
					t.Errorf("Properties.CustomContainerTemplate = %+v, want nil", pr.CustomContainerTemplate)
				}
				if pr.Secrets != nil {
					t.Errorf("Properties.Secrets = %+v, want nil", pr.Secrets)
				}
				lc := pr.DynamicPoolConfiguration.LifecycleConfiguration
				if lc.MaxAlivePeriodInSeconds != nil {
					t.Errorf("lifecycleConfiguration.MaxAlivePeriodInSeconds = %d, want nil", *lc.MaxAlivePeriodInSeconds)
				}
				if lc.CooldownPeriodInSeconds == nil || *lc.CooldownPeriodInSeconds != 300 {
					t.Errorf("lifecycleConfiguration.CooldownPeriodInSeconds = %v, want 300", lc.CooldownPeriodInSeconds)
				}
			},
		},
		{
			name: "null everywhere",
			body: `{"location":null,"tags":null,"identity":null,"properties":{"containerType":null,"scaleConfiguration":{"maxConcurrentSessions":null},"mcpServerSettings":{"isMcpServerEnabled":null}}}`,
			check: func(t *testing.T, p *SessionPool) {
				if p.Location != "" || p.Tags != nil || p.Identity != nil {
					t.Errorf("DecodeSessionPool = %+v, want location, tags and identity absent", p)
				}
				if p.Properties.ScaleConfiguration.MaxConcurrentSessions != nil {
					t.Errorf("maxConcurrentSessions = %d, want nil", *p.Properties.ScaleConfiguration.MaxConcurrentSessions)
				}
				if p.Properties.McpServerSettings.IsMcpServerEnabled != nil {
					t.Errorf("isMcpServerEnabled = %v, want nil", *p.Properties.McpServerSettings.IsMcpServerEnabled)
				}
			},
		},
		{
			name: "unknown fields ignored (CLI secret keys, template keys)",
			body: specCLICustom,
			check: func(t *testing.T, p *SessionPool) {
				if got := len(p.Properties.Secrets); got != 2 {
					t.Fatalf("len(Properties.Secrets) = %d, want 2", got)
				}
				if s := p.Properties.Secrets[1]; s.Name != "anothersecret" || s.Value != "secret value 2" {
					t.Errorf("Properties.Secrets[1] = %+v, want anothersecret/secret value 2", s)
				}
			},
		},
		{
			name: "unknown top-level fields (deployment template resource)",
			body: specShellTutorial,
			check: func(t *testing.T, p *SessionPool) {
				if p.Location != "North Central US" || p.Properties.ContainerType != "Shell" {
					t.Errorf("DecodeSessionPool(tutorial) = location %q, containerType %q; want North Central US, Shell", p.Location, p.Properties.ContainerType)
				}
			},
		},
		{
			name: "number as a string (az --cooldown-period 360)",
			body: `{"location":"eastus","properties":{"dynamicPoolConfiguration":{"lifecycleConfiguration":{"lifecycleType":"Timed","cooldownPeriodInSeconds":"360","maxAlivePeriodInSeconds":null}},"scaleConfiguration":{"maxConcurrentSessions":" 20 "},"customContainerTemplate":{"containers":[{"resources":{"cpu":"0.5"}}]}}}`,
			check: func(t *testing.T, p *SessionPool) {
				lc := p.Properties.DynamicPoolConfiguration.LifecycleConfiguration
				if lc.CooldownPeriodInSeconds == nil || *lc.CooldownPeriodInSeconds != 360 {
					t.Errorf("cooldownPeriodInSeconds = %v, want 360", lc.CooldownPeriodInSeconds)
				}
				if m := p.Properties.ScaleConfiguration.MaxConcurrentSessions; m == nil || *m != 20 {
					t.Errorf("maxConcurrentSessions = %v, want 20", m)
				}
				if c := p.Properties.CustomContainerTemplate.Containers[0].Resources.CPU; c == nil || *c != 0.5 {
					t.Errorf("cpu = %v, want 0.5", c)
				}
			},
		},
		{
			name: "number as a string under keys in another casing",
			body: `{"Properties":{"ScaleConfiguration":{"MAXCONCURRENTSESSIONS":"12"},"customContainerTemplate":{"containers":[{"probes":[{"terminationGracePeriodSeconds":"30"}]}],"-":1}}}`,
			check: func(t *testing.T, p *SessionPool) {
				if m := p.Properties.ScaleConfiguration.MaxConcurrentSessions; m == nil || *m != 12 {
					t.Errorf("maxConcurrentSessions = %v, want 12", m)
				}
				if g := p.Properties.CustomContainerTemplate.Containers[0].Probes[0].TerminationGracePeriodSeconds; g == nil || *g != 30 {
					t.Errorf("terminationGracePeriodSeconds = %v, want 30", g)
				}
			},
		},
		{
			name: "integral float for an integer",
			body: `{"properties":{"scaleConfiguration":{"maxConcurrentSessions":10.0,"readySessionInstances":2e0}}}`,
			check: func(t *testing.T, p *SessionPool) {
				sc := p.Properties.ScaleConfiguration
				if sc.MaxConcurrentSessions == nil || *sc.MaxConcurrentSessions != 10 || sc.ReadySessionInstances == nil || *sc.ReadySessionInstances != 2 {
					t.Errorf("scaleConfiguration = %+v, want 10/2", sc)
				}
			},
		},
		{
			name: "legacy shapes kept for Normalize",
			body: specLegacy,
			check: func(t *testing.T, p *SessionPool) {
				d := p.Properties.DynamicPoolConfiguration
				if d.ExecutionType != "Timed" || d.CooldownPeriodInSeconds == nil || *d.CooldownPeriodInSeconds != 600 {
					t.Errorf("dynamicPoolConfiguration = %+v, want executionType Timed, cooldown 600", d)
				}
				if rc := p.Properties.CustomContainerTemplate.RegistryCredentials; rc.RegistryServer != "myregistry.azurecr.io" {
					t.Errorf("registryCredentials.RegistryServer = %q, want myregistry.azurecr.io", rc.RegistryServer)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := DecodeSessionPool([]byte(tt.body))
			if err != nil {
				t.Fatalf("DecodeSessionPool: %v", err)
			}
			tt.check(t, p)
		})
	}
}

func TestDecodeSessionPoolErrors(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantTarget string
		wantInMsg  string
	}{
		{"empty body", ``, "", "unexpected end of JSON input"},
		{"truncated", `{"location":"eastus"`, "", "unexpected end of JSON input"},
		{"malformed", `{"location":eastus}`, "", "malformed JSON at offset"},
		{"trailing garbage", `{"location":"eastus"} x`, "", "malformed JSON"},
		{"array body", `[{"location":"eastus"}]`, "", "expected a JSON object, got an array"},
		{"string body", `"eastus"`, "", "expected a JSON object, got a string"},
		{"number body", ` 42`, "", "expected a JSON object, got a number"},
		{"null body", `null`, "", "expected a JSON object, got null"},
		{"boolean body", `true`, "", "expected a JSON object, got a boolean"},
		{"string for number", `{"properties":{"scaleConfiguration":{"maxConcurrentSessions":"ten"}}}`, "properties.scaleConfiguration.maxConcurrentSessions", "must be a number, got string"},
		{"fraction for integer", `{"properties":{"scaleConfiguration":{"maxConcurrentSessions":1.5}}}`, "properties.scaleConfiguration.maxConcurrentSessions", "must be a number"},
		{"int32 overflow", `{"properties":{"dynamicPoolConfiguration":{"lifecycleConfiguration":{"cooldownPeriodInSeconds":4294967296}}}}`, "properties.dynamicPoolConfiguration.lifecycleConfiguration.cooldownPeriodInSeconds", "must be a number"},
		{"int32 overflow as a string", `{"properties":{"scaleConfiguration":{"maxConcurrentSessions":"99999999999"}}}`, "properties.scaleConfiguration.maxConcurrentSessions", "must be a number"},
		{"number for string", `{"location":1}`, "location", "must be a string, got number"},
		{"object for string", `{"properties":{"containerType":{}}}`, "properties.containerType", "must be a string, got object"},
		{"array for object", `{"properties":[]}`, "properties", "must be an object, got array"},
		{"string for array", `{"properties":{"secrets":"a"}}`, "properties.secrets", "must be an array, got string"},
		{"wrong type inside an array", `{"properties":{"secrets":[{"name":1}]}}`, "properties.secrets.name", "must be a string"},
		{"number for object in array", `{"properties":{"secrets":[1]}}`, "properties.secrets", "must be an object"},
		{"string for boolean", `{"properties":{"mcpServerSettings":{"isMcpServerEnabled":"yes"}}}`, "properties.mcpServerSettings.isMcpServerEnabled", "must be a boolean"},
		{"tag value not a string", `{"tags":{"a":1}}`, "tags", "must be a string"},
		{"bad date-time", `{"systemData":{"createdAt":"xyzzy"}}`, "", "RFC 3339"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := DecodeSessionPool([]byte(tt.body))
			if err == nil {
				t.Fatalf("DecodeSessionPool(%s) = %+v, want an error", tt.body, p)
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("DecodeSessionPool(%s) error = %T %v, want *FieldError", tt.body, err, err)
			}
			if fe.Code != CodeInvalidRequestContent {
				t.Errorf("DecodeSessionPool(%s) code = %q, want %q", tt.body, fe.Code, CodeInvalidRequestContent)
			}
			if fe.Target != tt.wantTarget {
				t.Errorf("DecodeSessionPool(%s) target = %q, want %q", tt.body, fe.Target, tt.wantTarget)
			}
			if !strings.Contains(fe.Message, tt.wantInMsg) {
				t.Errorf("DecodeSessionPool(%s) message = %q, want it to contain %q", tt.body, fe.Message, tt.wantInMsg)
			}
			if strings.Contains(fe.Message, "xyzzy") {
				t.Errorf("DecodeSessionPool(%s) message = %q echoes the input", tt.body, fe.Message)
			}
		})
	}
}

func TestDecodeNeighbours(t *testing.T) {
	g, err := DecodeResourceGroup([]byte(`{"Location":"westus","tags":{"a":"b"},"properties":null}`))
	if err != nil {
		t.Fatalf("DecodeResourceGroup: %v", err)
	}
	if g.Location != "westus" || g.Tags["a"] != "b" {
		t.Errorf("DecodeResourceGroup = %+v, want location westus, tag a=b", g)
	}
	if _, err := DecodeResourceGroup([]byte(`[]`)); err == nil {
		t.Error("DecodeResourceGroup([]) = nil error, want one")
	}
	e, err := DecodeManagedEnvironment([]byte(`{"location":"eastus","properties":{"workloadProfiles":[{"name":"Consumption"}],"n":"7"}}`))
	if err != nil {
		t.Fatalf("DecodeManagedEnvironment: %v", err)
	}
	if e.Properties["n"] != "7" {
		t.Errorf("DecodeManagedEnvironment properties.n = %#v, want the string kept as given", e.Properties["n"])
	}
	if _, err := DecodeManagedEnvironment([]byte(`{"properties":1}`)); !hasTarget(err, "properties") {
		t.Errorf("DecodeManagedEnvironment(properties 1) error = %v, want target properties", err)
	}
}

func TestFieldErrorText(t *testing.T) {
	errs := Errors{
		{Code: CodeInvalidParameter, Target: "location", Message: "m1"},
		{Code: CodeInvalidParameter, Message: "m2"},
	}
	if got, want := errs.Error(), "location: m1; m2"; got != want {
		t.Errorf("Errors.Error() = %q, want %q", got, want)
	}
}
