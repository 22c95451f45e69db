package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoginAccount(t *testing.T) {
	e := newEnv(t, nil)
	fi, err := os.Stat(filepath.Join(e.configDir, profileFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("profile mode = %v, want 0600", fi.Mode().Perm())
	}
	// The login's token is cached in the profile: later commands reuse it.
	tokens := func() int {
		e.rec.mu.Lock()
		defer e.rec.mu.Unlock()
		n := 0
		for _, r := range e.rec.reqs {
			if strings.Contains(r.url, "/oauth2/v2.0/token") {
				n++
			}
		}
		return n
	}
	before := tokens()
	e.mustRun("group", "list")
	e.mustRun("provider", "show", "-n", "Microsoft.App")
	if n := tokens() - before; n != 0 {
		t.Errorf("%d token requests after login, want 0 (cached)", n)
	}
	acct := e.mustJSON("account", "show")
	if got := dig(acct, "id"); got != e.creds.SubscriptionID {
		t.Errorf("account show id = %v, want %s", got, e.creds.SubscriptionID)
	}
	if got := dig(acct, "tenantId"); got != e.creds.TenantID {
		t.Errorf("account show tenantId = %v, want %s", got, e.creds.TenantID)
	}
	if got := strings.TrimSpace(e.mustRun("account", "show", "--query", "id", "-o", "tsv")); got != e.creds.SubscriptionID {
		t.Errorf("--query id -o tsv = %q", got)
	}
	tok := e.mustJSON("account", "get-access-token")
	for _, k := range []string{"accessToken", "expiresOn", "subscription", "tenant", "tokenType"} {
		if dig(tok, k) == nil {
			t.Errorf("get-access-token: no %s in %v", k, tok)
		}
	}
	dp := e.mustJSON("account", "get-access-token", "--resource", "https://dynamicsessions.io")
	if dig(dp, "accessToken") == dig(tok, "accessToken") {
		t.Error("data-plane token equals the management token")
	}
	if r := e.run("account", "get-access-token", "--scope", "https://dynamicsessions.io"); r.code != 2 {
		t.Errorf("--scope without /.default: exit %d, want 2", r.code)
	}
	if r := e.run("account", "set", "--subscription", "nope"); r.code != 1 || !strings.Contains(r.stderr, "Subscription 'nope' not found") {
		t.Errorf("account set nope: exit %d, stderr %q", r.code, r.stderr)
	}
	e.mustRun("account", "set", "-s", e.creds.SubscriptionID)

	// Service principal login with flags.
	e.mustRun("logout")
	if r := e.run("account", "show"); r.code != 1 || !strings.Contains(r.stderr, "tidepool login") {
		t.Errorf("account show after logout: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := e.run("login", "--service-principal", "-u", e.creds.ClientID, "-p", "wrong", "--tenant", e.creds.TenantID, "--endpoint", e.endpoint); r.code != 1 {
		t.Errorf("login with a wrong secret: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := e.run("login", "--service-principal", "-u", e.creds.ClientID, "-p", e.creds.ClientSecret, "--tenant", e.creds.TenantID); r.code != 2 || !strings.Contains(r.stderr, "TIDEPOOL_ENDPOINT") {
		t.Errorf("login without an endpoint: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := e.run("login", "-u", e.creds.ClientID, "-p", e.creds.ClientSecret, "--tenant", e.creds.TenantID); r.code != 2 || !strings.Contains(r.stderr, "service principal") {
		t.Errorf("login without --service-principal: exit %d, stderr %q", r.code, r.stderr)
	}
	e.environ = map[string]string{"TIDEPOOL_ENDPOINT": e.endpoint}
	list := e.mustJSON("login", "--service-principal", "-u", e.creds.ClientID, "-p", e.creds.ClientSecret, "--tenant", e.creds.TenantID)
	if l, ok := list.([]any); !ok || len(l) == 0 || dig(l[0], "user.type") != "servicePrincipal" {
		t.Errorf("login output = %v", list)
	}
}

func TestConfigureDefaults(t *testing.T) {
	e := newEnv(t, nil)
	e.mustRun("configure", "--defaults", "group=defrg", "location=westus")
	e.mustRun("group", "create")
	if code, g := e.get("/subscriptions/"+e.creds.SubscriptionID+"/resourcegroups/defrg", groupsVersion); code != 200 || g["location"] != "westus" {
		t.Errorf("GET group defrg = %d %v", code, g)
	}
	if got := e.mustRun("configure", "--list-defaults", "--query", "[].value", "-o", "tsv"); got != "defrg\nwestus\n" {
		t.Errorf("list-defaults = %q", got)
	}
	e.mustRun("configure", "--defaults", "group=")
	if r := e.run("group", "show"); r.code != 2 {
		t.Errorf("group show without a default: exit %d", r.code)
	}
}

// TestProgressAndLogging: the spinner shows on a terminal only, --no-wait
// prints nothing, --debug logs the requests, --only-show-errors hides
// warnings.
func TestProgressAndLogging(t *testing.T) {
	e := newEnv(t, nil)
	e.mustRun("group", "create", "-n", "rg", "-l", "westus")
	r := e.run("sessionpool", "create", "-n", "quiet", "-g", "rg")
	if r.err != nil || strings.Contains(r.stderr, "Running") {
		t.Errorf("not a terminal: err %v, stderr %q", r.err, r.stderr)
	}
	e.terminal = true
	r = e.run("sessionpool", "create", "-n", "shown", "-g", "rg")
	e.terminal = false
	if r.err != nil || !strings.Contains(r.stderr, "Running ..") {
		t.Errorf("terminal: err %v, stderr %q", r.err, r.stderr)
	}
	if r := e.run("sessionpool", "create", "-n", "nowait", "-g", "rg", "--no-wait"); r.err != nil || r.stdout != "" {
		t.Errorf("--no-wait: err %v, stdout %q", r.err, r.stdout)
	}
	r = e.run("group", "show", "-n", "rg", "--debug")
	if r.err != nil || !strings.Contains(r.stderr, "method=GET") || !strings.Contains(r.stderr, "status=200") {
		t.Errorf("--debug: err %v, stderr %q", r.err, r.stderr)
	}
	r = e.run("sessionpool", "delete", "-n", "quiet", "-g", "rg", "--yes", "--only-show-errors")
	if r.err != nil || r.stderr != "" {
		t.Errorf("--only-show-errors: err %v, stderr %q", r.err, r.stderr)
	}
}

// TestTables checks the az table transformers of group, account and role
// definition lists.
func TestTables(t *testing.T) {
	e := newEnv(t, nil)
	e.mustRun("group", "create", "-n", "rg-one", "-l", "westus")
	if got, want := e.mustRun("group", "list", "-o", "table"), "Name    Location  Status   \n------  --------  ---------\nrg-one  westus    Succeeded\n"; got != want {
		t.Errorf("group list -o table =\n%q\nwant\n%q", got, want)
	}
	// A query replaces the transformer, as in az.
	if got, want := e.mustRun("group", "show", "-n", "rg-one", "-o", "table", "--query", "{n:name}"), "N     \n------\nrg-one\n"; got != want {
		t.Errorf("group show --query -o table = %q, want %q", got, want)
	}
	got := e.mustRun("account", "list", "-o", "table")
	if !strings.HasPrefix(got, "Name      CloudName  SubscriptionId") || !strings.Contains(got, e.creds.SubscriptionID) || !strings.Contains(got, "True") {
		t.Errorf("account list -o table =\n%s", got)
	}
}
