package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// App is what the commands share: streams, environment and HTTP client.
// The zero value of each field says what it does.
type App struct {
	// Stdin, Stdout, Stderr: nil means the process's.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
	// HTTPClient sends every request; nil means a client with a 2-minute timeout.
	HTTPClient *http.Client
	// Terminal reports whether stderr is a terminal (spinner, prompts);
	// nil means: check os.Stderr.
	Terminal func() bool
	// PollInterval, when set, replaces the servers' Retry-After between
	// polls of long-running operations (tests use a few milliseconds).
	PollInterval time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (a *App) stdin() io.Reader {
	if a.Stdin == nil {
		return os.Stdin
	}
	return a.Stdin
}

func (a *App) stdout() io.Writer {
	if a.Stdout == nil {
		return os.Stdout
	}
	return a.Stdout
}

func (a *App) stderr() io.Writer {
	if a.Stderr == nil {
		return os.Stderr
	}
	return a.Stderr
}

func (a *App) getenv(k string) string {
	if a.Getenv == nil {
		return os.Getenv(k)
	}
	return a.Getenv(k)
}

func (a *App) now() time.Time {
	if a.Now == nil {
		return time.Now()
	}
	return a.Now()
}

func (a *App) terminal() bool {
	if a.Terminal != nil {
		return a.Terminal()
	}
	fi, err := os.Stderr.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (a *App) httpClient() *http.Client {
	if a.HTTPClient == nil {
		return &http.Client{Timeout: 2 * time.Minute}
	}
	return a.HTTPClient
}

// configDir is TIDEPOOL_CONFIG_DIR, else ~/.tidepool.
func (a *App) configDir() (string, error) {
	if d := a.getenv("TIDEPOOL_CONFIG_DIR"); d != "" {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the home directory for ~/.tidepool: %w", err)
	}
	return filepath.Join(home, ".tidepool"), nil
}

// globals are az's global arguments, set on every command.
type globals struct {
	output         string
	query          string
	debug          bool
	verbose        bool
	onlyShowErrors bool
	subscription   string
}

// inv is one invocation of a command: the app, the parsed global flags,
// and, once needed, the profile and the client.
type inv struct {
	app    *App
	g      *globals
	cmd    *cobra.Command
	log    *slog.Logger
	prof   *profile
	client *armClient
	// table, when set, is the command's az table transformer: it turns
	// the result into rows for -o table without --query.
	table func(any) any
}

// warn prints a warning to stderr unless --only-show-errors.
func (in *inv) warn(format string, args ...any) {
	if in.g.onlyShowErrors {
		return
	}
	fmt.Fprintf(in.app.stderr(), "WARNING: "+format+"\n", args...)
}

// profile loads the profile once.
func (in *inv) profile() (*profile, error) {
	if in.prof != nil {
		return in.prof, nil
	}
	dir, err := in.app.configDir()
	if err != nil {
		return nil, err
	}
	p, err := loadProfile(dir)
	if err != nil {
		return nil, err
	}
	in.prof = p
	return p, nil
}

// arm returns the management client for the selected subscription.
func (in *inv) arm() (*armClient, error) {
	if in.client != nil {
		return in.client, nil
	}
	p, err := in.profile()
	if err != nil {
		return nil, err
	}
	if p.Login == nil {
		return nil, &cliError{msg: "Please run 'tidepool login' to setup account.", code: 1}
	}
	sub, err := p.subscription(in.g.subscription)
	if err != nil {
		return nil, err
	}
	in.client = &armClient{app: in.app, prof: p, sub: sub, log: in.log, spinner: in.app.terminal() && !in.g.onlyShowErrors}
	return in.client, nil
}

// noOutput is returned by commands that print nothing (az's None).
type noOutput struct{}

// runFunc is a command body: it returns the result to print, or noOutput.
type runFunc func(ctx context.Context, in *inv, args []string) (any, error)

// cliError is an error with az's exit code: 1 for service and runtime
// errors, 2 for bad usage, 3 for a resource that does not exist.
type cliError struct {
	msg  string
	code int
}

func (e *cliError) Error() string { return e.msg }

// ExitCode is the process exit code for the error.
func (e *cliError) ExitCode() int { return e.code }

// usageErr is a validation error (exit code 2), with az's message.
func usageErr(format string, args ...any) error {
	return &cliError{msg: fmt.Sprintf(format, args...), code: 2}
}

// AddCommands adds the CLI's commands to root. Global flags (--output,
// --query, --debug, --verbose, --only-show-errors, --subscription) are
// persistent flags of each top-level CLI command, so root's other
// commands (serve, agent) keep their own flags.
func AddCommands(root *cobra.Command, app *App) {
	g := &globals{}
	for _, c := range topCommands(app, g) {
		pf := c.PersistentFlags()
		pf.StringVarP(&g.output, "output", "o", "json", "Output format: json, jsonc, table, tsv, yaml, yamlc, none.")
		pf.StringVar(&g.query, "query", "", "JMESPath query string. See http://jmespath.org/ for more information and examples.")
		pf.BoolVar(&g.debug, "debug", false, "Increase logging verbosity to show all debug logs, including HTTP requests and responses.")
		pf.BoolVar(&g.verbose, "verbose", false, "Increase logging verbosity. Use --debug for full debug logs.")
		pf.BoolVar(&g.onlyShowErrors, "only-show-errors", false, "Only show errors, suppressing warnings.")
		pf.StringVar(&g.subscription, "subscription", "", "Name or ID of subscription. You can configure the default subscription using 'tidepool account set -s NAME_OR_ID'.")
		_ = c.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(outputFormats, cobra.ShellCompDirectiveNoFileComp))
		groupRun(c)
		root.AddCommand(c)
	}
}

// groupRun makes command groups fail, as az does, on a subcommand they do
// not have (cobra would print the help and exit 0); alone they print help.
func groupRun(c *cobra.Command) {
	if !c.HasSubCommands() {
		return
	}
	if c.Run == nil && c.RunE == nil {
		c.Args = cobra.ArbitraryArgs
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErr("%s: '%s' is not in the '%s' command group. See '%s --help'.", cmd.CommandPath(), args[0], cmd.CommandPath(), cmd.CommandPath())
			}
			return cmd.Help()
		}
	}
	for _, s := range c.Commands() {
		groupRun(s)
	}
}

var outputFormats = []string{"json", "jsonc", "table", "tsv", "yaml", "yamlc", "none"}

// run wraps a command body: it validates the global flags, sets up
// logging, runs the body and prints its result.
func run(app *App, g *globals, f runFunc) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		g.output = strings.ToLower(g.output)
		if !contains(outputFormats, g.output) {
			return usageErr("argument --output/-o: invalid choice: '%s' (choose from '%s')", g.output, strings.Join(outputFormats, "', '"))
		}
		level := slog.LevelWarn + 4
		switch {
		case g.debug:
			level = slog.LevelDebug
		case g.verbose:
			level = slog.LevelInfo
		}
		log := slog.New(slog.NewTextHandler(app.stderr(), &slog.HandlerOptions{Level: level}))
		in := &inv{app: app, g: g, cmd: cmd, log: log}
		var q *query
		if g.query != "" {
			var err error
			if q, err = compileQuery(g.query); err != nil {
				return usageErr("argument --query: invalid jmespath_type value: '%s'", g.query)
			}
		}
		res, err := f(cmd.Context(), in, args)
		if err != nil {
			return err
		}
		if _, ok := res.(noOutput); ok {
			return nil
		}
		return writeOutput(app.stdout(), g.output, q, res, in.table)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// ExitCode returns the exit code for an error a command returned.
func ExitCode(err error) int {
	var e interface{ ExitCode() int }
	if errors.As(err, &e) {
		return e.ExitCode()
	}
	// cobra's own argument errors: az (argparse) exits 2 for them.
	if strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "required flag") {
		return 2
	}
	return 1
}
