package template

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

var testEnv = Env{
	Subscription:   Subscription{SubscriptionID: "00000000-0000-0000-0000-000000000001", TenantID: "tenant-1", DisplayName: "Test subscription"},
	ResourceGroup:  ResourceGroup{Name: "rg1", Location: "northcentralus", Tags: map[string]string{"env": "test"}},
	DeploymentName: "deploy",
}

// evalOne evaluates one expression in a template with a few parameters
// and variables, through an output of type object.
func evalOne(t *testing.T, expr string) (any, error) {
	t.Helper()
	tmpl := map[string]any{
		"parameters": map[string]any{
			"name":  map[string]any{"type": "string", "defaultValue": "pool"},
			"count": map[string]any{"type": "int", "defaultValue": 3},
			"flag":  map[string]any{"type": "bool", "defaultValue": true},
			"list":  map[string]any{"type": "array", "defaultValue": []any{"a", "b", "c"}},
			"obj":   map[string]any{"type": "object", "defaultValue": map[string]any{"Inner": map[string]any{"x": 1}, "k": "v"}},
		},
		"variables": map[string]any{
			"prefix":  "[concat(parameters('name'), '-')]",
			"derived": "[concat(variables('prefix'), 'x')]",
		},
		"outputs": map[string]any{
			"out": map[string]any{"type": "object", "value": map[string]any{"v": expr}},
		},
	}
	data, err := json.Marshal(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Evaluate(data, nil, testEnv)
	if err != nil {
		return nil, err
	}
	return res.Outputs["out"].Value.(map[string]any)["v"], nil
}

func TestExpressions(t *testing.T) {
	sub := testEnv.Subscription.SubscriptionID
	tests := []struct {
		expr string
		want any
	}{
		{"plain text", "plain text"},
		{"[[not an expression]", "[not an expression]"},
		{"[[only a bracket", "[[only a bracket"},
		{"[not closed", "[not closed"},
		{"[concat('a', 'b', 'c')]", "abc"},
		{"[concat('n', 1, true)]", "n1True"},
		{"[concat(createArray(1, 2), createArray(3))]", []any{int64(1), int64(2), int64(3)}},
		{"['it''s']", "it's"},
		{"[-5]", int64(-5)},
		{"[true]", true},
		{"[null()]", nil},
		{"[parameters('name')]", "pool"},
		{"[parameters('NAME')]", "pool"},
		{"[variables('derived')]", "pool-x"},
		{"[parameters('list')[1]]", "b"},
		{"[parameters('obj').inner.x]", int64(1)},
		{"[parameters('obj')['k']]", "v"},
		{"[resourceGroup().name]", "rg1"},
		{"[resourceGroup().location]", "northcentralus"},
		{"[resourceGroup().id]", "/subscriptions/" + sub + "/resourceGroups/rg1"},
		{"[resourceGroup().tags.env]", "test"},
		{"[subscription().subscriptionId]", sub},
		{"[subscription().tenantId]", "tenant-1"},
		{"[subscription().displayName]", "Test subscription"},
		{"[subscription().id]", "/subscriptions/" + sub},
		{"[deployment().name]", "deploy"},
		{"[format('{0}-{1}', 'a', 2)]", "a-2"},
		{"[format('{{{0}}}', 'x')]", "{x}"},
		{"[format('{0,5}|{1,-3}|', 'ab', 'c')]", "   ab|c  |"},
		{"[format('{0:D3}', 7)]", "007"},
		{"[format('{0:N0}', 1234567)]", "1,234,567"},
		{"[format('{0}', true)]", "True"},
		{"[resourceId('Microsoft.App/sessionPools', 'p1')]", "/subscriptions/" + sub + "/resourceGroups/rg1/providers/Microsoft.App/sessionPools/p1"},
		{"[resourceId('other', 'Microsoft.App/sessionPools', 'p1')]", "/subscriptions/" + sub + "/resourceGroups/other/providers/Microsoft.App/sessionPools/p1"},
		{"[resourceId('s2', 'other', 'Microsoft.App/sessionPools', 'p1')]", "/subscriptions/s2/resourceGroups/other/providers/Microsoft.App/sessionPools/p1"},
		{"[resourceId('Microsoft.Network/virtualNetworks/subnets', 'vnet', 'sn')]", "/subscriptions/" + sub + "/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/vnet/subnets/sn"},
		{"[resourceId('Microsoft.Network/virtualNetworks/subnets', 'vnet/sn')]", "/subscriptions/" + sub + "/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/vnet/subnets/sn"},
		{"[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'r1')]", "/subscriptions/" + sub + "/providers/Microsoft.Authorization/roleDefinitions/r1"},
		{"[tenantResourceId('Microsoft.Authorization/policyDefinitions', 'p')]", "/providers/Microsoft.Authorization/policyDefinitions/p"},
		{"[uniqueString('hello', 'world')]", "a7wkljktk6wne"},
		{"[length(uniqueString(resourceGroup().id))]", int64(13)},
		{"[toLower('ABC')]", "abc"},
		{"[toUpper('abc')]", "ABC"},
		{"[string(5)]", "5"},
		{"[string(createObject('a', 1))]", `{"a":1}`},
		{"[int('42')]", int64(42)},
		{"[bool('true')]", true},
		{"[equals(parameters('count'), 3)]", true},
		{"[equals(createArray(1, 'a'), createArray(1, 'a'))]", true},
		{"[equals('a', 'A')]", false},
		{"[not(parameters('flag'))]", false},
		{"[and(true, true, false)]", false},
		{"[or(false, true)]", true},
		{"[if(parameters('flag'), 'yes', 'no')]", "yes"},
		{"[if(false, parameters('missing'), 'lazy')]", "lazy"},
		{"[empty('')]", true},
		{"[empty(createArray())]", true},
		{"[empty(parameters('obj'))]", false},
		{"[length('héllo')]", int64(5)},
		{"[length(parameters('list'))]", int64(3)},
		{"[contains('session', 'ss')]", true},
		{"[contains(parameters('list'), 'c')]", true},
		{"[contains(parameters('obj'), 'K')]", true},
		{"[equals(guid('a', 'b'), guid('a', 'b'))]", true},
		{"[equals(guid('a', 'b'), guid('a', 'c'))]", false},
		{"[length(guid('a'))]", int64(36)},
		{"[union(createObject('a', 1, 'n', createObject('x', 1)), createObject('b', 2, 'n', createObject('y', 2)))]",
			map[string]any{"a": int64(1), "b": int64(2), "n": map[string]any{"x": int64(1), "y": int64(2)}}},
		{"[union(createArray(1, 2), createArray(2, 3))]", []any{int64(1), int64(2), int64(3)}},
		{"[json('{\"a\": [1, 2]}').a[1]]", int64(2)},
		{"[replace('a-b-c', '-', '_')]", "a_b_c"},
		{"[split('a,b;c', createArray(',', ';'))]", []any{"a", "b", "c"}},
		{"[substring('session', 1, 3)]", "ess"},
		{"[substring('session', 4)]", "ion"},
		{"[trim('  x  ')]", "x"},
		{"[padLeft('7', 3, '0')]", "007"},
		{"[add(2, mul(3, 4))]", int64(14)},
		{"[max(3, 9, 1)]", int64(9)},
		{"[greater('b', 'a')]", true},
		{"[first(parameters('list'))]", "a"},
		{"[last('xyz')]", "z"},
		{"[coalesce(null(), 'd')]", "d"},
		{"[base64ToString(base64('hi'))]", "hi"},
		{"[ concat ( 'a' , 'b' ) ]", "ab"},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			got, err := evalOne(t, tc.expr)
			if err != nil {
				t.Fatalf("evaluate %q: %v", tc.expr, err)
			}
			if !deepEqual(got, tc.want) {
				t.Errorf("evaluate %q = %#v, want %#v", tc.expr, got, tc.want)
			}
		})
	}
}

func TestExpressionErrors(t *testing.T) {
	tests := []struct {
		expr    string
		code    string
		message string // a fragment of the message
	}{
		{"[noSuchFunction(1)]", CodeInvalidTemplate, "'noSuchFunction' is not known"},
		{"[reference('x')]", CodeNotImplemented, "'reference' is not implemented"},
		{"[listKeys('x', '2020-01-01')]", CodeNotImplemented, "'listKeys' is not implemented"},
		{"[utcNow()]", CodeNotImplemented, "utcNow"},
		{"[parameters('missing')]", CodeInvalidTemplate, "'missing' is not declared"},
		{"[variables('missing')]", CodeInvalidTemplate, "'missing' is not declared"},
		{"[concat('a']", CodeInvalidTemplate, "expected ',' or ')'"},
		{"[concat('a)]", CodeInvalidTemplate, "not terminated"},
		{"[concat('a') extra]", CodeInvalidTemplate, "after the end"},
		{"[foo]", CodeInvalidTemplate, "must be followed by '('"},
		{"[]", CodeInvalidTemplate, "expected a literal or a function call"},
		{"[parameters('list')[5]]", CodeInvalidTemplate, "out of range"},
		{"[parameters('obj').nope]", CodeInvalidTemplate, "'nope' doesn't exist"},
		{"[parameters('name').x]", CodeInvalidTemplate, "cannot be read from a value of type String"},
		{"[toLower(1)]", CodeInvalidTemplate, "must be a string"},
		{"[equals(1)]", CodeInvalidTemplate, "takes 2 arguments"},
		{"[format('{1}', 'a')]", CodeInvalidTemplate, "refers to argument 1"},
		{"[format('{0:Q}', 1)]", CodeNotImplemented, "format string 'Q'"},
		{"[resourceId('Microsoft.App/sessionPools')]", CodeInvalidTemplate, "takes at least 2 arguments"},
		{"[resourceId('Microsoft.App/sessionPools', 'a', 'b')]", CodeInvalidTemplate, "needs 1 name segments"},
		{"[concat(createArray(1), 'x')]", CodeInvalidTemplate, "arrays concatenate only with arrays"},
		{"[div(1, 0)]", CodeInvalidTemplate, "division by zero"},
		{"[99999999999999999999]", CodeInvalidTemplate, "out of range"},
		{"[if(1, 'a', 'b')]", CodeInvalidTemplate, "must be a Boolean"},
		{"[" + strings.Repeat("concat(", 100) + strings.Repeat(")", 100) + "]", CodeInvalidTemplate, "nests deeper"},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			_, err := evalOne(t, tc.expr)
			var te *Error
			if !errors.As(err, &te) {
				t.Fatalf("evaluate %q: got error %v, want a *template.Error", tc.expr, err)
			}
			if te.Code != tc.code {
				t.Errorf("evaluate %q: code %q, want %q (%v)", tc.expr, te.Code, tc.code, te)
			}
			if te.Target != "outputs.out.value.v" {
				t.Errorf("evaluate %q: target %q, want outputs.out.value.v", tc.expr, te.Target)
			}
			if !strings.Contains(te.Message, tc.message) {
				t.Errorf("evaluate %q: message %q does not contain %q", tc.expr, te.Message, tc.message)
			}
		})
	}
}

// TestUniqueString checks values Azure itself returned.
func TestUniqueString(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"aaa"}, "zavj67f3en4hc"},
		{[]string{"bbb"}, "w5eragfxe33cy"},
		{[]string{"zzz"}, "cryksdzzzawae"},
		{[]string{"xxx", "yyy", "zzz"}, "lghi7k5js7itq"},
		{[]string{"hello", "world"}, "a7wkljktk6wne"},
	}
	for _, tc := range tests {
		if got := UniqueString(tc.args...); got != tc.want {
			t.Errorf("UniqueString(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
	// Every tail length of the 8-byte blocks, and the output alphabet.
	for n := range 20 {
		s := UniqueString(strings.Repeat("x", n))
		if len(s) != 13 || strings.Trim(s, "abcdefghijklmnopqrstuvwxyz234567") != "" {
			t.Errorf("UniqueString(%d x's) = %q: want 13 characters of [a-z2-7]", n, s)
		}
	}
}
