package template

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestTutorialTemplate(t *testing.T) {
	res, err := Evaluate(readTestdata(t, "deploy.json"), nil, testEnv)
	if err != nil {
		t.Fatalf("Evaluate(deploy.json): %v", err)
	}
	if len(res.Resources) != 1 {
		t.Fatalf("got %d resources, want 1", len(res.Resources))
	}
	r := res.Resources[0]
	wantID := "/subscriptions/" + testEnv.Subscription.SubscriptionID + "/resourceGroups/rg1/providers/Microsoft.App/sessionpools/myshellpool"
	if r.ID != wantID || r.Type != "Microsoft.App/sessionpools" || r.APIVersion != "2025-02-02-preview" || r.Name != "myshellpool" {
		t.Errorf("resource = %s %s %s %s, want %s", r.ID, r.Type, r.APIVersion, r.Name, wantID)
	}
	if r.Body["location"] != "North Central US" {
		t.Errorf("body location = %v", r.Body["location"])
	}
	for _, k := range []string{"type", "apiVersion", "name"} {
		if _, ok := r.Body[k]; ok {
			t.Errorf("body has the template-only member %q", k)
		}
	}
	if got := jsonOf(t, r.Body["properties"]); !strings.Contains(got, `"maxConcurrentSessions":5`) || !strings.Contains(got, `"containerType":"Shell"`) {
		t.Errorf("body properties = %s", got)
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestFunctionsTemplate(t *testing.T) {
	params := []byte(`{"poolPrefix": {"value": "Tide"}, "maxSessions": {"value": "7"}}`)
	res, err := Evaluate(readTestdata(t, "functions.json"), params, testEnv)
	if err != nil {
		t.Fatalf("Evaluate(functions.json): %v", err)
	}
	rgID := "/subscriptions/" + testEnv.Subscription.SubscriptionID + "/resourceGroups/rg1"
	first := "tide" + UniqueString(rgID)
	if len(res.Resources) != 2 {
		t.Fatalf("got %d resources, want 2 (the third has a false condition)", len(res.Resources))
	}
	// The second resource in the template comes first: the first depends on it.
	if res.Resources[0].Name != first || res.Resources[1].Name != "Tidesecond" {
		t.Fatalf("order = %s, %s; want %s, Tidesecond", res.Resources[0].Name, res.Resources[1].Name, first)
	}
	if want := rgID + "/providers/Microsoft.App/sessionPools/" + first; len(res.Resources[1].DependsOn) != 1 || res.Resources[1].DependsOn[0] != want {
		t.Errorf("dependsOn = %v, want [%s]", res.Resources[1].DependsOn, want)
	}
	p := jsonOf(t, res.Resources[0].Body)
	for _, want := range []string{`"maxConcurrentSessions":14`, `"status":"EgressDisabled"`, `"location":"northcentralus"`, `"deployment":"deploy"`, `"literal":"[kept]"`} {
		if !strings.Contains(p, want) {
			t.Errorf("body %s does not contain %s", p, want)
		}
	}
	if got := res.Outputs["poolId"]; got.Type != "String" || got.Value != rgID+"/providers/Microsoft.App/sessionPools/"+first {
		t.Errorf("output poolId = %+v", got)
	}
	if got := res.Outputs["sessions"]; got.Type != "Int" || got.Value != int64(7) {
		t.Errorf("output sessions = %+v", got)
	}
	if got := res.Parameters["maxSessions"]; got.Type != "Int" || got.Value != int64(7) {
		t.Errorf("parameter maxSessions = %+v", got)
	}
	if got := res.Parameters["location"]; got.Value != "northcentralus" {
		t.Errorf("parameter location = %+v", got)
	}
}

func TestTemplateErrors(t *testing.T) {
	const pool = `{"type": "Microsoft.App/sessionPools", "apiVersion": "2025-01-01", "name": %q, "location": "eastus"%s}`
	res := func(name, extra string) string {
		return strings.Replace(strings.Replace(pool, "%q", `"`+name+`"`, 1), "%s", extra, 1)
	}
	tests := []struct {
		name, template, params string
		code, target, message  string
	}{
		{"not JSON", `{`, "", CodeInvalidTemplate, "properties.template", "not valid JSON"},
		{"not an object", `[]`, "", CodeInvalidTemplate, "properties.template", "must be a JSON object"},
		{"missing parameter", `{"parameters": {"p": {"type": "string"}}}`, "", CodeInvalidTemplate, "parameters.p", "is not provided"},
		{"undeclared parameter", `{"parameters": {"p": {"type": "string"}}}`, `{"p": {"value": "x"}, "q": {"value": 1}}`, CodeInvalidTemplate, "properties.parameters.q", "not declared"},
		{"wrong parameter type", `{"parameters": {"p": {"type": "int"}}}`, `{"p": {"value": "x"}}`, CodeInvalidTemplate, "parameters.p", "must be Int"},
		{"bad parameter type", `{"parameters": {"p": {"type": "float"}}}`, "", CodeInvalidTemplate, "parameters.p.type", "must be one of"},
		{"not allowed", `{"parameters": {"p": {"type": "string", "allowedValues": ["a", "b"]}}}`, `{"p": {"value": "c"}}`, CodeInvalidTemplate, "parameters.p", "allowed values are: 'a, b'"},
		{"below minValue", `{"parameters": {"p": {"type": "int", "minValue": 2}}}`, `{"p": {"value": 1}}`, CodeInvalidTemplate, "parameters.p", "minValue is 2"},
		{"too long", `{"parameters": {"p": {"type": "string", "maxLength": 2}}}`, `{"p": {"value": "abc"}}`, CodeInvalidTemplate, "parameters.p", "maxLength is 2"},
		{"value missing", `{"parameters": {"p": {"type": "string"}}}`, `{"p": {"val": "x"}}`, CodeInvalidTemplate, "properties.parameters.p", "has no 'value'"},
		{"key vault reference", `{"parameters": {"p": {"type": "string"}}}`, `{"p": {"reference": {}}}`, CodeNotImplemented, "properties.parameters.p.reference", "Key Vault"},
		{"self-referring variable", `{"variables": {"a": "[variables('b')]", "b": "[variables('a')]"}}`, "", CodeInvalidTemplate, "variables.a", "refers to itself"},
		{"broken unused variable", `{"variables": {"a": "[nope()]"}}`, "", CodeInvalidTemplate, "variables.a", "'nope' is not known"},
		{"resources not array", `{"resources": 5}`, "", CodeInvalidTemplate, "resources", "must be an array"},
		{"symbolic resources", `{"resources": {"p": {}}}`, "", CodeNotImplemented, "resources", "Symbolic-name"},
		{"copy", `{"resources": [` + res("p", `, "copy": {"name": "c", "count": 2}`) + `]}`, "", CodeNotImplemented, "resources[0].copy", "copy loops"},
		{"child resources", `{"resources": [` + res("p", `, "resources": []`) + `]}`, "", CodeNotImplemented, "resources[0].resources", "Nested child"},
		{"bad expression in properties", `{"resources": [` + res("p", `, "properties": {"x": "[concat(]"}`) + `]}`, "", CodeInvalidTemplate, "resources[0].properties.x", "is not valid"},
		{"path with odd member", `{"resources": [` + res("p", `, "properties": {"a b": ["ok", "[bad(]"]}`) + `]}`, "", CodeInvalidTemplate, "resources[0].properties['a b'][1]", "is not valid"},
		{"no type", `{"resources": [{"apiVersion": "2025-01-01", "name": "p"}]}`, "", CodeInvalidTemplate, "resources[0].type", "no type"},
		{"no apiVersion", `{"resources": [{"type": "Microsoft.App/sessionPools", "name": "p"}]}`, "", CodeInvalidTemplate, "resources[0].apiVersion", "no apiVersion"},
		{"names do not fit type", `{"resources": [` + res("a/b", "") + `]}`, "", CodeInvalidTemplate, "resources[0].name", "name segments"},
		{"unknown dependency", `{"resources": [` + res("p", `, "dependsOn": ["q"]`) + `]}`, "", CodeInvalidTemplate, "resources[0].dependsOn[0]", "'q' is not defined"},
		{"cycle", `{"resources": [` + res("p", `, "dependsOn": ["q"]`) + `,` + res("q", `, "dependsOn": ["p"]`) + `]}`, "", CodeInvalidTemplate, "resources", "Circular dependency"},
		{"duplicate", `{"resources": [` + res("p", "") + `,` + res("P", "") + `]}`, "", CodeInvalidTemplate, "resources[1]", "more than once"},
		{"condition not bool", `{"resources": [` + res("p", `, "condition": "yes"`) + `]}`, "", CodeInvalidTemplate, "resources[0].condition", "must be a Boolean"},
		{"output type", `{"outputs": {"o": {"type": "int", "value": "x"}}}`, "", CodeInvalidTemplate, "outputs.o.value", "must be Int"},
		{"output reference", `{"outputs": {"o": {"type": "object", "value": "[reference('p')]"}}}`, "", CodeNotImplemented, "outputs.o.value", "'reference' is not implemented"},
		{"user functions", `{"functions": [{"namespace": "x"}]}`, "", CodeNotImplemented, "functions", "User-defined"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Evaluate([]byte(tc.template), []byte(tc.params), testEnv)
			var te *Error
			if !errors.As(err, &te) {
				t.Fatalf("Evaluate: got %v, want a *template.Error", err)
			}
			if te.Code != tc.code || te.Target != tc.target || !strings.Contains(te.Message, tc.message) {
				t.Errorf("Evaluate: got %s %q %q; want %s %q containing %q", te.Code, te.Target, te.Message, tc.code, tc.target, tc.message)
			}
		})
	}
}

func TestDependsOnForms(t *testing.T) {
	const tmpl = `{"resources": [
	  {"type": "Microsoft.App/sessionPools", "apiVersion": "2025-01-01", "name": "c", "dependsOn": ["Microsoft.App/sessionPools/b"]},
	  {"type": "Microsoft.App/sessionPools", "apiVersion": "2025-01-01", "name": "b", "dependsOn": ["a", "[resourceId('Microsoft.App/managedEnvironments', 'env')]"]},
	  {"type": "Microsoft.App/sessionPools", "apiVersion": "2025-01-01", "name": "a"},
	  {"type": "Microsoft.App/managedEnvironments", "apiVersion": "2025-01-01", "name": "env", "condition": false}
	]}`
	res, err := Evaluate([]byte(tmpl), nil, testEnv)
	if err != nil {
		t.Fatalf("Evaluate: %v", err)
	}
	var names []string
	for _, r := range res.Resources {
		names = append(names, r.Name)
	}
	if got := strings.Join(names, ","); got != "a,b,c" {
		t.Errorf("order = %s, want a,b,c", got)
	}
	if len(res.Resources[1].DependsOn) != 1 {
		t.Errorf("b depends on %v: the dependency on a resource with a false condition must be dropped", res.Resources[1].DependsOn)
	}
}

func TestParseRoundTrip(t *testing.T) {
	// Property access, indexes and nesting parse into the expected shape.
	n, err := parseExpression("a(b('x')[0].c, -1)['d']")
	if err != nil {
		t.Fatal(err)
	}
	idx, ok := n.(*index)
	if !ok {
		t.Fatalf("top node %T, want *index", n)
	}
	c, ok := idx.x.(*call)
	if !ok || c.name != "a" || len(c.args) != 2 {
		t.Fatalf("call = %#v", idx.x)
	}
	if p, ok := c.args[0].(*property); !ok || p.name != "c" {
		t.Errorf("first argument %#v, want property c", c.args[0])
	}
	if l, ok := c.args[1].(*literal); !ok || l.value != int64(-1) {
		t.Errorf("second argument %#v, want -1", c.args[1])
	}
}
