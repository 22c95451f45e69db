package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tidepool-dev/tidepool/internal/agent/agentcmd"
	"github.com/tidepool-dev/tidepool/internal/sandbox"
	"github.com/tidepool-dev/tidepool/internal/server"
)

func newServeCommand() *cobra.Command {
	var cfg server.Config
	var listen, metricsListen, logLevel, logFormat, runtimeName, agentBin, addressFile string
	var images map[string]string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the tidepool server",
		Long: `Run the tidepool server: the management API (Azure Resource Manager shape),
the token endpoint, and the pool controller, on one listener.

Every flag can also be set with an environment variable: TIDEPOOL_ followed by
the flag name in upper case with dashes as underscores (TIDEPOOL_DATA_DIR).
On first start the server creates a tenant, a subscription, a signing key and
an admin service principal, whose credentials it writes to
<data-dir>/admin-credentials.json (mode 0600).`,
		Example: `  tidepool serve
  tidepool serve --listen 0.0.0.0:7380 --public-url https://tidepool.example.com
  TIDEPOOL_DATA_DIR=/srv/tidepool tidepool serve`,
		Args: cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) error {
			return flagsFromEnv(cmd.Flags())
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := agentcmd.NewLogger(logLevel, logFormat)
			if err != nil {
				return usageError{err}
			}
			cfg.Logger = log
			if cfg.BuiltinImages, err = builtinImages(images); err != nil {
				return usageError{err}
			}
			if cfg.Runtime, err = newRuntime(runtimeName, agentBin, cfg.DataDir, log); err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", listen, err)
			}
			if metricsListen != "" {
				if cfg.MetricsListener, err = net.Listen("tcp", metricsListen); err != nil {
					ln.Close()
					return fmt.Errorf("listen on %s (--metrics-listen): %w", metricsListen, err)
				}
			}
			ctx := cmd.Context()
			srv, err := server.New(ctx, cfg, ln)
			if err != nil {
				ln.Close()
				if cfg.MetricsListener != nil {
					cfg.MetricsListener.Close()
				}
				return err
			}
			defer srv.Close()
			info := srv.Info()
			fmt.Fprintf(cmd.OutOrStdout(), `tidepool %s serving
  endpoint:      %s
  tenant:        %s
  subscription:  %s
  credentials:   %s
Get a token:
  jq -r '"client_id=\(.clientId)&client_secret=\(.clientSecret)"' %s |
    curl -s -d @- -d grant_type=client_credentials -d scope=https://management.azure.com/.default \
      %s/%s/oauth2/v2.0/token
`, version, info.Endpoint, info.TenantID, info.SubscriptionID, info.CredentialsPath,
				info.CredentialsPath, info.Endpoint, info.TenantID)
			log.Info("serving", "endpoint", info.Endpoint, "data_dir", cfg.DataDir)
			metricsURL := ""
			if cfg.MetricsListener != nil {
				metricsURL = "http://" + cfg.MetricsListener.Addr().String() + "/metrics"
				log.Info("serving metrics", "url", metricsURL)
			}
			if addressFile != "" {
				if err := writeAddressFile(addressFile, serveAddress{
					Endpoint: info.Endpoint, Metrics: metricsURL, Credentials: info.CredentialsPath,
				}); err != nil {
					return err
				}
			}
			err = srv.Run(ctx, ln)
			log.Info("stopped")
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&listen, "listen", server.DefaultListen, "address to listen on (host:port)")
	f.StringVar(&cfg.DataDir, "data-dir", defaultDataDir(), "directory for the database and the admin credentials")
	f.StringVar(&metricsListen, "metrics-listen", "", "address (host:port) to serve Prometheus metrics at /metrics, without authentication (default: not served)")
	f.StringVar(&cfg.PublicURL, "public-url", "", "base URL clients use to reach the server (default: the listen address)")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate file (PEM); with --tls-key, serve HTTPS")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "TLS private key file (PEM)")
	f.IntVar(&cfg.PageSize, "page-size", 1000, "largest page a list answers before it returns a nextLink")
	f.BoolVar(&cfg.AllowHyphenatedPoolNames, "allow-hyphenated-pool-names", false, "accept the CLI's pool name rule (hyphens, up to 32 characters) besides the API's")
	f.BoolVar(&cfg.StrictAudiences, "strict-audiences", false, "refuse management-audience tokens on the data plane (only https://dynamicsessions.io tokens open it)")
	f.StringSliceVar(&cfg.PythonPreImport, "python-preimport", nil, "modules warm Python kernels import before any claim, e.g. numpy,pandas,matplotlib.pyplot (default none; see docs/preimport.md)")
	f.StringToStringVar(&images, "builtin-image", nil, "an OCI image to run a built-in container type in instead of the host's read-only root, as TYPE=IMAGE (PythonLTS, NodeLTS or Shell; the image must hold python3, node or bash); repeatable")
	f.StringVar(&runtimeName, "runtime", "auto", "sandbox runtime: auto (runc as root when installed), runc, crun, runsc, or none")
	f.StringVar(&agentBin, "agent-binary", "", "static binary sandboxes run as their agent (default: tidepool-agent next to this binary, else this binary)")
	f.StringVar(&addressFile, "address-file", "", "once listening, write the endpoint, metrics URL and credentials path as JSON to this file (for tools that start serve on port 0)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	return cmd
}

// builtinImages maps --builtin-image's container types to sandbox kinds.
func builtinImages(flag map[string]string) (map[string]string, error) {
	kinds := map[string]string{"pythonlts": sandbox.KindPython, "nodelts": sandbox.KindNode, "shell": sandbox.KindShell}
	out := map[string]string{}
	for typ, ref := range flag {
		kind, ok := kinds[strings.ToLower(typ)]
		if !ok {
			return nil, fmt.Errorf("--builtin-image %s=%s: the type must be PythonLTS, NodeLTS or Shell", typ, ref)
		}
		if ref == "" {
			return nil, fmt.Errorf("--builtin-image %s: the image is empty", typ)
		}
		out[kind] = ref
	}
	return out, nil
}

// serveAddress is what --address-file holds.
type serveAddress struct {
	Endpoint    string `json:"endpoint"`
	Metrics     string `json:"metrics,omitempty"`
	Credentials string `json:"credentials"`
}

// writeAddressFile writes a as JSON to path in one rename, so that a reader
// polling for the file never sees half of it.
func writeAddressFile(path string, a serveAddress) error {
	data, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("--address-file: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("--address-file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("--address-file: %w", err)
	}
	return nil
}

// defaultDataDir is /var/lib/tidepool for root, else the XDG data home.
func defaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/tidepool"
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "tidepool")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "tidepool")
	}
	return filepath.Join(home, ".local", "share", "tidepool")
}

// flagsFromEnv sets every flag not given on the command line from its
// TIDEPOOL_* environment variable.
func flagsFromEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		env := "TIDEPOOL_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v, ok := os.LookupEnv(env)
		if !ok || f.Changed || err != nil {
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			err = usageError{fmt.Errorf("%s=%q: %w", env, v, serr)}
		}
	})
	return err
}
