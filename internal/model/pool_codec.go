package model

import (
	"encoding/json"
	"strings"
)

// DecodeSessionPool decodes a PUT body in any version's shape. It does not
// normalise or validate; call Normalize and Validate.
func DecodeSessionPool(data []byte) (*SessionPool, error) {
	var p SessionPool
	if err := decodeJSON(data, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Normalize translates legacy shapes into the stored one, canonicalises enum
// casing, and fills defaults for what the request left out. It never fails:
// values it does not recognise are left for Validate to reject.
func (p *SessionPool) Normalize() {
	if p.Properties == nil {
		p.Properties = &PoolProperties{}
	}
	pr := p.Properties
	pr.ContainerType = canonical(pr.ContainerType, ContainerTypePythonLTS,
		ContainerTypeCustomContainer, ContainerTypePythonLTS, ContainerTypeNodeLTS, ContainerTypeShell, ContainerTypeGpuBase)
	pr.PoolManagementType = canonical(pr.PoolManagementType, "Dynamic", "Dynamic", "Manual")

	if pr.ScaleConfiguration == nil {
		pr.ScaleConfiguration = &ScaleConfiguration{}
	}
	sc := pr.ScaleConfiguration
	if sc.MaxConcurrentSessions == nil {
		sc.MaxConcurrentSessions = Int32(DefaultMaxConcurrentSessions)
	}
	if sc.ReadySessionInstances == nil {
		sc.ReadySessionInstances = Int32(min(DefaultReadySessionInstances, max(*sc.MaxConcurrentSessions, 0)))
	}

	if pr.DynamicPoolConfiguration == nil {
		pr.DynamicPoolConfiguration = &DynamicPoolConfiguration{}
	}
	dpc := pr.DynamicPoolConfiguration
	if dpc.ExecutionType != "" || dpc.CooldownPeriodInSeconds != nil {
		// Legacy shape: executionType "Timed" + cooldownPeriodInSeconds.
		// It wins over a lifecycleConfiguration beside it (a body in two
		// shapes at once).
		dpc.LifecycleConfiguration = &LifecycleConfiguration{LifecycleType: canonical(dpc.ExecutionType, LifecycleTimed, LifecycleTimed), CooldownPeriodInSeconds: dpc.CooldownPeriodInSeconds}
		dpc.ExecutionType, dpc.CooldownPeriodInSeconds = "", nil
	}
	if dpc.LifecycleConfiguration == nil {
		dpc.LifecycleConfiguration = &LifecycleConfiguration{}
	}
	lc := dpc.LifecycleConfiguration
	lc.LifecycleType = canonical(lc.LifecycleType, LifecycleTimed, LifecycleTimed, LifecycleOnContainerExit)
	switch {
	case lc.LifecycleType == LifecycleTimed && lc.CooldownPeriodInSeconds == nil && lc.MaxAlivePeriodInSeconds == nil:
		lc.CooldownPeriodInSeconds = Int32(DefaultCooldownSeconds)
	case lc.LifecycleType == LifecycleOnContainerExit && lc.MaxAlivePeriodInSeconds == nil && lc.CooldownPeriodInSeconds == nil:
		lc.MaxAlivePeriodInSeconds = Int32(DefaultMaxAliveSeconds)
	}

	if pr.SessionNetworkConfiguration == nil {
		pr.SessionNetworkConfiguration = &SessionNetworkConfiguration{}
	}
	pr.SessionNetworkConfiguration.Status = canonical(pr.SessionNetworkConfiguration.Status, EgressDisabled, EgressEnabled, EgressDisabled)

	if t := pr.CustomContainerTemplate; t != nil {
		if rc := t.RegistryCredentials; rc != nil {
			// registryServer (2024-02-02-preview) wins over a server
			// beside it, which can only come from the stored pool a
			// 2024-02-02-preview PATCH merged into.
			if rc.RegistryServer != "" {
				rc.Server = rc.RegistryServer
			}
			rc.RegistryServer = ""
			if strings.EqualFold(rc.Identity, "system") {
				rc.Identity = "system"
			}
		}
		for i := range t.Containers {
			for j := range t.Containers[i].Probes {
				pb := &t.Containers[i].Probes[j]
				pb.Type = canonical(pb.Type, "", "Liveness", "Startup")
				if pb.HTTPGet != nil {
					pb.HTTPGet.Scheme = canonical(pb.HTTPGet.Scheme, "", "HTTP", "HTTPS")
				}
			}
		}
	}
	for i := range pr.ManagedIdentitySettings {
		m := &pr.ManagedIdentitySettings[i]
		m.Lifecycle = canonical(m.Lifecycle, "None", "None", "Main", "Init", "All")
		if strings.EqualFold(m.Identity, "system") {
			m.Identity = "system"
		}
	}
	if p.Identity != nil {
		p.Identity.Type = canonicalIdentityType(p.Identity.Type)
	}
	if m := pr.McpServerSettings; m != nil {
		if m.IsMcpServerEnabled == nil {
			m.IsMcpServerEnabled = new(bool)
		}
		if m.IsMcpServerAPIKeyDisabled == nil {
			m.IsMcpServerAPIKeyDisabled = new(bool)
		}
	}
}

// canonical returns the member of allowed equal to v ignoring case, def when
// v is empty, and v itself when nothing matches (Validate rejects it).
func canonical(v, def string, allowed ...string) string {
	if v == "" {
		return def
	}
	for _, a := range allowed {
		if strings.EqualFold(a, v) {
			return a
		}
	}
	return v
}

// canonicalIdentityType accepts any casing, spacing and order of
// "SystemAssigned, UserAssigned" (the CLI sends a space).
func canonicalIdentityType(v string) string {
	parts := strings.Split(v, ",")
	var sys, user bool
	for _, part := range parts {
		part = strings.TrimSpace(part)
		switch {
		case strings.EqualFold(part, IdentitySystemAssigned):
			sys = true
		case strings.EqualFold(part, IdentityUserAssigned):
			user = true
		case strings.EqualFold(part, IdentityNone) && len(parts) == 1:
			return IdentityNone
		default:
			return v
		}
	}
	switch {
	case sys && user:
		return IdentitySystemAssignedUserAssigned
	case sys:
		return IdentitySystemAssigned
	case user:
		return IdentityUserAssigned
	}
	return v
}

// Clone returns a deep copy.
func (p *SessionPool) Clone() *SessionPool {
	data, err := json.Marshal(p)
	if err != nil {
		panic("model: marshal session pool: " + err.Error()) // every field is marshalable
	}
	var c SessionPool
	if err := json.Unmarshal(data, &c); err != nil {
		panic("model: unmarshal session pool: " + err.Error())
	}
	return &c
}

// ForVersion returns the pool as the given api-version shows it: fields the
// version does not define are dropped, legacy shapes are produced, and secret
// values are removed.
func (p *SessionPool) ForVersion(v APIVersion) *SessionPool {
	c := p.Clone()
	pr := c.Properties
	if pr == nil {
		return c
	}
	for i := range pr.Secrets {
		pr.Secrets[i].Value = ""
	}
	if !v.hasIdentity() {
		c.Identity = nil
		pr.ManagedIdentitySettings = nil
	}
	if !v.hasMCP() {
		pr.McpServerSettings = nil
	}
	if !v.hasTemplateStatus() {
		pr.TemplateUpdateStatus = nil
	}
	if v.legacyLifecycle() && pr.DynamicPoolConfiguration != nil {
		dpc := pr.DynamicPoolConfiguration
		if lc := dpc.LifecycleConfiguration; lc != nil && lc.LifecycleType == LifecycleTimed {
			dpc.ExecutionType, dpc.CooldownPeriodInSeconds = LifecycleTimed, lc.CooldownPeriodInSeconds
		}
		// An OnContainerExit pool has no legacy representation.
		dpc.LifecycleConfiguration = nil
		if dpc.ExecutionType == "" && dpc.CooldownPeriodInSeconds == nil {
			pr.DynamicPoolConfiguration = nil
		}
	}
	if t := pr.CustomContainerTemplate; t != nil {
		if rc := t.RegistryCredentials; rc != nil && v.registryServer() {
			rc.RegistryServer, rc.Server, rc.Identity = rc.Server, "", ""
		}
		if !v.hasProbes() {
			for i := range t.Containers {
				t.Containers[i].Probes = nil
			}
		}
	}
	return c
}

// KeepUnversioned copies into p the fields that version v cannot express
// from old, the pool p replaces, so that a PUT at an older version does not
// erase what a newer one set: identity and managedIdentitySettings (before
// 2024-10-02-preview), the registry identity (2024-02-02-preview), an
// OnContainerExit lifecycle (legacy versions, when the body states no
// lifecycle), mcpServerSettings and probes. Call it before Normalize, which
// fills defaults. What it copies is a deep copy: p shares nothing with old.
func (p *SessionPool) KeepUnversioned(old *SessionPool, v APIVersion) {
	if old == nil || old.Properties == nil {
		return
	}
	old = old.Clone()
	if p.Properties == nil {
		p.Properties = &PoolProperties{}
	}
	pr, op := p.Properties, old.Properties
	if !v.hasIdentity() {
		p.Identity = old.Identity
		pr.ManagedIdentitySettings = op.ManagedIdentitySettings
	}
	if !v.hasMCP() && pr.McpServerSettings == nil {
		pr.McpServerSettings = op.McpServerSettings
	}
	if v.legacyLifecycle() && !statesLifecycle(pr.DynamicPoolConfiguration) {
		// The legacy shape cannot say OnContainerExit; GET at a legacy
		// version shows such a pool without dynamicPoolConfiguration.
		if olc := old.Lifecycle(); olc != nil && olc.LifecycleType == LifecycleOnContainerExit {
			pr.DynamicPoolConfiguration = op.DynamicPoolConfiguration
		}
	}
	t, ot := pr.CustomContainerTemplate, op.CustomContainerTemplate
	if t == nil || ot == nil {
		return
	}
	if v.registryServer() && t.RegistryCredentials != nil && t.RegistryCredentials.Identity == "" && ot.RegistryCredentials != nil {
		t.RegistryCredentials.Identity = ot.RegistryCredentials.Identity
	}
	if !v.hasProbes() {
		// A pool runs one container: when both templates have one, it is
		// the same container even if it was renamed.
		single := len(t.Containers) == 1 && len(ot.Containers) == 1
		for i := range t.Containers {
			c := &t.Containers[i]
			if c.Probes != nil {
				continue
			}
			for _, oc := range ot.Containers {
				if single || strings.EqualFold(oc.Name, c.Name) {
					c.Probes = oc.Probes
					break
				}
			}
		}
	}
}

// statesLifecycle reports whether a request's dynamicPoolConfiguration says
// anything about the lifecycle, in either shape.
func statesLifecycle(d *DynamicPoolConfiguration) bool {
	return d != nil && (d.LifecycleConfiguration != nil || d.ExecutionType != "" || d.CooldownPeriodInSeconds != nil)
}
