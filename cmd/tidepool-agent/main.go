// Command tidepool-agent is the agent every sandbox runs, and nothing
// else: the same command as `tidepool agent`, in a binary a third the
// size that starts in ~3 ms instead of ~10 ms (the server's packages and
// their initialization are not in it). A sandbox starts it twice (its init
// and the agent server), so this is ~15 ms off every cold start. The
// server uses it when it sits next to the tidepool binary (make build puts
// it there), and falls back to `tidepool agent` otherwise.
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
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	args := os.Args[1:]
	// Sandboxes call it as they call tidepool: "agent" first.
	if len(args) > 0 && args[0] == "agent" {
		args = args[1:]
	}
	cmd := agentcmd.New(version)
	cmd.Use = "tidepool-agent [agent] [flags] [-- command [args...]]"
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return agentcmd.UsageError{Err: err} })
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "ERROR:", err)
		if errors.As(err, new(agentcmd.UsageError)) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
