// Command tidepool is the Tidepool server and its tools in one binary.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tidepool-dev/tidepool/internal/agent/agentcmd"
	"github.com/tidepool-dev/tidepool/internal/cli"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	root := newRootCommand()
	root.SetArgs(cli.NormalizeArgs(root, os.Args[1:]))
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "ERROR:", err)
		if errors.As(err, new(usageError)) || errors.As(err, new(agentcmd.UsageError)) {
			os.Exit(2)
		}
		os.Exit(cli.ExitCode(err))
	}
}

// usageError marks errors in how the command was called (exit code 2).
type usageError struct{ error }

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "tidepool",
		Short:         "Self-hosted dynamic sessions: pools of pre-warmed sandboxes behind the Azure session pool APIs",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newServeCommand())
	root.AddCommand(agentcmd.New(version))
	cli.AddCommands(root, &cli.App{})
	root.AddCommand(cli.NewDocsCommand())
	root.AddCommand(newBenchCommand())
	return root
}
