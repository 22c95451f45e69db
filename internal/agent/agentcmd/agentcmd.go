// Package agentcmd is the `agent` command line, shared by the tidepool
// binary (`tidepool agent`) and the smaller tidepool-agent binary that
// sandboxes run by default.
package agentcmd

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/tidepool-dev/tidepool/internal/agent"
	"github.com/tidepool-dev/tidepool/internal/agent/kernel"
	"github.com/tidepool-dev/tidepool/internal/agent/wire"
)

// UsageError marks errors in how the command was called (exit code 2).
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// New returns the agent command; version is the build's, reported in
// /health.
func New(version string) *cobra.Command {
	var cfg agent.Config
	var socket, logLevel, logFormat string
	var runInit bool
	var kernels []string
	var kopts kernel.Options
	cmd := &cobra.Command{
		Use:   "agent [flags] [-- command [args...]]",
		Short: "Run the in-sandbox agent (the init of every sandbox)",
		Long: `Run the agent that every sandbox runs as its init: it serves the agent API
(health, init, exec, kernels, files, proxy) over HTTP on a unix socket.

With a command after --, the agent runs it as the custom container's process
and reports its exit and the readiness of --target-port in /health.

By default the process becomes a minimal init that reaps orphans and forwards
signals, and runs the API server as its child. --init=false serves directly
(for a sandbox that already has an init, or for tests).

The agent reads no TIDEPOOL_* environment variables: its environment belongs
to the image.`,
		Example: `  tidepool agent --socket /.tidepool/run/agent.sock
  tidepool agent --target-port 8080 -- python3 -m http.server 8080`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 && cmd.ArgsLenAtDash() != 0 {
				return UsageError{Err: fmt.Errorf("unexpected argument %q: put the container's command after --", args[0])}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if os.Getenv("GOMAXPROCS") == "" {
				// The agent multiplexes I/O for one sandbox; with one P its
				// goroutines hand work to each other without waking
				// threads on other CPUs, which on a loaded host costs more
				// than it brings: executions/s across 50 sessions on 2 CPUs
				// went from ~2,130 to ~2,300-2,600.
				runtime.GOMAXPROCS(1)
			}
			log, err := NewLogger(logLevel, logFormat)
			if err != nil {
				return UsageError{Err: err}
			}
			if runInit && !agent.IsInitChild() {
				if code := agent.RunInit(log); code != 0 {
					os.Exit(code)
				}
				return nil
			}
			// The server's children must not think they are it.
			os.Unsetenv(agent.ChildEnv)
			for _, lang := range kernels {
				if lang != wire.LangPython && lang != wire.LangNode {
					return UsageError{Err: fmt.Errorf("--kernel %q: want %s or %s", lang, wire.LangPython, wire.LangNode)}
				}
			}
			cfg.Container = args
			cfg.Logger = log
			cfg.Build = version
			kopts.Cwd = cmp.Or(cfg.Workdir, cfg.FilesRoot)
			kopts.Logger = log
			km := kernel.New(kopts)
			defer km.Close()
			cfg.Kernels = leasingKernels{km}
			srv, err := agent.New(cfg)
			if err != nil {
				return UsageError{Err: err}
			}
			ln, err := agent.Listen(socket)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			// Warm kernels start before any claim; /health shows them
			// starting, then ready.
			for _, lang := range kernels {
				go func() {
					if err := km.Start(ctx, lang); err != nil && ctx.Err() == nil {
						log.Error("start kernel", "lang", lang, "err", err)
					}
				}()
			}
			return srv.Run(ctx, ln)
		},
	}
	f := cmd.Flags()
	f.StringVar(&socket, "socket", wire.DefaultSocket, "unix socket to serve the agent API on")
	f.BoolVar(&runInit, "init", true, "run as init (reap orphans, forward signals) with the API server as a child")
	f.StringVar(&cfg.FilesRoot, "files-root", wire.DefaultRoot, "directory the /files routes are confined to")
	f.StringVar(&cfg.Workdir, "workdir", "", "default working directory of /exec (default: --files-root)")
	f.DurationVar(&cfg.ExecTimeout, "exec-timeout", agent.DefaultExecTimeout, "deadline of a command that asks for none")
	f.DurationVar(&cfg.MaxExecTimeout, "max-exec-timeout", agent.DefaultMaxExecTimeout, "longest deadline a command may ask for")
	f.Int64Var(&cfg.OutputCap, "output-cap", agent.DefaultOutputCap, "bytes of stdout and of stderr, each, a command keeps unless it asks otherwise")
	f.Int64Var(&cfg.MaxOutputCap, "max-output-cap", agent.DefaultMaxOutputCap, "largest output cap a command may ask for")
	f.DurationVar(&cfg.OutputGrace, "output-grace", agent.DefaultOutputGrace, "how long a finished command's output is still read from its background processes")
	f.Int64Var(&cfg.MaxUploadBytes, "max-upload-bytes", 0, "largest file PUT /files/content accepts (0: no limit)")
	f.IntVar(&cfg.TargetPort, "target-port", 0, "port on 127.0.0.1 that /proxy forwards to (0: none)")
	f.StringArrayVar(&cfg.ContainerEnv, "container-env", nil, "KEY=VALUE added to the container command's environment (repeatable)")
	f.StringVar(&cfg.ContainerDir, "container-dir", "", "working directory of the container command (default: the agent's)")
	f.DurationVar(&cfg.StopGrace, "stop-grace", agent.DefaultStopGrace, "time children get between SIGTERM and SIGKILL when the agent stops")
	f.StringSliceVar(&kernels, "kernel", nil, "kernels to start before any request: python, node (others start on first use)")
	f.StringSliceVar(&kopts.PreImport, "pre-import", nil, "Python modules a python kernel imports when it starts")
	f.StringVar(&kopts.Python, "python", kernel.DefaultPython, "interpreter of python kernels")
	f.StringVar(&kopts.PythonBytecode, "python-bytecode", "", "the python driver compiled by the server, loaded when it fits the interpreter (else the driver is compiled)")
	f.StringVar(&kopts.Node, "node", "", "interpreter of node kernels (default: node on PATH)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	return cmd
}

// NewLogger returns a logger to stderr at level ("debug", "info", "warn",
// "error") in format ("text" or "json").
func NewLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// leasingKernels lets the agent lease km's kernels (agent.KernelLeaser).
type leasingKernels struct{ *kernel.Manager }

func (k leasingKernels) Lease(ctx context.Context, lang string) (agent.KernelLease, error) {
	l, err := k.Manager.Lease(ctx, lang)
	if err != nil {
		return nil, err
	}
	return l, nil
}
