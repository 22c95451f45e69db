package model

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// TestForVersionGolden fixes the wire shape of a full pool at each version.
func TestForVersionGolden(t *testing.T) {
	full := fullPool(t)
	for _, v := range SessionPoolVersions {
		t.Run(string(v), func(t *testing.T) {
			got := mustJSON(t, full.ForVersion(v)) + "\n"
			path := filepath.Join("testdata", "golden", string(v)+".json")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("ForVersion(%s) differs from %s (go test -update rewrites it):\n got:\n%s\n want:\n%s", v, path, got, want)
			}
		})
	}
}

// TestForVersionShape checks, field by field, the matrix of
// management-api.md §2.1 on the rendered JSON.
func TestForVersionShape(t *testing.T) {
	full := fullPool(t)
	onExit := onContainerExitPool(t)
	for _, v := range SessionPoolVersions {
		t.Run(string(v), func(t *testing.T) {
			rendered := full.ForVersion(v)
			data := mustJSON(t, rendered)
			if strings.Contains(data, "s3cr3t") {
				t.Errorf("ForVersion(%s) shows a secret value:\n%s", v, data)
			}
			var doc map[string]any
			if err := json.Unmarshal([]byte(data), &doc); err != nil {
				t.Fatal(err)
			}
			props := doc["properties"].(map[string]any)
			for _, s := range props["secrets"].([]any) {
				if _, ok := s.(map[string]any)["value"]; ok {
					t.Errorf("ForVersion(%s).properties.secrets has a value: %v", v, s)
				}
			}
			dpc := props["dynamicPoolConfiguration"].(map[string]any)
			rc := props["customContainerTemplate"].(map[string]any)["registryCredentials"].(map[string]any)
			c0 := props["customContainerTemplate"].(map[string]any)["containers"].([]any)[0].(map[string]any)

			legacy := v < V20250101
			check := func(what string, present, want bool) {
				t.Helper()
				if present != want {
					t.Errorf("ForVersion(%s): %s present = %v, want %v", v, what, present, want)
				}
			}
			has := func(m map[string]any, k string) bool { _, ok := m[k]; return ok }
			check("dynamicPoolConfiguration.executionType", has(dpc, "executionType"), legacy)
			check("dynamicPoolConfiguration.cooldownPeriodInSeconds", has(dpc, "cooldownPeriodInSeconds"), legacy)
			check("dynamicPoolConfiguration.lifecycleConfiguration", has(dpc, "lifecycleConfiguration"), !legacy)
			if legacy && (dpc["executionType"] != "Timed" || dpc["cooldownPeriodInSeconds"] != 600.0) {
				t.Errorf("ForVersion(%s).dynamicPoolConfiguration = %v, want executionType Timed, cooldown 600", v, dpc)
			}
			check("registryCredentials.registryServer", has(rc, "registryServer"), v == V20240202Preview)
			check("registryCredentials.server", has(rc, "server"), v != V20240202Preview)
			check("registryCredentials.identity", has(rc, "identity"), v != V20240202Preview)
			identity := v >= V20241002Preview
			check("identity", has(doc, "identity"), identity)
			check("properties.managedIdentitySettings", has(props, "managedIdentitySettings"), identity)
			probes := v == V20250202Preview || v == V20251002Preview
			check("containers[0].probes", has(c0, "probes"), probes)
			check("properties.mcpServerSettings", has(props, "mcpServerSettings"), v == V20250202Preview || v == V20251002Preview)
			check("properties.templateUpdateStatus", has(props, "templateUpdateStatus"), v == V20251002Preview)
			for _, k := range []string{"environmentId", "containerType", "poolManagementType", "nodeCount", "scaleConfiguration", "secrets", "sessionNetworkConfiguration", "poolManagementEndpoint", "provisioningState", "provisioningError"} {
				check("properties."+k, has(props, k), true)
			}
			for _, k := range []string{"id", "name", "type", "location", "tags", "systemData"} {
				check(k, has(doc, k), true)
			}

			// An OnContainerExit pool has no legacy representation.
			od := mustJSON(t, onExit.ForVersion(v))
			check("OnContainerExit pool's dynamicPoolConfiguration", strings.Contains(od, "dynamicPoolConfiguration"), !legacy)
			check("OnContainerExit pool's executionType", strings.Contains(od, "executionType"), false)
		})
	}
	if got := mustJSON(t, full); !strings.Contains(got, "s3cr3t-registry-value") {
		t.Errorf("ForVersion changed the pool it renders: secret values gone from %s", got)
	}
}

func TestForVersionOddPools(t *testing.T) {
	for _, p := range []*SessionPool{
		{},
		{Properties: &PoolProperties{}},
		{Properties: &PoolProperties{DynamicPoolConfiguration: &DynamicPoolConfiguration{}, CustomContainerTemplate: &CustomContainerTemplate{}}},
		{Properties: &PoolProperties{DynamicPoolConfiguration: &DynamicPoolConfiguration{LifecycleConfiguration: &LifecycleConfiguration{LifecycleType: "Timed"}}}},
	} {
		for _, v := range slices.Concat(SessionPoolVersions, []APIVersion{"", "1999-01-01"}) {
			_ = p.ForVersion(v) // must not panic
		}
	}
}

// unexpressible returns a copy of p without what version v cannot express.
func unexpressible(p *SessionPool, v APIVersion) *SessionPool {
	c := p.Clone()
	pr := c.Properties
	if !v.hasIdentity() {
		c.Identity, pr.ManagedIdentitySettings = nil, nil
	}
	if !v.hasMCP() {
		pr.McpServerSettings = nil
	}
	if !v.hasTemplateStatus() {
		pr.TemplateUpdateStatus = nil
	}
	if t := pr.CustomContainerTemplate; t != nil {
		if v.registryServer() && t.RegistryCredentials != nil {
			t.RegistryCredentials.Identity = ""
		}
		if !v.hasProbes() {
			for i := range t.Containers {
				t.Containers[i].Probes = nil
			}
		}
	}
	return c
}

// TestCrossVersion: a pool created with one version reads back correctly
// with any other. The body is what a client of vIn would send (the pool as
// vIn shows it); reading at vOut must show everything both versions express.
func TestCrossVersion(t *testing.T) {
	full := fullPool(t)
	for _, vIn := range SessionPoolVersions {
		body := mustJSON(t, full.ForVersion(vIn))
		created := decodeNormalized(t, body)
		if err := created.Validate(); err != nil {
			t.Errorf("Validate() of the pool created at %s = %v, want nil", vIn, err)
		}
		common := unexpressible(full, vIn)
		for _, vOut := range SessionPoolVersions {
			t.Run(string(vIn)+"→"+string(vOut), func(t *testing.T) {
				got := mustJSON(t, created.ForVersion(vOut))
				want := mustJSON(t, common.ForVersion(vOut))
				if got != want {
					t.Errorf("created at %s, ForVersion(%s) differs (got ≠ want): %q", vIn, vOut, jsonDiff(got, want))
				}
			})
		}
	}
}

// TestKeepUnversionedRoundTrip: GET then PUT of the same body at any version
// changes nothing that a newer version set.
func TestKeepUnversionedRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		pool func(testing.TB) *SessionPool
	}{{"Timed", fullPool}, {"OnContainerExit", onContainerExitPool}} {
		for _, v := range SessionPoolVersions {
			t.Run(tc.name+"/"+string(v), func(t *testing.T) {
				stored := tc.pool(t)
				storedJSON := mustJSON(t, stored)
				body := mustJSON(t, stored.ForVersion(v))
				p, err := DecodeSessionPool([]byte(body))
				if err != nil {
					t.Fatal(err)
				}
				p.KeepUnversioned(stored, v)
				p.Normalize()
				if err := p.Validate(); err != nil {
					t.Errorf("Validate() after PUT at %s = %v, want nil", v, err)
				}
				// templateUpdateStatus is read-only server state, set by the
				// API layer like provisioningState.
				p.Properties.TemplateUpdateStatus = stored.Properties.TemplateUpdateStatus
				got, want := mustJSON(t, p.ForVersion(V20251002Preview)), mustJSON(t, stored.ForVersion(V20251002Preview))
				if got != want {
					t.Errorf("GET+PUT at %s lost something: %q", v, jsonDiff(got, want))
				}
				// p shares nothing with stored.
				if p.Identity != nil {
					p.Identity.Type = "changed"
				}
				for i := range p.Properties.ManagedIdentitySettings {
					p.Properties.ManagedIdentitySettings[i].Lifecycle = "changed"
				}
				if m := p.Properties.McpServerSettings; m != nil {
					*m.IsMcpServerEnabled = false
				}
				p.Lifecycle().LifecycleType = "changed"
				if pb := p.Properties.CustomContainerTemplate.Containers[0].Probes; len(pb) > 0 {
					pb[0].Type = "changed"
				}
				if after := mustJSON(t, stored); after != storedJSON {
					t.Errorf("KeepUnversioned(stored, %s) made p share memory with stored: stored changed to\n%s", v, after)
				}
			})
		}
	}
}

func TestKeepUnversioned(t *testing.T) {
	tests := []struct {
		name  string
		v     APIVersion
		body  string
		check func(t *testing.T, p *SessionPool)
	}{
		{"identity and MSI kept before 2024-10-02-preview", V20240802Preview, `{"location":"eastus","identity":{"type":"None"},"properties":{"containerType":"CustomContainer"}}`, func(t *testing.T, p *SessionPool) {
			if p.Identity == nil || p.Identity.Type != IdentitySystemAssignedUserAssigned || len(p.Properties.ManagedIdentitySettings) != 2 {
				t.Errorf("identity %+v, MSI %+v; want the stored ones", p.Identity, p.Properties.ManagedIdentitySettings)
			}
		}},
		{"identity replaced from 2024-10-02-preview", V20241002Preview, `{"identity":{"type":"None"}}`, func(t *testing.T, p *SessionPool) {
			if p.Identity.Type != IdentityNone || p.Properties.ManagedIdentitySettings != nil {
				t.Errorf("identity %+v, MSI %+v; want None and none", p.Identity, p.Properties.ManagedIdentitySettings)
			}
		}},
		{"mcp kept at 2026-01-01", V20260101, `{}`, func(t *testing.T, p *SessionPool) {
			if m := p.Properties.McpServerSettings; m == nil || !*m.IsMcpServerEnabled {
				t.Errorf("mcpServerSettings = %+v, want the stored ones", m)
			}
		}},
		{"mcp removed at 2025-10-02-preview when absent", V20251002Preview, `{}`, func(t *testing.T, p *SessionPool) {
			if m := p.Properties.McpServerSettings; m != nil {
				t.Errorf("mcpServerSettings = %+v, want nil", m)
			}
		}},
		{"OnContainerExit kept at a legacy version without lifecycle", V20241002Preview, `{"properties":{}}`, func(t *testing.T, p *SessionPool) {
			if lc := p.Lifecycle(); lc.LifecycleType != LifecycleOnContainerExit || *lc.MaxAlivePeriodInSeconds != 7200 {
				t.Errorf("lifecycle = %+v, want the stored OnContainerExit/7200", lc)
			}
		}},
		{"OnContainerExit kept at a legacy version with an empty dynamicPoolConfiguration", V20240202Preview, `{"properties":{"dynamicPoolConfiguration":{}}}`, func(t *testing.T, p *SessionPool) {
			if lc := p.Lifecycle(); lc.LifecycleType != LifecycleOnContainerExit {
				t.Errorf("lifecycle = %+v, want the stored OnContainerExit", lc)
			}
		}},
		{"legacy executionType replaces OnContainerExit", V20240802Preview, `{"properties":{"dynamicPoolConfiguration":{"executionType":"Timed","cooldownPeriodInSeconds":900}}}`, func(t *testing.T, p *SessionPool) {
			if lc := p.Lifecycle(); lc.LifecycleType != LifecycleTimed || *lc.CooldownPeriodInSeconds != 900 || lc.MaxAlivePeriodInSeconds != nil {
				t.Errorf("lifecycle = %+v, want Timed/900", lc)
			}
		}},
		{"OnContainerExit not kept at 2025-01-01", V20250101, `{"properties":{}}`, func(t *testing.T, p *SessionPool) {
			if lc := p.Lifecycle(); lc.LifecycleType != LifecycleTimed {
				t.Errorf("lifecycle = %+v, want the default Timed", lc)
			}
		}},
		{"probes kept at 2025-07-01", V20250701, `{"properties":{"customContainerTemplate":{"containers":[{"name":"TESTINITCONTAINER","image":"x"}]}}}`, func(t *testing.T, p *SessionPool) {
			if n := len(p.Properties.CustomContainerTemplate.Containers[0].Probes); n != 2 {
				t.Errorf("len(probes) = %d, want the stored 2", n)
			}
		}},
		{"probes kept for a renamed single container", V20250101, `{"properties":{"customContainerTemplate":{"containers":[{"name":"renamed","image":"x"}]}}}`, func(t *testing.T, p *SessionPool) {
			if n := len(p.Properties.CustomContainerTemplate.Containers[0].Probes); n != 2 {
				t.Errorf("len(probes) = %d, want the stored 2", n)
			}
		}},
		{"probes replaced at 2025-02-02-preview", V20250202Preview, `{"properties":{"customContainerTemplate":{"containers":[{"name":"testinitcontainer","image":"x"}]}}}`, func(t *testing.T, p *SessionPool) {
			if pb := p.Properties.CustomContainerTemplate.Containers[0].Probes; pb != nil {
				t.Errorf("probes = %+v, want none", pb)
			}
		}},
		{"registry identity kept at 2024-02-02-preview", V20240202Preview, `{"properties":{"customContainerTemplate":{"registryCredentials":{"registryServer":"test.azurecr.io"}}}}`, func(t *testing.T, p *SessionPool) {
			if rc := p.Properties.CustomContainerTemplate.RegistryCredentials; rc.Identity != uami || rc.Server != "test.azurecr.io" {
				t.Errorf("registryCredentials = %+v, want server test.azurecr.io, the stored identity", rc)
			}
		}},
		{"registry credentials removed at 2024-02-02-preview", V20240202Preview, `{"properties":{"customContainerTemplate":{}}}`, func(t *testing.T, p *SessionPool) {
			if rc := p.Properties.CustomContainerTemplate.RegistryCredentials; rc != nil {
				t.Errorf("registryCredentials = %+v, want nil", rc)
			}
		}},
		{"registry identity replaced at 2024-08-02-preview", V20240802Preview, `{"properties":{"customContainerTemplate":{"registryCredentials":{"server":"test.azurecr.io"}}}}`, func(t *testing.T, p *SessionPool) {
			if rc := p.Properties.CustomContainerTemplate.RegistryCredentials; rc.Identity != "" {
				t.Errorf("registryCredentials.identity = %q, want none", rc.Identity)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := DecodeSessionPool([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			p.KeepUnversioned(onContainerExitPool(t), tt.v)
			p.Normalize()
			tt.check(t, p)
		})
	}
	t.Run("nil old", func(t *testing.T) {
		p := &SessionPool{}
		p.KeepUnversioned(nil, V20240202Preview)
		p.KeepUnversioned(&SessionPool{}, V20240202Preview)
		if p.Properties != nil {
			t.Errorf("KeepUnversioned(nil) set properties %+v", p.Properties)
		}
	})
}

func TestAPIVersions(t *testing.T) {
	for _, v := range SessionPoolVersions {
		if got, ok := ParseSessionPoolVersion(strings.ToUpper(string(v))); !ok || got != v {
			t.Errorf("ParseSessionPoolVersion(%q) = %q, %v; want %q, true", strings.ToUpper(string(v)), got, ok, v)
		}
		if !WellFormedAPIVersion(string(v)) {
			t.Errorf("WellFormedAPIVersion(%q) = false, want true", v)
		}
		if got, want := v.PatchesTags(), v >= V20250101; got != want {
			t.Errorf("%s.PatchesTags() = %v, want %v", v, got, want)
		}
	}
	for i := 1; i < len(SessionPoolVersions); i++ {
		if SessionPoolVersions[i-1] >= SessionPoolVersions[i] {
			t.Errorf("SessionPoolVersions not oldest first at %d: %s >= %s", i, SessionPoolVersions[i-1], SessionPoolVersions[i])
		}
	}
	if _, ok := ParseSessionPoolVersion("2023-05-01"); ok {
		t.Error("ParseSessionPoolVersion(2023-05-01) = ok, want not supported")
	}
	for s, want := range map[string]bool{
		"2016-03-30": true, "2025-10-02-PREVIEW": true, "2020-01-01-privatepreview": true, "2020-01-01-rc": true,
		"2020-1-01": false, "2020-01-01-beta2": false, "latest": false, "": false,
	} {
		if got := WellFormedAPIVersion(s); got != want {
			t.Errorf("WellFormedAPIVersion(%q) = %v, want %v", s, got, want)
		}
	}
}
