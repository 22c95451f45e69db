package dataplane

import (
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
)

// proxy forwards a CustomContainer pool's request to the session's target
// port through its agent: any method, headers, query (identifier and
// api-version included) and streaming bodies both ways, and protocol
// upgrades (WebSocket). The Authorization header is not forwarded (the
// token is for tidepool, not for the container); X-Forwarded-For, -Host
// and -Proto are set.
func (h *Handler) proxy(w http.ResponseWriter, req *request) error {
	sess, err := h.acquire(req)
	if err != nil {
		return err
	}
	rawRest := "/" + strings.Join(req.raw, "/")
	if req.trailing && len(req.raw) > 0 {
		rawRest += "/"
	}
	rest, err := url.PathUnescape(rawRest)
	if err != nil {
		return badRequest("InvalidPath", "The request path is not validly escaped.")
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			u := *pr.In.URL
			u.Scheme, u.Host = "http", "agent"
			u.Path, u.RawPath = rest, ""
			if rest != rawRest {
				u.RawPath = rawRest
			}
			pr.Out.URL = &u
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Del("Authorization")
			pr.SetXForwarded()
		},
		Transport:     sess.Agent.ProxyTransport(),
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the caller is gone
			}
			h.writeError(w, r, badGateway(err))
		},
	}
	rp.ServeHTTP(w, req.r)
	return nil
}
