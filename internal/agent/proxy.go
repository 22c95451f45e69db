package agent

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"time"

	"github.com/tidepool-dev/tidepool/internal/agent/wire"
)

// newProxy forwards /proxy/<rest> to http://127.0.0.1:<TargetPort>/<rest>:
// any method, headers and query, bodies streamed both ways (flushed as they
// come), and protocol upgrades (WebSocket). The Host header and the
// X-Forwarded-* headers the tidepool server set pass through unchanged.
func (s *Server) newProxy() *httputil.ReverseProxy {
	target := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.cfg.TargetPort))
	tr := &http.Transport{
		// No Proxy: the sandbox's HTTP_PROXY is for its own traffic.
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxIdleConns:        64,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	forwarded := []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			u := pr.Out.URL
			u.Scheme, u.Host = "http", target
			u.Path = stripProxy(pr.In.URL.Path)
			if pr.In.URL.RawPath != "" {
				u.RawPath = stripProxy(pr.In.URL.RawPath)
			}
			pr.Out.Host = pr.In.Host
			for _, h := range forwarded {
				if v := pr.In.Header.Values(h); len(v) > 0 {
					pr.Out.Header[h] = v
				}
			}
		},
		Transport:     tr,
		FlushInterval: -1,
		ErrorLog:      slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the caller is gone
			}
			s.writeError(w, r, &apiError{status: http.StatusBadGateway, code: wire.CodeTargetUnreachable,
				msg: "the target port did not answer", err: err})
		},
	}
}

func stripProxy(p string) string {
	p = strings.TrimPrefix(p, "/proxy")
	if p == "" {
		return "/"
	}
	return p
}

func (s *Server) handleProxy(w http.ResponseWriter, r *http.Request) error {
	if s.proxy == nil {
		return errorf(http.StatusNotImplemented, wire.CodeNotImplemented, "this sandbox has no target port")
	}
	s.proxy.ServeHTTP(w, r)
	return nil
}

// pollTarget dials the target port every 50 ms until it accepts a
// connection, then records that it is ready.
func (s *Server) pollTarget(ctx context.Context) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.cfg.TargetPort))
	d := net.Dialer{Timeout: time.Second}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if c, err := d.DialContext(ctx, "tcp", addr); err == nil {
			c.Close()
			s.mu.Lock()
			s.portReady = true
			s.mu.Unlock()
			s.log.Info("target port ready", "port", s.cfg.TargetPort)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
