package template

import (
	"errors"
	"testing"
)

// FuzzExpression feeds arbitrary expressions to the parser and the
// evaluator: they must return a value or a *template.Error, never panic.
func FuzzExpression(f *testing.F) {
	for _, s := range []string{
		"[concat('a', parameters('name'))]",
		"[format('{0}-{1,3:D2}', 1, 2)]",
		"[parameters('obj')['inner'].x[0]]",
		"[resourceId('Microsoft.App/sessionPools', uniqueString(resourceGroup().id))]",
		"[if(equals(1, 1), createObject('a', createArray(1, 2)), json('null'))]",
		"[[literal]",
		"['it''s']",
		"[-12]",
		"[union(createObject('a', 1), createObject('a', createObject('b', 2)))]",
		"[split(substring('abcdef', 1, 3), 'c')]",
		"[padLeft('x', 5, '0')]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		if _, err := parseExpression(expr); err != nil {
			var se *syntaxError
			if !errors.As(err, &se) {
				t.Fatalf("parseExpression(%q): error %T, want *syntaxError", expr, err)
			}
		}
		ev := &evaluator{env: testEnv}
		tmpl := map[string]any{"parameters": map[string]any{
			"name": map[string]any{"type": "string", "defaultValue": "pool"},
			"obj":  map[string]any{"type": "object", "defaultValue": map[string]any{"inner": map[string]any{"x": []any{int64(1)}}}},
		}}
		if err := ev.declare(tmpl, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := ev.value(expr, "v"); err != nil {
			var te *Error
			if !errors.As(err, &te) {
				t.Fatalf("evaluate %q: error %T %v, want *template.Error", expr, err, err)
			}
		}
	})
}
