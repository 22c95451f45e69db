package arm_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestResourceGroups(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)

	t.Run("create, read, update", func(t *testing.T) {
		a := a.with(t)
		r := a.must(http.StatusCreated, "PUT", groupPath("alpha"), `{"location":"eastus","tags":{"a":"1"}}`)
		g := r.json(t)
		for path, want := range map[string]string{
			"id":                           "/subscriptions/" + testSub + "/resourceGroups/alpha",
			"name":                         "alpha",
			"type":                         "Microsoft.Resources/resourceGroups",
			"location":                     "eastus",
			"properties.provisioningState": "Succeeded",
			"tags.a":                       "1",
		} {
			if got := jstring(g, path); got != want {
				t.Errorf("%s: %s = %q, want %q", r, path, got, want)
			}
		}
		r = a.must(http.StatusOK, "PUT", groupPath("alpha"), `{"location":"East US","tags":{"b":"2"}}`)
		if got := jstring(r.json(t), "tags.b"); got != "2" {
			t.Errorf("%s: tags.b %q, want 2", r, got)
		}
		r = a.must(http.StatusOK, "GET", groupPath("ALPHA"), nil)
		if got := jstring(r.json(t), "name"); got != "alpha" {
			t.Errorf("%s: name %q", r, got)
		}
		r = a.must(http.StatusOK, "PATCH", groupPath("alpha"), `{"tags":{"c":"3"}}`)
		if tags, _ := jget(r.json(t), "tags"); fmt.Sprint(tags) != "map[c:3]" {
			t.Errorf("%s: tags %v, want only c=3 (PATCH replaces tags)", r, tags)
		}
		r = a.must(http.StatusOK, "GET", groupPath("alpha"), nil)
		if tags, _ := jget(r.json(t), "tags"); fmt.Sprint(tags) != "map[c:3]" {
			t.Errorf("%s: tags %v after PATCH, want only c=3", r, tags)
		}
	})
	t.Run("HEAD", func(t *testing.T) {
		a := a.with(t)
		if r := a.do("HEAD", groupPath("alpha"), nil, nil); r.Status != http.StatusNoContent {
			t.Errorf("%s: want 204", r)
		}
		if r := a.do("HEAD", groupPath("nosuchrg"), nil, nil); r.Status != http.StatusNotFound {
			t.Errorf("%s: want 404", r)
		}
	})
	t.Run("list", func(t *testing.T) {
		a := a.with(t)
		a.createGroup("beta", "westus")
		names, _ := a.listAll("/subscriptions/" + testSub + "/resourceGroups?api-version=" + groupAV)
		if !slices.Contains(names, "alpha") || !slices.Contains(names, "beta") {
			t.Errorf("listed %v, want alpha and beta", names)
		}
	})
	for _, tc := range []struct {
		name, method, path string
		body               string
		status             int
		code, target       string
	}{
		{"PUT location change", "PUT", groupPath("alpha"), `{"location":"westus"}`, 409, "InvalidResourceGroupLocation", "location"},
		{"PATCH location change", "PATCH", groupPath("alpha"), `{"location":"westus"}`, 400, "InvalidResourceGroupLocation", "location"},
		{"PUT without location", "PUT", groupPath("gamma"), `{"tags":{}}`, 400, "LocationRequired", "location"},
		{"PUT name ending in dot", "PUT", groupPath("gamma."), `{"location":"eastus"}`, 400, "InvalidResourceGroup", "resourceGroupName"},
		{"PUT name too long", "PUT", groupPath(strings.Repeat("g", 91)), `{"location":"eastus"}`, 400, "InvalidResourceGroup", "resourceGroupName"},
		{"PUT name with invalid character", "PUT", groupPath("a%2Bb"), `{"location":"eastus"}`, 400, "InvalidResourceGroup", "resourceGroupName"},
		{"PUT too many tags", "PUT", groupPath("gamma"), `{"location":"eastus","tags":{"1":"","2":"","3":"","4":"","5":"","6":"","7":"","8":"","9":"","10":"","11":"","12":"","13":"","14":"","15":"","16":""}}`, 400, "InvalidParameter", "tags"},
		{"PUT malformed", "PUT", groupPath("gamma"), `{"location":`, 400, "InvalidRequestContent", ""},
		{"GET missing", "GET", groupPath("nosuchrg"), ``, 404, "ResourceGroupNotFound", ""},
		{"PATCH missing", "PATCH", groupPath("nosuchrg"), `{"tags":{}}`, 404, "ResourceGroupNotFound", ""},
		{"DELETE missing", "DELETE", groupPath("nosuchrg"), ``, 404, "ResourceGroupNotFound", ""},
		{"unknown subscription", "PUT", strings.Replace(groupPath("gamma"), testSub, "11111111-2222-3333-4444-555555555555", 1), `{"location":"eastus"}`, 404, "SubscriptionNotFound", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := a.with(t)
			var body any
			if tc.body != "" {
				body = tc.body
			}
			wantError(t, a.do(tc.method, tc.path, body, nil), tc.status, tc.code, tc.target)
		})
	}
}

// TestResourceGroupDeleteCascades: deleting a group deletes the pools and
// environments in it, and nothing else.
func TestResourceGroupDeleteCascades(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.createGroup("doomed", "eastus")
	a.createGroup("kept", "eastus")
	a.createEnv("doomed", "env")
	a.putPool("doomed", "python", stable, pythonBody(t, stable))
	a.putPool("doomed", "custom", stable, customBody(t, stable, "doomed", "env"))
	a.putPool("kept", "python", stable, pythonBody(t, stable))

	a.gate.hold()
	defer a.gate.release()
	r := a.do("DELETE", groupPath("doomed"), nil, nil)
	if r.Status != http.StatusAccepted {
		t.Fatalf("%s: want 202", r)
	}
	loc := r.Header.Get("Location")
	if !strings.HasPrefix(loc, a.URL+"/subscriptions/"+testSub+"/providers/") {
		t.Errorf("%s: Location %q is not an absolute subscription-scope URL", r, loc)
	}
	g := a.must(http.StatusOK, "GET", groupPath("doomed"), nil)
	if got := jstring(g.json(t), "properties.provisioningState"); got != "Deleting" {
		t.Errorf("%s: provisioningState %q, want Deleting", g, got)
	}
	if l := a.do("GET", loc, nil, nil); l.Status != http.StatusAccepted {
		t.Errorf("%s: Location while deleting: want 202", l)
	}
	wantError(t, a.do("PUT", poolPath("doomed", "late", stable), pythonBody(t, stable), nil), http.StatusConflict, "ResourceGroupBeingDeleted", "")
	wantError(t, a.do("PUT", envPath("doomed", "late"), `{"location":"eastus"}`, nil), http.StatusConflict, "ResourceGroupBeingDeleted", "")
	wantError(t, a.do("PUT", groupPath("doomed"), `{"location":"eastus"}`, nil), http.StatusConflict, "ResourceGroupBeingDeleted", "")

	a.gate.release()
	if done := a.waitLocation(loc); done.Status != http.StatusOK && done.Status != http.StatusNoContent {
		t.Errorf("%s: Location when done: want 200 or 204", done)
	}
	wantError(t, a.do("GET", groupPath("doomed"), nil, nil), http.StatusNotFound, "ResourceGroupNotFound", "")
	if r := a.do("HEAD", groupPath("doomed"), nil, nil); r.Status != http.StatusNotFound {
		t.Errorf("%s: want 404", r)
	}
	wantError(t, a.do("GET", poolPath("doomed", "python", stable), nil, nil), http.StatusNotFound, "ResourceGroupNotFound", "")
	names, _ := a.listAll(poolsInSub(stable))
	if !slices.Equal(names, []string{"python"}) {
		t.Errorf("pools in the subscription: %v, want only kept/python", names)
	}
	a.must(http.StatusOK, "GET", poolPath("kept", "python", stable), nil)

	// A group of the same name starts empty: the contents are gone, not hidden.
	a.createGroup("doomed", "westus")
	for _, path := range []string{poolPath("doomed", "python", stable), poolPath("doomed", "custom", stable), envPath("doomed", "env")} {
		wantError(t, a.do("GET", path, nil, nil), http.StatusNotFound, "ResourceNotFound", "")
	}
}

func TestManagedEnvironments(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.createGroup("rg", "eastus")
	a.createGroup("rg2", "eastus")

	r := a.must(http.StatusCreated, "PUT", envPath("rg", "env"), `{"location":"eastus","properties":{"workloadProfiles":[{"name":"Consumption","workloadProfileType":"Consumption"}]}}`)
	e := r.json(t)
	for path, want := range map[string]string{
		"id":                           envID("rg", "env"),
		"name":                         "env",
		"type":                         "Microsoft.App/managedEnvironments",
		"location":                     "eastus",
		"properties.provisioningState": "Succeeded",
	} {
		if got := jstring(e, path); got != want {
			t.Errorf("%s: %s = %q, want %q", r, path, got, want)
		}
	}
	a.must(http.StatusOK, "PUT", envPath("rg", "env"), `{"location":"East US"}`)
	a.must(http.StatusOK, "GET", envPath("RG", "env"), nil)
	a.createEnv("rg2", "other")
	if names, _ := a.listAll(strings.Replace(envPath("rg", "x"), "/x?", "?", 1)); !slices.Equal(names, []string{"env"}) {
		t.Errorf("environments in rg: %v, want [env]", names)
	}
	if names, _ := a.listAll("/subscriptions/" + testSub + "/providers/Microsoft.App/managedEnvironments?api-version=" + stable); !slices.Equal(names, []string{"env", "other"}) {
		t.Errorf("environments in the subscription: %v, want [env other]", names)
	}

	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code, target             string
	}{
		{"invalid name", "PUT", envPath("rg", "Bad_Name"), `{"location":"eastus"}`, 400, "InvalidResourceName", "name"},
		{"no location", "PUT", envPath("rg", "noloc"), `{}`, 400, "LocationRequired", "location"},
		{"location change", "PUT", envPath("rg", "env"), `{"location":"westus"}`, 400, "InvalidResourceLocation", "location"},
		{"missing group", "PUT", envPath("nosuchrg", "env"), `{"location":"eastus"}`, 404, "ResourceGroupNotFound", ""},
		{"missing", "GET", envPath("rg", "nosuchenv"), ``, 404, "ResourceNotFound", ""},
		{"PATCH", "PATCH", envPath("rg", "env"), `{}`, 405, "MethodNotAllowed", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := a.with(t)
			var body any
			if tc.body != "" {
				body = tc.body
			}
			wantError(t, a.do(tc.method, tc.path, body, nil), tc.status, tc.code, tc.target)
		})
	}

	// A pool may name the environment in another spelling of its id.
	for _, ref := range []string{envID("rg", "env"), strings.ToLower(envID("rg", "env")), envID("rg", "env") + "/"} {
		t.Run("in use via "+ref, func(t *testing.T) {
			a := a.with(t)
			body := customBody(t, stable, "rg", "env")
			jset(body, "properties.environmentId", ref)
			a.putPool("rg", "user", stable, body)
			wantError(t, a.do("DELETE", envPath("rg", "env"), nil, nil), http.StatusConflict, "ManagedEnvironmentInUse", "")
			a.must(http.StatusOK, "GET", envPath("rg", "env"), nil)
			if done := a.waitLocation(a.must(http.StatusAccepted, "DELETE", poolPath("rg", "user", stable), nil).Header.Get("Location")); done.Status >= 300 {
				t.Fatalf("%s: pool delete failed", done)
			}
		})
	}
	t.Run("delete", func(t *testing.T) {
		a := a.with(t)
		if r := a.do("DELETE", envPath("rg", "env"), nil, nil); r.Status != http.StatusOK && r.Status != http.StatusNoContent {
			t.Errorf("%s: want 200", r)
		}
		wantError(t, a.do("GET", envPath("rg", "env"), nil, nil), http.StatusNotFound, "ResourceNotFound", "")
		if r := a.do("DELETE", envPath("rg", "env"), nil, nil); r.Status != http.StatusNoContent {
			t.Errorf("%s: DELETE of a missing environment: want 204", r)
		}
		// A pool can no longer name it.
		wantError(t, a.do("PUT", poolPath("rg", "late", stable), customBody(t, stable, "rg", "env"), nil), http.StatusBadRequest, "ManagedEnvironmentNotFound", "properties.environmentId")
	})
}

func TestSubscriptionsAndProviders(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	sub := "/subscriptions/" + testSub

	t.Run("list subscriptions", func(t *testing.T) {
		a := a.with(t)
		r := a.must(http.StatusOK, "GET", "/subscriptions?api-version=2022-12-01", nil)
		list := mustGet(t, r.json(t), "value").([]any)
		if len(list) != 1 {
			t.Fatalf("%s: want one subscription", r)
		}
		for path, want := range map[string]string{"id": sub, "subscriptionId": testSub, "tenantId": testTenant, "state": "Enabled"} {
			if got := jstring(list[0], path); got != want {
				t.Errorf("%s: %s = %q, want %q", r, path, got, want)
			}
		}
	})
	t.Run("get subscription", func(t *testing.T) {
		a := a.with(t)
		r := a.must(http.StatusOK, "GET", sub+"?api-version=2022-12-01", nil)
		if got := jstring(r.json(t), "subscriptionId"); got != testSub {
			t.Errorf("%s: subscriptionId %q", r, got)
		}
		wantError(t, a.do("GET", "/subscriptions/11111111-2222-3333-4444-555555555555?api-version=2022-12-01", nil, nil), 404, "SubscriptionNotFound", "")
	})
	for _, path := range []string{sub + "/providers/Microsoft.App", sub + "/providers/microsoft.app"} {
		t.Run("provider "+path, func(t *testing.T) {
			a := a.with(t)
			r := a.must(http.StatusOK, "GET", path+"?api-version=2021-04-01", nil)
			p := r.json(t)
			if got := jstring(p, "namespace"); got != "Microsoft.App" {
				t.Errorf("%s: namespace %q", r, got)
			}
			if got := jstring(p, "registrationState"); got != "Registered" {
				t.Errorf("%s: registrationState %q", r, got)
			}
			// az's check: resourceTypes[?resourceType=='sessionPools'].locations
			var found bool
			for _, rt := range mustGet(t, p, "resourceTypes").([]any) {
				if jstring(rt, "resourceType") != "sessionPools" {
					continue
				}
				found = true
				locs := fmt.Sprint(mustGet(t, rt, "locations"))
				for _, l := range []string{"East US", "North Central US", "West Europe"} {
					if !strings.Contains(locs, l) {
						t.Errorf("%s: sessionPools locations lack %q", r, l)
					}
				}
				versions := fmt.Sprint(mustGet(t, rt, "apiVersions"))
				for _, v := range allVersions {
					if !strings.Contains(versions, v) {
						t.Errorf("%s: sessionPools apiVersions lack %s", r, v)
					}
				}
			}
			if !found {
				t.Errorf("%s: no sessionPools resource type", r)
			}
		})
	}
	t.Run("list providers", func(t *testing.T) {
		a := a.with(t)
		r := a.must(http.StatusOK, "GET", sub+"/providers?api-version=2021-04-01", nil)
		var namespaces []string
		for _, p := range mustGet(t, r.json(t), "value").([]any) {
			namespaces = append(namespaces, jstring(p, "namespace"))
		}
		if !slices.Contains(namespaces, "Microsoft.App") {
			t.Errorf("%s: no Microsoft.App", r)
		}
	})
	t.Run("register", func(t *testing.T) {
		a := a.with(t)
		r := a.must(http.StatusOK, "POST", sub+"/providers/Microsoft.App/register?api-version=2021-04-01", nil)
		if got := jstring(r.json(t), "registrationState"); got != "Registered" {
			t.Errorf("%s: registrationState %q", r, got)
		}
	})
	t.Run("unknown namespace", func(t *testing.T) {
		a := a.with(t)
		wantError(t, a.do("GET", sub+"/providers/Microsoft.Nope?api-version=2021-04-01", nil, nil), 404, "InvalidResourceNamespace", "")
	})
	t.Run("operations", func(t *testing.T) {
		a := a.with(t)
		r := a.must(http.StatusOK, "GET", "/providers/Microsoft.App/operations?api-version="+stable, nil)
		var names []string
		for _, op := range mustGet(t, r.json(t), "value").([]any) {
			names = append(names, jstring(op, "name"))
			if jstring(op, "display.provider") == "" || jstring(op, "display.operation") == "" {
				t.Errorf("%s: operation %v lacks display fields", r, op)
			}
		}
		for _, want := range []string{"Microsoft.App/register/action", "Microsoft.App/sessionPools/read", "Microsoft.App/sessionPools/write", "Microsoft.App/sessionPools/delete"} {
			if !slices.Contains(names, want) {
				t.Errorf("%s: no %s", r, want)
			}
		}
	})
}

// TestRouting: paths the API does not serve are JSON 404s, and methods a
// route does not take are JSON 405s.
func TestRouting(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t)
	a.createGroup("rg", "eastus")
	a.putPool("rg", "routed", stable, pythonBody(t, stable))
	sub := "/subscriptions/" + testSub
	q := "?api-version=" + stable
	for _, tc := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/", 404, "InvalidResourceType"},
		{"GET", "/nowhere" + q, 404, "InvalidResourceType"},
		{"GET", sub + "/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm" + q, 404, "InvalidResourceType"},
		{"GET", sub + "/resourceGroups/rg/providers/Microsoft.App/containerApps/app" + q, 404, "InvalidResourceType"},
		{"GET", sub + "/resourceGroups/rg/providers/Microsoft.App/sessionPools/routed/sessions/x" + q, 404, "InvalidResourceType"},
		{"POST", poolID("rg", "routed") + "/restart" + q, 404, "InvalidResourceType"},
		{"GET", sub + "/providers/Microsoft.App/sessionPools/routed" + q, 404, "InvalidResourceType"},
		{"GET", sub + "/resourceGroups/rg/providers" + q, 404, "InvalidResourceType"},
		{"GET", sub + "/resourceGroups/rg/providers/Microsoft.App" + q, 404, "InvalidResourceType"},
		{"GET", sub + "/providers/Microsoft.App/locations/eastus/operationStatuses/nosuchop" + q, 404, "OperationNotFound"},
		{"GET", sub + "/providers/Microsoft.App/locations/eastus/operationResults/nosuchop" + q, 404, "OperationNotFound"},
		{"POST", poolPath("rg", "routed", stable), 405, "MethodNotAllowed"},
		{"PUT", "/subscriptions?api-version=2022-12-01", 405, "MethodNotAllowed"},
		{"DELETE", sub + "?api-version=2022-12-01", 405, "MethodNotAllowed"},
		{"POST", sub + "/resourceGroups?api-version=2021-04-01", 405, "MethodNotAllowed"},
		{"PUT", poolsInGroup("rg", stable), 405, "MethodNotAllowed"},
		{"DELETE", poolsInSub(stable), 405, "MethodNotAllowed"},
		{"DELETE", "/providers/Microsoft.App/operations" + q, 405, "MethodNotAllowed"},
		{"GET", sub + "/providers/Microsoft.App/register" + q, 405, "MethodNotAllowed"},
		{"GET", poolID("rg", "routed") + "/fetchMcpServerCredentials" + q, 405, "MethodNotAllowed"},
		{"OPTIONS", poolPath("rg", "routed", stable), 405, "MethodNotAllowed"},
		{"POST", poolID("rg", "routed") + "/fetchMcpServerCredentials?api-version=" + latest, 400, "SessionMCPServerNotEnabled"},
		{"POST", poolID("rg", "nosuchpool") + "/fetchMcpServerCredentials?api-version=" + latest, 404, "ResourceNotFound"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			a := a.with(t)
			r := a.do(tc.method, tc.path, nil, nil)
			wantError(t, r, tc.status, tc.code, "")
			checkARMHeaders(t, r, nil)
		})
	}
	t.Run("operation of another subscription", func(t *testing.T) {
		a := a.with(t)
		r := a.must(http.StatusAccepted, "PATCH", poolPath("rg", "routed", stable), `{"tags":{}}`)
		u := strings.Replace(r.Header.Get("Location"), testSub, "11111111-2222-3333-4444-555555555555", 1)
		wantError(t, a.do("GET", u, nil, nil), http.StatusNotFound, "OperationNotFound", "")
		a.waitLocation(r.Header.Get("Location"))
	})
}
