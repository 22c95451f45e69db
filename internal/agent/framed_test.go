package agent_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidepool-dev/tidepool/internal/agent"
	"github.com/tidepool-dev/tidepool/internal/agent/client"
	"github.com/tidepool-dev/tidepool/internal/agent/wire"
)

// framedDial opens a framed connection to the agent's socket.
func framedDial(t *testing.T, socket string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, wire.FramePreface); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	got := make([]byte, len(wire.FramePreface))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != wire.FramePreface {
		t.Fatalf("preface: got %q, %v", got, err)
	}
	return c, br
}

func readAnswer(t *testing.T, br *bufio.Reader) (int, []byte) {
	t.Helper()
	head, body, _, err := wire.ReadFrame(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	status, err := wire.ParseStatus(head)
	if err != nil {
		t.Fatal(err)
	}
	return status, body
}

func TestFramedCalls(t *testing.T) {
	a := startAgent(t, nil)
	c, br := framedDial(t, a.Socket())

	tests := []struct {
		name       string
		head, body string
		status     int
		code       string // error code, when status is not 2xx
	}{
		{"health", "GET /health", "", http.StatusOK, ""},
		{"init", "POST /init", `{"identifier":"framed"}`, http.StatusOK, ""},
		{"init with another identifier", "POST /init", `{"identifier":"other"}`, http.StatusConflict, wire.CodeIdentifierBound},
		{"exec", "POST /exec", `{"argv":["echo","framed"]}`, http.StatusOK, ""},
		{"bad JSON", "POST /exec", `{"argv":`, http.StatusBadRequest, wire.CodeInvalidRequest},
		{"not a framed route", "GET /files", "", http.StatusNotFound, wire.CodeNotFound},
		{"streaming exec is not framed", "POST /exec?stream=ndjson", `{"argv":["true"]}`, http.StatusNotFound, wire.CodeNotFound},
		{"no path", "GET", "", http.StatusNotFound, wire.CodeNotFound},
		{"no kernels here", "POST /kernels/python/execute", `{"code":"1"}`, http.StatusNotImplemented, wire.CodeNotImplemented},
	}
	for _, tt := range tests {
		if _, err := c.Write(wire.AppendFrame(nil, tt.head, []byte(tt.body))); err != nil {
			t.Fatal(err)
		}
		status, body := readAnswer(t, br)
		if status != tt.status {
			t.Errorf("%s: status %d, want %d (%s)", tt.name, status, tt.status, body)
			continue
		}
		if tt.code != "" {
			var er wire.ErrorResponse
			if err := json.Unmarshal(body, &er); err != nil || er.Error.Code != tt.code {
				t.Errorf("%s: answer %s, want code %s", tt.name, body, tt.code)
			}
		}
	}

	// A client that sends its calls without waiting gets their answers in
	// order.
	var frames []byte
	for _, word := range []string{"one", "two", "three"} {
		frames = wire.AppendFrame(frames, "POST /exec", []byte(`{"argv":["echo","`+word+`"]}`))
	}
	if _, err := c.Write(frames); err != nil {
		t.Fatal(err)
	}
	for _, word := range []string{"one", "two", "three"} {
		_, body := readAnswer(t, br)
		var res wire.ExecResult
		if err := json.Unmarshal(body, &res); err != nil || res.Stdout != word+"\n" {
			t.Errorf("pipelined call: got %s, %v; want stdout %q", body, err, word+"\n")
		}
	}
}

// An HTTP client of the same socket is unaffected by the framed preface
// sniffing, and a connection that sends garbage gets an HTTP error.
func TestFramedSocketServesHTTP(t *testing.T) {
	a := startAgent(t, nil)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", a.Socket())
	}}}
	resp, err := hc.Get("http://agent/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("HTTP GET /health: %s", resp.Status)
	}

	c, err := net.Dial("unix", a.Socket())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "TIDEPOOL-NOPE/9\n\n")
	line, _ := bufio.NewReader(c).ReadString('\n')
	if !strings.HasPrefix(line, "HTTP/1.1 400") {
		t.Errorf("garbage: answer %q, want an HTTP 400", line)
	}
}

// A client falls back to HTTP with an agent that predates framed calls.
func TestClientFallsBackToHTTP(t *testing.T) {
	srv, err := agent.New(agent.Config{FilesRoot: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv} // HTTP only, as agents of version 1 were
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })

	c := client.New(sock)
	defer c.Close()
	for range 2 {
		h, err := c.Health(t.Context())
		if err != nil || !h.Ready {
			t.Fatalf("Health through the fallback: %+v, %v", h, err)
		}
	}
	res, err := c.Exec(t.Context(), wire.ExecRequest{Argv: []string{"echo", "http"}})
	if err != nil || res.Stdout != "http\n" {
		t.Fatalf("Exec through the fallback: %+v, %v", res, err)
	}
}
