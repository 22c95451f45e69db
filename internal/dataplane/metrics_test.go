package dataplane

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tidepool-dev/tidepool/internal/auth"
)

func TestRouteFamily(t *testing.T) {
	for _, tt := range []struct {
		path   string
		custom bool
		want   string
	}{
		{"code/execute", false, "execute"},
		{"python/execute", false, "execute"},
		{"execute", false, "execute"},
		{"executions", false, "execute"},
		{"executions/abc", false, "executions"},
		{"execute/abc", false, "executions"},
		{"files", false, "files"},
		{"files/upload", false, "files"},
		{"python/uploadFile", false, "files"},
		{"files:uploadFile", false, "files"},
		{"files/content/a.txt", false, "files"},
		{"session", false, "session"},
		{"listSessions", false, "sessions"},
		{"metadata", false, "metadata"},
		{".management/getSession", false, "management"},
		{"mcp", false, "mcp"},
		{"", false, "other"},
		{"secret-looking-path/x", false, "other"},
		{"api/anything", true, "proxy"},
		{".management/stopSession", true, "management"},
	} {
		var rest []string
		if tt.path != "" {
			rest = strings.Split(tt.path, "/")
		}
		if got := routeFamily(rest, tt.custom); got != tt.want {
			t.Errorf("routeFamily(%q, custom=%v) = %q, want %q", tt.path, tt.custom, got, tt.want)
		}
	}
}

// TestMetricsThroughProxy: with metrics on, the proxy still streams and
// upgrades (the status recorder unwraps to the connection), and requests
// are counted by route family and status.
func TestMetricsThroughProxy(t *testing.T) {
	m, err := NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) { c.Metrics = m })
	ep := e.endpoint("cc")
	if _, b := e.do("GET", ep+"/stream?identifier=cc-1", nil, nil); string(b) != "chunk 0\nchunk 1\nchunk 2\n" {
		t.Errorf("stream: %q", b)
	}
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req, _ := http.NewRequest("GET", ep+"/ws?identifier=cc-1", nil)
	req.Header.Set("Authorization", "Bearer "+e.token(auth.AudienceDataPlane))
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Write(conn)
	br := bufio.NewReader(conn)
	wsResp, err := http.ReadResponse(br, req)
	if err != nil || wsResp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", err, wsResp)
	}
	conn.Write([]byte("ping"))
	buf := make([]byte, 4)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(br, buf); err != nil || string(buf) != "PING" {
		t.Errorf("websocket echo %q %v", buf, err)
	}
	e.do("GET", e.endpoint("py")+"/nope?identifier=x", nil, nil)
	e.do("GET", e.endpoint("py")+"/metadata", nil, map[string]string{"Authorization": ""})
	if got := testutil.ToFloat64(m.requests.WithLabelValues("proxy", "200")); got != 1 {
		t.Errorf("requests{proxy,200} = %v, want 1", got)
	}
	// The upgraded request ends, and is counted, when its connection does.
	conn.Close()
	for deadline := time.Now().Add(10 * time.Second); testutil.ToFloat64(m.requests.WithLabelValues("proxy", "101")) != 1; {
		if time.Now().After(deadline) {
			t.Fatal("requests{proxy,101} != 1 10s after the upgraded connection closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("other", "404")); got != 1 {
		t.Errorf("requests{other,404} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("other", "401")); got != 1 {
		t.Errorf("requests{other,401} = %v, want 1", got)
	}
}
