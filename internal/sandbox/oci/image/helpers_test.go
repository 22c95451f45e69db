package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// file is one tar entry of a test layer.
type file struct {
	name  string
	typ   byte // tar.TypeReg when 0
	body  string
	link  string
	mode  int64 // 0644 (files) or 0755 (dirs) when 0
	uid   int
	gid   int
	mtime time.Time
	size  int64 // header size when body is empty and size is set (for bombs)
}

var testTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// tarBytes builds an uncompressed layer.
func tarBytes(t testing.TB, files ...file) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		hdr := &tar.Header{
			Name:     f.name,
			Typeflag: f.typ,
			Linkname: f.link,
			Mode:     f.mode,
			Uid:      f.uid,
			Gid:      f.gid,
			ModTime:  f.mtime,
			Format:   tar.FormatPAX,
		}
		if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
			if hdr.Typeflag == tar.TypeDir {
				hdr.Mode = 0o755
			}
		}
		if hdr.ModTime.IsZero() {
			hdr.ModTime = testTime
		}
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(f.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("WriteHeader(%q): %v", f.name, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := io.WriteString(tw, f.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// layerOf makes a gzip-compressed layer of a tar stream.
func layerOf(t testing.TB, tarball_ []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(tarball_)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func layer(t testing.TB, files ...file) v1.Layer {
	t.Helper()
	return layerOf(t, tarBytes(t, files...))
}

// newImage builds an image for the test platform (or arch, if given).
func newImage(t testing.TB, cfg v1.Config, arch string, layers ...v1.Layer) v1.Image {
	t.Helper()
	if arch == "" {
		arch = runtime.GOARCH
	}
	base, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		OS: "linux", Architecture: arch, RootFS: v1.RootFS{Type: "layers"},
	})
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(base, layers...)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.Config(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func digestString(t testing.TB, img interface{ Digest() (v1.Hash, error) }) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// testRegistry is an in-process registry on loopback that counts requests
// and, when user or token is set, demands them on every request (basic
// auth or a bearer token), like a registry behind an authenticating proxy.
type testRegistry struct {
	srv   *httptest.Server
	host  string
	user  string
	pass  string
	token string

	mu       sync.Mutex
	requests []string // "GET /v2/..."
}

func newRegistry(t testing.TB, user, pass, token string) *testRegistry {
	t.Helper()
	r := &testRegistry{user: user, pass: pass, token: token}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.requests = append(r.requests, req.Method+" "+req.URL.Path)
		r.mu.Unlock()
		if r.user != "" || r.token != "" {
			u, p, basic := req.BasicAuth()
			ok := basic && r.user != "" && u == r.user && p == r.pass
			ok = ok || r.token != "" && req.Header.Get("Authorization") == "Bearer "+r.token
			if !ok {
				w.Header().Set("WWW-Authenticate", `Basic realm="tidepool-test"`)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
				return
			}
		}
		reg.ServeHTTP(w, req)
	}))
	t.Cleanup(r.srv.Close)
	r.host = strings.TrimPrefix(r.srv.URL, "http://")
	return r
}

func (r *testRegistry) pushAuth() authn.Authenticator {
	switch {
	case r.user != "":
		return &authn.Basic{Username: r.user, Password: r.pass}
	case r.token != "":
		return &authn.Bearer{Token: r.token}
	}
	return authn.Anonymous
}

// push uploads img as repo:tag and returns the reference.
func (r *testRegistry) push(t testing.TB, repoTag string, img v1.Image) string {
	t.Helper()
	ref := r.host + "/" + repoTag
	tag, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img, remote.WithAuth(r.pushAuth())); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	r.reset()
	return ref
}

func (r *testRegistry) pushIndex(t testing.TB, repoTag string, idx v1.ImageIndex) string {
	t.Helper()
	ref := r.host + "/" + repoTag
	tag, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(tag, idx, remote.WithAuth(r.pushAuth())); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	r.reset()
	return ref
}

func (r *testRegistry) reset() {
	r.mu.Lock()
	r.requests = nil
	r.mu.Unlock()
}

// count returns how many requests had the method and a path containing
// part ("/blobs/", "/manifests/").
func (r *testRegistry) count(method, part string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, req := range r.requests {
		m, p, _ := strings.Cut(req, " ")
		if m == method && strings.Contains(p, part) {
			n++
		}
	}
	return n
}

func (r *testRegistry) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.requests)
}

func (r *testRegistry) blobGets(digest string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, req := range r.requests {
		if strings.HasPrefix(req, "GET ") && strings.HasSuffix(req, "/blobs/"+digest) {
			n++
		}
	}
	return n
}

func newStore(t testing.TB, root string, opts ...Option) *Store {
	t.Helper()
	if root == "" {
		root = filepath.Join(t.TempDir(), "images")
	}
	s, err := NewStore(root, opts...)
	if err != nil {
		t.Fatalf("NewStore: %v", err)
	}
	return s
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return string(b)
}

// treeState describes every file under dir (recursively, symlinks not
// followed), for before/after comparisons.
func treeState(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		desc := fi.Mode().String()
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			desc += " " + hex.EncodeToString(sum[:8])
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				desc += fmt.Sprintf(" nlink=%d uid=%d", st.Nlink, st.Uid)
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			desc += " -> " + l
		}
		if rel != "." {
			desc += " " + fi.ModTime().UTC().Format(time.RFC3339Nano)
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return out
}

// sandboxDirs makes parent/target (to unpack into) and parent/outside (with
// a sentinel file) and returns them.
func sandboxDirs(t testing.TB) (parent, target, outside string) {
	t.Helper()
	parent = t.TempDir()
	target = filepath.Join(parent, "target")
	outside = filepath.Join(parent, "outside")
	for _, d := range []string{target, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("do not touch"), 0o600); err != nil {
		t.Fatal(err)
	}
	return parent, target, outside
}

// unpackInto applies layers (uncompressed tars) to dir without diff ID
// checks.
func unpackInto(dir string, lim limits, layers ...[]byte) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	u := newUnpacker(root, lim, os.Geteuid() == 0, discardLogger())
	for _, l := range layers {
		if err := u.applyLayer(context.Background(), bytes.NewReader(l), v1.Hash{}); err != nil {
			return err
		}
	}
	return u.finish()
}

var defaultLimits = limits{maxSize: 1 << 30, maxEntries: 100_000}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
