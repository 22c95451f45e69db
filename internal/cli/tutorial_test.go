package cli

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// TestTutorialShell runs the Shell-pool tutorial (cli.md §9) with az
// replaced by tidepool, against a live server.
func TestTutorialShell(t *testing.T) {
	e := newEnv(t, processRuntime(t))
	e.mustRun("login", "--credentials-file", filepath.Join(e.dataDir, "admin-credentials.json"), "--endpoint", e.endpoint)

	sub, rg, pool, loc := e.creds.SubscriptionID, "tutorial-rg", "myshellpool", "northcentralus"
	uami := pool + "-uami"
	poolID := "/subscriptions/" + sub + "/resourceGroups/" + rg + "/providers/Microsoft.App/sessionpools/" + pool
	dir := t.TempDir()
	template := filepath.Join(dir, "deploy.json")
	data, err := os.ReadFile("../../scripts/tutorial-shell/deploy.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(template, data, 0o644); err != nil {
		t.Fatal(err)
	}

	e.mustRun("provider", "register", "--namespace", "Microsoft.App")
	e.mustRun("account", "set", "--subscription", sub)
	e.mustRun("group", "create", "--name", rg, "--location", loc)
	dep := e.mustJSON("deployment", "group", "create", "--resource-group", rg, "--template-file", template)
	if dig(dep, "name") != "deploy" || dig(dep, "properties.provisioningState") != "Succeeded" {
		t.Errorf("deployment = %v", dep)
	}
	e.mustRun("identity", "create", "--resource-group", rg, "--name", uami, "--location", loc)
	principal := strings.TrimSpace(e.mustRun("identity", "show", "--resource-group", rg, "--name", uami, "--query", "principalId", "-o", "tsv"))
	if !guidRule.MatchString(principal) {
		t.Fatalf("identity show --query principalId = %q", principal)
	}
	ra := e.mustJSON("role", "assignment", "create", "--assignee", principal, "--role", sessionExecutor, "--scope", poolID)
	if dig(ra, "principalId") != principal || !strings.HasSuffix(dig(ra, "roleDefinitionId").(string), sessionExecutor) || dig(ra, "scope") != poolID {
		t.Errorf("role assignment create = %v", ra)
	}
	if r := e.run("role", "assignment", "create", "--assignee", principal, "--role", "Azure ContainerApps Session Executor", "--scope", poolID); r.code != 1 || !strings.Contains(r.stderr, "RoleAssignmentExists") {
		t.Errorf("duplicate assignment: exit %d %q", r.code, r.stderr)
	}
	token := strings.TrimSpace(e.mustRun("account", "get-access-token", "--query", "accessToken", "-o", "tsv"))

	// The tutorial's curl call, to the pool's data-plane endpoint.
	endpoint := strings.TrimSpace(e.mustRun("containerapp", "sessionpool", "show", "-n", pool, "-g", rg, "--query", "properties.poolManagementEndpoint", "-o", "tsv"))
	body := `{"codeInputType":"inline","executionType":"synchronous","command":["/bin/bash","-c","echo 'hello world'; echo 'hi'"],"timeoutInSeconds":600}`
	req, _ := http.NewRequest(http.MethodPost, endpoint+"/executions?api-version=2025-02-02-preview&identifier="+uuid.NewString(), strings.NewReader(body))
	req.Header.Set("authorization", "Bearer "+token)
	req.Header.Set("content-type", "application/json")
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var exec map[string]any
	json.NewDecoder(resp.Body).Decode(&exec)
	resp.Body.Close()
	if resp.StatusCode >= 300 || dig(exec, "result.stdout") != "hello world\nhi\n" {
		t.Errorf("execution: HTTP %d %v", resp.StatusCode, exec)
	}

	show := e.mustJSON("resource", "show", "--ids", poolID, "--query", "{name:name, location:location, provisioningState:properties.provisioningState}")
	if want := map[string]any{"name": pool, "location": "North Central US", "provisioningState": "Succeeded"}; !subset(want, show) {
		if dig(show, "location") != "northcentralus" || dig(show, "name") != pool || dig(show, "provisioningState") != "Succeeded" {
			t.Errorf("resource show --query = %v", show)
		}
	}
	table := e.mustRun("role", "assignment", "list", "--scope", poolID, "--output", "table")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "Principal") || !strings.Contains(lines[0], "Role") || !strings.Contains(lines[0], "Scope") ||
		!strings.Contains(lines[2], principal) || !strings.Contains(lines[2], "Azure ContainerApps Session Executor") || !strings.Contains(lines[2], poolID) {
		t.Errorf("role assignment list -o table =\n%s", table)
	}
	e.mustRun("group", "delete", "--resource-group", rg, "--yes")
	if out := strings.TrimSpace(e.mustRun("group", "exists", "-n", rg)); out != "false" {
		t.Errorf("group exists after delete = %s", out)
	}
	if code, _ := e.get(poolID, poolVersion); code != 404 {
		t.Errorf("GET pool after group delete = %d", code)
	}
}

// TestRoleAndIdentity covers the identity and role commands' other paths
// against a live server.
func TestRoleAndIdentity(t *testing.T) {
	e := newEnv(t, nil)
	e.mustRun("login", "--credentials-file", filepath.Join(e.dataDir, "admin-credentials.json"), "--endpoint", e.endpoint)
	e.mustRun("group", "create", "-n", "rg", "-l", "westus")
	id := e.mustJSON("identity", "create", "-g", "rg", "-n", "ident")
	if dig(id, "location") != "westus" || dig(id, "properties") != nil || dig(id, "clientId") == nil || dig(id, "resourceGroup") != "rg" {
		t.Errorf("identity create = %v", id)
	}
	if l, _ := e.mustJSON("identity", "list", "-g", "rg").([]any); len(l) != 1 {
		t.Errorf("identity list = %v", l)
	}
	defs := e.mustRun("role", "definition", "list", "--name", "Azure ContainerApps Session Executor", "--query", "[].[name, roleType]", "-o", "tsv")
	if defs != sessionExecutor+"\tBuiltInRole\n" {
		t.Errorf("role definition list = %q", defs)
	}
	if r := e.run("role", "assignment", "create", "--assignee", "not-a-guid", "--role", sessionExecutor); r.code != 1 || !strings.Contains(r.stderr, "Cannot find user or service principal") {
		t.Errorf("unknown assignee: exit %d %q", r.code, r.stderr)
	}
	if r := e.run("role", "assignment", "create", "--assignee", uuid.NewString(), "--role", "No Such Role"); r.code != 1 || !strings.Contains(r.stderr, "Role 'No Such Role' doesn't exist.") {
		t.Errorf("unknown role: exit %d %q", r.code, r.stderr)
	}
	// A client id resolves through Graph to the service principal's object id.
	app, obj := e.createServicePrincipal("sp")
	ra := e.mustJSON("role", "assignment", "create", "--assignee", app, "--role", "Azure ContainerApps Session Executor", "-g", "rg")
	if dig(ra, "principalId") != obj || dig(ra, "principalType") != "ServicePrincipal" {
		t.Errorf("assignment by client id = %v", ra)
	}
	scope := "/subscriptions/" + e.creds.SubscriptionID + "/resourceGroups/rg"
	if got := e.mustRun("role", "assignment", "list", "--assignee", app, "--all", "--query", "[].roleDefinitionName", "-o", "tsv"); got != "Azure ContainerApps Session Executor\n" {
		t.Errorf("list --assignee = %q", got)
	}
	e.mustRun("role", "assignment", "delete", "--assignee", obj, "--scope", scope)
	if got := e.mustRun("role", "assignment", "list", "--scope", scope, "-o", "tsv"); got != "" {
		t.Errorf("list after delete = %q", got)
	}
	e.mustRun("identity", "delete", "-g", "rg", "-n", "ident")
	if r := e.run("identity", "show", "-g", "rg", "-n", "ident"); r.code != 3 {
		t.Errorf("identity show after delete: exit %d", r.code)
	}
	// resource show/delete by id choose the api-version from the metadata
	// (or the built-in table for providers the server does not list).
	e.mustRun("identity", "create", "-g", "rg", "-n", "ident2")
	identID := "/subscriptions/" + e.creds.SubscriptionID + "/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ident2"
	if got := strings.TrimSpace(e.mustRun("resource", "show", "--ids", identID, "--query", "name", "-o", "tsv")); got != "ident2" {
		t.Errorf("resource show identity = %q", got)
	}
	e.mustRun("resource", "delete", "--ids", identID)
	if r := e.run("resource", "show", "--ids", identID); r.code != 3 {
		t.Errorf("resource show after delete: exit %d", r.code)
	}
	// sessionpool create gives its creator the Session Executor role, as az.
	r := e.run("sessionpool", "create", "-n", "poolone", "-g", "rg")
	pid := "/subscriptions/" + e.creds.SubscriptionID + "/resourceGroups/rg/providers/Microsoft.App/sessionPools/poolone"
	if r.err != nil || strings.Contains(r.stderr, "Could not add user") {
		t.Errorf("sessionpool create: %v, stderr %q", r.err, r.stderr)
	}
	if got := e.mustRun("role", "assignment", "list", "--scope", pid, "--query", "[].roleDefinitionName", "-o", "tsv"); got != "Azure ContainerApps Session Executor\n" {
		t.Errorf("creator assignment on the new pool: %q", got)
	}
	if got := strings.TrimSpace(e.mustRun("resource", "show", "--ids", pid, "--api-version", "2024-02-02-preview", "--query", "name", "-o", "tsv")); got != "poolone" {
		t.Errorf("resource show --api-version = %q", got)
	}
	e.mustRun("resource", "delete", "--ids", pid)
	if code, _ := e.get(pid, poolVersion); code != 404 {
		t.Errorf("pool after resource delete: %d", code)
	}
}

// TestTutorialScript runs scripts/tutorial-shell/run.sh, the tutorial as a
// bash script, with the tidepool binary and curl, against the live server
// (cli.md §9).
func TestTutorialScript(t *testing.T) {
	rt := processRuntime(t)
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("no curl")
	}
	e := newEnv(t, rt)
	e.mustRun("login", "--credentials-file", filepath.Join(e.dataDir, "admin-credentials.json"), "--endpoint", e.endpoint)
	cmd := exec.Command("bash", "../../scripts/tutorial-shell/run.sh")
	cmd.Env = append(os.Environ(), "TIDEPOOL="+agentBin, "TIDEPOOL_CONFIG_DIR="+e.configDir, "RG=script-rg")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("run.sh: %v\n%s", err, out)
	}
	for _, want := range []string{
		`"stdout":"hello world\nhi\n"`,
		`"provisioningState": "Succeeded"`,
		"Azure ContainerApps Session Executor",
		"/resourceGroups/script-rg/providers/Microsoft.App/sessionpools/myshellpool",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("run.sh output has no %q:\n%s", want, out)
		}
	}
	if code, _ := e.get("/subscriptions/"+e.creds.SubscriptionID+"/resourcegroups/script-rg", groupsVersion); code != 404 {
		t.Errorf("GET group after the script = %d, want 404", code)
	}
}

// sessionExecutor is the built-in role the tutorial assigns.
const sessionExecutor = "0fb8eba5-a2bb-4abe-b1c1-49dfad359bb0"

// createServicePrincipal creates a service principal through the
// server's directory (no CLI command does) and returns its client and
// object ids.
func (e *env) createServicePrincipal(name string) (appID, objectID string) {
	e.t.Helper()
	token := strings.TrimSpace(e.mustRun("account", "get-access-token", "--query", "accessToken", "-o", "tsv"))
	req, _ := http.NewRequest("POST", e.endpoint+"/v1.0/servicePrincipals", strings.NewReader(`{"displayName":"`+name+`"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var sp struct{ ID, AppID string }
	if err := json.NewDecoder(resp.Body).Decode(&sp); err != nil || resp.StatusCode != 201 {
		e.t.Fatalf("create service principal: %d %v", resp.StatusCode, err)
	}
	return sp.AppID, sp.ID
}
