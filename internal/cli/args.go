package cli

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// nargsAnnotation marks flags that, like argparse's nargs='+', take every
// following argument up to the next flag: --env-vars A=1 B=2.
const nargsAnnotation = "tidepool_nargs"

// multi defines a repeatable string flag that also takes space-separated
// values (`--secrets a=1 b=2`). Values are never split on commas.
func multi(cmd *cobra.Command, p *[]string, name, short, usage string) {
	cmd.Flags().StringArrayVarP(p, name, short, nil, usage)
	_ = cmd.Flags().SetAnnotation(name, nargsAnnotation, []string{"true"})
}

// NormalizeArgs rewrites az's space-separated multi-value flags into
// repeated flags for pflag: `--ids a b --yes` becomes `--ids a --ids b
// --yes`. Call it on the arguments before root.Execute.
func NormalizeArgs(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == nil {
		return args
	}
	lookup := func(tok string) *pflag.Flag {
		var f *pflag.Flag
		switch {
		case strings.HasPrefix(tok, "--"):
			name, _, _ := strings.Cut(tok[2:], "=")
			f = cmd.Flags().Lookup(name)
		case len(tok) == 2 && tok[0] == '-':
			f = cmd.Flags().ShorthandLookup(tok[1:])
		}
		if f == nil || f.Annotations[nargsAnnotation] == nil || strings.Contains(tok, "=") {
			return nil
		}
		return f
	}
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		tok := args[i]
		out = append(out, tok)
		if tok == "--" {
			out = append(out, args[i+1:]...)
			break
		}
		f := lookup(tok)
		if f == nil {
			continue
		}
		n := 0
		for i+1 < len(args) && !isFlagToken(args[i+1]) {
			i++
			if n > 0 {
				out = append(out, "--"+f.Name)
			}
			out = append(out, args[i])
			n++
		}
		if n == 0 {
			// `--command ""` style empty values are taken by pflag itself.
			if i+1 < len(args) {
				i++
				out = append(out, args[i])
			}
		}
	}
	return out
}

// isFlagToken reports whether an argument starts a new flag. As argparse,
// a negative number is a value.
func isFlagToken(s string) bool {
	if len(s) < 2 || s[0] != '-' {
		return false
	}
	if s[1] >= '0' && s[1] <= '9' || s[1] == '.' {
		return false
	}
	return true
}

// confirm asks az's question on stderr and reads the answer; without a
// terminal (and no Stdin set) it fails like az.
func (in *inv) confirm(question string) error {
	if in.app.Stdin == nil && !in.app.terminal() {
		return &cliError{msg: "Unable to prompt for confirmation as no tty available. Use --yes.", code: 1}
	}
	if question == "" {
		question = "Are you sure you want to perform this operation?"
	}
	fmt.Fprintf(in.app.stderr(), "%s (y/n): ", question)
	line, _ := bufio.NewReader(in.app.stdin()).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return &cliError{msg: "Operation cancelled.", code: 1}
}

// resourceGroup returns -g, else the configured default, else a usage error.
func (in *inv) resourceGroup(g string) (string, error) {
	if g != "" {
		return g, nil
	}
	p, err := in.profile()
	if err != nil {
		return "", err
	}
	if d := p.defaultValue("group"); d != "" {
		return d, nil
	}
	return "", usageErr("the following arguments are required: --resource-group/-g")
}

// location returns -l, else the configured default (may be empty).
func (in *inv) location(l string) (string, error) {
	if l != "" {
		return l, nil
	}
	p, err := in.profile()
	if err != nil {
		return "", err
	}
	return p.defaultValue("location"), nil
}

// required fails with argparse's message when v is empty.
func required(v, flags string) error {
	if v == "" {
		return usageErr("the following arguments are required: %s", flags)
	}
	return nil
}
