package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
)

// sessionExecutor is the built-in role the tutorial assigns.
const sessionExecutor = "0fb8eba5-a2bb-4abe-b1c1-49dfad359bb0"

// fakeAzure stands in front of a live server and answers, in the wire
// shapes the lead specified, the routes the server does not have yet:
// user-assigned identities, role definitions and assignments, Graph
// service principals, and template deployments (whose resources it PUTs
// to the server). Everything else is proxied. It checks no tokens.
type fakeAzure struct {
	t        *testing.T
	real     *url.URL
	proxy    *httputil.ReverseProxy
	mu       sync.Mutex
	objs     map[string]map[string]any // lower-case id → object
	spByApp  map[string]map[string]any
	requests []string
}

func newFakeAzure(t *testing.T, realEndpoint string) *httptest.Server {
	u, err := url.Parse(realEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeAzure{t: t, real: u, proxy: httputil.NewSingleHostReverseProxy(u), objs: map[string]map[string]any{}, spByApp: map[string]map[string]any{}}
	s := httptest.NewServer(f)
	t.Cleanup(s.Close)
	return s
}

func writeJSONResp(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func fakeErr(w http.ResponseWriter, status int, code, msg string) {
	writeJSONResp(w, status, map[string]any{"error": map[string]any{"code": code, "message": msg}})
}

func (f *fakeAzure) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	lp := strings.ToLower(p)
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI())
	f.mu.Unlock()
	switch {
	case strings.HasPrefix(lp, "/v1.0/serviceprincipals"):
		f.graph(w, r)
	case strings.Contains(lp, "/providers/microsoft.managedidentity/"):
		f.identity(w, r)
	case strings.Contains(lp, "/providers/microsoft.authorization/roledefinitions"):
		f.roleDefinitions(w, r)
	case strings.Contains(lp, "/providers/microsoft.authorization/roleassignments"):
		f.roleAssignments(w, r)
	case strings.Contains(lp, "/providers/microsoft.resources/deployments/"):
		f.deployment(w, r)
	case strings.HasPrefix(lp, "/fakeops/"):
		writeJSONResp(w, 200, map[string]any{"status": "Succeeded"})
	default:
		f.proxy.ServeHTTP(w, r)
	}
}

func (f *fakeAzure) graph(w http.ResponseWriter, r *http.Request) {
	filter := r.URL.Query().Get("$filter")
	appID, ok := strings.CutPrefix(filter, "appId eq '")
	if !ok {
		fakeErr(w, 400, "BadRequest", "unsupported filter")
		return
	}
	appID = strings.TrimSuffix(appID, "'")
	f.mu.Lock()
	defer f.mu.Unlock()
	v := []any{}
	if sp, ok := f.spByApp[strings.ToLower(appID)]; ok {
		v = append(v, sp)
	}
	writeJSONResp(w, 200, map[string]any{"value": v})
}

func (f *fakeAzure) identity(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("api-version") != identityVersion {
		fakeErr(w, 400, "InvalidApiVersionParameter", "wrong api-version "+r.URL.Query().Get("api-version"))
		return
	}
	id := strings.TrimSuffix(r.URL.Path, "/")
	key := strings.ToLower(id)
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.HasSuffix(key, "/userassignedidentities") {
		v := []any{}
		for k, o := range f.objs {
			if strings.HasPrefix(k, strings.TrimSuffix(key, "/providers/microsoft.managedidentity/userassignedidentities")) && strings.Contains(k, "/userassignedidentities/") {
				v = append(v, o)
			}
		}
		writeJSONResp(w, 200, map[string]any{"value": v})
		return
	}
	switch r.Method {
	case http.MethodPut:
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		name := id[strings.LastIndex(id, "/")+1:]
		obj := map[string]any{"id": id, "name": name, "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
			"location": body["location"], "tags": body["tags"],
			"properties": map[string]any{"tenantId": uuid.NewString(), "principalId": uuid.NewString(), "clientId": uuid.NewString()}}
		f.objs[key] = obj
		writeJSONResp(w, 201, obj)
	case http.MethodGet:
		if o, ok := f.objs[key]; ok {
			writeJSONResp(w, 200, o)
			return
		}
		fakeErr(w, 404, "ResourceNotFound", "no identity "+id)
	case http.MethodDelete:
		delete(f.objs, key)
		w.WriteHeader(200)
	}
}

func roleDef(sub string) map[string]any {
	return map[string]any{
		"id": "/subscriptions/" + sub + "/providers/Microsoft.Authorization/roleDefinitions/" + sessionExecutor, "name": sessionExecutor,
		"type": "Microsoft.Authorization/roleDefinitions",
		"properties": map[string]any{"roleName": "Azure ContainerApps Session Executor", "type": "BuiltInRole", "description": "Execute sessions",
			"assignableScopes": []any{"/"}, "permissions": []any{map[string]any{"actions": []any{}, "dataActions": []any{"Microsoft.App/sessionPools/interpreters/execute/action"}}}},
	}
}

func (f *fakeAzure) roleDefinitions(w http.ResponseWriter, r *http.Request) {
	sub := strings.Split(strings.Trim(r.URL.Path, "/"), "/")[1]
	d := roleDef(sub)
	if strings.HasSuffix(strings.ToLower(r.URL.Path), "/"+sessionExecutor) {
		writeJSONResp(w, 200, d)
		return
	}
	v := []any{d}
	if name, ok := strings.CutPrefix(r.URL.Query().Get("$filter"), "roleName eq '"); ok && strings.TrimSuffix(name, "'") != "Azure ContainerApps Session Executor" {
		v = []any{}
	}
	writeJSONResp(w, 200, map[string]any{"value": v})
}

func (f *fakeAzure) roleAssignments(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("api-version") != authorizationVersion {
		fakeErr(w, 400, "InvalidApiVersionParameter", "wrong api-version")
		return
	}
	p := strings.TrimSuffix(r.URL.Path, "/")
	i := strings.Index(strings.ToLower(p), "/providers/microsoft.authorization/roleassignments")
	scope := p[:i]
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodGet && strings.HasSuffix(strings.ToLower(p), "/roleassignments"):
		filter := r.URL.Query().Get("$filter")
		v := []any{}
		for _, o := range f.objs {
			props, ok := o["properties"].(map[string]any)
			if !ok || o["type"] != "Microsoft.Authorization/roleAssignments" {
				continue
			}
			s := props["scope"].(string)
			switch {
			case filter == "atScope()":
				if !strings.HasPrefix(strings.ToLower(scope)+"/", strings.ToLower(s)+"/") {
					continue
				}
			case strings.HasPrefix(filter, "principalId eq '"):
				if !strings.Contains(filter, props["principalId"].(string)) {
					continue
				}
			}
			v = append(v, o)
		}
		writeJSONResp(w, 200, map[string]any{"value": v})
	case r.Method == http.MethodPut:
		var body struct {
			Properties map[string]any `json:"properties"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		for _, o := range f.objs {
			props, _ := o["properties"].(map[string]any)
			if props != nil && strings.EqualFold(fmt.Sprint(props["scope"]), scope) && props["principalId"] == body.Properties["principalId"] && props["roleDefinitionId"] == body.Properties["roleDefinitionId"] {
				fakeErr(w, 409, "RoleAssignmentExists", "The role assignment already exists.")
				return
			}
		}
		name := p[strings.LastIndex(p, "/")+1:]
		ptype := body.Properties["principalType"]
		if ptype == nil {
			ptype = "ServicePrincipal"
		}
		obj := map[string]any{"id": p, "name": name, "type": "Microsoft.Authorization/roleAssignments",
			"properties": map[string]any{"roleDefinitionId": body.Properties["roleDefinitionId"], "principalId": body.Properties["principalId"],
				"principalType": ptype, "scope": scope}}
		f.objs[strings.ToLower(p)] = obj
		writeJSONResp(w, 201, obj)
	case r.Method == http.MethodDelete:
		o, ok := f.objs[strings.ToLower(p)]
		if !ok {
			w.WriteHeader(204)
			return
		}
		delete(f.objs, strings.ToLower(p))
		writeJSONResp(w, 200, o)
	default:
		fakeErr(w, 405, "MethodNotAllowed", r.Method)
	}
}

// deployment PUTs the template's resources (literal values only) to the
// server and answers 201 with an Azure-AsyncOperation.
func (f *fakeAzure) deployment(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		f.mu.Lock()
		o, ok := f.objs[strings.ToLower(r.URL.Path)]
		f.mu.Unlock()
		if !ok {
			fakeErr(w, 404, "DeploymentNotFound", "no deployment")
			return
		}
		writeJSONResp(w, 200, o)
		return
	}
	var body struct {
		Properties struct {
			Mode     string `json:"mode"`
			Template struct {
				Resources []map[string]any `json:"resources"`
			} `json:"template"`
			Parameters map[string]any `json:"parameters"`
		} `json:"properties"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Properties.Mode == "" {
		fakeErr(w, 400, "InvalidTemplate", fmt.Sprint("bad deployment body: ", err))
		return
	}
	rg := r.URL.Path[:strings.Index(strings.ToLower(r.URL.Path), "/providers/microsoft.resources")]
	for _, res := range body.Properties.Template.Resources {
		payload, _ := json.Marshal(map[string]any{"location": res["location"], "properties": res["properties"]})
		u := f.real.String() + rg + "/providers/" + fmt.Sprint(res["type"]) + "/" + fmt.Sprint(res["name"]) + "?api-version=" + fmt.Sprint(res["apiVersion"])
		req, _ := http.NewRequest(http.MethodPut, u, bytes.NewReader(payload))
		req.Header.Set("Authorization", r.Header.Get("Authorization"))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fakeErr(w, 500, "DeploymentFailed", err.Error())
			return
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			fakeErr(w, 400, "DeploymentFailed", string(out))
			return
		}
	}
	name := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
	obj := map[string]any{"id": r.URL.Path, "name": name, "type": "Microsoft.Resources/deployments",
		"properties": map[string]any{"provisioningState": "Succeeded", "mode": body.Properties.Mode, "parameters": body.Properties.Parameters}}
	f.mu.Lock()
	f.objs[strings.ToLower(r.URL.Path)] = obj
	f.mu.Unlock()
	w.Header().Set("Azure-AsyncOperation", "http://"+r.Host+"/fakeops/"+uuid.NewString())
	writeJSONResp(w, 201, obj)
}
