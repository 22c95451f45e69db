package sandboxtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/tidepool-dev/tidepool/internal/sandbox"
)

var _ sandbox.Runtime = (*Fake)(nil)

// Fake is an in-memory sandbox.Runtime for tests of the runtime's users.
// Each sandbox is a fake agent serving GET /health on a real unix socket
// in the Fake's directory (in this process: Pid is the test's own).
// It checks specs as the real runtimes do, and nothing more.
type Fake struct {
	dir string

	mu        sync.Mutex
	sandboxes map[string]*fakeSandbox // guarded by mu
}

type fakeSandbox struct {
	sb  sandbox.Sandbox
	srv *http.Server
}

// NewFake returns a Fake keeping its sockets in dir, which must be short
// enough for unix socket paths (os.MkdirTemp("", ...) is; t.TempDir() may
// not be).
func NewFake(dir string) *Fake {
	return &Fake{dir: dir, sandboxes: map[string]*fakeSandbox{}}
}

var fakeIDPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$`)

// Create starts a fake agent.
func (f *Fake) Create(ctx context.Context, spec sandbox.Spec) (*sandbox.Sandbox, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !fakeIDPattern.MatchString(spec.ID) {
		return nil, fmt.Errorf("sandbox id %q: invalid", spec.ID)
	}
	switch spec.Kind {
	case sandbox.KindPython, sandbox.KindNode, sandbox.KindShell:
	case sandbox.KindCustom:
		if spec.Image == "" {
			return nil, fmt.Errorf("sandbox %s: a custom sandbox needs an image", spec.ID)
		}
	default:
		return nil, fmt.Errorf("sandbox %s: unknown kind %q", spec.ID, spec.Kind)
	}
	if spec.CPU < 0 || spec.MemoryBytes < 0 || spec.PidsLimit < 0 || spec.DiskBytes < 0 {
		return nil, fmt.Errorf("sandbox %s: negative limit", spec.ID)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.sandboxes[spec.ID]; ok {
		return nil, fmt.Errorf("sandbox %s exists", spec.ID)
	}
	socket := filepath.Join(f.dir, spec.ID+".sock")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"version": "fake", "ready": true})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fs := &fakeSandbox{
		sb: sandbox.Sandbox{
			ID:           spec.ID,
			Labels:       maps.Clone(spec.Labels),
			Socket:       socket,
			Pid:          os.Getpid(),
			Created:      time.Now().UTC(),
			AgentVersion: "fake",
		},
		srv: srv,
	}
	f.sandboxes[spec.ID] = fs
	sb := fs.sb
	sb.Labels = maps.Clone(sb.Labels)
	return &sb, nil
}

// Destroy stops the fake agent.
func (f *Fake) Destroy(_ context.Context, id string) error {
	f.mu.Lock()
	fs, ok := f.sandboxes[id]
	delete(f.sandboxes, id)
	f.mu.Unlock()
	if !ok {
		return fmt.Errorf("destroy sandbox %q: %w", id, sandbox.ErrNotFound)
	}
	err := fs.srv.Close()
	if rmErr := os.Remove(fs.sb.Socket); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
		err = errors.Join(err, rmErr)
	}
	return err
}

// List returns the fake sandboxes, oldest first.
func (f *Fake) List(context.Context) ([]*sandbox.Sandbox, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*sandbox.Sandbox, 0, len(f.sandboxes))
	for _, fs := range f.sandboxes {
		sb := fs.sb
		sb.Labels = maps.Clone(sb.Labels)
		out = append(out, &sb)
	}
	slices.SortFunc(out, func(a, b *sandbox.Sandbox) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// Close destroys every sandbox.
func (f *Fake) Close() error {
	list, _ := f.List(context.Background())
	var errs []error
	for _, sb := range list {
		errs = append(errs, f.Destroy(context.Background(), sb.ID))
	}
	return errors.Join(errs...)
}
