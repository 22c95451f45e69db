package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/tidepool-dev/tidepool/internal/arm"
	"github.com/tidepool-dev/tidepool/internal/auth"
	"github.com/tidepool-dev/tidepool/internal/dataplane"
	"github.com/tidepool-dev/tidepool/internal/pool"
	"github.com/tidepool-dev/tidepool/internal/rbac"
	"github.com/tidepool-dev/tidepool/internal/sandbox"
	"github.com/tidepool-dev/tidepool/internal/store"
)

// DefaultListen is where tidepool serve listens unless told otherwise.
const DefaultListen = "127.0.0.1:7380"

// Config configures a Server. The zero value of each field says what it does.
type Config struct {
	// DataDir holds the database and the admin credentials. Required.
	DataDir string
	// PublicURL is the base URL clients reach the server at; it appears in
	// poolManagementEndpoint, Azure-AsyncOperation, Location and nextLink.
	// Empty means the listener's own address.
	PublicURL string
	// TLSCert and TLSKey, when both set, serve HTTPS.
	TLSCert, TLSKey string
	// PageSize caps list pages; 0 means 1000.
	PageSize int
	// AllowHyphenatedPoolNames accepts the CLI's pool name rule.
	AllowHyphenatedPoolNames bool
	// StrictAudiences makes the data plane refuse management-audience
	// tokens: only tokens for https://dynamicsessions.io (or
	// https://acasessions.io) open it. Roles are checked either way.
	StrictAudiences bool
	// Logger receives the server's logs; nil means slog.Default().
	Logger *slog.Logger
	// Sessions serves the data plane's sessions. Nil means the pool
	// controller when it implements dataplane.Sessions and has a Runtime;
	// with neither, the data-plane routes answer 501 after authentication.
	Sessions dataplane.Sessions
	// Runtime runs the pools' sandboxes. Nil means pools hold none: they
	// only move through their provisioning states and the data plane has
	// no sessions to offer.
	Runtime sandbox.Runtime
	// PythonPreImport names the modules warm PythonLTS kernels import
	// before any claim; nil imports none.
	PythonPreImport []string
	// BuiltinImages replace the host's read-only root for built-in
	// container types: sandbox kind ("python", "node", "shell") → image
	// reference. Nil keeps the host's root for all.
	BuiltinImages map[string]string
	// MetricsListener, when set, serves Prometheus metrics at GET /metrics,
	// without authentication, and nothing else; Run serves it and closes
	// it. Nil means the metrics are not served (MetricsHandler still
	// returns them). The main listener never serves them.
	MetricsListener net.Listener
}

// Server is a running tidepool server: create it with New, serve with Run,
// and Close it.
type Server struct {
	cfg       Config
	log       *slog.Logger
	st        *store.SQLite
	id        *identity
	issuer    *auth.Issuer
	authz     *rbac.Authorizer
	mgmt      *arm.Server
	ctl       *pool.Controller
	publicURL string
	credsPath string
	handler   http.Handler
	// metrics is the registry of every metric the server exports.
	metrics   *prometheus.Registry
	dpMetrics *dataplane.Metrics
}

// Info is what the server tells its operator at start.
type Info struct {
	Endpoint        string
	TenantID        string
	SubscriptionID  string
	CredentialsPath string
}

// New opens the store in cfg.DataDir and bootstraps the identity. The
// server's public URL must be known here (it is in every token's issuer):
// ln is the listener Run will serve, used when cfg.PublicURL is empty.
func New(ctx context.Context, cfg Config, ln net.Listener) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("server: data dir is required")
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return nil, errors.New("server: --tls-cert and --tls-key go together")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = slog.New(contextHandler{log.Handler()})
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	st, err := store.OpenSQLite(ctx, filepath.Join(cfg.DataDir, "tidepool.db"))
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, st: st, publicURL: strings.TrimSuffix(cfg.PublicURL, "/")}
	if s.publicURL == "" {
		scheme := "http"
		if cfg.TLSCert != "" {
			scheme = "https"
		}
		s.publicURL = scheme + "://" + ln.Addr().String()
	}
	if err := s.init(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return s, nil
}

func (s *Server) init(ctx context.Context) error {
	var err error
	if s.id, err = bootstrap(ctx, s.st); err != nil {
		return err
	}
	if s.credsPath, err = writeCredentials(ctx, s.st, s.cfg.DataDir, s.publicURL, s.id); err != nil {
		return err
	}
	s.issuer, err = auth.NewIssuer(auth.Config{TenantID: s.id.tenantID, PublicURL: s.publicURL, Key: s.id.key})
	if err != nil {
		return err
	}
	s.metrics = prometheus.NewRegistry()
	if err := errors.Join(
		s.metrics.Register(collectors.NewGoCollector()),
		s.metrics.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})),
	); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	poolMetrics, err := pool.NewMetrics(s.metrics)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	if s.dpMetrics, err = dataplane.NewMetrics(s.metrics); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	opts := []pool.Option{pool.WithLogger(s.log), pool.WithMetrics(poolMetrics), pool.WithPreImport(s.cfg.PythonPreImport...), pool.WithTokenIssuer(s.issuer),
		pool.WithBuiltinImages(s.cfg.BuiltinImages)}
	if s.cfg.Runtime != nil {
		opts = append(opts, pool.WithRuntime(s.cfg.Runtime))
	}
	s.ctl = pool.New(s.st, opts...)
	s.authz = rbac.NewAuthorizer(s.st)
	mgmt := arm.New(arm.Config{
		Store:                    s.st,
		Auth:                     s.issuer,
		Authorizer:               s.authz,
		Reconciler:               s.ctl,
		PublicURL:                s.publicURL,
		TenantID:                 s.id.tenantID,
		PageSize:                 s.cfg.PageSize,
		AllowHyphenatedPoolNames: s.cfg.AllowHyphenatedPoolNames,
		Logger:                   s.log,
	})
	s.mgmt = mgmt
	s.handler = s.routes(mgmt)
	return nil
}

// Info returns the endpoint, ids and credentials path.
func (s *Server) Info() Info {
	return Info{Endpoint: s.publicURL, TenantID: s.id.tenantID, SubscriptionID: s.id.subscriptionID, CredentialsPath: s.credsPath}
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// MetricsHandler returns the handler of the metrics listener: the
// server's Prometheus metrics at GET /metrics, without authentication
// (they name pools, never identifiers or secrets).
func (s *Server) MetricsHandler() http.Handler {
	prom := promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		Registry:          s.metrics,
		EnableOpenMetrics: true,
	})
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", prom)
	return mux
}

// Run serves ln and runs the pool controller until ctx is done, then shuts
// down gracefully.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	if s.cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.TLSCert, s.cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("load TLS key pair: %w", err)
		}
		hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, hs.TLSConfig)
	}
	// Deployments this process did not start cannot be running: mark them
	// interrupted, and interrupt this process's own at shutdown.
	if err := s.mgmt.RecoverDeployments(ctx); err != nil {
		s.log.WarnContext(ctx, "recover deployments", "err", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.ctl.Run(gctx) })
	g.Go(func() error {
		<-gctx.Done()
		stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		return s.mgmt.StopDeployments(stop)
	})
	servers := []*http.Server{hs}
	listeners := []net.Listener{ln}
	if s.cfg.MetricsListener != nil {
		servers = append(servers, &http.Server{
			Handler:           s.MetricsHandler(),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          hs.ErrorLog,
			BaseContext:       hs.BaseContext,
		})
		listeners = append(listeners, s.cfg.MetricsListener)
	}
	for i, srv := range servers {
		g.Go(func() error {
			if err := srv.Serve(listeners[i]); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve %s: %w", listeners[i].Addr(), err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			return srv.Shutdown(shutdown)
		})
	}
	return g.Wait()
}

// Close closes the store.
func (s *Server) Close() error { return s.st.Close() }
