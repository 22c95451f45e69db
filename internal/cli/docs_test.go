package cli

import (
	"bytes"
	"os"
	"testing"

	"github.com/spf13/cobra"
)

// TestDocsCurrent checks that docs/cli.md is what the commands' help
// generates (-update rewrites it).
func TestDocsCurrent(t *testing.T) {
	const path = "../../docs/cli.md"
	got := GenerateDocs()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("docs/cli.md is stale: run go run ./cmd/tidepool docs > docs/cli.md (or go test ./internal/cli -run DocsCurrent -update)")
	}
}

// TestHelpExamples requires an example on every runnable command.
func TestHelpExamples(t *testing.T) {
	root := &cobra.Command{Use: "tidepool"}
	AddCommands(root, &App{})
	var walk func(c *cobra.Command)
	n := 0
	walk = func(c *cobra.Command) {
		if c.Runnable() && !c.Hidden && !c.HasSubCommands() {
			n++
			if c.Example == "" {
				t.Errorf("%s has no example", c.CommandPath())
			}
			if c.Short == "" {
				t.Errorf("%s has no short help", c.CommandPath())
			}
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	if n < 40 {
		t.Errorf("only %d commands found", n)
	}
}

// TestCompletion generates the bash, zsh and fish scripts and asks for
// completions of a command, a flag and an enum value.
func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		root := &cobra.Command{Use: "tidepool"}
		AddCommands(root, &App{})
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs([]string{"completion", shell})
		if err := root.Execute(); err != nil || out.Len() < 1000 {
			t.Errorf("completion %s: %v, %d bytes", shell, err, out.Len())
		}
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"__complete", "sessionp"}, "sessionpool"},
		{[]string{"__complete", "sessionpool", "create", "--container-type", ""}, "CustomContainer"},
		{[]string{"__complete", "sessionpool", "create", "--network-status", "Egress"}, "EgressEnabled"},
		{[]string{"__complete", "group", "list", "-o", ""}, "yamlc"},
	}
	for _, tt := range tests {
		root := &cobra.Command{Use: "tidepool"}
		AddCommands(root, &App{})
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&bytes.Buffer{})
		root.SetArgs(tt.args)
		if err := root.Execute(); err != nil || !bytes.Contains(out.Bytes(), []byte(tt.want)) {
			t.Errorf("%v: %v, output %q; want %q", tt.args, err, out.String(), tt.want)
		}
	}
}
