package model

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

// validCustomBody is a valid CustomContainer pool using most rules' fields.
const validCustomBody = `{
  "location": "westeurope",
  "tags": {"a": "b"},
  "identity": {"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {"` + uami + `": {}}},
  "properties": {
    "environmentId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.App/managedEnvironments/env",
    "containerType": "CustomContainer",
    "scaleConfiguration": {"maxConcurrentSessions": 20, "readySessionInstances": 2},
    "secrets": [{"name": "pw", "value": "x"}, {"name": "api.key-1", "value": "y"}],
    "customContainerTemplate": {
      "registryCredentials": {"server": "r.io", "username": "u", "passwordSecretRef": "pw"},
      "containers": [{
        "image": "r.io/app:1", "name": "app",
        "env": [{"name": "A", "value": "1"}, {"name": "K_E.Y-2", "secretRef": "api.key-1"}],
        "resources": {"cpu": 0.5, "memory": "1Gi"},
        "probes": [
          {"type": "Liveness", "httpGet": {"port": 80, "scheme": "HTTPS"}, "failureThreshold": 3, "initialDelaySeconds": 1, "periodSeconds": 10, "successThreshold": 1, "timeoutSeconds": 1, "terminationGracePeriodSeconds": 0},
          {"type": "Startup", "tcpSocket": {"port": 80}}
        ]
      }],
      "ingress": {"targetPort": 80}
    },
    "managedIdentitySettings": [{"identity": "system", "lifecycle": "Main"}, {"identity": "` + uami + `"}]
  }
}`

func validCustom(t *testing.T) *SessionPool { return decodeNormalized(t, validCustomBody) }

func validBuiltIn(t *testing.T) *SessionPool {
	return decodeNormalized(t, `{"location":"eastus","properties":{"containerType":"PythonLTS"}}`)
}

func TestValidate(t *testing.T) {
	tpl := func(p *SessionPool) *CustomContainerTemplate { return p.Properties.CustomContainerTemplate }
	ctr := func(p *SessionPool) *SessionContainer { return &p.Properties.CustomContainerTemplate.Containers[0] }
	probe := func(p *SessionPool) *SessionProbe { return &ctr(p).Probes[0] }
	lc := func(p *SessionPool) *LifecycleConfiguration { return p.Lifecycle() }
	onExit := func(p *SessionPool, maxAlive int32) {
		*lc(p) = LifecycleConfiguration{LifecycleType: LifecycleOnContainerExit, MaxAlivePeriodInSeconds: Int32(maxAlive)}
	}
	const (
		lcPath    = "properties.dynamicPoolConfiguration.lifecycleConfiguration"
		ctrPath   = "properties.customContainerTemplate.containers[0]"
		probePath = ctrPath + ".probes[0]"
	)
	type tc struct {
		name   string
		base   func(t *testing.T) *SessionPool
		mutate func(p *SessionPool)
		want   string // the Target of the single expected error; "" for valid
	}
	custom, builtIn := validCustom, validBuiltIn
	tests := []tc{
		{"custom base is valid", custom, func(*SessionPool) {}, ""},
		{"built-in base is valid", builtIn, func(*SessionPool) {}, ""},

		{"location with spaces", builtIn, func(p *SessionPool) { p.Location = "North Central US" }, ""},
		{"location missing", builtIn, func(p *SessionPool) { p.Location = "" }, "location"},
		{"location blank", builtIn, func(p *SessionPool) { p.Location = " \t" }, "location"},

		{"15 tags", builtIn, func(p *SessionPool) { p.Tags = nTags(15) }, ""},
		{"16 tags", builtIn, func(p *SessionPool) { p.Tags = nTags(16) }, "tags"},
		{"tag name empty", builtIn, func(p *SessionPool) { p.Tags = map[string]string{"": "v"} }, "tags"},
		{"tag name 512 characters (multibyte)", builtIn, func(p *SessionPool) { p.Tags = map[string]string{strings.Repeat("é", 512): "v"} }, ""},
		{"tag name 513 characters", builtIn, func(p *SessionPool) { p.Tags = map[string]string{strings.Repeat("k", 513): "v"} }, "tags"},
		{"tag name with /", builtIn, func(p *SessionPool) { p.Tags = map[string]string{"a/b": "v"} }, "tags"},
		{"tag name with %", builtIn, func(p *SessionPool) { p.Tags = map[string]string{"50%": "v"} }, "tags"},
		{"tag name with control character", builtIn, func(p *SessionPool) { p.Tags = map[string]string{"a\nb": "v"} }, "tags"},
		{"tag name with allowed punctuation", builtIn, func(p *SessionPool) { p.Tags = map[string]string{"cost-center_1.x:y": "v"} }, ""},
		{"tag value 256 characters (multibyte)", builtIn, func(p *SessionPool) { p.Tags = map[string]string{"k": strings.Repeat("ü", 256)} }, ""},
		{"tag value 257 characters", builtIn, func(p *SessionPool) { p.Tags = map[string]string{"k": strings.Repeat("v", 257)} }, "tags"},

		{"containerType NodeLTS", builtIn, func(p *SessionPool) { p.Properties.ContainerType = ContainerTypeNodeLTS }, ""},
		{"containerType Shell", builtIn, func(p *SessionPool) { p.Properties.ContainerType = ContainerTypeShell }, ""},
		{"containerType GpuBase unsupported", builtIn, func(p *SessionPool) { p.Properties.ContainerType = ContainerTypeGpuBase }, "properties.containerType"},
		{"containerType unknown", builtIn, func(p *SessionPool) { p.Properties.ContainerType = "Ruby" }, "properties.containerType"},

		{"poolManagementType Manual", builtIn, func(p *SessionPool) { p.Properties.PoolManagementType = "Manual" }, "properties.poolManagementType"},

		{"max 600 built-in", builtIn, func(p *SessionPool) { p.Properties.ScaleConfiguration.MaxConcurrentSessions = Int32(600) }, ""},
		{"max 601 built-in", builtIn, func(p *SessionPool) { p.Properties.ScaleConfiguration.MaxConcurrentSessions = Int32(601) }, "properties.scaleConfiguration.maxConcurrentSessions"},
		{"max 5000 custom", custom, func(p *SessionPool) { p.Properties.ScaleConfiguration.MaxConcurrentSessions = Int32(5000) }, ""},
		{"max 5001 custom", custom, func(p *SessionPool) { p.Properties.ScaleConfiguration.MaxConcurrentSessions = Int32(5001) }, "properties.scaleConfiguration.maxConcurrentSessions"},
		{"max 1 ready 0", builtIn, func(p *SessionPool) {
			p.Properties.ScaleConfiguration = &ScaleConfiguration{MaxConcurrentSessions: Int32(1), ReadySessionInstances: Int32(0)}
		}, ""},
		{"max 0", builtIn, func(p *SessionPool) {
			p.Properties.ScaleConfiguration = &ScaleConfiguration{MaxConcurrentSessions: Int32(0), ReadySessionInstances: Int32(0)}
		}, "properties.scaleConfiguration.maxConcurrentSessions"},
		{"ready = max", builtIn, func(p *SessionPool) { p.Properties.ScaleConfiguration.ReadySessionInstances = Int32(10) }, ""},
		{"ready > max", builtIn, func(p *SessionPool) { p.Properties.ScaleConfiguration.ReadySessionInstances = Int32(11) }, "properties.scaleConfiguration.readySessionInstances"},
		{"ready negative", builtIn, func(p *SessionPool) { p.Properties.ScaleConfiguration.ReadySessionInstances = Int32(-1) }, "properties.scaleConfiguration.readySessionInstances"},

		{"Timed cooldown 300", builtIn, func(p *SessionPool) { lc(p).CooldownPeriodInSeconds = Int32(300) }, ""},
		{"Timed cooldown 3600", builtIn, func(p *SessionPool) { lc(p).CooldownPeriodInSeconds = Int32(3600) }, ""},
		{"Timed cooldown 299", builtIn, func(p *SessionPool) { lc(p).CooldownPeriodInSeconds = Int32(299) }, lcPath + ".cooldownPeriodInSeconds"},
		{"Timed cooldown 3601", builtIn, func(p *SessionPool) { lc(p).CooldownPeriodInSeconds = Int32(3601) }, lcPath + ".cooldownPeriodInSeconds"},
		{"Timed cooldown missing", builtIn, func(p *SessionPool) { lc(p).CooldownPeriodInSeconds = nil }, lcPath + ".cooldownPeriodInSeconds"},
		{"Timed with maxAlive", builtIn, func(p *SessionPool) { lc(p).MaxAlivePeriodInSeconds = Int32(600) }, lcPath + ".maxAlivePeriodInSeconds"},
		{"OnContainerExit custom", custom, func(p *SessionPool) { onExit(p, 86400) }, ""},
		{"OnContainerExit maxAlive 60", custom, func(p *SessionPool) { onExit(p, 60) }, ""},
		{"OnContainerExit maxAlive 7 days", custom, func(p *SessionPool) { onExit(p, 7*86400) }, ""},
		{"OnContainerExit maxAlive 59", custom, func(p *SessionPool) { onExit(p, 59) }, lcPath + ".maxAlivePeriodInSeconds"},
		{"OnContainerExit maxAlive over 7 days", custom, func(p *SessionPool) { onExit(p, 7*86400+1) }, lcPath + ".maxAlivePeriodInSeconds"},
		{"OnContainerExit maxAlive missing", custom, func(p *SessionPool) { onExit(p, 0); lc(p).MaxAlivePeriodInSeconds = nil }, lcPath + ".maxAlivePeriodInSeconds"},
		{"OnContainerExit with cooldown", custom, func(p *SessionPool) { onExit(p, 600); lc(p).CooldownPeriodInSeconds = Int32(300) }, lcPath + ".cooldownPeriodInSeconds"},
		{"OnContainerExit built-in", builtIn, func(p *SessionPool) { onExit(p, 600) }, lcPath + ".lifecycleType"},
		{"lifecycleType unknown", builtIn, func(p *SessionPool) { lc(p).LifecycleType = "Forever" }, lcPath + ".lifecycleType"},

		{"secret name with dot and hyphen", builtIn, func(p *SessionPool) { p.Properties.Secrets = []Secret{{Name: "a.b-c", Value: "v"}} }, ""},
		{"secret name 253 characters", builtIn, func(p *SessionPool) { p.Properties.Secrets = []Secret{{Name: strings.Repeat("a", 253)}} }, ""},
		{"secret name missing", builtIn, func(p *SessionPool) { p.Properties.Secrets = []Secret{{Value: "v"}} }, "properties.secrets[0].name"},
		{"secret name upper case", builtIn, func(p *SessionPool) { p.Properties.Secrets = []Secret{{Name: "MySecret"}} }, "properties.secrets[0].name"},
		{"secret name ends with hyphen", builtIn, func(p *SessionPool) { p.Properties.Secrets = []Secret{{Name: "a-"}} }, "properties.secrets[0].name"},
		{"secret name 254 characters", builtIn, func(p *SessionPool) { p.Properties.Secrets = []Secret{{Name: strings.Repeat("a", 254)}} }, "properties.secrets[0].name"},
		{"secret name twice", builtIn, func(p *SessionPool) { p.Properties.Secrets = []Secret{{Name: "a"}, {Name: "a"}} }, "properties.secrets[1].name"},

		{"network EgressEnabled", builtIn, func(p *SessionPool) { p.Properties.SessionNetworkConfiguration.Status = EgressEnabled }, ""},
		{"network unknown", builtIn, func(p *SessionPool) { p.Properties.SessionNetworkConfiguration.Status = "Open" }, "properties.sessionNetworkConfiguration.status"},

		{"built-in with an environmentId (2024-02-02-preview templates send one)", builtIn, func(p *SessionPool) {
			p.Properties.EnvironmentID = str("/subscriptions/s/resourceGroups/rg/providers/Microsoft.App/managedEnvironments/e")
		}, ""},
		{"built-in with a template without containers", builtIn, func(p *SessionPool) {
			p.Properties.CustomContainerTemplate = &CustomContainerTemplate{Ingress: &SessionIngress{TargetPort: Int32(80)}}
		}, ""},
		{"built-in with containers", builtIn, func(p *SessionPool) {
			p.Properties.CustomContainerTemplate = &CustomContainerTemplate{Containers: []SessionContainer{{Image: "x"}}}
		}, "properties.customContainerTemplate"},

		{"custom without environmentId", custom, func(p *SessionPool) { p.Properties.EnvironmentID = nil }, "properties.environmentId"},
		{"custom with empty environmentId", custom, func(p *SessionPool) { p.Properties.EnvironmentID = str("") }, "properties.environmentId"},
		{"custom without template", custom, func(p *SessionPool) {
			p.Properties.CustomContainerTemplate = nil
			p.Properties.ManagedIdentitySettings = nil
		}, "properties.customContainerTemplate"},
		{"custom without containers", custom, func(p *SessionPool) { tpl(p).Containers = nil }, "properties.customContainerTemplate.containers"},
		{"custom with two containers", custom, func(p *SessionPool) {
			tpl(p).Containers = append(tpl(p).Containers, SessionContainer{Image: "b", Name: "b"})
		}, "properties.customContainerTemplate.containers"},
		{"targetPort 65535", custom, func(p *SessionPool) { tpl(p).Ingress.TargetPort = Int32(65535) }, ""},
		{"targetPort missing", custom, func(p *SessionPool) { tpl(p).Ingress = nil }, "properties.customContainerTemplate.ingress.targetPort"},
		{"targetPort 0", custom, func(p *SessionPool) { tpl(p).Ingress.TargetPort = Int32(0) }, "properties.customContainerTemplate.ingress.targetPort"},
		{"targetPort 65536", custom, func(p *SessionPool) { tpl(p).Ingress.TargetPort = Int32(65536) }, "properties.customContainerTemplate.ingress.targetPort"},
		{"no registry credentials", custom, func(p *SessionPool) { tpl(p).RegistryCredentials = nil }, ""},
		{"registry server missing", custom, func(p *SessionPool) { tpl(p).RegistryCredentials.Server = "" }, "properties.customContainerTemplate.registryCredentials.server"},
		{"registry password secret unknown", custom, func(p *SessionPool) { tpl(p).RegistryCredentials.PasswordSecretRef = "nope" }, "properties.customContainerTemplate.registryCredentials.passwordSecretRef"},
		{"registry password without username", custom, func(p *SessionPool) { tpl(p).RegistryCredentials.Username = "" }, "properties.customContainerTemplate.registryCredentials.username"},
		{"registry username without password (anonymous or identity)", custom, func(p *SessionPool) { tpl(p).RegistryCredentials.PasswordSecretRef = "" }, ""},

		{"image missing", custom, func(p *SessionPool) { ctr(p).Image = " " }, ctrPath + ".image"},
		{"env name starting with a digit", custom, func(p *SessionPool) { ctr(p).Env[0].Name = "1A" }, ctrPath + ".env[0].name"},
		{"env name empty", custom, func(p *SessionPool) { ctr(p).Env[0].Name = "" }, ctrPath + ".env[0].name"},
		{"env name twice", custom, func(p *SessionPool) { ctr(p).Env[1] = EnvironmentVar{Name: "A", Value: "2"} }, ctrPath + ".env[1].name"},
		{"env with value and secretRef", custom, func(p *SessionPool) { ctr(p).Env[1].Value = "v" }, ctrPath + ".env[1]"},
		{"env empty value", custom, func(p *SessionPool) { ctr(p).Env[0].Value = "" }, ""},
		{"env secretRef unknown", custom, func(p *SessionPool) { ctr(p).Env[1].SecretRef = "nope" }, ctrPath + ".env[1].secretRef"},
		{"cpu 0.25", custom, func(p *SessionPool) { ctr(p).Resources.CPU = ptrF(0.25) }, ""},
		{"cpu 2", custom, func(p *SessionPool) { ctr(p).Resources.CPU = ptrF(2) }, ""},
		{"cpu 0.2", custom, func(p *SessionPool) { ctr(p).Resources.CPU = ptrF(0.2) }, ctrPath + ".resources.cpu"},
		{"cpu 2.5", custom, func(p *SessionPool) { ctr(p).Resources.CPU = ptrF(2.5) }, ctrPath + ".resources.cpu"},
		{"cpu NaN", custom, func(p *SessionPool) { ctr(p).Resources.CPU = ptrF(math.NaN()) }, ctrPath + ".resources.cpu"},
		{"memory 512Mi", custom, func(p *SessionPool) { ctr(p).Resources.Memory = "512Mi" }, ""},
		{"memory 4Gi", custom, func(p *SessionPool) { ctr(p).Resources.Memory = "4Gi" }, ""},
		{"memory 0.25Gi", custom, func(p *SessionPool) { ctr(p).Resources.Memory = "0.25Gi" }, ctrPath + ".resources.memory"},
		{"memory 250Mb (spec example, below the minimum)", custom, func(p *SessionPool) { ctr(p).Resources.Memory = "250Mb" }, ctrPath + ".resources.memory"},
		{"memory 5Gi", custom, func(p *SessionPool) { ctr(p).Resources.Memory = "5Gi" }, ctrPath + ".resources.memory"},
		{"memory garbage", custom, func(p *SessionPool) { ctr(p).Resources.Memory = "lots" }, ctrPath + ".resources.memory"},
		{"no resources", custom, func(p *SessionPool) { ctr(p).Resources = nil }, ""},

		{"probe type Readiness", custom, func(p *SessionPool) { probe(p).Type = "Readiness" }, probePath + ".type"},
		{"two Liveness probes", custom, func(p *SessionPool) { ctr(p).Probes[1].Type = "Liveness" }, ctrPath + ".probes[1].type"},
		{"probe without a handler", custom, func(p *SessionPool) { probe(p).HTTPGet = nil }, probePath},
		{"probe with both handlers", custom, func(p *SessionPool) { probe(p).TCPSocket = &ProbeTCP{Port: Int32(1)} }, probePath},
		{"probe port missing", custom, func(p *SessionPool) { probe(p).HTTPGet.Port = nil }, probePath + ".httpGet.port"},
		{"probe port 65536", custom, func(p *SessionPool) { probe(p).HTTPGet.Port = Int32(65536) }, probePath + ".httpGet.port"},
		{"tcp probe port 0", custom, func(p *SessionPool) { ctr(p).Probes[1].TCPSocket.Port = Int32(0) }, ctrPath + ".probes[1].tcpSocket.port"},
		{"probe scheme empty", custom, func(p *SessionPool) { probe(p).HTTPGet.Scheme = "" }, ""},
		{"probe scheme FTP", custom, func(p *SessionPool) { probe(p).HTTPGet.Scheme = "FTP" }, probePath + ".httpGet.scheme"},
		{"failureThreshold 10", custom, func(p *SessionPool) { probe(p).FailureThreshold = Int32(10) }, ""},
		{"failureThreshold 11", custom, func(p *SessionPool) { probe(p).FailureThreshold = Int32(11) }, probePath + ".failureThreshold"},
		{"initialDelaySeconds 60", custom, func(p *SessionPool) { probe(p).InitialDelaySeconds = Int32(60) }, ""},
		{"initialDelaySeconds 0", custom, func(p *SessionPool) { probe(p).InitialDelaySeconds = Int32(0) }, probePath + ".initialDelaySeconds"},
		{"periodSeconds 240", custom, func(p *SessionPool) { probe(p).PeriodSeconds = Int32(240) }, ""},
		{"periodSeconds 241", custom, func(p *SessionPool) { probe(p).PeriodSeconds = Int32(241) }, probePath + ".periodSeconds"},
		{"successThreshold 2", custom, func(p *SessionPool) { probe(p).SuccessThreshold = Int32(2) }, probePath + ".successThreshold"},
		{"timeoutSeconds 240", custom, func(p *SessionPool) { probe(p).TimeoutSeconds = Int32(240) }, ""},
		{"timeoutSeconds 0", custom, func(p *SessionPool) { probe(p).TimeoutSeconds = Int32(0) }, probePath + ".timeoutSeconds"},
		{"terminationGracePeriodSeconds 3600", custom, func(p *SessionPool) { v := int64(3600); probe(p).TerminationGracePeriodSeconds = &v }, ""},
		{"terminationGracePeriodSeconds -1", custom, func(p *SessionPool) { v := int64(-1); probe(p).TerminationGracePeriodSeconds = &v }, probePath + ".terminationGracePeriodSeconds"},

		{"identity None", builtIn, func(p *SessionPool) { p.Identity = &Identity{Type: IdentityNone} }, ""},
		{"identity type unknown", builtIn, func(p *SessionPool) { p.Identity = &Identity{Type: "Both"} }, "identity.type"},
		{"identity type empty", builtIn, func(p *SessionPool) { p.Identity = &Identity{} }, "identity.type"},
		{"UserAssigned without identities", builtIn, func(p *SessionPool) { p.Identity = &Identity{Type: IdentityUserAssigned} }, "identity.userAssignedIdentities"},
		{"SystemAssigned with user identities", custom, func(p *SessionPool) {
			p.Identity.Type = IdentitySystemAssigned
			p.Properties.ManagedIdentitySettings = p.Properties.ManagedIdentitySettings[:1]
		}, "identity.userAssignedIdentities"},
		{"user identity key not an identity", builtIn, func(p *SessionPool) {
			p.Identity = &Identity{Type: IdentityUserAssigned, UserAssignedIdentities: map[string]*UserAssignedIdentity{"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/x": {}}}
		}, "identity.userAssignedIdentities"},
		{"user identity key a collection", builtIn, func(p *SessionPool) {
			p.Identity = &Identity{Type: IdentityUserAssigned, UserAssignedIdentities: map[string]*UserAssignedIdentity{"/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities": {}}}
		}, "identity.userAssignedIdentities"},
		{"user identity key a bare name", builtIn, func(p *SessionPool) {
			p.Identity = &Identity{Type: IdentityUserAssigned, UserAssignedIdentities: map[string]*UserAssignedIdentity{"myidentity": {}}}
		}, "identity.userAssignedIdentities"},
		{"msi system without system identity", custom, func(p *SessionPool) { p.Identity.Type = IdentityUserAssigned }, "properties.managedIdentitySettings[0].identity"},
		{"msi system without identity at all", builtIn, func(p *SessionPool) {
			p.Properties.ManagedIdentitySettings = []ManagedIdentitySetting{{Identity: "system", Lifecycle: "None"}}
		}, "properties.managedIdentitySettings[0].identity"},
		{"msi user identity in another casing and with a trailing slash", custom, func(p *SessionPool) {
			p.Properties.ManagedIdentitySettings[1].Identity = strings.ToLower(strings.Replace(uami, "/resourceGroups/", "//resourcegroups/", 1)) + "/"
		}, ""},
		{"msi user identity not the pool's", custom, func(p *SessionPool) {
			p.Properties.ManagedIdentitySettings[1].Identity = strings.Replace(uami, "puller", "other", 1)
		}, "properties.managedIdentitySettings[1].identity"},
		{"msi lifecycle Init", custom, func(p *SessionPool) { p.Properties.ManagedIdentitySettings[0].Lifecycle = "Init" }, "properties.managedIdentitySettings[0].lifecycle"},
		{"registry identity system", custom, func(p *SessionPool) { tpl(p).RegistryCredentials.Identity = "system" }, ""},
		{"registry identity the pool's user identity", custom, func(p *SessionPool) { tpl(p).RegistryCredentials.Identity = uami }, ""},
		{"registry identity another user identity (§9.1)", custom, func(p *SessionPool) {
			tpl(p).RegistryCredentials.Identity = strings.Replace(uami, "puller", "other", 1)
		}, ""},
		{"registry identity system without system identity", custom, func(p *SessionPool) {
			p.Identity.Type = IdentityUserAssigned
			p.Properties.ManagedIdentitySettings = p.Properties.ManagedIdentitySettings[1:]
			tpl(p).RegistryCredentials.Identity = "system"
		}, "properties.customContainerTemplate.registryCredentials.identity"},
		{"registry identity system on a pool without identity (2024-08-02-preview has none)", custom, func(p *SessionPool) {
			p.Identity = nil
			p.Properties.ManagedIdentitySettings = nil
			tpl(p).RegistryCredentials.Identity = "system"
		}, ""},
		{"registry identity system on identity None", custom, func(p *SessionPool) {
			p.Identity = &Identity{Type: IdentityNone}
			p.Properties.ManagedIdentitySettings = nil
			tpl(p).RegistryCredentials.Identity = "system"
		}, "properties.customContainerTemplate.registryCredentials.identity"},
		{"registry identity not an identity id", custom, func(p *SessionPool) { tpl(p).RegistryCredentials.Identity = "myidentity" }, "properties.customContainerTemplate.registryCredentials.identity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.base(t)
			tt.mutate(p)
			err := p.Validate()
			got := targets(err)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.want != "" && (len(got) != 1 || got[0] != tt.want):
				t.Errorf("Validate() targets = %q, want [%q] (error: %v)", got, tt.want, err)
			}
			for _, fe := range fieldErrors(err) {
				if fe.Code != CodeInvalidParameter || fe.Message == "" {
					t.Errorf("Validate() error %+v, want code %s and a message", fe, CodeInvalidParameter)
				}
			}
		})
	}
}

func TestValidateSpecExamples(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{"§9.1 custom container, Timed, system identity", specTimedCustom},
		{"§9.2 OnContainerExit", specOnContainerExit},
		{"§9.3 Shell with MCP", specMcpShell},
		{"§9.9 CLI create", specCLICreate},
		{"cli.md §3.3 custom container with secrets", specCLICustom},
		{"cli.md §9 Shell tutorial at 2025-02-02-preview", specShellTutorial},
		{"§9.10 legacy shapes", specLegacy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := decodeNormalized(t, tt.body)
			if err := p.Validate(); err != nil {
				t.Errorf("Validate() = %v, want nil", err)
			}
		})
	}
}

func TestValidateListsEveryProblem(t *testing.T) {
	p := decodeNormalized(t, `{"tags":{"b/":"x","a/":"y"},"properties":{"containerType":"Ruby","scaleConfiguration":{"maxConcurrentSessions":0}}}`)
	want := []string{"location", "tags", "tags", "properties.containerType", "properties.scaleConfiguration.maxConcurrentSessions"}
	for range 20 { // tag errors come in name order, whatever the map order
		if got := targets(p.Validate()); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("Validate() targets = %q, want %q", got, want)
		}
	}
	msgs := fieldErrors(p.Validate())
	if !strings.Contains(msgs[1].Message, "'a/'") || !strings.Contains(msgs[2].Message, "'b/'") {
		t.Errorf("Validate() tag errors = %q, %q; want 'a/' first", msgs[1].Message, msgs[2].Message)
	}
}

// TestValidateWithoutNormalize: Validate never panics, whatever is missing.
func TestValidateWithoutNormalize(t *testing.T) {
	tests := []struct {
		name string
		pool *SessionPool
		want string
	}{
		{"empty pool", &SessionPool{Location: "x"}, "properties"},
		{"empty properties", &SessionPool{Location: "x", Properties: &PoolProperties{ContainerType: "Shell", PoolManagementType: "Dynamic"}}, "properties.scaleConfiguration.maxConcurrentSessions"},
		{"no ready", &SessionPool{Location: "x", Properties: &PoolProperties{ContainerType: "Shell", PoolManagementType: "Dynamic", ScaleConfiguration: &ScaleConfiguration{MaxConcurrentSessions: Int32(2)}}}, "properties.scaleConfiguration.readySessionInstances"},
		{"no lifecycle", &SessionPool{Location: "x", Properties: &PoolProperties{DynamicPoolConfiguration: &DynamicPoolConfiguration{}}}, "properties.dynamicPoolConfiguration.lifecycleConfiguration"},
		{"no network", &SessionPool{Location: "x", Properties: &PoolProperties{}}, "properties.sessionNetworkConfiguration.status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.pool.Validate()
			if !hasTarget(err, tt.want) {
				t.Errorf("Validate() = %v, want an error with target %q", err, tt.want)
			}
		})
	}
}

func TestValidatePoolName(t *testing.T) {
	tests := []struct {
		name         string
		allowHyphens bool
		ok           bool
	}{
		{"abc", false, true},
		{"testsessionpool", false, true},
		{"a1b2", false, true},
		{"ab", false, false},
		{strings.Repeat("a", 63), false, true},
		{strings.Repeat("a", 64), false, false},
		{"my-pool", false, false},
		{"1abc", false, false},
		{"Abc", false, false},
		{"", false, false},
		{"a", true, true},
		{"my-session-pool", true, true},
		{"mysessionpool", true, true},
		{strings.Repeat("a", 32), true, true},
		{strings.Repeat("a", 33), true, false},
		{"my--pool", true, false},
		{"-pool", true, false},
		{"pool-", true, false},
		{"1pool", true, false},
		{"My-pool", true, false},
		{"my_pool", true, false},
		{"", true, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/hyphens=%v", tt.name, tt.allowHyphens), func(t *testing.T) {
			err := ValidatePoolName(tt.name, tt.allowHyphens)
			if (err == nil) != tt.ok {
				t.Errorf("ValidatePoolName(%q, %v) = %v, want ok=%v", tt.name, tt.allowHyphens, err, tt.ok)
			}
			if err != nil && !hasTarget(err, "name") {
				t.Errorf("ValidatePoolName(%q, %v) = %v, want target name", tt.name, tt.allowHyphens, err)
			}
		})
	}
}

func TestValidateTags(t *testing.T) {
	tests := []struct {
		name  string
		tags  map[string]string
		nerrs int
	}{
		{"nil", nil, 0},
		{"15", nTags(15), 0},
		{"16", nTags(16), 1},
		{"all bad", map[string]string{"": "x", "a?b": strings.Repeat("v", 300), strings.Repeat("k", 600): "v"}, 4},
		{"each forbidden character", map[string]string{"<": "", ">": "", "%": "", "&": "", `\`: "", "?": "", "/": "", "\x7f": ""}, 8},
		{"unicode", map[string]string{"名前": "値", "ключ": "значение"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateTags(tt.tags)
			if got := len(fieldErrors(err)); got != tt.nerrs {
				t.Errorf("ValidateTags(%d tags) = %v (%d errors), want %d errors", len(tt.tags), err, got, tt.nerrs)
			}
		})
	}
}

func TestParseMemoryGiB(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		ok   bool
	}{
		{"0.5Gi", 0.5, true},
		{"1Gi", 1, true},
		{"4.0Gi", 4, true},
		{"2G", 2, true},
		{"2Gb", 2, true},
		{"512Mi", 0.5, true},
		{"1024M", 1, true},
		{"256Mb", 0.25, true},
		{"1", 1, true},
		{".5Gi", 0.5, true},
		{" 1.5 Gi ", 1.5, true},
		{"0", 0, true},
		{"", 0, false},
		{"Gi", 0, false},
		{"-1Gi", 0, false},
		{"1Ti", 0, false},
		{"1gi", 0, false},
		{"1.Gi", 0, false},
		{"1e3Mi", 0, false},
		{"one", 0, false},
		{strings.Repeat("9", 400), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := ParseMemoryGiB(tt.in)
			if ok != tt.ok || got != tt.want {
				t.Errorf("ParseMemoryGiB(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func nTags(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("tag%d", i)] = "v"
	}
	return m
}

func ptrF(f float64) *float64 { return &f }
