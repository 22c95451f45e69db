package arm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidepool-dev/tidepool/internal/arm"
	"github.com/tidepool-dev/tidepool/internal/store"
	"github.com/tidepool-dev/tidepool/internal/template"
)

const deployAV = "2021-04-01"

func deploymentID(rg, name string) string {
	return "/subscriptions/" + testSub + "/resourceGroups/" + rg + "/providers/Microsoft.Resources/deployments/" + name
}

func deploymentPath(rg, name string) string {
	return deploymentID(rg, name) + "?api-version=" + deployAV
}

// readTemplate reads a template from testdata as raw JSON.
func readTemplate(t *testing.T, name string) json.RawMessage {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// deployBody is the body az deployment group create sends.
func deployBody(tmpl json.RawMessage, params map[string]any) map[string]any {
	if params == nil {
		params = map[string]any{}
	}
	return map[string]any{"properties": map[string]any{"mode": "Incremental", "template": tmpl, "parameters": params}}
}

// waitDeployment polls a deployment's Azure-AsyncOperation URL until its
// status is terminal (ARM reports Accepted and Running before that) and
// returns the final status body.
func (a *testAPI) waitDeployment(url string) map[string]any {
	a.t.Helper()
	if !strings.HasPrefix(url, a.URL+"/") {
		a.t.Fatalf("Azure-AsyncOperation %q is not an absolute URL on %s", url, a.URL)
	}
	var last map[string]any
	a.poll("deployment "+url, func() bool {
		r := a.do("GET", url, nil, nil)
		if r.Status != http.StatusOK {
			a.t.Fatalf("%s: operation status must answer 200", r)
		}
		last = r.json(a.t)
		switch s, _ := last["status"].(string); s {
		case "Accepted", "Running":
			return false
		case "Succeeded", "Failed", "Canceled":
			return true
		default:
			a.t.Fatalf("%s: unexpected status %q", r, s)
		}
		return true
	})
	return last
}

// deploy PUTs a deployment, checks the 201 and returns the final status.
func (a *testAPI) deploy(rg, name string, body any) map[string]any {
	a.t.Helper()
	r := a.do("PUT", deploymentPath(rg, name), body, nil)
	if r.Status != http.StatusCreated && r.Status != http.StatusOK {
		a.t.Fatalf("%s: want 201 or 200", r)
	}
	if s := jstring(r.json(a.t), "properties.provisioningState"); s != "Accepted" {
		a.t.Errorf("%s: provisioningState %q, want Accepted", r, s)
	}
	return a.waitDeployment(r.Header.Get("Azure-AsyncOperation"))
}

// TestDeployTutorial deploys the seed tutorial's deploy.json as written.
func TestDeployTutorial(t *testing.T) {
	a := newTestAPI(t)
	a.createGroup("tut", "northcentralus")
	st := a.deploy("tut", "deploy", deployBody(readTemplate(t, "deploy.json"), nil))
	if st["status"] != "Succeeded" {
		t.Fatalf("deployment ended %v: %v", st["status"], st)
	}

	pool := a.must(http.StatusOK, "GET", poolPath("tut", "myshellpool", "2025-02-02-preview"), nil).json(t)
	for path, want := range map[string]string{
		"properties.provisioningState":                  "Succeeded",
		"properties.containerType":                      "Shell",
		"properties.sessionNetworkConfiguration.status": "EgressEnabled",
		"name": "myshellpool",
	} {
		if got := jstring(pool, path); got != want {
			t.Errorf("pool %s = %q, want %q", path, got, want)
		}
	}
	if got, _ := jget(pool, "properties.scaleConfiguration.maxConcurrentSessions"); got != float64(5) {
		t.Errorf("pool maxConcurrentSessions = %v, want 5", got)
	}

	d := a.must(http.StatusOK, "GET", deploymentPath("tut", "deploy"), nil).json(t)
	if got := jstring(d, "properties.provisioningState"); got != "Succeeded" {
		t.Errorf("deployment provisioningState = %q", got)
	}
	if got := jstring(d, "properties.outputResources[0].id"); !strings.EqualFold(got, poolID("tut", "myshellpool")) {
		t.Errorf("outputResources[0].id = %q, want %s", got, poolID("tut", "myshellpool"))
	}
	if got := jstring(d, "id"); got != deploymentID("tut", "deploy") {
		t.Errorf("deployment id = %q", got)
	}
	if _, ok := d["tidepoolOperationId"]; ok {
		t.Errorf("the deployment shows an internal member: %v", d)
	}

	list := a.must(http.StatusOK, "GET", "/subscriptions/"+testSub+"/resourceGroups/tut/providers/Microsoft.Resources/deployments?api-version="+deployAV, nil).json(t)
	if v, _ := list["value"].([]any); len(v) != 1 || jstring(v[0], "name") != "deploy" {
		t.Errorf("deployment list = %v", list)
	}

	// Deploying again is idempotent and answers 200.
	r := a.must(http.StatusOK, "PUT", deploymentPath("tut", "deploy"), deployBody(readTemplate(t, "deploy.json"), nil))
	if st := a.waitDeployment(r.Header.Get("Azure-AsyncOperation")); st["status"] != "Succeeded" {
		t.Fatalf("second deployment ended %v", st)
	}

	// DELETE removes the record only.
	a.must(http.StatusOK, "DELETE", deploymentPath("tut", "deploy"), nil)
	wantError(t, a.do("GET", deploymentPath("tut", "deploy"), nil, nil), http.StatusNotFound, "DeploymentNotFound", "")
	a.must(http.StatusNoContent, "DELETE", deploymentPath("tut", "deploy"), nil)
	a.must(http.StatusOK, "GET", poolPath("tut", "myshellpool", stable), nil)
}

// TestDeployFunctions deploys a template with parameters, variables and
// the common functions, checking names, order and outputs.
func TestDeployFunctions(t *testing.T) {
	a := newTestAPI(t)
	a.createGroup("fn", "eastus")
	params := map[string]any{"poolPrefix": map[string]any{"value": "tide"}, "maxSessions": map[string]any{"value": 3}}
	st := a.deploy("fn", "fns", deployBody(readTemplate(t, "deploy_functions.json"), params))
	if st["status"] != "Succeeded" {
		t.Fatalf("deployment ended %v: %v", st["status"], st)
	}
	first := "tide" + template.UniqueString("/subscriptions/"+testSub+"/resourceGroups/fn")
	p1 := a.must(http.StatusOK, "GET", poolPath("fn", first, stable), nil).json(t)
	if got, _ := jget(p1, "properties.scaleConfiguration.maxConcurrentSessions"); got != float64(6) {
		t.Errorf("%s maxConcurrentSessions = %v, want 6", first, got)
	}
	if got := jstring(p1, "location"); got != "eastus" {
		t.Errorf("%s location = %q, want the group's eastus", first, got)
	}
	if got := jstring(p1, "tags.deployment"); got != "fns" {
		t.Errorf("%s tags.deployment = %q, want fns", first, got)
	}
	p2 := a.must(http.StatusOK, "GET", poolPath("fn", "tidesecond", stable), nil).json(t)
	if got := jstring(p2, "properties.sessionNetworkConfiguration.status"); got != "EgressDisabled" {
		t.Errorf("tide-second network = %q", got)
	}
	wantError(t, a.do("GET", poolPath("fn", "onlywithegress", stable), nil, nil), http.StatusNotFound, "ResourceNotFound", "")

	d := a.must(http.StatusOK, "GET", deploymentPath("fn", "fns"), nil).json(t)
	if got := jstring(d, "properties.outputs.poolId.value"); got != "/subscriptions/"+testSub+"/resourceGroups/fn/providers/Microsoft.App/sessionPools/"+first {
		t.Errorf("output poolId = %q", got)
	}
	if got := jstring(d, "properties.outputs.poolId.type"); got != "String" {
		t.Errorf("output poolId type = %q", got)
	}
	if got, _ := jget(d, "properties.parameters.maxSessions.value"); got != float64(3) {
		t.Errorf("parameter maxSessions = %v", got)
	}
	if got := jstring(d, "properties.dependencies[0].resourceName"); got != "tidesecond" {
		t.Errorf("dependencies = %v", d["properties"].(map[string]any)["dependencies"])
	}
	// The dependency went first.
	if got := jstring(d, "properties.outputResources[0].id"); !strings.HasSuffix(got, "/"+first) {
		t.Errorf("outputResources[0] = %q, want the pool the other depends on", got)
	}
}

func TestDeployInvalid(t *testing.T) {
	a := newTestAPI(t)
	a.createGroup("bad", "eastus")
	pool := func(props string) json.RawMessage {
		return json.RawMessage(`{"resources": [{"type": "Microsoft.App/sessionPools", "apiVersion": "2025-01-01", "name": "p", "location": "eastus", "properties": ` + props + `}]}`)
	}
	tests := []struct {
		name   string
		path   string
		body   any
		status int
		code   string
		target string
	}{
		{"bad expression", deploymentPath("bad", "d"), deployBody(pool(`{"containerType": "[concat('Py', ]"}`), nil), 400, "InvalidTemplate", "resources[0].properties.containerType"},
		{"unknown function", deploymentPath("bad", "d"), deployBody(pool(`{"containerType": "[nope()]"}`), nil), 400, "InvalidTemplate", "resources[0].properties.containerType"},
		{"missing parameter", deploymentPath("bad", "d"), deployBody(json.RawMessage(`{"parameters": {"size": {"type": "int"}}, "resources": []}`), nil), 400, "InvalidTemplate", "parameters.size"},
		{"undeclared parameter", deploymentPath("bad", "d"), deployBody(json.RawMessage(`{"resources": []}`), map[string]any{"x": map[string]any{"value": 1}}), 400, "InvalidTemplate", "properties.parameters.x"},
		{"copy loop", deploymentPath("bad", "d"), deployBody(json.RawMessage(`{"resources": [{"type": "Microsoft.App/sessionPools", "apiVersion": "2025-01-01", "name": "p", "copy": {"name": "c", "count": 2}}]}`), nil), 501, "NotImplemented", "resources[0].copy"},
		{"reference", deploymentPath("bad", "d"), deployBody(pool(`{"x": "[reference('p').y]"}`), nil), 501, "NotImplemented", "resources[0].properties.x"},
		{"no template", deploymentPath("bad", "d"), map[string]any{"properties": map[string]any{"mode": "Incremental"}}, 400, "InvalidTemplate", "properties.template"},
		{"no properties", deploymentPath("bad", "d"), map[string]any{}, 400, "InvalidRequestContent", "properties"},
		{"template link", deploymentPath("bad", "d"), map[string]any{"properties": map[string]any{"mode": "Incremental", "templateLink": map[string]any{"uri": "x"}}}, 501, "NotImplemented", "properties.templateLink"},
		{"complete mode", deploymentPath("bad", "d"), map[string]any{"properties": map[string]any{"mode": "Complete", "template": map[string]any{}}}, 501, "NotImplemented", "properties.mode"},
		{"bad mode", deploymentPath("bad", "d"), map[string]any{"properties": map[string]any{"mode": "Sometimes", "template": map[string]any{}}}, 400, "InvalidDeploymentMode", "properties.mode"},
		{"bad name", deploymentPath("bad", "a*b"), deployBody(json.RawMessage(`{}`), nil), 400, "InvalidDeploymentName", "name"},
		{"not JSON", deploymentPath("bad", "d"), "{", 400, "InvalidRequestContent", ""},
		{"no group", deploymentPath("nogroup", "d"), deployBody(json.RawMessage(`{}`), nil), 404, "ResourceGroupNotFound", ""},
		{"no api-version", deploymentID("bad", "d"), deployBody(json.RawMessage(`{}`), nil), 400, "MissingApiVersionParameter", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := a.with(t)
			e := wantError(t, a.do("PUT", tc.path, tc.body, nil), tc.status, tc.code, tc.target)
			if tc.status == 400 && tc.code == "InvalidTemplate" && !strings.HasPrefix(e.Message, "Deployment template validation failed: ") {
				t.Errorf("message %q does not say the validation failed", e.Message)
			}
		})
	}
	// Nothing was stored.
	wantError(t, a.do("GET", deploymentPath("bad", "d"), nil, nil), http.StatusNotFound, "DeploymentNotFound", "")
}

func TestDeployValidate(t *testing.T) {
	a := newTestAPI(t)
	a.createGroup("val", "eastus")
	path := deploymentID("val", "v") + "/validate?api-version=" + deployAV
	r := a.must(http.StatusOK, "POST", path, deployBody(readTemplate(t, "deploy.json"), nil))
	if got := jstring(r.json(t), "properties.validatedResources[0].id"); !strings.HasSuffix(got, "/sessionpools/myshellpool") {
		t.Errorf("validatedResources[0].id = %q", got)
	}
	wantError(t, a.do("POST", path, deployBody(json.RawMessage(`{"resources": 1}`), nil), nil), 400, "InvalidTemplate", "resources")
	// Validation deploys nothing.
	wantError(t, a.do("GET", poolPath("val", "myshellpool", stable), nil, nil), http.StatusNotFound, "ResourceNotFound", "")
	wantError(t, a.do("GET", deploymentPath("val", "v"), nil, nil), http.StatusNotFound, "DeploymentNotFound", "")
}

// TestDeployFailingResource: a resource the API refuses fails the
// deployment with the resource's own error.
func TestDeployFailingResource(t *testing.T) {
	a := newTestAPI(t)
	a.createGroup("fail", "eastus")
	tests := []struct {
		name, template, code, message string
	}{
		{"invalid pool", `{"resources": [
			{"type": "Microsoft.App/sessionPools", "apiVersion": "2025-01-01", "name": "good", "location": "eastus", "properties": {"containerType": "Shell"}},
			{"type": "Microsoft.App/sessionPools", "apiVersion": "2025-01-01", "name": "bad", "location": "eastus", "dependsOn": ["good"],
			 "properties": {"containerType": "Bogus"}}]}`, "InvalidParameter", "properties.containerType"},
		{"unknown type", `{"resources": [{"type": "Microsoft.Storage/storageAccounts", "apiVersion": "2023-01-01", "name": "acct", "location": "eastus"}]}`, "InvalidResourceType", "Microsoft.Storage/storageAccounts"},
		{"bad api-version", `{"resources": [{"type": "Microsoft.App/sessionPools", "apiVersion": "1999-01-01", "name": "p", "location": "eastus", "properties": {}}]}`, "InvalidApiVersionParameter", "1999-01-01"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := a.with(t)
			name := "d" + string(rune('a'+i))
			st := a.deploy("fail", name, deployBody(json.RawMessage(tc.template), nil))
			if st["status"] != "Failed" {
				t.Fatalf("deployment ended %v, want Failed: %v", st["status"], st)
			}
			if got := jstring(st, "error.code"); got != "DeploymentFailed" {
				t.Errorf("error.code = %q, want DeploymentFailed", got)
			}
			if got := jstring(st, "error.details[0].code"); got != tc.code {
				t.Errorf("inner error code = %q, want %q (%v)", got, tc.code, st["error"])
			}
			if got := jstring(st, "error.details[0].message"); !strings.Contains(got, tc.message) {
				t.Errorf("inner error message %q does not mention %q", got, tc.message)
			}
			d := a.must(http.StatusOK, "GET", deploymentPath("fail", name), nil).json(t)
			if got := jstring(d, "properties.provisioningState"); got != "Failed" {
				t.Errorf("deployment provisioningState = %q", got)
			}
			if got := jstring(d, "properties.error.details[0].target"); !strings.Contains(got, "/providers/") {
				t.Errorf("inner error target = %q, want the resource id", got)
			}
		})
	}
	// The first resource of the first template was deployed before the second failed.
	a.must(http.StatusOK, "GET", poolPath("fail", "good", stable), nil)
}

// TestDeployWhileRunning holds the controller so that a pool stays
// InProgress: the deployment stays Running, refuses replacement and
// deletion, and can be canceled.
func TestDeployWhileRunning(t *testing.T) {
	a := newTestAPI(t)
	a.createGroup("run", "eastus")
	a.gate.hold()
	r := a.must(http.StatusCreated, "PUT", deploymentPath("run", "d"), deployBody(readTemplate(t, "deploy.json"), nil))
	async := r.Header.Get("Azure-AsyncOperation")
	a.poll("deployment running", func() bool {
		return jstring(a.must(http.StatusOK, "GET", async, nil).json(t), "status") == "Running"
	})
	wantError(t, a.do("PUT", deploymentPath("run", "d"), deployBody(readTemplate(t, "deploy.json"), nil), nil), http.StatusConflict, "DeploymentActive", "")
	wantError(t, a.do("DELETE", deploymentPath("run", "d"), nil, nil), http.StatusConflict, "DeploymentActive", "")
	a.must(http.StatusNoContent, "POST", deploymentID("run", "d")+"/cancel?api-version="+deployAV, nil)
	st := a.waitDeployment(async)
	if st["status"] != "Canceled" {
		t.Errorf("canceled deployment ended %v", st)
	}
	a.gate.release()
	wantError(t, a.do("POST", deploymentID("run", "d")+"/cancel?api-version="+deployAV, nil, nil), http.StatusConflict, "DeploymentCannotBeCanceled", "")
	a.must(http.StatusOK, "DELETE", deploymentPath("run", "d"), nil)
}

// TestDeployInterrupted: a deployment a stopped server left Running is
// reported Failed, not Running forever.
func TestDeployInterrupted(t *testing.T) {
	a := newTestAPI(t)
	a.createGroup("intr", "eastus")
	ctx := context.Background()
	put := func(name string) {
		body, _ := json.Marshal(map[string]any{
			"id": deploymentID("intr", name), "name": name, "type": arm.DeploymentType,
			"properties":          map[string]any{"mode": "Incremental", "provisioningState": "Running"},
			"tidepoolOperationId": "op-" + name,
		})
		res := &store.Resource{ID: deploymentID("intr", name), Type: arm.DeploymentType, Scope: "/subscriptions/" + testSub + "/resourceGroups/intr", Body: body}
		if err := a.st.PutResource(ctx, res); err != nil {
			t.Fatal(err)
		}
	}
	put("read")
	put("swept")

	st := a.must(http.StatusOK, "GET", deploymentID("intr", "read")+"/operationStatuses/op-read?api-version="+deployAV, nil).json(t)
	if st["status"] != "Failed" || jstring(st, "error.code") != "DeploymentInterrupted" {
		t.Errorf("interrupted deployment status = %v", st)
	}
	if err := a.h.(*arm.Server).RecoverDeployments(ctx); err != nil {
		t.Fatalf("RecoverDeployments: %v", err)
	}
	res, err := a.st.GetResource(ctx, deploymentID("intr", "swept"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(res.Body), `"provisioningState":"Failed"`) {
		t.Errorf("after RecoverDeployments the stored deployment is %s", res.Body)
	}
	wantError(t, a.do("GET", deploymentID("intr", "read")+"/operationStatuses/other?api-version="+deployAV, nil, nil), http.StatusNotFound, "OperationNotFound", "")
}

// TestGroupDeleteCascadesDeployments: deleting a resource group deletes
// its deployments with the resources they created.
func TestGroupDeleteCascadesDeployments(t *testing.T) {
	a := newTestAPI(t)
	a.createGroup("casc", "northcentralus")
	if st := a.deploy("casc", "deploy", deployBody(readTemplate(t, "deploy.json"), nil)); st["status"] != "Succeeded" {
		t.Fatalf("deployment ended %v", st)
	}
	r := a.must(http.StatusAccepted, "DELETE", groupPath("casc"), nil)
	if got := a.waitLocation(r.Header.Get("Location")); got.Status != http.StatusOK && got.Status != http.StatusNoContent {
		t.Fatalf("%s: group deletion did not finish", got)
	}
	if _, err := a.st.GetResource(context.Background(), deploymentID("casc", "deploy")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deployment after group deletion: %v, want not found", err)
	}
	if _, err := a.st.GetResource(context.Background(), poolID("casc", "myshellpool")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("pool after group deletion: %v, want not found", err)
	}
}

// FuzzDeploymentValidate sends arbitrary templates and parameters to the
// validate action, which evaluates them as a PUT does without deploying:
// the answer is 200 or an ARM error, 4xx or 501 NotImplemented, never a
// panic or another 5xx.
func FuzzDeploymentValidate(f *testing.F) {
	a := newTestAPIIn(f, memDir(f))
	a.createGroup("rg", "eastus")
	for _, name := range []string{"deploy.json", "deploy_functions.json"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, []byte(`{}`))
	}
	f.Add([]byte(`{"parameters":{"p":{"type":"array","allowedValues":[1,2]}},"resources":[{"type":"[concat('Microsoft.App/', 'sessionPools')]","apiVersion":"2025-01-01","name":"[string(parameters('p')[0])]"}]}`), []byte(`{"p":{"value":[1]}}`))
	f.Add([]byte(`{"variables":{"a":"[variables('b')]","b":"[[x]"},"outputs":{"o":{"type":"string","value":"[format('{0,-3:D2}', length(variables('a')))]"}}}`), []byte(`null`))
	path := a.URL + deploymentID("rg", "fuzz") + "/validate?api-version=" + deployAV
	f.Fuzz(func(t *testing.T, tmpl, params []byte) {
		body := []byte(`{"properties":{"mode":"Incremental","template":`)
		body = append(append(body, tmpl...), `,"parameters":`...)
		body = append(append(body, params...), `}}`...)
		req, err := http.NewRequest("POST", path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+a.token)
		w := httptest.NewRecorder()
		a.h.ServeHTTP(w, req)
		if w.Code == http.StatusOK {
			return
		}
		var env struct {
			Error *struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &env); err != nil || env.Error == nil || env.Error.Code == "" || env.Error.Message == "" {
			t.Fatalf("→ %d: not an ARM error envelope: %q", w.Code, w.Body.Bytes())
		}
		if w.Code >= 500 && !(w.Code == http.StatusNotImplemented && env.Error.Code == "NotImplemented") {
			t.Fatalf("template %q parameters %q → %d %s", tmpl, params, w.Code, w.Body.Bytes())
		}
	})
}

// TestDeployStop: stopping the server's deployments records the running
// ones as interrupted and refuses new ones.
func TestDeployStop(t *testing.T) {
	a := newTestAPI(t)
	a.createGroup("stop", "eastus")
	a.gate.hold()
	defer a.gate.release()
	r := a.must(http.StatusCreated, "PUT", deploymentPath("stop", "d"), deployBody(readTemplate(t, "deploy.json"), nil))
	async := r.Header.Get("Azure-AsyncOperation")
	a.poll("deployment running", func() bool {
		return jstring(a.must(http.StatusOK, "GET", async, nil).json(t), "status") == "Running"
	})
	if err := a.h.(*arm.Server).StopDeployments(context.Background()); err != nil {
		t.Fatalf("StopDeployments: %v", err)
	}
	st := a.must(http.StatusOK, "GET", async, nil).json(t)
	if st["status"] != "Failed" || jstring(st, "error.code") != "DeploymentInterrupted" {
		t.Errorf("stopped deployment status = %v", st)
	}
	wantError(t, a.do("PUT", deploymentPath("stop", "e"), deployBody(readTemplate(t, "deploy.json"), nil), nil), http.StatusServiceUnavailable, "ServerShuttingDown", "")
}
