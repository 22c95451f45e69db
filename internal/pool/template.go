package pool

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/tidepool-dev/tidepool/internal/model"
	"github.com/tidepool-dev/tidepool/internal/sandbox"
)

// Labels the controller puts on every sandbox it creates.
const (
	// LabelPool holds the pool id, lower-cased.
	LabelPool = "tidepool.pool"
	// LabelTemplate holds the template hash the sandbox was made from.
	LabelTemplate = "tidepool.template"
	// LabelKind holds the sandbox kind (sandbox.KindPython, ...).
	LabelKind = "tidepool.kind"
)

// Limits of built-in sandboxes (PythonLTS, NodeLTS, Shell), whose pools
// name none, and of custom containers that leave them out.
const (
	defaultBuiltinCPU    = 1.0
	defaultBuiltinMemory = 2 << 30
	defaultCustomCPU     = 0.25
	defaultCustomMemory  = 512 << 20
)

// poolConfig is what the controller needs of a pool, derived from its
// stored record. A poolConfig is never modified once built: an update
// builds a new one.
type poolConfig struct {
	// spec is the sandbox template; ID and Labels are set per sandbox.
	spec sandbox.Spec
	// hash identifies the session-relevant properties: sandboxes made
	// from another hash belong to an older template.
	hash string
	// initEnv and initSecrets are given to each sandbox's agent at claim.
	initEnv, initSecrets map[string]string
	max, ready           int
	// lifecycle is model.LifecycleTimed or model.LifecycleOnContainerExit.
	lifecycle string
	// cooldown (after the last activity) and maxAlive (after creation)
	// end a session; 0 means not used.
	cooldown, maxAlive time.Duration
	// identities are the managed identities code in a session may act
	// as (managedIdentitySettings with lifecycle Main), bound at claim.
	identities []sessionIdentity
	// registry, when set, is the identity image pulls authenticate as.
	registry *registryPull
}

// builtinDefaults are the server's settings for built-in container types.
type builtinDefaults struct {
	preImport []string          // modules warm Python kernels import
	images    map[string]string // sandbox kind → OCI image replacing the host rootfs
}

// newPoolConfig derives the configuration of p. It fails when the pool
// refers to something it lacks (a secret).
func newPoolConfig(poolID string, p *model.SessionPool, d builtinDefaults) (*poolConfig, error) {
	pr := p.Properties
	if pr == nil {
		pr = &model.PoolProperties{}
	}
	cfg := &poolConfig{max: model.DefaultMaxConcurrentSessions, ready: model.DefaultReadySessionInstances, lifecycle: model.LifecycleTimed}
	if sc := pr.ScaleConfiguration; sc != nil {
		if sc.MaxConcurrentSessions != nil {
			cfg.max = int(max(*sc.MaxConcurrentSessions, 0))
		}
		if sc.ReadySessionInstances != nil {
			cfg.ready = int(max(*sc.ReadySessionInstances, 0))
		}
	}
	cfg.ready = min(cfg.ready, cfg.max)
	if lc := p.Lifecycle(); lc != nil {
		if lc.LifecycleType != "" {
			cfg.lifecycle = lc.LifecycleType
		}
		if lc.CooldownPeriodInSeconds != nil {
			cfg.cooldown = time.Duration(*lc.CooldownPeriodInSeconds) * time.Second
		}
		if lc.MaxAlivePeriodInSeconds != nil {
			cfg.maxAlive = time.Duration(*lc.MaxAlivePeriodInSeconds) * time.Second
		}
	}
	if cfg.cooldown == 0 && cfg.maxAlive == 0 {
		if strings.EqualFold(cfg.lifecycle, model.LifecycleOnContainerExit) {
			cfg.maxAlive = model.DefaultMaxAliveSeconds * time.Second
		} else {
			cfg.cooldown = model.DefaultCooldownSeconds * time.Second
		}
	}

	secrets := map[string]string{}
	for _, s := range pr.Secrets {
		secrets[strings.ToLower(s.Name)] = s.Value
	}
	secret := func(name, what string) (string, error) {
		v, ok := secrets[strings.ToLower(name)]
		if !ok {
			return "", fmt.Errorf("%s refers to secret '%s', which the pool does not define", what, name)
		}
		return v, nil
	}

	spec := sandbox.Spec{CPU: defaultBuiltinCPU, MemoryBytes: defaultBuiltinMemory}
	switch pr.ContainerType {
	case model.ContainerTypeNodeLTS:
		spec.Kind = sandbox.KindNode
	case model.ContainerTypeShell:
		spec.Kind = sandbox.KindShell
	case model.ContainerTypeCustomContainer:
		spec.Kind = sandbox.KindCustom
		spec.CPU, spec.MemoryBytes = defaultCustomCPU, defaultCustomMemory
		t := pr.CustomContainerTemplate
		if t == nil || len(t.Containers) == 0 {
			return nil, fmt.Errorf("a CustomContainer pool needs customContainerTemplate.containers")
		}
		ctr := t.Containers[0]
		spec.Image = ctr.Image
		spec.Command, spec.Args = ctr.Command, ctr.Args
		spec.Env = map[string]string{}
		cfg.initEnv, cfg.initSecrets = map[string]string{}, map[string]string{}
		for _, e := range ctr.Env {
			if e.SecretRef != "" {
				v, err := secret(e.SecretRef, "env "+e.Name)
				if err != nil {
					return nil, err
				}
				spec.Env[e.Name] = v
				cfg.initSecrets[e.Name] = v
				continue
			}
			spec.Env[e.Name] = e.Value
			cfg.initEnv[e.Name] = e.Value
		}
		if r := ctr.Resources; r != nil {
			if r.CPU != nil {
				spec.CPU = *r.CPU
			}
			if r.Memory != "" {
				n, err := parseMemory(r.Memory)
				if err != nil {
					return nil, fmt.Errorf("container memory: %w", err)
				}
				spec.MemoryBytes = n
			}
		}
		if t.Ingress != nil && t.Ingress.TargetPort != nil {
			spec.TargetPort = int(*t.Ingress.TargetPort)
		}
		if rc := t.RegistryCredentials; rc != nil && rc.PasswordSecretRef != "" {
			pw, err := secret(rc.PasswordSecretRef, "registryCredentials.passwordSecretRef")
			if err != nil {
				return nil, err
			}
			spec.RegistryAuth = &sandbox.RegistryAuth{Username: rc.Username, Password: pw}
		} else if rc != nil && rc.Identity != "" {
			// Pulled with a bearer token for the identity, minted at each
			// start (tokens expire; the template hash must not change).
			cfg.registry = registryIdentity(p, rc.Identity, rc.Server)
		}
	default: // PythonLTS, and what Normalize leaves empty
		spec.Kind = sandbox.KindPython
		spec.PreImport = d.preImport
	}
	if spec.Kind != sandbox.KindCustom {
		spec.Image = d.images[spec.Kind] // "" keeps the host's read-only root
	}
	if n := pr.SessionNetworkConfiguration; n != nil {
		spec.EgressEnabled = strings.EqualFold(n.Status, model.EgressEnabled)
	}
	cfg.spec = spec

	// The hash covers what a sandbox is made from and what its agent is
	// given at claim; not the scale or lifecycle settings, which apply to
	// running sandboxes as they are.
	b, err := json.Marshal(struct {
		Spec        sandbox.Spec
		Env, Secret map[string]string
	}{spec, cfg.initEnv, cfg.initSecrets})
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	cfg.hash = hex.EncodeToString(sum[:8])
	cfg.identities = sessionIdentities(p)
	return cfg, nil
}

// specFor returns the spec of a new sandbox of cfg.
func (cfg *poolConfig) specFor(id, poolKey string) sandbox.Spec {
	s := cfg.spec
	s.ID = id
	s.Labels = map[string]string{LabelPool: poolKey, LabelTemplate: cfg.hash, LabelKind: cfg.spec.Kind}
	s.Env = maps.Clone(s.Env)
	return s
}

// expires is when a session of cfg ends if nothing happens.
func (cfg *poolConfig) expires(created, last time.Time) time.Time {
	var t time.Time
	if cfg.cooldown > 0 {
		t = last.Add(cfg.cooldown)
	}
	if cfg.maxAlive > 0 {
		if end := created.Add(cfg.maxAlive); t.IsZero() || end.Before(t) {
			t = end
		}
	}
	return t
}

// expiryReason says which limit ended a session of cfg created at
// created that expired at now: EndMaxAlive when its maximum lifetime has
// passed, EndCooldown otherwise.
func (cfg *poolConfig) expiryReason(created, now time.Time) string {
	if cfg.maxAlive > 0 && !now.Before(created.Add(cfg.maxAlive)) {
		return EndMaxAlive
	}
	return EndCooldown
}

// parseMemory reads a memory quantity: "0.5Gi", "512Mi", "250Mb", "1G",
// or a number of bytes.
func parseMemory(s string) (int64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   float64
	}{
		{"ki", 1 << 10}, {"mi", 1 << 20}, {"gi", 1 << 30}, {"ti", 1 << 40},
		{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
		{"k", 1e3}, {"m", 1e6}, {"g", 1e9}, {"t", 1e12},
	}
	mult := 1.0
	lower := strings.ToLower(t)
	for _, u := range units {
		if strings.HasSuffix(lower, u.suffix) {
			mult, t = u.mult, t[:len(t)-len(u.suffix)]
			break
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("invalid quantity %q", s)
	}
	return int64(v * mult), nil
}
