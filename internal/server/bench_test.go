package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidepool-dev/tidepool/internal/agent/client"
	"github.com/tidepool-dev/tidepool/internal/agent/kernel"
	"github.com/tidepool-dev/tidepool/internal/agent/wire"
	"github.com/tidepool-dev/tidepool/internal/sandbox"
	"github.com/tidepool-dev/tidepool/internal/sandbox/sandboxtest"
	"github.com/tidepool-dev/tidepool/internal/server"
)

// The data-plane benchmarks (docs/performance.md). They measure, in one
// run, the physical floor (a loopback HTTP round trip of an empty handler,
// a kernel execution of print(1) straight through the agent client) and
// tidepool's data plane through HTTP with a bearer token, and print the
// ratios. They assert no timing: they report.
//
//	go test -run='^$' -bench='DataPlane/(floor|existing|throughput)' -benchtime=3s ./internal/server/
//	go test -run='^$' -bench='DataPlane/(floor|first-exec)' -benchtime=100x ./internal/server/
//
// Runtimes: "process" (sandboxtest.ProcessRuntime: real agents and
// kernels, no isolation; the stable figure) and, as root, "runc" (the OCI
// runtime, as `tidepool serve` runs it). TIDEPOOL_BENCH_RUNTIMES=process
// (or runc) measures one of them only.
//
// first-exec excludes its waits for a quiet ready set from the timer, so
// give it an iteration count (-benchtime=100x), not a duration.

// latencies collects per-operation durations.
type latencies []time.Duration

func (l latencies) pct(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

// report sets p50-ms and p99-ms and remembers the p50 under name.
func (l latencies) report(b *testing.B, sum *benchSummary, name string) {
	p50, p99 := l.pct(50), l.pct(99)
	b.ReportMetric(float64(p50.Nanoseconds())/1e6, "p50-ms")
	b.ReportMetric(float64(p99.Nanoseconds())/1e6, "p99-ms")
	b.ReportMetric(0, "ns/op") // the percentiles say it better
	sum.set(name, p50, p99)
}

// benchSummary holds the figures of one run, to print ratios at the end.
type benchSummary struct {
	mu    sync.Mutex
	order []string
	p50   map[string]time.Duration
	p99   map[string]time.Duration
	rate  map[string]float64
}

func (s *benchSummary) set(name string, p50, p99 time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.p50[name]; !ok {
		s.order = append(s.order, name)
	}
	s.p50[name], s.p99[name] = p50, p99
}

func (s *benchSummary) setRate(name string, r float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.rate[name]; !ok {
		s.order = append(s.order, name)
	}
	s.rate[name] = r
}

func (s *benchSummary) print(b *testing.B) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out strings.Builder
	fmt.Fprintf(&out, "\n%-42s %10s %10s %s\n", "figure", "p50", "p99", "ratio (p50 / floor p50)")
	http0 := s.p50["floor/loopback-http"]
	for _, name := range s.order {
		if r, ok := s.rate[name]; ok {
			note := ""
			if !strings.HasPrefix(name, "floor/") {
				note = "(target ≥ 5000/s)"
				rt := name[strings.LastIndex(name, "/")+1:]
				bare := "floor/http-agent-throughput-50/" + rt
				if strings.HasPrefix(name, "throughput-50-lean/") {
					bare = "floor/http-agent-throughput-50-lean/" + rt
				}
				for _, f := range []struct{ name, what string }{
					{bare, "bare HTTP over the agents (same load generator)"},
					{"floor/agent-throughput-50/" + rt, "the agents"},
					{"floor/http-kernels-throughput-50", "bare HTTP over in-process kernels"},
					{"floor/kernels-throughput-50", "the kernels"},
				} {
					if floor, ok := s.rate[f.name]; ok {
						note += fmt.Sprintf("; %.2f× %s %.0f/s", r/floor, f.what, floor)
					}
				}
			}
			fmt.Fprintf(&out, "%-42s %10s %10s %.0f executions/s %s\n", name, "", "", r, note)
			continue
		}
		p50, p99 := s.p50[name], s.p99[name]
		ratio := ""
		rt := name[strings.LastIndex(name, "/")+1:]
		kernel := s.p50["floor/agent-kernel-print/"+rt]
		switch {
		case strings.HasPrefix(name, "floor/agent-kernel-print/") && http0 > 0:
			ratio = fmt.Sprintf("= %.1f× loopback HTTP", float64(p50)/float64(http0))
		case !strings.HasPrefix(name, "floor/") && http0 > 0 && kernel > 0:
			floor := http0 + kernel
			ratio = fmt.Sprintf("%.2f× (loopback HTTP + kernel print(1) = %s); overhead over the floor %s",
				float64(p50)/float64(floor), floor.Round(time.Microsecond), (p50 - floor).Round(time.Microsecond))
		}
		fmt.Fprintf(&out, "%-42s %10s %10s %s\n", name, p50.Round(time.Microsecond), p99.Round(time.Microsecond), ratio)
	}
	b.Log(out.String())
	fmt.Print(out.String())
}

// benchEnv is a server with one runtime, a token and the pools the
// benchmarks use.
type benchEnv struct {
	name     string
	hc       *http.Client
	token    string
	rt       sandbox.Runtime
	first    string // endpoint of the pool for first executions
	firstKey string // its pool id, lower-cased (the sandboxes' label)
	ready    int    // its readySessionInstances
	settle   time.Duration
	tput     string // endpoint of the pool for throughput
	tputKey  string // its pool id, lower-cased
	existing string // endpoint of the pool for existing sessions
}

// benchStartServer runs an in-process server for cfg (warnings and errors
// logged to a buffer printed on failure) until the benchmark ends.
func benchStartServer(tb testing.TB, cfg server.Config) server.Info {
	tb.Helper()
	logs := &logBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, ln)
	if err != nil {
		cancel()
		ln.Close()
		tb.Fatalf("server.New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				tb.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			tb.Errorf("Run did not return within 20s of cancel")
		}
		srv.Close()
		if tb.Failed() {
			tb.Logf("server log:\n%s", logs.String())
		}
	})
	return srv.Info()
}

func newBenchEnv(b *testing.B, name string, rt sandbox.Runtime, dataDir string, settle time.Duration) *benchEnv {
	b.Helper()
	info := benchStartServer(b, server.Config{DataDir: dataDir, Runtime: rt})
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, DisableCompression: true}
	b.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	data, err := os.ReadFile(filepath.Join(dataDir, server.CredentialsFile))
	if err != nil {
		b.Fatal(err)
	}
	var creds server.Credentials
	if err := json.Unmarshal(data, &creds); err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	token, err := managementToken(ctx, hc, creds)
	if err != nil {
		b.Fatal(err)
	}
	e := &benchEnv{name: name, hc: hc, token: token, rt: rt, ready: 4, settle: settle}
	must := func(method, u string, body any, want int) *response {
		r, err := do(ctx, hc, method, u, token, body)
		if err != nil {
			b.Fatalf("%s %s: %v", method, u, err)
		}
		if r.Status != want {
			b.Fatalf("%s %s: %s, want %d", method, u, r, want)
		}
		return r
	}
	base := fmt.Sprintf("%s/subscriptions/%s/resourceGroups/bench", info.Endpoint, info.SubscriptionID)
	must(http.MethodPut, base+"?api-version=2021-04-01", map[string]string{"location": "eastus"}, http.StatusCreated)
	mkPool := func(pool string, ready, max int) string {
		u := base + "/providers/Microsoft.App/sessionPools/" + pool + "?api-version=2025-02-02-preview"
		must(http.MethodPut, u, map[string]any{"location": "eastus", "properties": map[string]any{
			"containerType": "PythonLTS", "poolManagementType": "Dynamic",
			"scaleConfiguration": map[string]any{"maxConcurrentSessions": max, "readySessionInstances": ready},
			"dynamicPoolConfiguration": map[string]any{
				"lifecycleConfiguration": map[string]any{"lifecycleType": "Timed", "cooldownPeriodInSeconds": 3600}},
		}}, http.StatusCreated)
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) {
			r := must(http.MethodGet, u, nil, http.StatusOK)
			if s := provisioningState(r.Body); s == "Succeeded" {
				return base + "/sessionPools/" + pool
			} else if s == "Failed" {
				b.Fatalf("pool %s failed: %s", pool, r)
			}
			time.Sleep(50 * time.Millisecond)
		}
		b.Fatalf("pool %s not Succeeded after 2 minutes", pool)
		return ""
	}
	e.first = mkPool("first", e.ready, 600)
	e.firstKey = strings.ToLower(fmt.Sprintf("/subscriptions/%s/resourceGroups/bench/providers/Microsoft.App/sessionPools/first", info.SubscriptionID))
	e.existing = mkPool("existing", 1, 10)
	e.tput = mkPool("tput", 50, 60)
	e.tputKey = strings.ToLower(fmt.Sprintf("/subscriptions/%s/resourceGroups/bench/providers/Microsoft.App/sessionPools/tput", info.SubscriptionID))
	// Let the warm sets finish whatever they still do before measuring.
	e.waitQuiet(b)
	time.Sleep(time.Second)
	return e
}

// execV1 posts print(1) (or code) to code/execute and returns the
// allocation time the server reports (x-ms-allocation-time, ms) and the
// container's execution time (x-ms-container-execution-duration, ms).
func (e *benchEnv) execV1(ctx context.Context, endpoint, ident, code string) (allocMs, execMs int, err error) {
	body := `{"properties":{"codeInputType":"inline","executionType":"synchronous","code":` + strconv.Quote(code) + `}}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		endpoint+"/code/execute?api-version=2024-02-02-preview&identifier="+url.QueryEscape(ident), strings.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+e.token)
	resp, err := e.hc.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, err
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(data), `"Success"`) {
		return 0, 0, fmt.Errorf("code/execute: HTTP %d: %s", resp.StatusCode, data)
	}
	allocMs, _ = strconv.Atoi(resp.Header.Get("x-ms-allocation-time"))
	execMs, _ = strconv.Atoi(resp.Header.Get("x-ms-container-execution-duration"))
	return allocMs, execMs, nil
}

// poolSandboxes counts the runtime's sandboxes of the "first" pool.
func (e *benchEnv) poolSandboxes(ctx context.Context) int {
	list, err := e.rt.List(ctx)
	if err != nil {
		return -1
	}
	n := 0
	for _, sb := range list {
		if strings.EqualFold(sb.Labels["tidepool.pool"], e.firstKey) {
			n++
		}
	}
	return n
}

// waitQuiet waits until the "first" pool holds exactly its ready set (no
// session, nothing starting) and nothing has changed for e.settle.
func (e *benchEnv) waitQuiet(b *testing.B) {
	ctx := b.Context()
	deadline := time.Now().Add(time.Minute)
	stableSince := time.Time{}
	for time.Now().Before(deadline) {
		if e.poolSandboxes(ctx) == e.ready {
			if stableSince.IsZero() {
				stableSince = time.Now()
			}
			if time.Since(stableSince) >= e.settle {
				return
			}
		} else {
			stableSince = time.Time{}
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatalf("%s: the pool did not settle at %d ready sandboxes in a minute: it has %d", e.name, e.ready, e.poolSandboxes(ctx))
}

// benchFirst: the first execution on a new identifier, with ready
// sandboxes. Each iteration waits (untimed) for a full, quiet ready set,
// times one print(1) on a new identifier, and deletes the session.
func benchFirst(b *testing.B, e *benchEnv, sum *benchSummary) {
	ctx := b.Context()
	var l, allocs, execs latencies
	slow := 0
	i := 0
	for b.Loop() {
		b.StopTimer()
		e.waitQuiet(b)
		ident := fmt.Sprintf("first-%s-%d-%d", e.name, time.Now().UnixNano(), i)
		i++
		b.StartTimer()
		t0 := time.Now()
		alloc, ex, err := e.execV1(ctx, e.first, ident, "print(1)")
		d := time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		l = append(l, d)
		allocs = append(allocs, time.Duration(alloc)*time.Millisecond)
		execs = append(execs, time.Duration(ex)*time.Millisecond)
		if alloc >= 20 {
			slow++ // a cold start rather than a claim
		}
		r, err := do(ctx, e.hc, http.MethodDelete, e.first+"/session?api-version=2025-10-02-preview&identifier="+url.QueryEscape(ident), e.token, nil)
		if err != nil || r.Status != http.StatusNoContent {
			b.Fatalf("DELETE session: %v %v", r, err)
		}
		b.StartTimer()
	}
	l.report(b, sum, "first-exec/"+e.name)
	b.ReportMetric(float64(slow), "cold-starts")
	// What the server says the time went to (whole milliseconds).
	b.ReportMetric(float64(allocs.pct(50).Milliseconds()), "alloc-p50-ms")
	b.ReportMetric(float64(execs.pct(50).Milliseconds()), "container-exec-p50-ms")
}

// benchExisting: print(1) on an identifier that has a session.
func benchExisting(b *testing.B, e *benchEnv, sum *benchSummary) {
	ctx := b.Context()
	ident := "existing-" + e.name
	if _, _, err := e.execV1(ctx, e.existing, ident, "print(1)"); err != nil {
		b.Fatal(err)
	}
	l := make(latencies, 0, b.N)
	for b.Loop() {
		t0 := time.Now()
		if _, _, err := e.execV1(ctx, e.existing, ident, "print(1)"); err != nil {
			b.Fatal(err)
		}
		l = append(l, time.Since(t0))
	}
	l.report(b, sum, "existing/"+e.name)
}

// The throughput figure and its floors: print(1) on 50 sessions, 50
// callers at once, each always on its own session (a session's kernel runs
// one execution at a time). From the bottom up:
//
//	floor/kernels-throughput-50        50 kernels driven by kernel managers in this process
//	floor/http-kernels-throughput-50   the same behind a bare net/http handler
//	floor/agent-throughput-50/RT       50 of the pool's sandboxes through their agent clients
//	floor/http-agent-throughput-50/RT  the same behind a bare net/http handler
//	throughput-50/RT                   tidepool's data plane
//
// The agent clients lease the kernels (client/lease.go), so the agents
// are not in these executions' path. The differences between the figures
// are what HTTP and the server's own work cost. The callers of the HTTP
// figures are net/http's client; the -lean variants of the last two call
// through leanCallers, which costs the machine less, as clients on other
// machines would.

// executor runs print(1) on session i and returns its stdout.
type executor func(ctx context.Context, i int) (string, error)

// benchThroughput: tidepool's data plane, called through net/http's
// client or, with lean, through leanCallers.
func benchThroughput(b *testing.B, e *benchEnv, lean bool, sum *benchSummary) {
	ctx := b.Context()
	const sessions = 50
	idents := make([]string, sessions)
	for i := range idents {
		idents[i] = fmt.Sprintf("tput-%s-%d", e.name, i)
	}
	do := func(i int) error {
		_, _, err := e.execV1(ctx, e.tput, idents[i], "print(1)")
		return err
	}
	name := "throughput-50/" + e.name
	if lean {
		do = leanCallers(b, e.tput, e.token, idents)
		name = "throughput-50-lean/" + e.name
	}
	sum.setRate(name, parallelRate(b, sessions, do))
}

// leanCallers returns a load generator for the throughput figures that
// costs the machine less than net/http's client (whose transport hands
// each call between three goroutines): one kept connection per caller, the
// v1 request's bytes made once, the answer read in place. It sends what
// execV1 sends, headers and body, and checks the same. Caller i must be
// called from one goroutine at a time.
func leanCallers(b *testing.B, endpoint, token string, idents []string) func(i int) error {
	u, err := url.Parse(endpoint)
	if err != nil {
		b.Fatal(err)
	}
	type caller struct {
		conn net.Conn
		br   *bufio.Reader
		req  []byte
	}
	callers := make([]caller, len(idents))
	body := `{"properties":{"codeInputType":"inline","executionType":"synchronous","code":"print(1)"}}`
	for i, id := range idents {
		callers[i].req = fmt.Appendf(nil, "POST %s/code/execute?api-version=2024-02-02-preview&identifier=%s HTTP/1.1\r\n"+
			"Host: %s\r\nUser-Agent: tidepool-bench\r\nContent-Length: %d\r\nAuthorization: Bearer %s\r\n"+
			"Content-Type: application/json\r\nAccept-Encoding: gzip\r\n\r\n%s",
			u.EscapedPath(), url.QueryEscape(id), u.Host, len(body), token, body)
	}
	b.Cleanup(func() {
		for _, c := range callers {
			if c.conn != nil {
				c.conn.Close()
			}
		}
	})
	return func(i int) error {
		c := &callers[i]
		if c.conn == nil {
			conn, err := net.Dial("tcp", u.Host)
			if err != nil {
				return err
			}
			c.conn, c.br = conn, bufio.NewReaderSize(conn, 8<<10)
		}
		if _, err := c.conn.Write(c.req); err != nil {
			return err
		}
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			return err
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && (resp.StatusCode != http.StatusOK || !bytes.Contains(data, []byte(`"Success"`))) {
			err = fmt.Errorf("code/execute: HTTP %d: %s", resp.StatusCode, data)
		}
		return err
	}
}

// agentExecutor drives 50 of the throughput pool's sandboxes straight
// through their agent clients (no server).
func agentExecutor(b *testing.B, e *benchEnv) executor {
	list, err := e.rt.List(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	var clients []*client.Client
	for _, sb := range list {
		if strings.EqualFold(sb.Labels["tidepool.pool"], e.tputKey) && len(clients) < 50 {
			c := client.New(sb.Socket)
			b.Cleanup(func() { c.Close() })
			clients = append(clients, c)
		}
	}
	if len(clients) < 50 {
		b.Fatalf("the throughput pool has %d sandboxes, want 50", len(clients))
	}
	return func(ctx context.Context, i int) (string, error) {
		res, err := clients[i].Execute(ctx, wire.LangPython, wire.ExecuteRequest{Code: "print(1)"})
		if err != nil {
			return "", err
		}
		return res.Stdout, nil
	}
}

// kernelsExecutor drives 50 Python kernels with kernel managers in this
// process, as an agent drives its sandbox's kernel, with no agent process
// and no server between: the ceiling of the throughput figure. The kernels
// start on first use and live until the benchmark ends.
func kernelsExecutor(b *testing.B) func(b *testing.B) executor {
	var (
		once     sync.Once
		managers []*kernel.Manager
		err      error
	)
	b.Cleanup(func() {
		for _, m := range managers {
			m.Close()
		}
	})
	return func(b *testing.B) executor {
		once.Do(func() {
			log := slog.New(slog.DiscardHandler)
			for range 50 {
				m := kernel.New(kernel.Options{Cwd: os.TempDir(), Logger: log})
				managers = append(managers, m)
				if err = m.Start(context.Background(), wire.LangPython); err != nil {
					return
				}
			}
		})
		if err != nil {
			b.Fatalf("start 50 kernels: %v", err)
		}
		return func(ctx context.Context, i int) (string, error) {
			res, err := managers[i].Execute(ctx, wire.LangPython, wire.ExecuteRequest{Code: "print(1)"})
			if err != nil {
				return "", err
			}
			return res.Stdout, nil
		}
	}
}

// caller is how a throughput figure's load generator calls.
type caller int

const (
	direct     caller = iota // exec itself, no HTTP
	httpClient               // net/http's client
	httpLean                 // leanCallers
)

// benchFloorThroughput measures exec from 50 callers, straight or, via
// HTTP, through a bare net/http handler: it decodes the v1 body, calls
// exec on the session its identifier names and encodes the result, and
// checks nothing. The callers send what the data-plane clients send (a
// token of a real one's length, kept-alive connections).
func benchFloorThroughput(b *testing.B, name string, exec executor, via caller, sum *benchSummary) {
	ctx := b.Context()
	do := func(i int) error {
		out, err := exec(ctx, i)
		if err == nil && out != "1\n" {
			err = fmt.Errorf("print(1) printed %q", out)
		}
		return err
	}
	if via != direct {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var body struct{ Properties struct{ Code string } }
			i, err := strconv.Atoi(r.URL.Query().Get("identifier"))
			if err == nil {
				err = json.NewDecoder(r.Body).Decode(&body)
			}
			if err != nil || i < 0 || i >= 50 {
				http.Error(w, fmt.Sprint("bad request: ", err), http.StatusBadRequest)
				return
			}
			out, err := exec(r.Context(), i)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]any{"properties": map[string]any{
				"status": "Success", "stdout": out, "stderr": "", "executionResult": "",
			}})
		})}
		go hs.Serve(ln)
		defer hs.Close()
		tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, DisableCompression: true}
		defer tr.CloseIdleConnections()
		bare := &benchEnv{hc: &http.Client{Transport: tr}, token: strings.Repeat("x", 1200)}
		endpoint := "http://" + ln.Addr().String()
		do = func(i int) error {
			_, _, err := bare.execV1(ctx, endpoint, strconv.Itoa(i), "print(1)")
			return err
		}
		if via == httpLean {
			idents := make([]string, 50)
			for i := range idents {
				idents[i] = strconv.Itoa(i)
			}
			do = leanCallers(b, endpoint, bare.token, idents)
		}
	}
	sum.setRate(name, parallelRate(b, 50, do))
}

// parallelRate calls do from n callers at once, caller i always with i,
// once each first (connections open, kernels warm), then until b.N calls
// are made; it reports and returns the calls per second.
func parallelRate(b *testing.B, n int, do func(i int) error) float64 {
	b.Helper()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = do(i) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	procs := runtime.GOMAXPROCS(0)
	b.SetParallelism((n + procs - 1) / procs) // × GOMAXPROCS goroutines
	t0 := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1)-1) % n
		for pb.Next() {
			if err := do(i); err != nil {
				b.Error(err)
				return
			}
		}
	})
	rate := float64(b.N) / time.Since(t0).Seconds()
	b.ReportMetric(rate, "execs/s")
	return rate
}

// benchLoopback: the loopback HTTP floor, a POST with a small JSON body to
// an empty handler over a kept-alive connection.
func benchLoopback(b *testing.B, sum *benchSummary) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	})}
	go hs.Serve(ln)
	defer hs.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	u := "http://" + ln.Addr().String() + "/x"
	body := `{"properties":{"codeInputType":"inline","executionType":"synchronous","code":"print(1)"}}`
	l := make(latencies, 0, b.N)
	for b.Loop() {
		t0 := time.Now()
		resp, err := hc.Post(u, "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		l = append(l, time.Since(t0))
	}
	l.report(b, sum, "floor/loopback-http")
}

// benchKernel: print(1) through the agent client straight to a sandbox's
// kernel (no server): the agent's and the interpreter's share of the floor.
func benchKernel(b *testing.B, rt sandbox.Runtime, name string, sum *benchSummary) {
	ctx := b.Context()
	id := fmt.Sprintf("floor-%d", time.Now().UnixNano()%1e9)
	sb, err := rt.Create(ctx, sandbox.Spec{ID: id, Kind: sandbox.KindPython})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Destroy(context.Background(), id)
	c := client.New(sb.Socket)
	defer c.Close()
	if _, err := c.Init(ctx, wire.InitRequest{Identifier: "floor"}); err != nil {
		b.Fatal(err)
	}
	l := make(latencies, 0, b.N)
	for b.Loop() {
		t0 := time.Now()
		res, err := c.Execute(ctx, "python", wire.ExecuteRequest{Code: "print(1)"})
		if err != nil || res.Stdout != "1\n" {
			b.Fatal(res, err)
		}
		l = append(l, time.Since(t0))
	}
	l.report(b, sum, "floor/agent-kernel-print/"+name)
}

// benchRuntimes returns the runtimes to measure: the ProcessRuntime, and
// runc when root. Each comes twice: one for the server, one for the floor's
// own sandbox (so that the pool controller never sees it as a stray).
func benchRuntimes(b *testing.B) (names []string, newRuntimes func(name string) (server, floor sandbox.Runtime, dataDir string, settle time.Duration)) {
	names = []string{"process"}
	if os.Geteuid() == 0 {
		names = append(names, "runc")
	} else {
		b.Log("runc: skipped, needs root")
	}
	if only := os.Getenv("TIDEPOOL_BENCH_RUNTIMES"); only != "" {
		names = slices.DeleteFunc(names, func(n string) bool { return !slices.Contains(strings.Split(only, ","), n) })
	}
	return names, func(name string) (sandbox.Runtime, sandbox.Runtime, string, time.Duration) {
		switch name {
		case "process":
			mk := func() sandbox.Runtime {
				// Unix socket paths must stay short: a root from MkdirTemp.
				root, err := os.MkdirTemp("", "tpb")
				if err != nil {
					b.Fatal(err)
				}
				rt := sandboxtest.NewProcessRuntime(agentBinary(b), root)
				b.Cleanup(func() {
					ctx := context.Background()
					list, _ := rt.List(ctx)
					for _, sb := range list {
						rt.Destroy(ctx, sb.ID)
					}
					os.RemoveAll(root)
				})
				return rt
			}
			return mk(), mk(), b.TempDir(), 100 * time.Millisecond
		default:
			dataDir := searchableTempDir(b)
			return newOCIRuntime(b, filepath.Join(dataDir, "sandboxes")), newOCIRuntime(b, filepath.Join(dataDir, "floor")), dataDir, 300 * time.Millisecond
		}
	}
}

// BenchmarkDataPlane runs the floors and the data-plane figures in one run
// and prints the ratios at the end. Setup (servers, pools, 55 warm Python
// sandboxes per runtime) happens once, before the sub-benchmarks.
func BenchmarkDataPlane(b *testing.B) {
	sum := &benchSummary{p50: map[string]time.Duration{}, p99: map[string]time.Duration{}, rate: map[string]float64{}}
	b.Run("floor/loopback-http", func(b *testing.B) { benchLoopback(b, sum) })
	floorRate := func(name string, exec func(*testing.B) executor, via caller) {
		b.Run(name, func(b *testing.B) { benchFloorThroughput(b, name, exec(b), via, sum) })
	}
	kernels := kernelsExecutor(b)
	floorRate("floor/kernels-throughput-50", kernels, direct)
	floorRate("floor/http-kernels-throughput-50", kernels, httpClient)
	names, mk := benchRuntimes(b)
	for _, name := range names {
		rt, floor, dataDir, settle := mk(name)
		b.Run("floor/agent-kernel-print/"+name, func(b *testing.B) { benchKernel(b, floor, name, sum) })
		e := newBenchEnv(b, name, rt, dataDir, settle)
		b.Run("first-exec/"+name, func(b *testing.B) { benchFirst(b, e, sum) })
		b.Run("existing/"+name, func(b *testing.B) { benchExisting(b, e, sum) })
		b.Run("throughput-50/"+name, func(b *testing.B) { benchThroughput(b, e, false, sum) })
		b.Run("throughput-50-lean/"+name, func(b *testing.B) { benchThroughput(b, e, true, sum) })
		agents := func(b *testing.B) executor { return agentExecutor(b, e) }
		floorRate("floor/agent-throughput-50/"+name, agents, direct)
		floorRate("floor/http-agent-throughput-50/"+name, agents, httpClient)
		floorRate("floor/http-agent-throughput-50-lean/"+name, agents, httpLean)
	}
	sum.print(b)
}
