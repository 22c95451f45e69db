package agent_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/websocket"

	"github.com/tidepool-dev/tidepool/internal/agent"
	"github.com/tidepool-dev/tidepool/internal/agent/wire"
)

// echoed is what the proxy test target reports about a request.
type echoed struct {
	Method, Path, RawPath, Query, Host string
	Header                             http.Header
	BodySHA                            string
	BodyLen                            int64
}

// startTarget serves h on 127.0.0.1 and returns its port.
func startTarget(t *testing.T, h http.Handler) int {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	port, _ := strconv.Atoi(u.Port())
	return port
}

func TestProxy(t *testing.T) {
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "second\n")
	})
	mux.Handle("/ws", websocket.Handler(func(ws *websocket.Conn) {
		for {
			var msg string
			if websocket.Message.Receive(ws, &msg) != nil || websocket.Message.Send(ws, msg) != nil {
				return
			}
		}
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		w.Header().Set("X-Target", "yes")
		w.WriteHeader(http.StatusAccepted)
		json.NewEncoder(w).Encode(echoed{
			Method: r.Method, Path: r.URL.Path, RawPath: r.URL.RawPath, Query: r.URL.RawQuery, Host: r.Host,
			Header: r.Header, BodySHA: hex.EncodeToString(h.Sum(nil)), BodyLen: n,
		})
	})
	port := startTarget(t, mux)
	a := startAgent(t, func(c *agent.Config) { c.TargetPort = port })
	hc := &http.Client{Transport: a.ProxyTransport()}

	t.Run("methods and headers", func(t *testing.T) {
		for _, method := range []string{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
			body := "payload of " + method
			req, _ := http.NewRequestWithContext(t.Context(), method, "http://app.example/some/pa%2Fth?x=1&y=%20", strings.NewReader(body))
			req.Header.Set("X-Custom", "v1")
			req.Header.Add("X-Custom", "v2")
			req.Header.Set("X-Forwarded-For", "203.0.113.9")
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", method, err)
			}
			var e echoed
			json.NewDecoder(resp.Body).Decode(&e)
			resp.Body.Close()
			sum := sha256.Sum256([]byte(body))
			switch {
			case resp.StatusCode != http.StatusAccepted || resp.Header.Get("X-Target") != "yes":
				t.Errorf("%s: status %d, X-Target %q", method, resp.StatusCode, resp.Header.Get("X-Target"))
			case e.Method != method || e.Path != "/some/pa/th" || e.RawPath != "/some/pa%2Fth" || e.Query != "x=1&y=%20":
				t.Errorf("%s: target saw %s %s (raw %s) ?%s", method, e.Method, e.Path, e.RawPath, e.Query)
			case strings.Join(e.Header.Values("X-Custom"), ",") != "v1,v2":
				t.Errorf("%s: X-Custom = %q", method, e.Header.Values("X-Custom"))
			case e.Header.Get("X-Forwarded-For") != "203.0.113.9":
				t.Errorf("%s: X-Forwarded-For = %q", method, e.Header.Get("X-Forwarded-For"))
			case e.Host != "app.example":
				t.Errorf("%s: Host = %q", method, e.Host)
			case e.BodySHA != hex.EncodeToString(sum[:]):
				t.Errorf("%s: body differs", method)
			}
		}
	})
	t.Run("root path", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "http://agent/proxy", nil)
		resp := rawRequest(t, a.Client, req)
		var e echoed
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if e.Path != "/" {
			t.Errorf("/proxy reached the target as %q, want /", e.Path)
		}
	})
	t.Run("large body", func(t *testing.T) {
		const size = 16 << 20
		h := sha256.New()
		body := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{7}), size), h)
		req, _ := http.NewRequestWithContext(t.Context(), "POST", "http://app/upload", body)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e echoed
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if e.BodyLen != size || e.BodySHA != hex.EncodeToString(h.Sum(nil)) {
			t.Errorf("target got %d bytes, or other bytes", e.BodyLen)
		}
	})
	t.Run("streaming", func(t *testing.T) {
		resp, err := hc.Get("http://app/stream")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		buf := make([]byte, 6)
		// The target sends "second" only after this read returns "first":
		// the proxy must not hold back what it has.
		if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "first\n" {
			t.Fatalf("first chunk %q %v", buf, err)
		}
		close(release)
		rest, _ := io.ReadAll(resp.Body)
		if string(rest) != "second\n" {
			t.Errorf("rest %q", rest)
		}
	})
	t.Run("websocket", func(t *testing.T) {
		conn, err := net.Dial("unix", a.Socket())
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := websocket.NewConfig("ws://agent/proxy/ws", "http://agent/")
		if err != nil {
			t.Fatal(err)
		}
		ws, err := websocket.NewClient(cfg, conn)
		if err != nil {
			t.Fatalf("upgrade through the proxy: %v", err)
		}
		defer ws.Close()
		for _, msg := range []string{"hello", strings.Repeat("big", 100000), "bye"} {
			if err := websocket.Message.Send(ws, msg); err != nil {
				t.Fatal(err)
			}
			var got string
			if err := websocket.Message.Receive(ws, &got); err != nil {
				t.Fatal(err)
			}
			if got != msg {
				t.Errorf("echo of %d bytes came back as %d bytes", len(msg), len(got))
			}
		}
	})
	t.Run("reverse proxy", func(t *testing.T) {
		// How the tidepool server uses it: a ReverseProxy in front.
		rp := &httputil.ReverseProxy{
			Rewrite:   func(pr *httputil.ProxyRequest) { pr.Out.URL.Host = "sandbox"; pr.Out.URL.Scheme = "http" },
			Transport: a.ProxyTransport(),
		}
		front := httptest.NewServer(rp)
		defer front.Close()
		resp, err := http.Post(front.URL+"/via/front?q=1", "text/plain", bytes.NewReader([]byte("x")))
		if err != nil {
			t.Fatal(err)
		}
		var e echoed
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted || e.Path != "/via/front" || e.Query != "q=1" {
			t.Errorf("got %d %+v", resp.StatusCode, e)
		}
		// A WebSocket through both proxies.
		ws, err := websocket.Dial("ws"+strings.TrimPrefix(front.URL, "http")+"/ws", "", front.URL)
		if err != nil {
			t.Fatalf("websocket through the front proxy: %v", err)
		}
		defer ws.Close()
		var got string
		if err := websocket.Message.Send(ws, "ping"); err != nil {
			t.Fatal(err)
		}
		if err := websocket.Message.Receive(ws, &got); err != nil || got != "ping" {
			t.Errorf("echo %q %v", got, err)
		}
	})
}

func TestProxyErrors(t *testing.T) {
	t.Run("no target", func(t *testing.T) {
		a := startAgent(t, nil)
		req, _ := http.NewRequest("GET", "http://agent/proxy/x", nil)
		resp := rawRequest(t, a.Client, req)
		var er wire.ErrorResponse
		json.NewDecoder(resp.Body).Decode(&er)
		resp.Body.Close()
		if resp.StatusCode != 501 || er.Error.Code != wire.CodeNotImplemented {
			t.Errorf("got %d %+v, want 501 NotImplemented", resp.StatusCode, er)
		}
	})
	t.Run("target down", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		a := startAgent(t, func(c *agent.Config) { c.TargetPort = port })
		resp, err := (&http.Client{Transport: a.ProxyTransport()}).Get("http://app/")
		if err != nil {
			t.Fatal(err)
		}
		var er wire.ErrorResponse
		json.NewDecoder(resp.Body).Decode(&er)
		resp.Body.Close()
		if resp.StatusCode != 502 || er.Error.Code != wire.CodeTargetUnreachable {
			t.Errorf("got %d %+v, want 502 TargetUnreachable", resp.StatusCode, er)
		}
		h, err := a.Health(t.Context())
		if err != nil || h.TargetPortReady == nil || *h.TargetPortReady {
			t.Errorf("Health = %+v %v, want TargetPortReady false", h, err)
		}
	})
	t.Run("not a proxy path", func(t *testing.T) {
		a := startAgent(t, nil)
		req, _ := http.NewRequest("GET", "http://agent/proxyx", nil)
		resp := rawRequest(t, a.Client, req)
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("/proxyx: %d, want 404", resp.StatusCode)
		}
	})
}
