package model

import (
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits on session pools (docs/api.md gives their sources).
const (
	MaxSessionsBuiltIn = 600  // code-interpreter types (PythonLTS, NodeLTS, Shell)
	MaxSessionsCustom  = 5000 // tidepool's bound for CustomContainer pools
	MinCooldownSeconds = 300
	MaxCooldownSeconds = 3600
	MinMaxAliveSeconds = 60
	MaxMaxAliveSeconds = 86400 * 7
	MinCPU             = 0.25
	MaxCPU             = 2.0
	MinMemoryGiB       = 0.5
	MaxMemoryGiB       = 4.0
	MaxTags            = 15
)

var (
	poolNameSwagger = regexp.MustCompile(`^[a-z][a-z0-9]*$`)
	// poolNameCLI is the CLI's rule: lower-case letters, digits and single
	// hyphens, starting with a letter, not ending with a hyphen.
	poolNameCLI    = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)
	secretNameRule = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)
	envNameRule    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)
	memoryRule     = regexp.MustCompile(`^([0-9]*\.?[0-9]+)\s*(Gi|G|Mi|M|Gb|Mb)?$`)
)

// ValidatePoolName checks a session pool name: the API's rule
// (^[a-z][a-z0-9]*$, 3–63 characters), or with allowHyphens the CLI's rule
// (single hyphens allowed, at most 32 characters).
func ValidatePoolName(name string, allowHyphens bool) error {
	if allowHyphens {
		if len(name) < 1 || len(name) > 32 || strings.Contains(name, "--") || !poolNameCLI.MatchString(name) {
			return &FieldError{Code: "InvalidResourceName", Target: "name", Message: fmt.Sprintf("The session pool name '%s' is invalid: use 1 to 32 lower-case letters, digits and single hyphens, starting with a letter and ending with a letter or digit.", name)}
		}
		return nil
	}
	if len(name) < 3 || len(name) > 63 || !poolNameSwagger.MatchString(name) {
		return &FieldError{Code: "InvalidResourceName", Target: "name", Message: fmt.Sprintf("The session pool name '%s' is invalid: use 3 to 63 lower-case letters and digits, starting with a letter.", name)}
	}
	return nil
}

// ValidateTags checks ARM's tag limits.
func ValidateTags(tags map[string]string) error {
	var e errs
	validateTags(&e, tags)
	return e.err()
}

// validateTags checks tags in name order, so that errors come out the same
// way each time. Lengths count characters, not bytes.
func validateTags(e *errs, tags map[string]string) {
	if len(tags) > MaxTags {
		e.add("tags", "At most %d tags are allowed; the request has %d.", MaxTags, len(tags))
	}
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		v := tags[k]
		switch {
		case k == "":
			e.add("tags", "Tag names must not be empty.")
		case utf8.RuneCountInString(k) > 512:
			e.add("tags", "Tag name '%.40s…' is longer than 512 characters.", k)
		case strings.ContainsAny(k, "<>%&\\?/") || strings.ContainsFunc(k, isControl):
			e.add("tags", "Tag name '%s' contains a character that is not allowed (< > %% & \\ ? / or a control character).", k)
		}
		if utf8.RuneCountInString(v) > 256 {
			e.add("tags", "The value of tag '%.40s' is longer than 256 characters.", k)
		}
	}
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// Validate checks a normalised pool and returns Errors listing every problem.
// It never panics: on a pool Normalize has not seen, what Normalize would
// have filled in is reported as missing.
func (p *SessionPool) Validate() error {
	var e errs
	if strings.TrimSpace(p.Location) == "" {
		e.add("location", "The location property is required for this definition.")
	}
	validateTags(&e, p.Tags)
	pr := p.Properties
	if pr == nil {
		e.add("properties", "The properties object is required.")
		return e.err()
	}

	builtIn := pr.ContainerType != ContainerTypeCustomContainer
	switch pr.ContainerType {
	case ContainerTypeCustomContainer, ContainerTypePythonLTS, ContainerTypeNodeLTS, ContainerTypeShell:
	case ContainerTypeGpuBase:
		e.add("properties.containerType", "The container type 'GpuBase' is not supported by this server: it has no GPUs.")
	default:
		e.add("properties.containerType", "The container type '%s' is invalid. Allowed values: CustomContainer, PythonLTS, NodeLTS, Shell.", pr.ContainerType)
	}
	if pr.PoolManagementType != "Dynamic" {
		e.add("properties.poolManagementType", "The pool management type '%s' is invalid: it must be 'Dynamic'.", pr.PoolManagementType)
	}

	validateScale(&e, pr.ScaleConfiguration, builtIn, pr.ContainerType)
	validateLifecycle(&e, pr)
	names := validateSecrets(&e, pr.Secrets)

	var status string
	if n := pr.SessionNetworkConfiguration; n != nil {
		status = n.Status
	}
	if status != EgressEnabled && status != EgressDisabled {
		e.add("properties.sessionNetworkConfiguration.status", "The network status '%s' is invalid. Allowed values: EgressEnabled, EgressDisabled.", status)
	}

	if builtIn {
		if pr.CustomContainerTemplate != nil && len(pr.CustomContainerTemplate.Containers) > 0 {
			e.add("properties.customContainerTemplate", "customContainerTemplate is only allowed when containerType is CustomContainer.")
		}
	} else {
		if pr.EnvironmentID == nil || *pr.EnvironmentID == "" {
			e.add("properties.environmentId", "environmentId is required when containerType is CustomContainer.")
		}
		validateTemplate(&e, pr.CustomContainerTemplate, names)
	}
	validateIdentity(&e, p)
	return e.err()
}

func validateScale(e *errs, sc *ScaleConfiguration, builtIn bool, containerType string) {
	const path = "properties.scaleConfiguration"
	limit := int32(MaxSessionsCustom)
	if builtIn {
		limit = MaxSessionsBuiltIn
	}
	if sc == nil || sc.MaxConcurrentSessions == nil {
		e.add(path+".maxConcurrentSessions", "maxConcurrentSessions is required.")
		return
	}
	m := *sc.MaxConcurrentSessions
	if m < 1 || m > limit {
		e.add(path+".maxConcurrentSessions", "maxConcurrentSessions must be between 1 and %d for %s pools; got %d.", limit, containerType, m)
	}
	if sc.ReadySessionInstances == nil {
		e.add(path+".readySessionInstances", "readySessionInstances is required.")
	} else if r := *sc.ReadySessionInstances; r < 0 || r > m {
		e.add(path+".readySessionInstances", "readySessionInstances must be between 0 and maxConcurrentSessions (%d); got %d.", m, r)
	}
}

func validateLifecycle(e *errs, pr *PoolProperties) {
	const path = "properties.dynamicPoolConfiguration.lifecycleConfiguration"
	var lc *LifecycleConfiguration
	if d := pr.DynamicPoolConfiguration; d != nil {
		lc = d.LifecycleConfiguration
	}
	if lc == nil {
		e.add(path, "lifecycleConfiguration is required.")
		return
	}
	switch lc.LifecycleType {
	case LifecycleTimed:
		if lc.MaxAlivePeriodInSeconds != nil {
			e.add(path+".maxAlivePeriodInSeconds", "maxAlivePeriodInSeconds is only allowed when lifecycleType is OnContainerExit.")
		}
		if c := lc.CooldownPeriodInSeconds; c == nil {
			e.add(path+".cooldownPeriodInSeconds", "cooldownPeriodInSeconds is required when lifecycleType is Timed.")
		} else if *c < MinCooldownSeconds || *c > MaxCooldownSeconds {
			e.add(path+".cooldownPeriodInSeconds", "cooldownPeriodInSeconds must be between %d and %d; got %d.", MinCooldownSeconds, MaxCooldownSeconds, *c)
		}
	case LifecycleOnContainerExit:
		if lc.CooldownPeriodInSeconds != nil {
			e.add(path+".cooldownPeriodInSeconds", "cooldownPeriodInSeconds is only allowed when lifecycleType is Timed.")
		}
		if pr.ContainerType != ContainerTypeCustomContainer {
			e.add(path+".lifecycleType", "lifecycleType OnContainerExit is only allowed when containerType is CustomContainer.")
		}
		if m := lc.MaxAlivePeriodInSeconds; m == nil {
			e.add(path+".maxAlivePeriodInSeconds", "maxAlivePeriodInSeconds is required when lifecycleType is OnContainerExit.")
		} else if *m < MinMaxAliveSeconds || *m > MaxMaxAliveSeconds {
			e.add(path+".maxAlivePeriodInSeconds", "maxAlivePeriodInSeconds must be between %d and %d; got %d.", MinMaxAliveSeconds, MaxMaxAliveSeconds, *m)
		}
	default:
		e.add(path+".lifecycleType", "The lifecycle type '%s' is invalid. Allowed values: Timed, OnContainerExit.", lc.LifecycleType)
	}
}

// validateSecrets checks the secrets and returns their names.
func validateSecrets(e *errs, secrets []Secret) map[string]bool {
	names := make(map[string]bool, len(secrets))
	for i, s := range secrets {
		target := fmt.Sprintf("properties.secrets[%d]", i)
		switch {
		case s.Name == "":
			e.add(target+".name", "A secret name is required.")
		case len(s.Name) > 253 || !secretNameRule.MatchString(s.Name):
			e.add(target+".name", "The secret name '%s' is invalid: use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters.", s.Name)
		case names[s.Name]:
			e.add(target+".name", "The secret name '%s' appears more than once.", s.Name)
		}
		names[s.Name] = true
	}
	return names
}

func validateTemplate(e *errs, t *CustomContainerTemplate, secrets map[string]bool) {
	const path = "properties.customContainerTemplate"
	if t == nil {
		e.add(path, "customContainerTemplate is required when containerType is CustomContainer.")
		return
	}
	if len(t.Containers) != 1 {
		e.add(path+".containers", "A session pool runs exactly one container; got %d.", len(t.Containers))
	}
	for i := range t.Containers {
		validateContainer(e, fmt.Sprintf("%s.containers[%d]", path, i), &t.Containers[i], secrets)
	}
	if t.Ingress == nil || t.Ingress.TargetPort == nil {
		e.add(path+".ingress.targetPort", "ingress.targetPort is required when containerType is CustomContainer.")
	} else if p := *t.Ingress.TargetPort; p < 1 || p > 65535 {
		e.add(path+".ingress.targetPort", "targetPort must be between 1 and 65535; got %d.", p)
	}
	if rc := t.RegistryCredentials; rc != nil {
		if rc.Server == "" {
			e.add(path+".registryCredentials.server", "registryCredentials.server is required when registry credentials are given.")
		}
		if rc.PasswordSecretRef != "" && !secrets[rc.PasswordSecretRef] {
			e.add(path+".registryCredentials.passwordSecretRef", "passwordSecretRef '%s' does not name a secret of the pool.", rc.PasswordSecretRef)
		}
		if rc.PasswordSecretRef != "" && rc.Username == "" {
			e.add(path+".registryCredentials.username", "registryCredentials.username is required with passwordSecretRef.")
		}
	}
}

func validateContainer(e *errs, path string, c *SessionContainer, secrets map[string]bool) {
	if strings.TrimSpace(c.Image) == "" {
		e.add(path+".image", "The container image is required.")
	}
	envs := map[string]bool{}
	for i, ev := range c.Env {
		target := fmt.Sprintf("%s.env[%d]", path, i)
		switch {
		case !envNameRule.MatchString(ev.Name):
			e.add(target+".name", "The environment variable name '%s' is invalid.", ev.Name)
		case envs[ev.Name]:
			e.add(target+".name", "The environment variable '%s' appears more than once.", ev.Name)
		}
		envs[ev.Name] = true
		if ev.SecretRef != "" && ev.Value != "" {
			e.add(target, "An environment variable takes value or secretRef, not both.")
		}
		if ev.SecretRef != "" && !secrets[ev.SecretRef] {
			e.add(target+".secretRef", "secretRef '%s' does not name a secret of the pool.", ev.SecretRef)
		}
	}
	if r := c.Resources; r != nil {
		if r.CPU != nil && (*r.CPU < MinCPU || *r.CPU > MaxCPU || math.IsNaN(*r.CPU)) {
			e.add(path+".resources.cpu", "cpu must be between %.2f and %.1f cores; got %g.", MinCPU, MaxCPU, *r.CPU)
		}
		if r.Memory != "" {
			if gib, ok := ParseMemoryGiB(r.Memory); !ok || gib < MinMemoryGiB || gib > MaxMemoryGiB {
				e.add(path+".resources.memory", "memory must be between %.1fGi and %.1fGi (for example \"0.5Gi\"); got '%s'.", MinMemoryGiB, MaxMemoryGiB, r.Memory)
			}
		}
	}
	types := map[string]bool{}
	for i := range c.Probes {
		validateProbe(e, fmt.Sprintf("%s.probes[%d]", path, i), &c.Probes[i], types)
	}
}

// ParseMemoryGiB parses a memory quantity ("0.5Gi", "512Mi", "250Mb", "1")
// into GiB. A bare number is GiB.
func ParseMemoryGiB(s string) (float64, bool) {
	m := memoryRule.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, false
	}
	switch m[2] {
	case "Mi", "M", "Mb":
		n /= 1024
	}
	return n, true
}

func validateProbe(e *errs, path string, pb *SessionProbe, types map[string]bool) {
	switch pb.Type {
	case "Liveness", "Startup":
		if types[pb.Type] {
			e.add(path+".type", "Only one %s probe is allowed per container.", pb.Type)
		}
		types[pb.Type] = true
	default:
		e.add(path+".type", "The probe type '%s' is invalid. Allowed values: Liveness, Startup.", pb.Type)
	}
	if (pb.HTTPGet == nil) == (pb.TCPSocket == nil) {
		e.add(path, "A probe takes exactly one of httpGet and tcpSocket.")
	}
	checkPort := func(target string, port *int32) {
		if port == nil || *port < 1 || *port > 65535 {
			e.add(target, "The probe port must be between 1 and 65535.")
		}
	}
	if h := pb.HTTPGet; h != nil {
		checkPort(path+".httpGet.port", h.Port)
		if h.Scheme != "" && h.Scheme != "HTTP" && h.Scheme != "HTTPS" {
			e.add(path+".httpGet.scheme", "The probe scheme '%s' is invalid. Allowed values: HTTP, HTTPS.", h.Scheme)
		}
	}
	if t := pb.TCPSocket; t != nil {
		checkPort(path+".tcpSocket.port", t.Port)
	}
	rng := func(name string, v *int32, lo, hi int32) {
		if v != nil && (*v < lo || *v > hi) {
			e.add(path+"."+name, "%s must be between %d and %d; got %d.", name, lo, hi, *v)
		}
	}
	rng("failureThreshold", pb.FailureThreshold, 1, 10)
	rng("initialDelaySeconds", pb.InitialDelaySeconds, 1, 60)
	rng("periodSeconds", pb.PeriodSeconds, 1, 240)
	rng("successThreshold", pb.SuccessThreshold, 1, 1)
	rng("timeoutSeconds", pb.TimeoutSeconds, 1, 240)
	if g := pb.TerminationGracePeriodSeconds; g != nil && (*g < 0 || *g > 3600) {
		e.add(path+".terminationGracePeriodSeconds", "terminationGracePeriodSeconds must be between 0 and 3600; got %d.", *g)
	}
}

func validateIdentity(e *errs, p *SessionPool) {
	system, user := false, map[string]bool{}
	if id := p.Identity; id != nil {
		switch id.Type {
		case IdentityNone:
		case IdentitySystemAssigned, IdentityUserAssigned, IdentitySystemAssignedUserAssigned:
			system = id.Type != IdentityUserAssigned
		default:
			e.add("identity.type", "The identity type '%s' is invalid. Allowed values: None, SystemAssigned, UserAssigned, 'SystemAssigned,UserAssigned'.", id.Type)
		}
		wantsUser := strings.Contains(id.Type, IdentityUserAssigned)
		if wantsUser && len(id.UserAssignedIdentities) == 0 {
			e.add("identity.userAssignedIdentities", "userAssignedIdentities is required when the identity type includes UserAssigned.")
		}
		if !wantsUser && len(id.UserAssignedIdentities) > 0 {
			e.add("identity.userAssignedIdentities", "userAssignedIdentities is only allowed when the identity type includes UserAssigned.")
		}
		for _, k := range slices.Sorted(maps.Keys(id.UserAssignedIdentities)) {
			if !isUserIdentityID(k) {
				e.add("identity.userAssignedIdentities", "'%s' is not the id of a Microsoft.ManagedIdentity/userAssignedIdentities resource.", k)
			}
			user[userIdentityKey(k)] = true
		}
	}
	for i, m := range p.Properties.ManagedIdentitySettings {
		target := fmt.Sprintf("properties.managedIdentitySettings[%d]", i)
		switch {
		case m.Identity == "system":
			if !system {
				e.add(target+".identity", "The identity 'system' needs a system-assigned identity on the pool (identity.type SystemAssigned).")
			}
		case !user[userIdentityKey(m.Identity)]:
			e.add(target+".identity", "The identity '%s' is not among the pool's user-assigned identities.", m.Identity)
		}
		if m.Lifecycle != "None" && m.Lifecycle != "Main" {
			e.add(target+".lifecycle", "The identity lifecycle '%s' is invalid for session pools. Allowed values: None, Main.", m.Lifecycle)
		}
	}
	// The registry identity is 'system' or a user-assigned identity's id.
	// Unlike managedIdentitySettings, it is not checked against the pool's
	// identity: 2024-08-02-preview has registryCredentials.identity but no
	// identity to list it in, and the published example
	// (SessionPools_LifecycleTimed_CreateOrUpdate, from which every SDK's
	// sample is generated) names a user-assigned identity on a
	// SystemAssigned pool. Only a contradiction is an error: 'system' on a
	// pool whose stated identity excludes SystemAssigned.
	if rc := p.registryCredentials(); rc != nil {
		const target = "properties.customContainerTemplate.registryCredentials.identity"
		switch {
		case rc.Identity == "":
		case rc.Identity == "system":
			if p.Identity != nil && !system {
				e.add(target, "The registry identity 'system' needs a system-assigned identity on the pool (identity.type is '%s').", p.Identity.Type)
			}
		case !isUserIdentityID(rc.Identity):
			e.add(target, "The registry identity '%s' is neither 'system' nor the id of a Microsoft.ManagedIdentity/userAssignedIdentities resource.", rc.Identity)
		}
	}
}

// isUserIdentityID reports whether s is the id of one user-assigned identity.
func isUserIdentityID(s string) bool {
	rid, err := ParseResourceID(s)
	return err == nil && rid.ResourceGroup != "" && !rid.IsCollection() && len(rid.Types) == 1 &&
		strings.EqualFold(rid.ResourceType(), "Microsoft.ManagedIdentity/userAssignedIdentities")
}

// userIdentityKey is the form in which two references to one user-assigned
// identity compare equal: ids are case-insensitive and "//" or a trailing
// slash does not make another id.
func userIdentityKey(s string) string {
	if rid, err := ParseResourceID(s); err == nil {
		s = rid.String()
	}
	return strings.ToLower(s)
}

func (p *SessionPool) registryCredentials() *RegistryCredentials {
	if p.Properties == nil {
		return nil
	}
	if t := p.Properties.CustomContainerTemplate; t != nil {
		return t.RegistryCredentials
	}
	return nil
}
