package server_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// TestKill9DuringPUTBurst kills the real binary with SIGKILL while clients
// create session pools, restarts it on the same data dir, and checks that
// every acknowledged write survived and that the work it started finishes.
func TestKill9DuringPUTBurst(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("skipping: the go command is not on PATH (%v); this test builds cmd/tidepool", err)
	}
	start := time.Now()
	defer func() { t.Logf("TestKill9DuringPUTBurst took %v", time.Since(start).Round(time.Millisecond)) }()
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()

	tmp := t.TempDir()
	bin := buildTidepool(ctx, t, goBin, tmp)
	dataDir := filepath.Join(tmp, "data")
	addr := freeAddr(t)
	base := "http://" + addr

	first := startBinary(ctx, t, bin, dataDir, addr, filepath.Join(tmp, "first.log"))
	creds := readCredentials(t, dataDir)
	if creds.Endpoint != base {
		t.Fatalf("endpoint = %q, want %q", creds.Endpoint, base)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer hc.CloseIdleConnections()
	token, err := managementToken(ctx, hc, creds)
	if err != nil {
		t.Fatal(err)
	}
	const rg = "crash-rg"
	sub := creds.SubscriptionID
	groupURL := fmt.Sprintf("%s/subscriptions/%s/resourcegroups/%s?api-version=2021-04-01", base, sub, rg)
	mustDo(t, hc, http.MethodPut, groupURL, token, map[string]string{"location": "eastus"}, http.StatusCreated)
	poolURL := func(name string) string {
		return fmt.Sprintf("%s/subscriptions/%s/resourceGroups/%s/providers/Microsoft.App/sessionPools/%s?api-version=2025-01-01", base, sub, rg, name)
	}

	// The burst: workers PUT pools p0001, p0002, ... and record each pool
	// whose PUT was acknowledged with a 2xx, with its operation URL.
	const workers, wantAcks, burstFor = 8, 150, 5 * time.Second
	var (
		next     atomic.Int64
		killed   atomic.Bool
		mu       sync.Mutex
		acked    = map[string]string{} // pool → Azure-AsyncOperation
		refusals []string              // failures and non-2xx answers before the kill
		enough   = make(chan struct{})
		once     sync.Once
		wg       sync.WaitGroup
	)
	body := `{"location":"eastus","properties":{"containerType":"PythonLTS","poolManagementType":"Dynamic",` +
		`"scaleConfiguration":{"maxConcurrentSessions":5,"readySessionInstances":1},` +
		`"dynamicPoolConfiguration":{"lifecycleConfiguration":{"lifecycleType":"Timed","cooldownPeriodInSeconds":300}}}}`
	burstCtx, stopBurst := context.WithCancel(ctx)
	defer stopBurst()
	for range workers {
		wg.Go(func() {
			for !killed.Load() && burstCtx.Err() == nil {
				name := fmt.Sprintf("p%04d", next.Add(1))
				r, err := do(burstCtx, hc, http.MethodPut, poolURL(name), token, body)
				if err != nil {
					if !killed.Load() && burstCtx.Err() == nil {
						mu.Lock()
						refusals = append(refusals, fmt.Sprintf("%s: %v", name, err))
						mu.Unlock()
					}
					return // the server is gone
				}
				mu.Lock()
				if r.Status/100 == 2 {
					acked[name] = r.Header.Get("Azure-AsyncOperation")
					if len(acked) >= wantAcks {
						once.Do(func() { close(enough) })
					}
				} else if !killed.Load() {
					refusals = append(refusals, fmt.Sprintf("%s: %s", name, r))
				}
				mu.Unlock()
			}
		})
	}
	burstStart := time.Now()
	select {
	case <-enough:
	case <-time.After(burstFor):
	case <-ctx.Done():
	}
	// SIGKILL while the workers still have requests in flight.
	killed.Store(true)
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill: %v", err)
	}
	killedAfter := time.Since(burstStart)
	waitErr := first.wait(t, 10*time.Second)
	wg.Wait()
	stopBurst()
	hc.CloseIdleConnections()
	var ee *exec.ExitError
	if !errors.As(waitErr, &ee) || ee.ExitCode() != -1 || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("first server: Wait = %v, want killed by SIGKILL", waitErr)
	}
	mu.Lock()
	names := slices.Sorted(maps.Keys(acked))
	sent := next.Load()
	mu.Unlock()
	t.Logf("burst: %d PUTs started, %d acknowledged, SIGKILL after %v", sent, len(names), killedAfter.Round(time.Millisecond))
	if len(refusals) > 0 {
		t.Errorf("PUTs refused before the kill (%d), e.g. %s", len(refusals), refusals[0])
	}
	if len(names) == 0 {
		t.Fatal("no PUT was acknowledged before the kill")
	}

	// Restart on the same data dir and port.
	restart := time.Now()
	second := startBinary(ctx, t, bin, dataDir, addr, filepath.Join(tmp, "second.log"))
	t.Logf("restart: ready after %v", time.Since(restart).Round(time.Millisecond))

	// The admin credentials are the same and still work; so does the token
	// issued before the crash (the signing key is in the store).
	again := readCredentials(t, dataDir)
	if again != creds {
		t.Errorf("admin credentials changed across the crash:\nbefore %+v\n after %+v", creds, again)
	}
	mustDo(t, hc, http.MethodGet, groupURL, token, nil, http.StatusOK)
	token, err = managementToken(ctx, hc, creds)
	if err != nil {
		t.Fatalf("token with the original credentials after restart: %v", err)
	}

	// Every acknowledged pool is there at once ...
	for _, name := range names {
		r, err := do(ctx, hc, http.MethodGet, poolURL(name), token, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != http.StatusOK {
			t.Errorf("GET acknowledged pool %s after restart: %s", name, r)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	// ... and converges: provisioningState Succeeded and, for the
	// acknowledged PUTs, their operations Succeeded too. So do the pools
	// whose PUT committed but was never acknowledged.
	converge := time.Now()
	listed := listPools(t, hc, token, fmt.Sprintf("%s/subscriptions/%s/resourceGroups/%s/providers/Microsoft.App/sessionPools?api-version=2025-01-01", base, sub, rg))
	for _, name := range names {
		if !slices.Contains(listed, name) {
			t.Errorf("acknowledged pool %s is missing from the list", name)
		}
	}
	t.Logf("after restart: %d pools listed (%d acknowledged)", len(listed), len(names))
	pending := map[string]bool{}
	for _, name := range listed {
		pending["pool "+name] = true
	}
	for _, name := range names {
		pending["operation "+name] = true
	}
	deadline := time.Now().Add(30 * time.Second)
	last := map[string]string{}
	for len(pending) > 0 && time.Now().Before(deadline) {
		for key := range pending {
			kind, name, _ := strings.Cut(key, " ")
			u := poolURL(name)
			if kind == "operation" {
				u = acked[name]
			}
			r, err := do(ctx, hc, http.MethodGet, u, token, nil)
			if err != nil {
				t.Fatal(err)
			}
			state := provisioningState(r.Body)
			if kind == "operation" {
				var op struct{ Status string }
				json.Unmarshal(r.Body, &op)
				state = op.Status
			}
			last[key] = r.String()
			if r.Status == http.StatusOK && state == "Succeeded" {
				delete(pending, key)
			}
		}
		if len(pending) > 0 {
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(pending)) {
		t.Errorf("%s did not reach Succeeded within 30s of the restart; last answer %s", key, last[key])
	}
	if len(pending) == 0 {
		t.Logf("after restart: all pools and operations Succeeded within %v", time.Since(converge).Round(time.Millisecond))
	}

	// How much unfinished work the crash left (the controller logs each
	// pool it finishes): zero would mean this run did not test the resync.
	if data, err := os.ReadFile(filepath.Join(tmp, "second.log")); err == nil {
		t.Logf("after restart: the controller finished %d pools left InProgress by the crash", strings.Count(string(data), `msg="session pool ready"`))
	}
	// A clean stop, then SQLite's own check of the whole file.
	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := second.wait(t, 15*time.Second); err != nil {
		t.Errorf("second server did not exit cleanly on SIGTERM: %v", err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, "tidepool.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check); err != nil {
		t.Fatalf("integrity_check: %v", err)
	}
	if check != "ok" {
		t.Errorf("PRAGMA integrity_check = %q, want ok", check)
	}
}

// buildTidepool builds cmd/tidepool into dir and returns the binary's path.
func buildTidepool(ctx context.Context, t *testing.T, goBin, dir string) string {
	t.Helper()
	out, err := exec.CommandContext(ctx, goBin, "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatalf("go env GOMOD = %q: not inside the module", gomod)
	}
	bin := filepath.Join(dir, "tidepool")
	build := exec.CommandContext(ctx, goBin, "build", "-o", bin, "./cmd/tidepool")
	build.Dir = filepath.Dir(gomod)
	began := time.Now()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/tidepool: %v\n%s", err, out)
	}
	t.Logf("built %s in %v", bin, time.Since(began).Round(time.Millisecond))
	return bin
}

// freeAddr returns a 127.0.0.1 address with a port nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// proc is a running tidepool serve.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and been reaped
	err  error         // cmd.Wait's result, set before done closes
}

// wait waits at most d for the process to exit and returns cmd.Wait's
// result, or kills it and fails the test.
func (p *proc) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("tidepool serve (pid %d) did not exit within %v", p.cmd.Process.Pid, d)
		return nil
	}
}

// startBinary starts tidepool serve and waits until /readyz answers 200.
// The process is killed at the end of the test if it still runs; its
// output goes to logFile, shown if the test fails.
func startBinary(ctx context.Context, t *testing.T, bin, dataDir, addr, logFile string) *proc {
	t.Helper()
	log, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--data-dir", dataDir, "--listen", addr, "--runtime", "none")
	cmd.Stdout, cmd.Stderr = log, log
	// Only this test's settings: no TIDEPOOL_* from the environment.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TIDEPOOL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if err := cmd.Start(); err != nil {
		log.Close()
		t.Fatalf("start %s: %v", bin, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill() // harmless once it has exited
		<-p.done
		log.Close()
		if t.Failed() {
			data, _ := os.ReadFile(logFile)
			if len(data) > 8000 {
				data = append([]byte("…"), data[len(data)-8000:]...)
			}
			t.Logf("%s:\n%s", filepath.Base(logFile), data)
		}
	})
	hc := &http.Client{Timeout: time.Second}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := do(ctx, hc, http.MethodGet, "http://"+addr+"/readyz", "", nil)
		if err == nil && r.Status == http.StatusOK {
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("tidepool serve exited before it was ready: %v", p.err)
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("tidepool serve on %s not ready within 20s (last: %v %v)", addr, r, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// listPools follows nextLink from u and returns the names of the pools listed.
func listPools(t *testing.T, hc *http.Client, token, u string) []string {
	t.Helper()
	var names []string
	for u != "" {
		r := mustDo(t, hc, http.MethodGet, u, token, nil, http.StatusOK)
		var page struct {
			Value []struct {
				Name string `json:"name"`
			} `json:"value"`
			NextLink *string `json:"nextLink"`
		}
		if err := json.Unmarshal(r.Body, &page); err != nil {
			t.Fatalf("list %s: %v", u, err)
		}
		for _, p := range page.Value {
			names = append(names, p.Name)
		}
		u = ""
		if page.NextLink != nil {
			u = *page.NextLink
		}
	}
	return names
}
