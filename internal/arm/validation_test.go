package arm_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestPoolValidation reaches each rule of model.Validate, the decoder and
// the handler's own checks through HTTP: each case changes a valid body and
// expects one error with its code and the JSON path of the field.
func TestPoolValidation(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.createGroup("rg", "eastus")
	a.createEnv("rg", "env")
	uami := "/subscriptions/" + testSub + "/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uami"
	manyTags := map[string]any{}
	for i := range 16 {
		manyTags[fmt.Sprintf("tag%02d", i)] = "v"
	}
	const (
		scale = "properties.scaleConfiguration."
		lc    = "properties.dynamicPoolConfiguration.lifecycleConfiguration"
		cct   = "properties.customContainerTemplate"
		c0    = cct + ".containers[0]"
		rc    = cct + ".registryCredentials"
		probe = c0 + ".probes[0]"
	)
	type set = map[string]any
	i := 0
	for _, tc := range []struct {
		name   string
		base   string // python, custom or full
		set    set    // path → value (remove deletes)
		raw    string // the body, instead of base and set
		pool   string // pool name; "checked" by default
		status int    // 400 by default
		code   string // InvalidParameter by default
		target string
	}{
		// Name.
		{name: "name too short", base: "python", pool: "ab", code: "InvalidResourceName", target: "name"},
		{name: "name with hyphen", base: "python", pool: "my-pool", code: "InvalidResourceName", target: "name"},
		{name: "name starts with digit", base: "python", pool: "1pool", code: "InvalidResourceName", target: "name"},
		{name: "name upper case", base: "python", pool: "MyPool", code: "InvalidResourceName", target: "name"},
		{name: "name too long", base: "python", pool: "p" + strings.Repeat("a", 63), code: "InvalidResourceName", target: "name"},
		// Envelope.
		{name: "location missing", base: "python", set: set{"location": remove}, target: "location"},
		{name: "location blank", base: "python", set: set{"location": "  "}, target: "location"},
		{name: "too many tags", base: "python", set: set{"tags": manyTags}, target: "tags"},
		{name: "tag name too long", base: "python", set: set{"tags": set{strings.Repeat("k", 513): "v"}}, target: "tags"},
		{name: "tag value too long", base: "python", set: set{"tags": set{"k": strings.Repeat("v", 257)}}, target: "tags"},
		{name: "tag name character", base: "python", set: set{"tags": set{"a/b": "v"}}, target: "tags"},
		{name: "tag name empty", base: "python", set: set{"tags": set{"": "v"}}, target: "tags"},
		// Enums.
		{name: "containerType unknown", base: "python", set: set{"properties.containerType": "JavaLTS"}, target: "properties.containerType"},
		{name: "containerType GpuBase", base: "python", set: set{"properties.containerType": "GpuBase"}, target: "properties.containerType"},
		{name: "poolManagementType Manual", base: "python", set: set{"properties.poolManagementType": "Manual"}, target: "properties.poolManagementType"},
		{name: "lifecycleType unknown", base: "python", set: set{lc + ".lifecycleType": "Forever"}, target: lc + ".lifecycleType"},
		{name: "network status unknown", base: "python", set: set{"properties.sessionNetworkConfiguration.status": "Open"}, target: "properties.sessionNetworkConfiguration.status"},
		{name: "identity type unknown", base: "python", set: set{"identity": set{"type": "Magic"}}, target: "identity.type"},
		{name: "probe type Readiness", base: "full", set: set{probe + ".type": "Readiness"}, target: probe + ".type"},
		{name: "probe scheme", base: "full", set: set{probe + ".httpGet.scheme": "FTP"}, target: probe + ".httpGet.scheme"},
		{name: "identity lifecycle Init", base: "full", set: set{"properties.managedIdentitySettings[0].lifecycle": "Init"}, target: "properties.managedIdentitySettings[0].lifecycle"},
		// Scale.
		{name: "max zero", base: "python", set: set{scale + "maxConcurrentSessions": 0, scale + "readySessionInstances": 0}, target: scale + "maxConcurrentSessions"},
		{name: "max over 600 built-in", base: "python", set: set{scale + "maxConcurrentSessions": 601}, target: scale + "maxConcurrentSessions"},
		{name: "max over custom bound", base: "custom", set: set{scale + "maxConcurrentSessions": 5001}, target: scale + "maxConcurrentSessions"},
		{name: "ready over max", base: "python", set: set{scale + "readySessionInstances": 11}, target: scale + "readySessionInstances"},
		{name: "ready negative", base: "python", set: set{scale + "readySessionInstances": -1}, target: scale + "readySessionInstances"},
		// Lifecycle.
		{name: "cooldown under 300", base: "python", set: set{lc + ".cooldownPeriodInSeconds": 299}, target: lc + ".cooldownPeriodInSeconds"},
		{name: "cooldown over 3600", base: "python", set: set{lc + ".cooldownPeriodInSeconds": 3601}, target: lc + ".cooldownPeriodInSeconds"},
		{name: "legacy cooldown out of range", base: "python", set: set{"properties.dynamicPoolConfiguration": set{"executionType": "Timed", "cooldownPeriodInSeconds": 100}}, target: lc + ".cooldownPeriodInSeconds"},
		{name: "maxAlive with Timed", base: "python", set: set{lc + ".maxAlivePeriodInSeconds": 600}, target: lc + ".maxAlivePeriodInSeconds"},
		{name: "cooldown with OnContainerExit", base: "custom", set: set{lc: set{"lifecycleType": "OnContainerExit", "cooldownPeriodInSeconds": 600, "maxAlivePeriodInSeconds": 600}}, target: lc + ".cooldownPeriodInSeconds"},
		{name: "OnContainerExit on PythonLTS", base: "python", set: set{lc: set{"lifecycleType": "OnContainerExit", "maxAlivePeriodInSeconds": 600}}, target: lc + ".lifecycleType"},
		{name: "maxAlive out of range", base: "custom", set: set{lc: set{"lifecycleType": "OnContainerExit", "maxAlivePeriodInSeconds": 10}}, target: lc + ".maxAlivePeriodInSeconds"},
		// Secrets.
		{name: "secret without name", base: "python", set: set{"properties.secrets": []any{set{"value": "x"}}}, target: "properties.secrets[0].name"},
		{name: "secret name invalid", base: "python", set: set{"properties.secrets": []any{set{"name": "API_KEY", "value": "x"}}}, target: "properties.secrets[0].name"},
		{name: "secret name repeated", base: "custom", set: set{"properties.secrets[1].name": "registrypassword", c0 + ".env[1].secretRef": "registrypassword"}, target: "properties.secrets[1].name"},
		// Container type and template.
		{name: "template on PythonLTS", base: "python", set: set{cct: set{"containers": []any{set{"image": "x"}}}}, target: cct},
		{name: "CustomContainer without environmentId", base: "custom", set: set{"properties.environmentId": remove}, target: "properties.environmentId"},
		{name: "CustomContainer without template", base: "custom", set: set{cct: remove}, target: cct},
		{name: "CustomContainer without containers", base: "custom", set: set{cct + ".containers": []any{}}, target: cct + ".containers"},
		{name: "CustomContainer with two containers", base: "custom", set: set{cct + ".containers": []any{set{"name": "a", "image": "x"}, set{"name": "b", "image": "y"}}}, target: cct + ".containers"},
		{name: "CustomContainer without image", base: "custom", set: set{c0 + ".image": remove}, target: c0 + ".image"},
		{name: "CustomContainer without targetPort", base: "custom", set: set{cct + ".ingress": remove}, target: cct + ".ingress.targetPort"},
		{name: "targetPort out of range", base: "custom", set: set{cct + ".ingress.targetPort": 70000}, target: cct + ".ingress.targetPort"},
		{name: "registry without server", base: "custom", set: set{rc + ".server": remove}, target: rc + ".server"},
		{name: "passwordSecretRef to a missing secret", base: "custom", set: set{rc + ".passwordSecretRef": "nosuchsecret"}, target: rc + ".passwordSecretRef"},
		{name: "passwordSecretRef without username", base: "custom", set: set{rc + ".username": remove}, target: rc + ".username"},
		{name: "env name invalid", base: "custom", set: set{c0 + ".env[0].name": "1BAD"}, target: c0 + ".env[0].name"},
		{name: "env name repeated", base: "custom", set: set{c0 + ".env[1].name": "MODE"}, target: c0 + ".env[1].name"},
		{name: "env value and secretRef", base: "custom", set: set{c0 + ".env[1].value": "x"}, target: c0 + ".env[1]"},
		{name: "secretRef to a missing secret", base: "custom", set: set{c0 + ".env[1].secretRef": "nosuchsecret"}, target: c0 + ".env[1].secretRef"},
		{name: "cpu under range", base: "custom", set: set{c0 + ".resources.cpu": 0.1}, target: c0 + ".resources.cpu"},
		{name: "cpu over range", base: "custom", set: set{c0 + ".resources.cpu": 4}, target: c0 + ".resources.cpu"},
		{name: "memory over range", base: "custom", set: set{c0 + ".resources.memory": "8Gi"}, target: c0 + ".resources.memory"},
		{name: "memory under range", base: "custom", set: set{c0 + ".resources.memory": "128Mi"}, target: c0 + ".resources.memory"},
		{name: "memory malformed", base: "custom", set: set{c0 + ".resources.memory": "lots"}, target: c0 + ".resources.memory"},
		// Probes.
		{name: "probe types repeated", base: "full", set: set{c0 + ".probes[1].type": "Liveness"}, target: c0 + ".probes[1].type"},
		{name: "probe with both actions", base: "full", set: set{probe + ".tcpSocket": set{"port": 80}}, target: probe},
		{name: "probe without action", base: "full", set: set{probe + ".httpGet": remove}, target: probe},
		{name: "probe initialDelaySeconds", base: "full", set: set{probe + ".initialDelaySeconds": 61}, target: probe + ".initialDelaySeconds"},
		{name: "probe periodSeconds", base: "full", set: set{probe + ".periodSeconds": 241}, target: probe + ".periodSeconds"},
		{name: "probe timeoutSeconds", base: "full", set: set{probe + ".timeoutSeconds": 0}, target: probe + ".timeoutSeconds"},
		{name: "probe port out of range", base: "full", set: set{probe + ".httpGet.port": 0}, target: probe + ".httpGet.port"},
		{name: "probe failureThreshold", base: "full", set: set{probe + ".failureThreshold": 11}, target: probe + ".failureThreshold"},
		{name: "probe successThreshold", base: "full", set: set{probe + ".successThreshold": 2}, target: probe + ".successThreshold"},
		{name: "probe terminationGracePeriod", base: "full", set: set{probe + ".terminationGracePeriodSeconds": 3601}, target: probe + ".terminationGracePeriodSeconds"},
		// Identities.
		{name: "UserAssigned without identities", base: "full", set: set{"identity": set{"type": "UserAssigned"}, "properties.managedIdentitySettings": remove, rc + ".identity": remove}, target: "identity.userAssignedIdentities"},
		{name: "SystemAssigned with user identities", base: "full", set: set{"identity.type": "SystemAssigned", "properties.managedIdentitySettings": remove}, target: "identity.userAssignedIdentities"},
		{name: "user identity not an identity id", base: "full", set: set{"identity.userAssignedIdentities": set{envID("rg", "env"): set{}}, "properties.managedIdentitySettings": remove}, target: "identity.userAssignedIdentities"},
		{name: "managedIdentitySettings system without system identity", base: "full", set: set{"identity": set{"type": "UserAssigned", "userAssignedIdentities": set{uami: set{}}}, rc + ".identity": remove, "properties.managedIdentitySettings[1]": set{"identity": uami, "lifecycle": "None"}}, target: "properties.managedIdentitySettings[0].identity"},
		{name: "managedIdentitySettings unknown user identity", base: "full", set: set{"properties.managedIdentitySettings[1].identity": strings.Replace(uami, "/uami", "/other", 1)}, target: "properties.managedIdentitySettings[1].identity"},
		{name: "registry identity system without system identity", base: "full", set: set{"identity": set{"type": "UserAssigned", "userAssignedIdentities": set{uami: set{}}}, "properties.managedIdentitySettings": []any{set{"identity": uami}}}, target: rc + ".identity"},
		{name: "registry identity not an id", base: "full", set: set{rc + ".identity": "myidentity"}, target: rc + ".identity"},
		// Environment.
		{name: "environmentId names a missing environment", base: "custom", set: set{"properties.environmentId": envID("rg", "nosuchenv")}, code: "ManagedEnvironmentNotFound", target: "properties.environmentId"},
		{name: "environmentId not an environment", base: "custom", set: set{"properties.environmentId": poolID("rg", "other")}, target: "properties.environmentId"},
		{name: "environmentId in another subscription", base: "custom", set: set{"properties.environmentId": strings.Replace(envID("rg", "env"), testSub, "11111111-2222-3333-4444-555555555555", 1)}, target: "properties.environmentId"},
		// Decoding.
		{name: "malformed JSON", raw: `{"location": "eastus", "properties": {`, code: "InvalidRequestContent"},
		{name: "not JSON", raw: `location=eastus`, code: "InvalidRequestContent"},
		{name: "array body", raw: `[{"location": "eastus"}]`, code: "InvalidRequestContent"},
		{name: "empty body", raw: ``, code: "InvalidRequestContent"},
		{name: "wrong type string", base: "python", set: set{"location": 5}, code: "InvalidRequestContent", target: "location"},
		{name: "wrong type number", base: "python", set: set{scale + "maxConcurrentSessions": "many"}, code: "InvalidRequestContent", target: scale + "maxConcurrentSessions"},
		{name: "wrong type object", base: "python", set: set{"properties.scaleConfiguration": []any{1}}, code: "InvalidRequestContent", target: "properties.scaleConfiguration"},
		{name: "wrong type array", base: "custom", set: set{"properties.secrets": set{"name": "x"}}, code: "InvalidRequestContent", target: "properties.secrets"},
		// Missing parents.
		{name: "missing resource group", base: "python", status: 404, code: "ResourceGroupNotFound"},
		{name: "missing subscription", base: "python", status: 404, code: "SubscriptionNotFound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := a.with(t)
			i++
			var body any = tc.raw
			if tc.base != "" {
				var m map[string]any
				switch tc.base {
				case "python":
					m = pythonBody(t, latest)
				case "custom":
					m = customBody(t, latest, "rg", "env")
				case "full":
					m = fullBody(t, "rg", "env")
				}
				for path, v := range tc.set {
					jset(m, path, v)
				}
				body = m
			}
			name := tc.pool
			if name == "" {
				name = fmt.Sprintf("checked%d", i) // one case's surprise does not spill into the next
			}
			path := poolPath("rg", name, latest)
			switch tc.name {
			case "missing resource group":
				path = poolPath("nosuchrg", name, latest)
			case "missing subscription":
				path = strings.Replace(path, testSub, "11111111-2222-3333-4444-555555555555", 1)
			}
			status, code := tc.status, tc.code
			if status == 0 {
				status = http.StatusBadRequest
			}
			if code == "" {
				code = "InvalidParameter"
			}
			r := a.do("PUT", path, body, nil)
			e := wantError(t, r, status, code, tc.target)
			if len(e.Details) > 0 {
				t.Errorf("%s: want a single error, got %d details", r, len(e.Details))
			}
			// Nothing was created.
			wantError(t, a.do("GET", poolPath("rg", name, latest), nil, nil), http.StatusNotFound, "ResourceNotFound", "")
		})
	}

	// Every base body is valid: the cases above fail for their change alone.
	for _, base := range []string{"python", "custom", "full"} {
		t.Run("valid "+base, func(t *testing.T) {
			a := a.with(t)
			m := pythonBody(t, latest)
			switch base {
			case "custom":
				m = customBody(t, latest, "rg", "env")
			case "full":
				m = fullBody(t, "rg", "env")
			}
			a.putPool("rg", "valid"+base, latest, m)
		})
	}

	for _, tc := range []struct {
		name    string
		lc      map[string]any
		targets []string
	}{
		{"Timed with maxAlive and no cooldown", map[string]any{"lifecycleType": "Timed", "maxAlivePeriodInSeconds": 600},
			[]string{lc + ".maxAlivePeriodInSeconds", lc + ".cooldownPeriodInSeconds"}},
		{"OnContainerExit with cooldown and no maxAlive", map[string]any{"lifecycleType": "OnContainerExit", "cooldownPeriodInSeconds": 600},
			[]string{lc + ".cooldownPeriodInSeconds", lc + ".maxAlivePeriodInSeconds"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := a.with(t)
			m := customBody(t, latest, "rg", "env")
			jset(m, lc, tc.lc)
			e := wantError(t, a.do("PUT", poolPath("rg", "lifecycle", latest), m, nil), 400, "InvalidParameter", tc.targets[0])
			var got []string
			for _, d := range e.Details {
				got = append(got, d.Target)
			}
			if strings.Join(got, " ") != strings.Join(tc.targets, " ") {
				t.Errorf("detail targets %v, want %v", got, tc.targets)
			}
		})
	}

	t.Run("several errors come as details", func(t *testing.T) {
		a := a.with(t)
		m := pythonBody(t, latest)
		jset(m, "location", remove)
		jset(m, scale+"maxConcurrentSessions", 601)
		e := wantError(t, a.do("PUT", poolPath("rg", "several", latest), m, nil), 400, "InvalidParameter", "location")
		var targets []string
		for _, d := range e.Details {
			targets = append(targets, d.Target)
		}
		if len(targets) != 2 || targets[0] != "location" || targets[1] != scale+"maxConcurrentSessions" {
			t.Errorf("detail targets %v, want [location %smaxConcurrentSessions]", targets, scale)
		}
	})
}

// TestPoolReplaceRules checks the rules of a PUT over an existing pool.
func TestPoolReplaceRules(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.createGroup("rg", "eastus")
	a.createEnv("rg", "env")
	a.createEnv("rg", "env2")
	a.putPool("rg", "python", latest, pythonBody(t, latest))
	a.putPool("rg", "custom", latest, customBody(t, latest, "rg", "env"))

	for _, tc := range []struct {
		name   string
		pool   string
		set    map[string]any
		status int
		code   string
		target string
	}{
		{"location change", "python", map[string]any{"location": "westus"}, 400, "InvalidResourceLocation", "location"},
		{"location same in another spelling", "python", map[string]any{"location": "East US"}, 200, "", ""},
		{"provisioningState mismatch", "python", map[string]any{"properties.provisioningState": "InProgress"}, 400, "InvalidParameter", "properties.provisioningState"},
		{"provisioningState equal", "python", map[string]any{"properties.provisioningState": "Succeeded"}, 200, "", ""},
		{"environmentId change", "custom", map[string]any{"properties.environmentId": envID("rg", "env2")}, 400, "InvalidParameter", "properties.environmentId"},
		{"environmentId in another casing", "custom", map[string]any{"properties.environmentId": strings.ToLower(envID("rg", "env"))}, 200, "", ""},
		{"environmentId with a trailing slash", "custom", map[string]any{"properties.environmentId": envID("rg", "env") + "/"}, 200, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := a.with(t)
			body := pythonBody(t, latest)
			if tc.pool == "custom" {
				body = customBody(t, latest, "rg", "env")
			}
			for p, v := range tc.set {
				jset(body, p, v)
			}
			r := a.do("PUT", poolPath("rg", tc.pool, latest), body, nil)
			if tc.code == "" {
				if r.Status != tc.status {
					t.Fatalf("%s: want %d", r, tc.status)
				}
				a.waitAsync(r.Header.Get("Azure-AsyncOperation"), "Succeeded")
				return
			}
			wantError(t, r, tc.status, tc.code, tc.target)
		})
	}
}

// TestBodyLimit: a body over arm.Config.MaxBodyBytes is refused with 413.
func TestBodyLimit(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, func(c *armConfig) { c.MaxBodyBytes = 64 << 10 })
	a.createGroup("rg", "eastus")
	big := pythonBody(t, latest)
	jset(big, "tags", map[string]any{"pad": strings.Repeat("x", 64<<10)})
	for _, tc := range []struct{ method, path string }{
		{"PUT", poolPath("rg", "big", latest)},
		{"PATCH", poolPath("rg", "small", latest)},
		{"PUT", groupPath("rg")},
		{"PUT", envPath("rg", "env")},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			a := a.with(t)
			if tc.method == "PATCH" {
				a.putPool("rg", "small", latest, pythonBody(t, latest))
			}
			wantError(t, a.do(tc.method, tc.path, big, nil), http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "")
		})
	}
	t.Run("default limit", func(t *testing.T) {
		a := newTestAPI(t)
		a.createGroup("rg", "eastus")
		huge := pythonBody(t, latest)
		jset(huge, "tags", map[string]any{"pad": strings.Repeat("x", 4<<20)})
		wantError(t, a.do("PUT", poolPath("rg", "huge", latest), huge, nil), http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "")
	})
}
