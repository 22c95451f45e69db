package model

import (
	"fmt"
	"testing"
)

func TestNormalizeEnums(t *testing.T) {
	tests := []struct {
		name string
		body string
		get  func(p *SessionPool) string
		want string
	}{
		{"containerType pythonlts", `{"properties":{"containerType":"pythonlts"}}`, func(p *SessionPool) string { return p.Properties.ContainerType }, ContainerTypePythonLTS},
		{"containerType CUSTOMCONTAINER", `{"properties":{"containerType":"CUSTOMCONTAINER"}}`, func(p *SessionPool) string { return p.Properties.ContainerType }, ContainerTypeCustomContainer},
		{"containerType nodelts", `{"properties":{"containerType":"nodelts"}}`, func(p *SessionPool) string { return p.Properties.ContainerType }, ContainerTypeNodeLTS},
		{"containerType shell", `{"properties":{"containerType":"shell"}}`, func(p *SessionPool) string { return p.Properties.ContainerType }, ContainerTypeShell},
		{"containerType gpubase", `{"properties":{"containerType":"gpubase"}}`, func(p *SessionPool) string { return p.Properties.ContainerType }, ContainerTypeGpuBase},
		{"containerType unknown kept", `{"properties":{"containerType":"Ruby"}}`, func(p *SessionPool) string { return p.Properties.ContainerType }, "Ruby"},
		{"poolManagementType dynamic", `{"properties":{"poolManagementType":"dynamic"}}`, func(p *SessionPool) string { return p.Properties.PoolManagementType }, "Dynamic"},
		{"poolManagementType manual", `{"properties":{"poolManagementType":"MANUAL"}}`, func(p *SessionPool) string { return p.Properties.PoolManagementType }, "Manual"},
		{"lifecycleType timed", `{"properties":{"dynamicPoolConfiguration":{"lifecycleConfiguration":{"lifecycleType":"timed"}}}}`, func(p *SessionPool) string { return p.Lifecycle().LifecycleType }, LifecycleTimed},
		{"lifecycleType oncontainerexit", `{"properties":{"dynamicPoolConfiguration":{"lifecycleConfiguration":{"lifecycleType":"ONCONTAINEREXIT"}}}}`, func(p *SessionPool) string { return p.Lifecycle().LifecycleType }, LifecycleOnContainerExit},
		{"network egressenabled", `{"properties":{"sessionNetworkConfiguration":{"status":"egressenabled"}}}`, func(p *SessionPool) string { return p.Properties.SessionNetworkConfiguration.Status }, EgressEnabled},
		{"network EGRESSDISABLED", `{"properties":{"sessionNetworkConfiguration":{"status":"EGRESSDISABLED"}}}`, func(p *SessionPool) string { return p.Properties.SessionNetworkConfiguration.Status }, EgressDisabled},
		{"identity CLI spelling with a space", `{"identity":{"type":"SystemAssigned, UserAssigned"}}`, func(p *SessionPool) string { return p.Identity.Type }, IdentitySystemAssignedUserAssigned},
		{"identity reversed lower case", `{"identity":{"type":"userassigned,systemassigned"}}`, func(p *SessionPool) string { return p.Identity.Type }, IdentitySystemAssignedUserAssigned},
		{"identity tabs and spaces", `{"identity":{"type":" SystemAssigned ,\tUserAssigned "}}`, func(p *SessionPool) string { return p.Identity.Type }, IdentitySystemAssignedUserAssigned},
		{"identity systemassigned", `{"identity":{"type":"systemassigned"}}`, func(p *SessionPool) string { return p.Identity.Type }, IdentitySystemAssigned},
		{"identity USERASSIGNED", `{"identity":{"type":"USERASSIGNED"}}`, func(p *SessionPool) string { return p.Identity.Type }, IdentityUserAssigned},
		{"identity none", `{"identity":{"type":"none"}}`, func(p *SessionPool) string { return p.Identity.Type }, IdentityNone},
		{"identity None with another kept", `{"identity":{"type":"None,SystemAssigned"}}`, func(p *SessionPool) string { return p.Identity.Type }, "None,SystemAssigned"},
		{"identity trailing comma kept", `{"identity":{"type":"SystemAssigned,"}}`, func(p *SessionPool) string { return p.Identity.Type }, "SystemAssigned,"},
		{"msi lifecycle main", `{"properties":{"managedIdentitySettings":[{"identity":"SYSTEM","lifecycle":"main"}]}}`, func(p *SessionPool) string {
			m := p.Properties.ManagedIdentitySettings[0]
			return m.Identity + "/" + m.Lifecycle
		}, "system/Main"},
		{"msi lifecycle default None", `{"properties":{"managedIdentitySettings":[{"identity":"system"}]}}`, func(p *SessionPool) string { return p.Properties.ManagedIdentitySettings[0].Lifecycle }, "None"},
		{"msi lifecycle init", `{"properties":{"managedIdentitySettings":[{"identity":"system","lifecycle":"INIT"}]}}`, func(p *SessionPool) string { return p.Properties.ManagedIdentitySettings[0].Lifecycle }, "Init"},
		{"registry identity System", `{"properties":{"customContainerTemplate":{"registryCredentials":{"server":"r","identity":"System"}}}}`, func(p *SessionPool) string { return p.Properties.CustomContainerTemplate.RegistryCredentials.Identity }, "system"},
		{"probe type and scheme", `{"properties":{"customContainerTemplate":{"containers":[{"probes":[{"type":"liveness","httpGet":{"scheme":"https"}}]}]}}}`, func(p *SessionPool) string {
			pb := p.Properties.CustomContainerTemplate.Containers[0].Probes[0]
			return pb.Type + "/" + pb.HTTPGet.Scheme
		}, "Liveness/HTTPS"},
		{"probe type startup", `{"properties":{"customContainerTemplate":{"containers":[{"probes":[{"type":"STARTUP"}]}]}}}`, func(p *SessionPool) string { return p.Properties.CustomContainerTemplate.Containers[0].Probes[0].Type }, "Startup"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := decodeNormalized(t, tt.body)
			if got := tt.get(p); got != tt.want {
				t.Errorf("Normalize(%s): got %q, want %q", tt.body, got, tt.want)
			}
		})
	}
}

func TestNormalizeDefaults(t *testing.T) {
	type want struct {
		containerType, poolManagementType, status string
		max, ready                                int32
		lifecycle                                 string
		cooldown, maxAlive                        *int32
	}
	defaults := want{ContainerTypePythonLTS, "Dynamic", EgressDisabled, 10, 5, LifecycleTimed, Int32(300), nil}
	with := func(f func(w *want)) want { w := defaults; f(&w); return w }
	tests := []struct {
		name string
		body string
		want want
	}{
		{"empty body", `{}`, defaults},
		{"empty properties", `{"properties":{}}`, defaults},
		{"CLI §9.9", specCLICreate, defaults},
		{"only max: ready = min(5, max)", `{"properties":{"scaleConfiguration":{"maxConcurrentSessions":3}}}`, with(func(w *want) { w.max, w.ready = 3, 3 })},
		{"only max above 5", `{"properties":{"scaleConfiguration":{"maxConcurrentSessions":50}}}`, with(func(w *want) { w.max, w.ready = 50, 5 })},
		{"only max 0", `{"properties":{"scaleConfiguration":{"maxConcurrentSessions":0}}}`, with(func(w *want) { w.max, w.ready = 0, 0 })},
		{"only max negative", `{"properties":{"scaleConfiguration":{"maxConcurrentSessions":-4}}}`, with(func(w *want) { w.max, w.ready = -4, 0 })},
		{"only ready", `{"properties":{"scaleConfiguration":{"readySessionInstances":2}}}`, with(func(w *want) { w.ready = 2 })},
		{"ready 0 kept", `{"properties":{"scaleConfiguration":{"maxConcurrentSessions":8,"readySessionInstances":0}}}`, with(func(w *want) { w.max, w.ready = 8, 0 })},
		{"Timed without period", `{"properties":{"dynamicPoolConfiguration":{"lifecycleConfiguration":{"lifecycleType":"Timed"}}}}`, defaults},
		{"Timed with maxAlive: no default cooldown", `{"properties":{"dynamicPoolConfiguration":{"lifecycleConfiguration":{"lifecycleType":"Timed","maxAlivePeriodInSeconds":60}}}}`,
			with(func(w *want) { w.cooldown, w.maxAlive = nil, Int32(60) })},
		{"only OnContainerExit", `{"properties":{"containerType":"CustomContainer","dynamicPoolConfiguration":{"lifecycleConfiguration":{"lifecycleType":"OnContainerExit"}}}}`,
			with(func(w *want) {
				w.containerType, w.lifecycle, w.cooldown, w.maxAlive = ContainerTypeCustomContainer, LifecycleOnContainerExit, nil, Int32(3600)
			})},
		{"OnContainerExit with cooldown: no default maxAlive", `{"properties":{"dynamicPoolConfiguration":{"lifecycleConfiguration":{"lifecycleType":"OnContainerExit","cooldownPeriodInSeconds":400}}}}`,
			with(func(w *want) { w.lifecycle, w.cooldown = LifecycleOnContainerExit, Int32(400) })},
		{"empty lifecycleConfiguration", `{"properties":{"dynamicPoolConfiguration":{"lifecycleConfiguration":{}}}}`, defaults},
		{"legacy executionType + cooldown", `{"properties":{"dynamicPoolConfiguration":{"executionType":"Timed","cooldownPeriodInSeconds":900}}}`, with(func(w *want) { w.cooldown = Int32(900) })},
		{"legacy executionType in lower case", `{"properties":{"dynamicPoolConfiguration":{"executionType":"timed"}}}`, defaults},
		{"legacy cooldown alone", `{"properties":{"dynamicPoolConfiguration":{"cooldownPeriodInSeconds":1200}}}`, with(func(w *want) { w.cooldown = Int32(1200) })},
		{"legacy wins over lifecycleConfiguration beside it", `{"properties":{"dynamicPoolConfiguration":{"executionType":"Timed","cooldownPeriodInSeconds":700,"lifecycleConfiguration":{"lifecycleType":"OnContainerExit","maxAlivePeriodInSeconds":100}}}}`,
			with(func(w *want) { w.cooldown = Int32(700) })},
		{"network given", `{"properties":{"sessionNetworkConfiguration":{"status":"EgressEnabled"}}}`, with(func(w *want) { w.status = EgressEnabled })},
		{"empty network object", `{"properties":{"sessionNetworkConfiguration":{}}}`, defaults},
		{"Shell tutorial", specShellTutorial, with(func(w *want) { w.containerType, w.status, w.max, w.ready = ContainerTypeShell, EgressEnabled, 5, 5 })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := decodeNormalized(t, tt.body)
			pr := p.Properties
			lc := p.Lifecycle()
			got := want{
				pr.ContainerType, pr.PoolManagementType, pr.SessionNetworkConfiguration.Status,
				*pr.ScaleConfiguration.MaxConcurrentSessions, *pr.ScaleConfiguration.ReadySessionInstances,
				lc.LifecycleType, lc.CooldownPeriodInSeconds, lc.MaxAlivePeriodInSeconds,
			}
			if got.containerType != tt.want.containerType || got.poolManagementType != tt.want.poolManagementType || got.status != tt.want.status ||
				got.max != tt.want.max || got.ready != tt.want.ready || got.lifecycle != tt.want.lifecycle ||
				!eqInt32(got.cooldown, tt.want.cooldown) || !eqInt32(got.maxAlive, tt.want.maxAlive) {
				t.Errorf("Normalize(%s):\n got  %s\n want %s", tt.body, fmtWant(got.containerType, got.poolManagementType, got.status, got.max, got.ready, got.lifecycle, got.cooldown, got.maxAlive),
					fmtWant(tt.want.containerType, tt.want.poolManagementType, tt.want.status, tt.want.max, tt.want.ready, tt.want.lifecycle, tt.want.cooldown, tt.want.maxAlive))
			}
			if d := pr.DynamicPoolConfiguration; d.ExecutionType != "" || d.CooldownPeriodInSeconds != nil {
				t.Errorf("Normalize(%s) left the legacy lifecycle: %+v", tt.body, d)
			}
		})
	}
}

func TestNormalizeRegistryServer(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"registryServer becomes server", `{"properties":{"customContainerTemplate":{"registryCredentials":{"registryServer":"a.io"}}}}`, "a.io"},
		{"server kept", `{"properties":{"customContainerTemplate":{"registryCredentials":{"server":"b.io"}}}}`, "b.io"},
		{"registryServer wins (legacy PATCH merged into a stored server)", `{"properties":{"customContainerTemplate":{"registryCredentials":{"server":"old.io","registryServer":"new.io"}}}}`, "new.io"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := decodeNormalized(t, tt.body).Properties.CustomContainerTemplate.RegistryCredentials
			if rc.Server != tt.want || rc.RegistryServer != "" {
				t.Errorf("Normalize(%s).registryCredentials = server %q, registryServer %q; want %q, \"\"", tt.body, rc.Server, rc.RegistryServer, tt.want)
			}
		})
	}
}

func TestNormalizeMcpDefaults(t *testing.T) {
	p := decodeNormalized(t, specMcpShell)
	m := p.Properties.McpServerSettings
	if !*m.IsMcpServerEnabled || m.IsMcpServerAPIKeyDisabled == nil || *m.IsMcpServerAPIKeyDisabled {
		t.Errorf("Normalize(§9.3).mcpServerSettings = enabled %v, apiKeyDisabled %v; want true, false", *m.IsMcpServerEnabled, m.IsMcpServerAPIKeyDisabled)
	}
	if p := decodeNormalized(t, `{}`); p.Properties.McpServerSettings != nil {
		t.Errorf("Normalize({}).mcpServerSettings = %+v, want nil", p.Properties.McpServerSettings)
	}
}

func TestNormalizeIdempotent(t *testing.T) {
	for _, body := range []string{specTimedCustom, specOnContainerExit, specMcpShell, specCLICreate, specCLICustom, specShellTutorial, specLegacy, `{}`} {
		p := decodeNormalized(t, body)
		once := mustJSON(t, p)
		p.Normalize()
		if twice := mustJSON(t, p); twice != once {
			t.Errorf("Normalize twice on %.60s… differs:\n once  %s\n twice %s", body, once, twice)
		}
	}
	full := fullPool(t)
	before := mustJSON(t, full)
	full.Normalize()
	if after := mustJSON(t, full); after != before {
		t.Errorf("Normalize(full_pool.json) changed it; the fixture must be normalised:\n before %s\n after  %s", before, after)
	}
}

func eqInt32(a, b *int32) bool { return a == nil && b == nil || a != nil && b != nil && *a == *b }

func fmtWant(ct, pmt, st string, max, ready int32, lt string, cd, ma *int32) string {
	p := func(v *int32) any {
		if v == nil {
			return "nil"
		}
		return *v
	}
	return fmt.Sprintf("%s %s %s max=%d ready=%d %s cooldown=%v maxAlive=%v", ct, pmt, st, max, ready, lt, p(cd), p(ma))
}
