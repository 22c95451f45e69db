package cli

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

// poolVersion is the session pool api-version the CLI speaks: the newest
// preview, which has every field the flags set (OnContainerExit, Shell).
const poolVersion = "2025-10-02-preview"

// envVersion is the managed environment api-version.
const envVersion = "2025-01-01"

// defaultImage is the image of a CustomContainer pool without --image.
const defaultImage = "mcr.microsoft.com/k8se/quickstart:latest"

// poolRef names one session pool.
type poolRef struct{ sub, rg, name string }

func (r poolRef) path() string {
	return "/subscriptions/" + r.sub + "/resourceGroups/" + url.PathEscape(r.rg) + "/providers/Microsoft.App/sessionPools/" + url.PathEscape(r.name)
}

// poolFlags are the flags of sessionpool create and update.
type poolFlags struct {
	name, rg, location                                        string
	containerType, lifecycleType, cooldown, maxAlive          string
	maxSessions, readySessions                                int
	networkStatus, environment, image, containerName          string
	cpu, memory, targetPort, probeYAML                        string
	registryServer, registryUser, registryPass, registryIdent string
	secrets, envVars, command, args, miUser, ids              []string
	miSystem, noWait                                          bool
}

// enum checks a choice case-insensitively and returns its canonical form.
func enum(flag, v string, choices ...string) (string, error) {
	for _, c := range choices {
		if strings.EqualFold(c, v) {
			return c, nil
		}
	}
	return "", usageErr("argument %s: invalid choice: '%s' (choose from '%s')", flag, v, strings.Join(choices, "', '"))
}

// validationErr is one of az's validation messages (exit code 1).
func validationErr(format string, args ...any) error {
	return &cliError{msg: fmt.Sprintf(format, args...), code: 1}
}

var poolNameRule = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)

// validatePoolName is az's validate_container_app_name for session pools.
func validatePoolName(name string) error {
	l := strings.ToLower(name)
	if len(name) < 1 || len(name) > 32 || !poolNameRule.MatchString(l) || strings.Contains(l, "--") {
		return validationErr("Invalid SessionPool name %s. A name must consist of lower case alphanumeric characters or '-', start with a letter, end with an alphanumeric character, cannot have '--', and must be less than 32 characters.", name)
	}
	return nil
}

// parseSecrets reads --secrets key=value ... into az's secret objects.
func parseSecrets(list []string) ([]any, error) {
	out := []any{}
	seen := map[string]bool{}
	for _, s := range list {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, validationErr(`Secrets must be in format "<key>=<value> <key>=<value> ..." or "<key>=<keyvaultref:keyvaulturl,identityref:indentityId> ...".`)
		}
		if seen[k] {
			return nil, validationErr(`Duplicate secret "%s" found, secret names must be unique.`, k)
		}
		seen[k] = true
		sec := map[string]any{"name": k, "value": v, "keyVaultUrl": "", "identity": ""}
		if kv, ok := strings.CutPrefix(v, "keyvaultref:"); ok {
			sec["value"] = nil
			url, ident, _ := strings.Cut(kv, ",")
			sec["keyVaultUrl"] = url
			if id, ok := strings.CutPrefix(ident, "identityref:"); ok {
				sec["identity"] = id
			}
		}
		out = append(out, sec)
	}
	return out, nil
}

// parseEnvVars reads --env-vars k=v k=secretref:s ...
func parseEnvVars(list []string) ([]any, error) {
	out := []any{}
	seen := map[string]bool{}
	for _, s := range list {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, validationErr(`Environment variables must be in the format "<key>=<value> <key>=secretref:<value> ...".`)
		}
		if seen[k] {
			return nil, validationErr("Duplicate environment variable %s found, environment variable names must be unique.", k)
		}
		seen[k] = true
		if ref, ok := strings.CutPrefix(v, "secretref:"); ok {
			out = append(out, map[string]any{"name": k, "secretRef": ref})
		} else {
			out = append(out, map[string]any{"name": k, "value": v})
		}
	}
	return out, nil
}

func parseCPU(s string) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, validationErr(`Usage error: --cpu must be a number eg. "0.5"`)
	}
	return f, nil
}

func parseMemory(s string) (string, error) {
	num := s
	if len(s) > 2 && strings.EqualFold(s[len(s)-2:], "gi") {
		num = s[:len(s)-2]
	}
	if _, err := strconv.ParseFloat(num, 64); err != nil {
		return "", validationErr(`Usage error: --memory must be a number ending with "Gi"`)
	}
	return num + "Gi", nil
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil {
		return 0, usageErr("argument --target-port: invalid int value: '%s'", s)
	}
	if p < 1 || p > 65535 {
		return 0, validationErr("Port must be in range [1, 65535].")
	}
	return p, nil
}

func parsePeriod(flag, s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, usageErr("argument %s: invalid int value: '%s'", flag, s)
	}
	return n, nil
}

// readProbes reads --probe-yaml: a YAML object with a list under "probes".
func readProbes(path string) ([]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, validationErr("read --probe-yaml: %v", err)
	}
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, validationErr("read --probe-yaml %s: %v", path, err)
	}
	m, ok := doc.(map[string]any)
	if !ok {
		return nil, validationErr("The probe YAML file must be a dictionary containing a 'probes' key.")
	}
	p, ok := m["probes"]
	if !ok {
		return nil, validationErr("The probe YAML file must be a dictionary containing a 'probes' key.")
	}
	if p == nil {
		return []any{}, nil
	}
	l, ok := p.([]any)
	if !ok {
		return nil, validationErr("The 'probes' key in the probe YAML file must be a list of probes.")
	}
	return l, nil
}

// registrySecretName is az's name for the secret holding a registry password.
func registrySecretName(server, user string) string {
	s := strings.ToLower(strings.ReplaceAll(strings.ReplaceAll(server, ".", ""), ":", "-"))
	u := regexp.MustCompile(`[^a-z0-9-]`).ReplaceAllString(strings.ToLower(user), "-")
	return s + "-" + u
}

// storeRegistryPassword adds the password to secrets (or checks a
// secretref:) and returns the secret's name.
func (in *inv) storeRegistryPassword(secrets []any, server, user, pass string) ([]any, string, error) {
	if ref, ok := strings.CutPrefix(pass, "secretref:"); ok {
		for _, s := range secrets {
			if s.(map[string]any)["name"] == ref {
				return secrets, ref, nil
			}
		}
		return nil, "", validationErr("Registry password secret with name '%s' does not exist. Add the secret using --secrets", ref)
	}
	name := registrySecretName(server, user)
	for _, s := range secrets {
		m := s.(map[string]any)
		if m["name"] == name {
			if m["value"] != pass {
				return nil, "", validationErr(`Found secret with name "%s" but value does not equal the supplied registry password.`, name)
			}
			return secrets, name, nil
		}
	}
	in.warn(`Adding registry password as a secret with name "%s"`, name)
	return append(secrets, map[string]any{"name": name, "value": pass, "keyVaultUrl": "", "identity": ""}), name, nil
}

// identityID expands a bare user-assigned identity name.
func identityID(sub, rg, v string) string {
	if strings.HasPrefix(v, "/") {
		return v
	}
	return "/subscriptions/" + sub + "/resourceGroups/" + rg + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" + v
}

// identities builds identity and managedIdentitySettings from the flags.
func identities(f *poolFlags, sub, rg string) (map[string]any, []any) {
	system := f.miSystem || strings.EqualFold(f.registryIdent, "system")
	var users []string
	for _, u := range f.miUser {
		users = append(users, identityID(sub, rg, u))
	}
	if f.registryIdent != "" && !strings.EqualFold(f.registryIdent, "system") {
		id := identityID(sub, rg, f.registryIdent)
		if !containsFold(users, id) {
			users = append(users, id)
		}
	}
	if !system && len(users) == 0 {
		return nil, nil
	}
	ident := map[string]any{}
	var settings []any
	switch {
	case system && len(users) > 0:
		ident["type"] = "SystemAssigned, UserAssigned"
	case system:
		ident["type"] = "SystemAssigned"
	default:
		ident["type"] = "UserAssigned"
	}
	if f.miSystem {
		settings = append(settings, map[string]any{"identity": "system", "lifecycle": "Main"})
	}
	if len(users) > 0 {
		ua := map[string]any{}
		for _, u := range users {
			ua[u] = map[string]any{}
		}
		ident["userAssignedIdentities"] = ua
		for _, u := range f.miUser {
			settings = append(settings, map[string]any{"identity": strings.ToLower(identityID(sub, rg, u)), "lifecycle": "Main"})
		}
	}
	return ident, settings
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// checkLocation is az's check against the provider's sessionPools locations.
func (in *inv) checkLocation(ctx context.Context, c *armClient, loc string) error {
	p, err := c.get(ctx, "/subscriptions/"+c.sub.ID+"/providers/Microsoft.App", providersVersion)
	if err != nil {
		return err
	}
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, " ", "")) }
	types, _ := dig(p, "resourceTypes").([]any)
	for _, t := range types {
		if !strings.EqualFold(str(dig(t, "resourceType")), "sessionPools") {
			continue
		}
		locs, _ := dig(t, "locations").([]any)
		for _, l := range locs {
			if norm(str(l)) == norm(loc) {
				return nil
			}
		}
	}
	return validationErr("Location '%s' is not currently supported. To get list of supported locations, run `az provider show -n Microsoft.App --query \"resourceTypes[?resourceType=='sessionPools'].locations\"`", loc)
}

// dig follows a dotted path through decoded JSON.
func dig(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// addPoolFlags defines the flags create and update share.
func addPoolFlags(cmd *cobra.Command, f *poolFlags, create bool) {
	fl := cmd.Flags()
	fl.StringVarP(&f.name, "name", "n", "", "The session pool name.")
	fl.StringVarP(&f.rg, "resource-group", "g", "", "Name of resource group. You can configure the default group using 'tidepool configure --defaults group=<name>'.")
	fl.StringVarP(&f.location, "location", "l", "", "Location of the resource. You can configure the default location using 'tidepool configure --defaults location=<location>'.")
	fl.StringVar(&f.lifecycleType, "lifecycle-type", "", "The lifecycle type of the session pool: Timed, OnContainerExit."+ifs(create, " Default: Timed."))
	fl.StringVar(&f.cooldown, "cooldown-period", "", "Period (in seconds), after which the session will be deleted, this is only applicable for lifecycle type 'Timed'"+ifs(create, ", default=300")+".")
	fl.StringVar(&f.maxAlive, "max-alive-period", "", "Period (in seconds), before the session be deleted if its container was not exited earlier, this is only applicable for lifecycle type 'OnContainerExit'"+ifs(create, ", default=3600")+".")
	fl.IntVar(&f.maxSessions, "max-sessions", 10, "Max count of sessions can be run at the same time."+ifs(create, " Default: 10."))
	fl.IntVar(&f.readySessions, "ready-sessions", 5, "The number of sessions that will be ready in the session pool all the time."+ifs(create, " Default: 5."))
	fl.StringVar(&f.networkStatus, "network-status", "", "Egress is enabled for the Sessions or not: EgressEnabled, EgressDisabled."+ifs(create, " Default: EgressDisabled."))
	fl.StringVar(&f.environment, "environment", "", "Name or resource ID of the container app's environment (CustomContainer only).")
	fl.StringVarP(&f.image, "image", "i", "", "Container image, e.g. publisher/image-name:tag.")
	fl.StringVar(&f.containerName, "container-name", "", "Name of the container. Default: the pool name lower-cased.")
	fl.StringVar(&f.cpu, "cpu", "", "Required CPU in cores from 0.25 - 2.0, e.g. 0.5")
	fl.StringVar(&f.memory, "memory", "", "Required memory from 0.5 - 4.0 ending with \"Gi\", e.g. 1.0Gi")
	fl.StringVar(&f.targetPort, "target-port", "", "The session port used for ingress traffic (required for CustomContainer).")
	fl.StringVar(&f.probeYAML, "probe-yaml", "", "A YAML file with a 'probes' list for the container.")
	fl.StringVar(&f.registryServer, "registry-server", "", "The container registry server hostname, e.g. myregistry.azurecr.io.")
	fl.StringVar(&f.registryUser, "registry-username", "", "The username to log in to the container registry.")
	fl.StringVar(&f.registryPass, "registry-password", "", "The password to log in to the container registry; secretref:NAME names a secret of --secrets.")
	fl.StringVar(&f.registryIdent, "registry-identity", "", "The managed identity to pull images with: a user-assigned identity resource ID, or 'system'.")
	fl.BoolVar(&f.miSystem, "mi-system-assigned", false, "Assign a system-assigned managed identity.")
	multi(cmd, &f.miUser, "mi-user-assigned", "", "Space-separated user identities (names or resource IDs) to assign.")
	multi(cmd, &f.secrets, "secrets", "s", "A list of secret(s) for the session pool. Space-separated values in 'key=value' format. Empty string to clear existing values.")
	multi(cmd, &f.envVars, "env-vars", "", "A list of environment variable(s) for the container. Space-separated values in 'key=value' format, 'key=secretref:secretname' for a secret. Empty string to clear existing values.")
	multi(cmd, &f.command, "command", "", "A list of supported commands on the container that will executed during startup. Space-separated values e.g. \"/bin/queue\" \"mycommand\". Empty string to clear existing values.")
	multi(cmd, &f.args, "args", "", "A list of container startup command argument(s). Space-separated values e.g. \"-c\" \"mycommand\". Empty string to clear existing values.")
	fl.BoolVar(&f.noWait, "no-wait", false, "Do not wait for the long-running operation to finish.")
	_ = cmd.RegisterFlagCompletionFunc("network-status", cobra.FixedCompletions([]string{"EgressEnabled", "EgressDisabled"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("lifecycle-type", cobra.FixedCompletions([]string{"Timed", "OnContainerExit"}, cobra.ShellCompDirectiveNoFileComp))
	if create {
		fl.StringVar(&f.containerType, "container-type", "PythonLTS", "The pool type: CustomContainer, NodeLTS, PythonLTS, Shell.")
		_ = cmd.RegisterFlagCompletionFunc("container-type", cobra.FixedCompletions([]string{"CustomContainer", "NodeLTS", "PythonLTS", "Shell"}, cobra.ShellCompDirectiveNoFileComp))
	} else {
		multi(cmd, &f.ids, "ids", "", "One or more resource IDs (space-delimited). If provided, no other 'Resource Id' arguments should be specified.")
	}
}

func ifs(b bool, s string) string {
	if b {
		return s
	}
	return ""
}

// environmentID expands a bare environment name.
func environmentID(sub, rg, env string) string {
	if strings.HasPrefix(env, "/") {
		return env
	}
	return "/subscriptions/" + sub + "/resourceGroups/" + rg + "/providers/Microsoft.App/managedEnvironments/" + env
}

// createPool is az containerapp sessionpool create.
func createPool(ctx context.Context, in *inv, f *poolFlags) (any, error) {
	changed := in.cmd.Flags().Changed
	if err := required(f.name, "--name/-n"); err != nil {
		return nil, err
	}
	rg, err := in.resourceGroup(f.rg)
	if err != nil {
		return nil, err
	}
	ctype, err := enum("--container-type", f.containerType, "CustomContainer", "NodeLTS", "PythonLTS", "Shell")
	if err != nil {
		return nil, err
	}
	lifecycle := "Timed"
	if f.lifecycleType != "" {
		if lifecycle, err = enum("--lifecycle-type", f.lifecycleType, "Timed", "OnContainerExit"); err != nil {
			return nil, err
		}
	}
	network := "EgressDisabled"
	if f.networkStatus != "" {
		if network, err = enum("--network-status", f.networkStatus, "EgressDisabled", "EgressEnabled"); err != nil {
			return nil, err
		}
	}
	// 1. name
	if err := validatePoolName(f.name); err != nil {
		return nil, err
	}
	c, err := in.arm()
	if err != nil {
		return nil, err
	}
	// 2. location
	loc, err := in.location(f.location)
	if err != nil {
		return nil, err
	}
	if loc == "" {
		g, err := c.get(ctx, groupPath(c.sub.ID, rg), groupsVersion)
		if err != nil {
			return nil, err
		}
		loc = str(dig(g, "location"))
	}
	if err := in.checkLocation(ctx, c, loc); err != nil {
		return nil, err
	}
	// 3. container type against environment and lifecycle
	custom := ctype == "CustomContainer"
	switch {
	case custom && f.environment == "":
		return nil, validationErr("Must provide environment name when container type is CustomContainer")
	case !custom && f.environment != "":
		return nil, validationErr("Do not pass environment name when using container type %s", ctype)
	case !custom && lifecycle != "Timed":
		return nil, validationErr("The container type %s only supports lifecycle type 'Timed'.", ctype)
	case !custom && f.maxAlive != "":
		return nil, validationErr("The container type %s does not support --max-alive-period.", ctype)
	}
	// 4. lifecycle periods
	switch {
	case f.maxAlive != "" && f.cooldown != "":
		return nil, validationErr("--max-alive-period and --cooldown-period cannot be set at the same time.")
	case f.maxAlive != "" && lifecycle != "OnContainerExit":
		return nil, validationErr("--max-alive-period can only be set when --lifecycle-type is 'OnContainerExit'.")
	case f.cooldown != "" && lifecycle != "Timed":
		return nil, validationErr("--cooldown-period can only be set when --lifecycle-type is 'Timed'.")
	}
	lc := map[string]any{"lifecycleType": lifecycle, "maxAlivePeriodInSeconds": nil, "cooldownPeriodInSeconds": nil}
	if lifecycle == "Timed" {
		n := 300
		if f.cooldown != "" {
			if n, err = parsePeriod("--cooldown-period", f.cooldown); err != nil {
				return nil, err
			}
		}
		lc["cooldownPeriodInSeconds"] = n
	} else {
		n := 3600
		if f.maxAlive != "" {
			if n, err = parsePeriod("--max-alive-period", f.maxAlive); err != nil {
				return nil, err
			}
		}
		lc["maxAlivePeriodInSeconds"] = n
	}
	// 5. custom container details
	if custom && f.targetPort == "" {
		return nil, validationErr("Required argument 'target_port' is not specified.")
	}
	if !custom {
		for _, fl := range []string{"image", "cpu", "memory", "target-port", "env-vars", "command", "args", "container-name", "probe-yaml", "registry-server"} {
			if changed(fl) {
				in.warn("--%s is ignored: it applies to CustomContainer pools only.", fl)
			}
		}
	}
	secrets, err := parseSecrets(f.secrets)
	if err != nil {
		return nil, err
	}
	props := map[string]any{
		"poolManagementType":          "Dynamic",
		"environmentId":               nil,
		"containerType":               ctype,
		"customContainerTemplate":     nil,
		"secrets":                     nil,
		"dynamicPoolConfiguration":    map[string]any{"lifecycleConfiguration": lc},
		"sessionNetworkConfiguration": map[string]any{"status": network},
		"scaleConfiguration":          map[string]any{"maxConcurrentSessions": f.maxSessions, "readySessionInstances": f.readySessions},
	}
	if len(f.secrets) > 0 {
		props["secrets"] = secrets
	}
	if custom {
		envID := environmentID(c.sub.ID, rg, f.environment)
		props["environmentId"] = envID
		if _, err := c.get(ctx, envID, envVersion); err != nil && !isNotFound(err) {
			return nil, err
		}
		tmpl, secs, err := in.containerTemplate(f, nil, secrets, c.sub.ID, rg)
		if err != nil {
			return nil, err
		}
		props["customContainerTemplate"] = tmpl
		if len(secs) > 0 {
			props["secrets"] = secs
		}
	}
	body := map[string]any{"location": loc, "properties": props}
	if ident, settings := identities(f, c.sub.ID, rg); ident != nil {
		body["identity"] = ident
		if len(settings) > 0 {
			props["managedIdentitySettings"] = settings
		}
	}
	ref := poolRef{c.sub.ID, rg, f.name}
	res, err := c.put(ctx, http.MethodPut, ref.path(), poolVersion, body, f.noWait)
	if err != nil {
		return nil, err
	}
	in.assignCreator(ctx, c, ref.path())
	return res, nil
}

// containerTemplate builds (create: old == nil) or edits (update) the
// customContainerTemplate, and returns it with the secrets.
func (in *inv) containerTemplate(f *poolFlags, old map[string]any, secrets []any, sub, rg string) (map[string]any, []any, error) {
	changed := in.cmd.Flags().Changed
	tmpl := old
	var container map[string]any
	if tmpl == nil {
		name := f.containerName
		if name == "" {
			name = strings.ToLower(f.name)
		}
		image := f.image
		if image == "" {
			image = defaultImage
		}
		container = map[string]any{"name": name, "image": image}
		tmpl = map[string]any{"containers": []any{container}}
	} else {
		containers, _ := tmpl["containers"].([]any)
		switch {
		case len(containers) > 1 && f.containerName == "":
			return nil, nil, validationErr("Must provide container name if multiple containers provided")
		case f.containerName != "":
			for _, c := range containers {
				if m, ok := c.(map[string]any); ok && strings.EqualFold(str(m["name"]), f.containerName) {
					container = m
				}
			}
			if container == nil {
				if len(containers) > 1 {
					return nil, nil, validationErr("Cannot find the corresponding container for container name %s", f.containerName)
				}
				if len(containers) == 1 {
					container, _ = containers[0].(map[string]any)
					container["name"] = f.containerName
				}
			}
		case len(containers) == 1:
			container, _ = containers[0].(map[string]any)
		}
		if container == nil {
			container = map[string]any{"name": strings.ToLower(f.name)}
			tmpl["containers"] = []any{container}
		}
		if f.image != "" {
			container["image"] = f.image
		}
	}
	if changed("env-vars") {
		if len(f.envVars) == 1 && f.envVars[0] == "" {
			delete(container, "env")
		} else {
			env, err := parseEnvVars(f.envVars)
			if err != nil {
				return nil, nil, err
			}
			container["env"] = env
		}
	}
	setList := func(flag, key string, v []string) {
		if !changed(flag) {
			return
		}
		if len(v) == 1 && v[0] == "" {
			delete(container, key)
			return
		}
		l := make([]any, len(v))
		for i, s := range v {
			l[i] = s
		}
		container[key] = l
	}
	setList("command", "command", f.command)
	setList("args", "args", f.args)
	if f.cpu != "" || f.memory != "" {
		res, _ := container["resources"].(map[string]any)
		if res == nil {
			res = map[string]any{}
		}
		if f.cpu != "" {
			cpu, err := parseCPU(f.cpu)
			if err != nil {
				return nil, nil, err
			}
			res["cpu"] = cpu
		}
		if f.memory != "" {
			mem, err := parseMemory(f.memory)
			if err != nil {
				return nil, nil, err
			}
			res["memory"] = mem
		}
		container["resources"] = res
	}
	if f.probeYAML != "" {
		probes, err := readProbes(f.probeYAML)
		if err != nil {
			return nil, nil, err
		}
		container["probes"] = probes
	}
	if f.targetPort != "" {
		port, err := parsePort(f.targetPort)
		if err != nil {
			return nil, nil, err
		}
		ing, _ := tmpl["ingress"].(map[string]any)
		if ing == nil {
			ing = map[string]any{}
		}
		ing["targetPort"] = port
		tmpl["ingress"] = ing
	}
	if f.registryServer != "" || f.registryUser != "" || f.registryPass != "" || f.registryIdent != "" {
		creds, _ := tmpl["registryCredentials"].(map[string]any)
		if creds == nil {
			if old != nil && f.registryServer == "" {
				return nil, nil, validationErr("The existing registry credentials are empty. \nPlease provide --registry-server, --registry-username, --registry-password or --registry-identity to update the registry credentials. \n")
			}
			creds = map[string]any{}
		}
		if f.registryServer != "" {
			creds["server"] = f.registryServer
		}
		if f.registryUser != "" {
			creds["username"] = f.registryUser
		}
		if f.registryIdent != "" {
			if strings.EqualFold(f.registryIdent, "system") {
				creds["identity"] = "system"
			} else {
				creds["identity"] = identityID(sub, rg, f.registryIdent)
			}
		}
		if f.registryPass != "" {
			var name string
			var err error
			if secrets, name, err = in.storeRegistryPassword(secrets, str(creds["server"]), str(creds["username"]), f.registryPass); err != nil {
				return nil, nil, err
			}
			creds["passwordSecretRef"] = name
		}
		if creds["server"] != nil || old == nil && f.registryServer != "" {
			tmpl["registryCredentials"] = creds
		}
	}
	return tmpl, secrets, nil
}

// updatePool is az containerapp sessionpool update: GET, checks, PATCH.
func updatePool(ctx context.Context, in *inv, f *poolFlags, ref poolRef) (any, error) {
	changed := in.cmd.Flags().Changed
	c, err := in.arm()
	if err != nil {
		return nil, err
	}
	cur, err := c.get(ctx, ref.path(), poolVersion)
	if err != nil {
		return nil, err
	}
	ctype := str(dig(cur, "properties.containerType"))
	if f.environment != "" {
		old := str(dig(cur, "properties.environmentId"))
		if !strings.EqualFold(environmentID(ref.sub, ref.rg, f.environment), old) {
			return nil, validationErr("containerType and environmentId cannot be updated.")
		}
	}
	curLC := str(dig(cur, "properties.dynamicPoolConfiguration.lifecycleConfiguration.lifecycleType"))
	lifecycle := curLC
	if f.lifecycleType != "" {
		if lifecycle, err = enum("--lifecycle-type", f.lifecycleType, "Timed", "OnContainerExit"); err != nil {
			return nil, err
		}
		if ctype != "CustomContainer" && lifecycle != "Timed" {
			return nil, validationErr("The container type %s only supports lifecycle type 'Timed'.", ctype)
		}
	}
	switch {
	case f.maxAlive != "" && f.cooldown != "":
		return nil, validationErr("--max-alive-period and --cooldown-period cannot be set at the same time.")
	case f.maxAlive != "" && f.lifecycleType != "" && lifecycle != "OnContainerExit":
		return nil, validationErr("--max-alive-period can only be set when --lifecycle-type is 'OnContainerExit'.")
	case f.cooldown != "" && f.lifecycleType != "" && lifecycle != "Timed":
		return nil, validationErr("--cooldown-period can only be set when --lifecycle-type is 'Timed'.")
	case f.maxAlive != "" && lifecycle != "OnContainerExit":
		return nil, validationErr("--max-alive-period is not supported for the current --lifecycle-type '%s'.", curLC)
	case f.cooldown != "" && lifecycle != "Timed":
		return nil, validationErr("--cooldown-period is not supported for the current --lifecycle-type '%s'.", curLC)
	}
	if ctype != "CustomContainer" {
		for _, p := range [][2]string{{"args", "--args"}, {"command", "--command"}, {"container-name", "--container-name"}, {"cpu", "--cpu"},
			{"env-vars", "--env-vars"}, {"image", "--image or -i"}, {"memory", "--memory"}, {"probe-yaml", "--probe-yaml"}, {"target-port", "--target-port"}} {
			if changed(p[0]) {
				return nil, validationErr("'%s' can not be set when container type is not 'CustomContainer'.", p[1])
			}
		}
	}
	props := map[string]any{}
	body := map[string]any{"properties": props}
	if f.miSystem || len(f.miUser) > 0 {
		ident, settings := identities(&poolFlags{miSystem: f.miSystem, miUser: f.miUser}, ref.sub, ref.rg)
		body["identity"] = ident
		props["managedIdentitySettings"] = settings
	}
	lc := map[string]any{}
	if f.lifecycleType != "" {
		lc["lifecycleType"] = lifecycle
	}
	if f.cooldown != "" {
		n, err := parsePeriod("--cooldown-period", f.cooldown)
		if err != nil {
			return nil, err
		}
		lc["cooldownPeriodInSeconds"] = n
	}
	if f.maxAlive != "" {
		n, err := parsePeriod("--max-alive-period", f.maxAlive)
		if err != nil {
			return nil, err
		}
		lc["maxAlivePeriodInSeconds"] = n
	}
	if len(lc) > 0 {
		props["dynamicPoolConfiguration"] = map[string]any{"lifecycleConfiguration": lc}
	}
	if f.networkStatus != "" {
		ns, err := enum("--network-status", f.networkStatus, "EgressDisabled", "EgressEnabled")
		if err != nil {
			return nil, err
		}
		props["sessionNetworkConfiguration"] = map[string]any{"status": ns}
	}
	scale := map[string]any{}
	if changed("max-sessions") {
		scale["maxConcurrentSessions"] = f.maxSessions
	}
	if changed("ready-sessions") && f.readySessions != 0 {
		scale["readySessionInstances"] = f.readySessions
	}
	if len(scale) > 0 {
		props["scaleConfiguration"] = scale
	}
	var secrets []any
	if changed("secrets") {
		if len(f.secrets) == 1 && f.secrets[0] == "" {
			secrets = []any{}
		} else if secrets, err = parseSecrets(f.secrets); err != nil {
			return nil, err
		}
		props["secrets"] = secrets
	}
	templateFlags := []string{"image", "container-name", "cpu", "memory", "env-vars", "command", "args", "probe-yaml", "target-port",
		"registry-server", "registry-username", "registry-password", "registry-identity"}
	for _, fl := range templateFlags {
		if !changed(fl) {
			continue
		}
		old, _ := dig(cur, "properties.customContainerTemplate").(map[string]any)
		if old == nil {
			old = map[string]any{}
		}
		if f.registryPass != "" && !changed("secrets") {
			// The password secret joins the existing secrets; the server
			// keeps secrets write-only, so only their names are known.
			secrets = []any{}
			if l, _ := dig(cur, "properties.secrets").([]any); len(l) > 0 {
				in.warn("the following secrets are going to be deleted: %s If this is not the intended behavior, please add the missing secrets into the --secrets flag.", secretNames(cur))
			}
		}
		tmpl, secs, err := in.containerTemplate(f, old, secrets, ref.sub, ref.rg)
		if err != nil {
			return nil, err
		}
		props["customContainerTemplate"] = tmpl
		if f.registryPass != "" {
			props["secrets"] = secs
		}
		break
	}
	r, err := c.call(ctx, http.MethodPatch, ref.path(), poolVersion, body)
	if err != nil {
		return nil, err
	}
	if f.noWait {
		return noOutput{}, nil
	}
	res, err := c.wait(ctx, http.MethodPatch, withVersion(ref.path(), poolVersion), r)
	if err != nil {
		return nil, err
	}
	if res == nil {
		return nil, &serviceError{Status: http.StatusNotFound, Code: "ResourceNotFound", Message: "Could not find the Session Pool"}
	}
	return res, nil
}

func secretNames(pool any) string {
	l, _ := dig(pool, "properties.secrets").([]any)
	names := []string{}
	for _, s := range l {
		names = append(names, "'"+str(dig(s, "name"))+"'")
	}
	return "{" + strings.Join(names, ", ") + "}"
}
