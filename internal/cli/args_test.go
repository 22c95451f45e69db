package cli

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/spf13/cobra"
)

func TestNormalizeArgs(t *testing.T) {
	root := &cobra.Command{Use: "tidepool"}
	AddCommands(root, &App{})
	tests := []struct {
		in, want []string
	}{
		{[]string{"sessionpool", "create", "--secrets", "a=1", "b=2", "--cpu", "0.5"},
			[]string{"sessionpool", "create", "--secrets", "a=1", "--secrets", "b=2", "--cpu", "0.5"}},
		{[]string{"sessionpool", "create", "--env-vars", "GREETING=Hello, world", "X=secretref:s"},
			[]string{"sessionpool", "create", "--env-vars", "GREETING=Hello, world", "--env-vars", "X=secretref:s"}},
		{[]string{"sessionpool", "show", "--ids", "/a", "/b", "-o", "tsv"},
			[]string{"sessionpool", "show", "--ids", "/a", "--ids", "/b", "-o", "tsv"}},
		{[]string{"sessionpool", "create", "-s", "a=1", "b=2"},
			[]string{"sessionpool", "create", "-s", "a=1", "--secrets", "b=2"}},
		{[]string{"sessionpool", "create", "--command", "-1", "x"},
			[]string{"sessionpool", "create", "--command", "-1", "--command", "x"}},
		{[]string{"sessionpool", "create", "--command", ""},
			[]string{"sessionpool", "create", "--command", ""}},
		{[]string{"sessionpool", "create", "--args=-c", "--name", "n"},
			[]string{"sessionpool", "create", "--args=-c", "--name", "n"}},
		{[]string{"sessionpool", "create", "--name", "a", "b"},
			[]string{"sessionpool", "create", "--name", "a", "b"}},
		{[]string{"configure", "--defaults", "group=g", "location=l"},
			[]string{"configure", "--defaults", "group=g", "--defaults", "location=l"}},
		{[]string{"nope", "--ids", "a", "b"}, []string{"nope", "--ids", "a", "b"}},
	}
	for _, tt := range tests {
		if got := NormalizeArgs(root, tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("NormalizeArgs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestResourceIDs(t *testing.T) {
	tests := []struct {
		id           string
		ns, typ      string
		sub, rg, nme string
		ok           bool
	}{
		{"/subscriptions/s/resourceGroups/g/providers/Microsoft.App/sessionpools/p", "Microsoft.App", "sessionpools", "s", "g", "p", true},
		{"/subscriptions/s/resourceGroups/g/providers/Microsoft.App/sessionPools/p/providers/Microsoft.Authorization/roleAssignments/r",
			"Microsoft.Authorization", "roleAssignments", "s", "g", "r", true},
		{"/subscriptions/s/resourceGroups/g/providers/Microsoft.Foo/a/x/b/y", "Microsoft.Foo", "a/b", "s", "g", "y", true},
		{"/subscriptions/s/resourceGroups/g", "Microsoft.Resources", "resourceGroups", "s", "g", "", true},
		{"/subscriptions/s/resourceGroups/g/providers/Microsoft.App", "", "", "", "", "", false},
		{"not-an-id", "", "", "", "", "", false},
	}
	for _, tt := range tests {
		ns, typ, ok := resourceType(tt.id)
		if ok != tt.ok || ns != tt.ns || typ != tt.typ {
			t.Errorf("resourceType(%q) = %q, %q, %v; want %q, %q, %v", tt.id, ns, typ, ok, tt.ns, tt.typ, tt.ok)
		}
		if !tt.ok {
			continue
		}
		r, ok := parseARMID(tt.id)
		if !ok || r.sub != tt.sub || r.rg != tt.rg || r.name != tt.nme {
			t.Errorf("parseARMID(%q) = %+v, %v", tt.id, r, ok)
		}
	}
}

func TestTemplateParameters(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "p.json")
	os.WriteFile(file, []byte(`{"$schema":"x","contentVersion":"1.0.0.0","parameters":{"a":{"value":"fromfile"},"b":{"value":1}}}`), 0o644)
	plain := filepath.Join(dir, "plain.json")
	os.WriteFile(plain, []byte(`{"c":{"value":true}}`), 0o644)
	tmpl := map[string]any{"parameters": map[string]any{"n": map[string]any{"type": "int"}, "s": map[string]any{"type": "string"}}}
	got, err := templateParameters(tmpl, []string{"@" + file, plain, `{"d":{"value":[1]}}`, "n=5", "s=5", "a=override"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"a": map[string]any{"value": "override"}, "b": map[string]any{"value": 1.0}, "c": map[string]any{"value": true},
		"d": map[string]any{"value": []any{1.0}}, "n": map[string]any{"value": 5.0}, "s": map[string]any{"value": "5"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("templateParameters = %v, want %v", got, want)
	}
	if _, err := templateParameters(tmpl, []string{"n=five"}); err == nil {
		t.Error("n=five for an int parameter: no error")
	}
}

func TestParsers(t *testing.T) {
	if got := registrySecretName("myregistry.azurecr.io", "myregistry"); got != "myregistryazurecrio-myregistry" {
		t.Errorf("registrySecretName = %q", got)
	}
	if got := registrySecretName("localhost:5000", "My_User"); got != "localhost-5000-my-user" {
		t.Errorf("registrySecretName(localhost:5000) = %q", got)
	}
	for _, tt := range []struct{ in, want string }{{"1Gi", "1Gi"}, {"0.5", "0.5Gi"}, {"2gi", "2Gi"}} {
		if got, err := parseMemory(tt.in); err != nil || got != tt.want {
			t.Errorf("parseMemory(%q) = %q, %v", tt.in, got, err)
		}
	}
	for _, name := range []string{"a", "my-pool", "abc1"} {
		if err := validatePoolName(name); err != nil {
			t.Errorf("validatePoolName(%q): %v", name, err)
		}
	}
	for _, name := range []string{"", "1abc", "a--b", "abc-", "a_b", "abcdefghijklmnopqrstuvwxyzabcdefg"} {
		if err := validatePoolName(name); err == nil {
			t.Errorf("validatePoolName(%q): no error", name)
		}
	}
	if p, f := splitFilename("", "dir/sub/file.txt"); p != "dir/sub" || f != "file.txt" {
		t.Errorf("splitFilename = %q %q", p, f)
	}
	if p, f := splitFilename("base", "/sub/file.txt"); p != "base/sub" || f != "file.txt" {
		t.Errorf("splitFilename with path = %q %q", p, f)
	}
}
