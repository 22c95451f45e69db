package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/tidepool-dev/tidepool/internal/bench"
)

func newBenchCommand() *cobra.Command {
	var (
		scenarios                       []string
		duration                        time.Duration
		out                             string
		asJSON, noPeer, smoke           bool
		endpoint, credsFile, metricsURL string
		sandboxRoot, runtimeName        string
		coldRuntimes                    []string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure tidepool against its floors and Jupyter Server, and write a report",
		Long: `Measure tidepool on this machine: claims, executions, throughput, cold starts
per OCI runtime, refills, memory per session, shell commands and file
transfers, side by side with their physical floors and with Jupyter Server
(when installed), all in one run. Writes DIR/report.md, DIR/results.json and
PNG charts; see docs/performance.md for what each figure means.

By default it starts its own "tidepool serve" (this binary) on a temporary
data dir and loopback port, with --runtime (runc as root), and for the cold
scenario one more per other installed OCI runtime; it creates its pools
through the management API, runs the data plane over HTTP, and deletes all
it made. With --endpoint it measures a running server instead (cold on its
runtime only; density needs --sandbox-root, refill --metrics-url).

Progress goes to stderr when it is a terminal. The last line of output is a
one-line summary; with --json, stdout holds the results as JSON instead
and the summary goes to stderr.`,
		Example: `  sudo tidepool bench
  sudo tidepool bench --scenarios claim,exec --duration 3s --out /tmp/bench
  tidepool bench --endpoint http://127.0.0.1:7380 --credentials-file /var/lib/tidepool/admin-credentials.json --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := bench.Config{Scenarios: scenarios, Duration: duration, OutDir: out, Version: version, NoPeer: noPeer}
			if len(scenarios) == 0 {
				cfg.Scenarios = nil
			}
			if smoke {
				cfg.Sizes = bench.SmokeSizes
			}
			if isTerminal(os.Stderr) {
				cfg.Progress = cmd.ErrOrStderr()
			}
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("bench: %w", err)
			}
			cfg.AgentBinary = self
			installed := installedRuntimes()
			if endpoint != "" {
				if credsFile == "" {
					return usageError{errors.New("--endpoint needs --credentials-file")}
				}
				creds, err := bench.ReadCredentials(credsFile)
				if err != nil {
					return usageError{err}
				}
				cfg.Target = &bench.Target{Endpoint: endpoint, MetricsURL: metricsURL, Credentials: creds,
					Runtime: runtimeName, SandboxRoot: sandboxRoot}
				if runtimeName == "auto" {
					cfg.Target.Runtime = ""
				}
			} else {
				if os.Geteuid() != 0 {
					return usageError{errors.New("bench starts tidepool serve with an OCI runtime, which needs root: run it as root, or measure a running server with --endpoint")}
				}
				main := runtimeName
				if main == "auto" {
					main = "runc"
				}
				cfg.Start = bench.ExecServe(self)
				cfg.Runtimes = []string{main}
				for _, rt := range coldRuntimes {
					if rt != main && contains(installed, rt) {
						cfg.Runtimes = append(cfg.Runtimes, rt)
					}
				}
			}
			if os.Geteuid() == 0 {
				for _, rt := range coldRuntimes {
					if contains(installed, rt) && (cfg.Target == nil || rt == cfg.Target.Runtime) {
						cfg.FloorRuntimes = append(cfg.FloorRuntimes, rt)
					}
				}
			}
			res, err := bench.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(res); err != nil {
					return err
				}
				fmt.Fprintln(cmd.ErrOrStderr(), res.Summary)
				return nil
			}
			if out != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "report: %s/report.md\n", out)
			}
			for _, s := range res.Skipped {
				fmt.Fprintf(cmd.OutOrStdout(), "not measured: %s: %s\n", s.Name, s.Reason)
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.Summary)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&scenarios, "scenarios", nil, "scenarios to run, comma-separated: claim, exec, refill, density, shell, files, cold (default all)")
	f.DurationVar(&duration, "duration", 5*time.Second, "length of each duration-based measurement")
	f.StringVar(&out, "out", "bench-report", "directory for report.md, results.json and the charts (empty: write none)")
	f.BoolVar(&asJSON, "json", false, "print the results as JSON on stdout (the summary goes to stderr)")
	f.StringVar(&endpoint, "endpoint", "", "measure the server at this URL instead of starting one")
	f.StringVar(&credsFile, "credentials-file", "", "with --endpoint: the server's admin-credentials.json")
	f.StringVar(&metricsURL, "metrics-url", "", "with --endpoint: the server's metrics URL (serve --metrics-listen), for refill and the waits between claims")
	f.StringVar(&sandboxRoot, "sandbox-root", "", "with --endpoint: <its data dir>/sandboxes, for density (same machine, root)")
	f.StringVar(&runtimeName, "runtime", "auto", "runtime of the server bench starts (auto: runc); with --endpoint, the server's, for the report")
	f.StringSliceVar(&coldRuntimes, "cold-runtimes", []string{"runc", "crun", "runsc"}, "OCI runtimes measured by cold and their floors, where installed")
	f.BoolVar(&noPeer, "no-peer", false, "skip Jupyter Server")
	f.BoolVar(&smoke, "smoke", false, "tiny sizes: check that the command works (figures are meaningless)")
	return cmd
}

func installedRuntimes() []string {
	var out []string
	for _, rt := range []string{"runc", "crun", "runsc"} {
		if _, err := exec.LookPath(rt); err == nil {
			out = append(out, rt)
			continue
		}
		for _, dir := range []string{"/usr/sbin", "/usr/bin", "/sbin", "/usr/local/sbin", "/usr/local/bin"} {
			if st, err := os.Stat(dir + "/" + rt); err == nil && !st.IsDir() {
				out = append(out, rt)
				break
			}
		}
	}
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
