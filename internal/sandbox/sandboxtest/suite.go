// Package sandboxtest holds what tests of sandbox runtimes and of their
// users share: RuntimeSuite, the conformance suite every sandbox.Runtime
// passes, and Fake, an in-memory Runtime whose sandboxes are fake agents
// on real unix sockets.
package sandboxtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tidepool-dev/tidepool/internal/sandbox"
)

// RuntimeSuite runs the conformance tests of sandbox.Runtime on runtimes
// made by newRuntime, one per subtest (it should register its own cleanup
// with t.Cleanup). The sandboxes it creates are of kind shell with small
// limits; their agents must answer GET /health with 200.
func RuntimeSuite(t *testing.T, newRuntime func(t *testing.T) sandbox.Runtime) {
	tests := []struct {
		name string
		fn   func(t *testing.T, rt sandbox.Runtime)
	}{
		{"CreateListDestroy", testCreateListDestroy},
		{"DestroyUnknown", testDestroyUnknown},
		{"DuplicateID", testDuplicateID},
		{"InvalidSpec", testInvalidSpec},
		{"CanceledContext", testCanceledContext},
		{"ShortDeadline", testShortDeadline},
		{"Concurrent", testConcurrent},
		{"LabelsAreCopied", testLabelsAreCopied},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newRuntime(t))
		})
	}
}

// NewID returns a fresh sandbox id with the given prefix ("st" if empty).
func NewID(prefix string) string {
	if prefix == "" {
		prefix = "st"
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return prefix + "-" + hex.EncodeToString(b[:])
}

// BaseSpec is a small sandbox of kind shell.
func BaseSpec(id string) sandbox.Spec {
	return sandbox.Spec{
		ID:          id,
		Kind:        sandbox.KindShell,
		Labels:      map[string]string{"suite": "sandboxtest", "id": id},
		CPU:         0.5,
		MemoryBytes: 256 << 20,
		PidsLimit:   128,
		DiskBytes:   64 << 20,
	}
}

// Health asks the agent behind socket for GET /health and returns the
// status code.
func Health(ctx context.Context, socket string) (int, error) {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent/health", nil)
	if err != nil {
		return 0, err
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func mustCreate(t *testing.T, rt sandbox.Runtime, spec sandbox.Spec) *sandbox.Sandbox {
	t.Helper()
	sb, err := rt.Create(context.Background(), spec)
	if err != nil {
		t.Fatalf("Create(%s): %v", spec.ID, err)
	}
	t.Cleanup(func() {
		err := rt.Destroy(context.Background(), spec.ID)
		if err != nil && !errors.Is(err, sandbox.ErrNotFound) {
			t.Errorf("cleanup: Destroy(%s): %v", spec.ID, err)
		}
	})
	return sb
}

func listed(t *testing.T, rt sandbox.Runtime) map[string]*sandbox.Sandbox {
	t.Helper()
	list, err := rt.List(context.Background())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	m := map[string]*sandbox.Sandbox{}
	for _, sb := range list {
		if _, dup := m[sb.ID]; dup {
			t.Errorf("List: %s listed twice", sb.ID)
		}
		m[sb.ID] = sb
	}
	return m
}

func wantHealthy(t *testing.T, sb *sandbox.Sandbox) {
	t.Helper()
	code, err := Health(context.Background(), sb.Socket)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /health on %s: %d, %v; want 200", sb.ID, code, err)
	}
}

func testCreateListDestroy(t *testing.T, rt sandbox.Runtime) {
	ctx := context.Background()
	spec := BaseSpec(NewID(""))
	before := time.Now().Add(-time.Second)
	sb := mustCreate(t, rt, spec)
	if sb.ID != spec.ID {
		t.Errorf("Create: ID = %q, want %q", sb.ID, spec.ID)
	}
	if !maps.Equal(sb.Labels, spec.Labels) {
		t.Errorf("Create: Labels = %v, want %v", sb.Labels, spec.Labels)
	}
	if sb.Socket == "" || sb.Pid <= 0 {
		t.Errorf("Create: Socket = %q, Pid = %d; want both set", sb.Socket, sb.Pid)
	}
	if sb.Created.Before(before) || sb.Created.After(time.Now().Add(time.Second)) {
		t.Errorf("Create: Created = %v, want about now", sb.Created)
	}
	wantHealthy(t, sb)

	got, ok := listed(t, rt)[spec.ID]
	if !ok {
		t.Fatalf("List after Create: %s missing", spec.ID)
	}
	if !maps.Equal(got.Labels, spec.Labels) || got.Socket != sb.Socket || !got.Created.Equal(sb.Created) {
		t.Errorf("List: got %+v, want %+v", got, sb)
	}

	if err := rt.Destroy(ctx, spec.ID); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if _, ok := listed(t, rt)[spec.ID]; ok {
		t.Errorf("List after Destroy: %s still listed", spec.ID)
	}
	if code, err := Health(ctx, sb.Socket); err == nil {
		t.Errorf("GET /health after Destroy: %d, want a connection error", code)
	}
	if err := rt.Destroy(ctx, spec.ID); !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("second Destroy: %v, want ErrNotFound", err)
	}
}

func testDestroyUnknown(t *testing.T, rt sandbox.Runtime) {
	for _, id := range []string{NewID("unknown"), "", "../etc", "UPPER"} {
		if err := rt.Destroy(context.Background(), id); !errors.Is(err, sandbox.ErrNotFound) {
			t.Errorf("Destroy(%q): %v, want ErrNotFound", id, err)
		}
	}
}

func testDuplicateID(t *testing.T, rt sandbox.Runtime) {
	spec := BaseSpec(NewID(""))
	sb := mustCreate(t, rt, spec)
	if _, err := rt.Create(context.Background(), spec); err == nil {
		t.Fatalf("second Create(%s): no error", spec.ID)
	}
	wantHealthy(t, sb) // the first one is untouched
	if _, ok := listed(t, rt)[spec.ID]; !ok {
		t.Errorf("List: %s missing after a failed duplicate Create", spec.ID)
	}
}

func testInvalidSpec(t *testing.T, rt sandbox.Runtime) {
	bad := map[string]func(*sandbox.Spec){
		"empty id":     func(s *sandbox.Spec) { s.ID = "" },
		"bad id":       func(s *sandbox.Spec) { s.ID = "Bad_ID!" },
		"path id":      func(s *sandbox.Spec) { s.ID = "../x" },
		"long id":      func(s *sandbox.Spec) { s.ID = "x" + fmt.Sprintf("%070d", 0) },
		"unknown kind": func(s *sandbox.Spec) { s.Kind = "cobol" },
		"custom no image": func(s *sandbox.Spec) {
			s.Kind = sandbox.KindCustom
			s.Image = ""
		},
		"negative memory": func(s *sandbox.Spec) { s.MemoryBytes = -1 },
	}
	before := len(listed(t, rt))
	for name, mutate := range bad {
		spec := BaseSpec(NewID(""))
		mutate(&spec)
		if sb, err := rt.Create(context.Background(), spec); err == nil {
			t.Errorf("Create(%s): no error", name)
			_ = rt.Destroy(context.Background(), sb.ID)
		}
	}
	if after := len(listed(t, rt)); after != before {
		t.Errorf("List: %d sandboxes after invalid creates, want %d", after, before)
	}
}

func testCanceledContext(t *testing.T, rt sandbox.Runtime) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	spec := BaseSpec(NewID(""))
	if sb, err := rt.Create(ctx, spec); err == nil {
		t.Errorf("Create with a cancelled context: no error")
		_ = rt.Destroy(context.Background(), sb.ID)
	}
	wantGone(t, rt, spec.ID)
}

// wantGone checks that a sandbox left nothing the runtime knows of.
func wantGone(t *testing.T, rt sandbox.Runtime, id string) {
	t.Helper()
	if _, ok := listed(t, rt)[id]; ok {
		t.Errorf("List: %s listed after a failed Create", id)
	}
	if err := rt.Destroy(context.Background(), id); !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("Destroy(%s) after a failed Create: %v, want ErrNotFound", id, err)
	}
}

func testShortDeadline(t *testing.T, rt sandbox.Runtime) {
	// Deadlines that end at various points of Create: each either
	// succeeds or leaves nothing behind.
	for _, d := range []time.Duration{time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond} {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		spec := BaseSpec(NewID(""))
		sb, err := rt.Create(ctx, spec)
		cancel()
		if err != nil {
			wantGone(t, rt, spec.ID)
			continue
		}
		wantHealthy(t, sb)
		if err := rt.Destroy(context.Background(), sb.ID); err != nil {
			t.Errorf("Destroy(%s): %v", sb.ID, err)
		}
	}
}

func testConcurrent(t *testing.T, rt sandbox.Runtime) {
	const n = 4
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range ids {
		ids[i] = NewID("")
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = rt.Create(context.Background(), BaseSpec(ids[i]))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Create(%s): %v", ids[i], err)
		}
	}
	got := listed(t, rt)
	for i, id := range ids {
		if errs[i] == nil {
			if _, ok := got[id]; !ok {
				t.Errorf("List: %s missing", id)
			}
		}
	}
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := rt.Destroy(context.Background(), id); err != nil && errs[i] == nil {
				t.Errorf("Destroy(%s): %v", id, err)
			}
		}()
	}
	wg.Wait()
	got = listed(t, rt)
	for _, id := range ids {
		if _, ok := got[id]; ok {
			t.Errorf("List: %s listed after Destroy", id)
		}
	}
}

func testLabelsAreCopied(t *testing.T, rt sandbox.Runtime) {
	spec := BaseSpec(NewID(""))
	want := maps.Clone(spec.Labels)
	sb := mustCreate(t, rt, spec)
	spec.Labels["suite"] = "changed by the caller"
	sb.Labels["id"] = "changed too"
	got, ok := listed(t, rt)[spec.ID]
	if !ok {
		t.Fatalf("List: %s missing", spec.ID)
	}
	if !maps.Equal(got.Labels, want) {
		t.Errorf("List: Labels = %v, want %v (the runtime keeps its own copy)", got.Labels, want)
	}
}
