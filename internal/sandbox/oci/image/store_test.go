package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/tidepool-dev/tidepool/internal/sandbox"
)

var testConfig = v1.Config{
	Entrypoint:   []string{"/bin/server"},
	Cmd:          []string{"--port", "8080"},
	Env:          []string{"PATH=/usr/bin:/bin", "GREETING=hello"},
	WorkingDir:   "/srv",
	User:         "1000:1000",
	ExposedPorts: map[string]struct{}{"8080/tcp": {}, "53/udp": {}},
}

// appImage is a two-layer image: a base with directories, a script and a
// symlink, then an app layer.
func appImage(t testing.TB) v1.Image {
	t.Helper()
	base := layer(t,
		file{name: "bin/", typ: tar.TypeDir},
		file{name: "bin/server", body: "#!/bin/sh\necho serving\n", mode: 0o755},
		file{name: "bin/sh", typ: tar.TypeSymlink, link: "/bin/server"},
		file{name: "etc/", typ: tar.TypeDir},
		file{name: "etc/motd", body: "base motd\n"},
		file{name: "srv/", typ: tar.TypeDir, mode: 0o750, uid: 1000, gid: 1000},
	)
	app := layer(t,
		file{name: "srv/index.html", body: "<h1>hi</h1>", uid: 1000, gid: 1000},
		file{name: "etc/motd", body: "app motd\n"},
		file{name: "usr/bin/server", typ: tar.TypeLink, link: "bin/server"},
	)
	return newImage(t, testConfig, "", base, app)
}

func checkAppRootFS(t *testing.T, img *Image) {
	t.Helper()
	if got := readFile(t, filepath.Join(img.RootFS, "bin/server")); got != "#!/bin/sh\necho serving\n" {
		t.Errorf("bin/server = %q", got)
	}
	if got := readFile(t, filepath.Join(img.RootFS, "etc/motd")); got != "app motd\n" {
		t.Errorf("etc/motd = %q, want the upper layer's", got)
	}
	if got, err := os.Readlink(filepath.Join(img.RootFS, "bin/sh")); err != nil || got != "/bin/server" {
		t.Errorf("bin/sh -> %q, %v; want /bin/server", got, err)
	}
	a, err1 := os.Stat(filepath.Join(img.RootFS, "bin/server"))
	b, err2 := os.Stat(filepath.Join(img.RootFS, "usr/bin/server"))
	if err1 != nil || err2 != nil || !os.SameFile(a, b) {
		t.Errorf("usr/bin/server is not a hard link to bin/server (%v, %v)", err1, err2)
	}
	if a != nil && a.Mode().Perm() != 0o755 {
		t.Errorf("bin/server mode = %v, want 0755", a.Mode())
	}
	fi, err := os.Stat(filepath.Join(img.RootFS, "srv"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o750 {
		t.Errorf("srv mode = %v, want 0750", fi.Mode())
	}
	if !fi.ModTime().Equal(testTime) {
		t.Errorf("srv mtime = %v, want %v", fi.ModTime(), testTime)
	}
	if os.Geteuid() == 0 {
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 1000 || st.Gid != 1000 {
			t.Errorf("srv owner = %d:%d, want 1000:1000", st.Uid, st.Gid)
		}
	}
	root, err := os.Stat(img.RootFS)
	if err != nil {
		t.Fatal(err)
	}
	if root.Mode().Perm() != 0o755 {
		t.Errorf("rootfs mode = %v, want 0755", root.Mode())
	}
}

func checkConfig(t *testing.T, got Config) {
	t.Helper()
	want := Config{
		Entrypoint:   []string{"/bin/server"},
		Cmd:          []string{"--port", "8080"},
		Env:          []string{"PATH=/usr/bin:/bin", "GREETING=hello"},
		WorkingDir:   "/srv",
		User:         "1000:1000",
		ExposedPorts: []string{"53/udp", "8080/tcp"},
	}
	if !slices.Equal(got.Entrypoint, want.Entrypoint) || !slices.Equal(got.Cmd, want.Cmd) ||
		!slices.Equal(got.Env, want.Env) || got.WorkingDir != want.WorkingDir || got.User != want.User ||
		!slices.Equal(got.ExposedPorts, want.ExposedPorts) {
		t.Errorf("Config = %+v\nwant %+v", got, want)
	}
}

func TestPullAnonymous(t *testing.T) {
	reg := newRegistry(t, "", "", "")
	img := appImage(t)
	ref := reg.push(t, "test/app:v1", img)
	s := newStore(t, "", WithInsecureRegistries(reg.host))

	got, err := s.Pull(context.Background(), ref, nil)
	if err != nil {
		t.Fatalf("Pull(%s): %v", ref, err)
	}
	if want := digestString(t, img); got.Digest != want {
		t.Errorf("Digest = %s, want %s", got.Digest, want)
	}
	if want := filepath.Join(s.root, "rootfs", "sha256-"+strings.TrimPrefix(got.Digest, "sha256:")); got.RootFS != want {
		t.Errorf("RootFS = %s, want %s", got.RootFS, want)
	}
	if strings.ContainsAny(got.RootFS, ":,") {
		t.Errorf("RootFS %q holds characters overlayfs options cannot take", got.RootFS)
	}
	checkAppRootFS(t, got)
	checkConfig(t, got.Config)

	// By digest too.
	byDigest := reg.host + "/test/app@" + got.Digest
	got2, err := s.Pull(context.Background(), byDigest, nil)
	if err != nil {
		t.Fatalf("Pull(%s): %v", byDigest, err)
	}
	if got2.RootFS != got.RootFS {
		t.Errorf("by digest: RootFS = %s, want %s", got2.RootFS, got.RootFS)
	}
}

func TestPullCredentials(t *testing.T) {
	const user, pass, token = "puller", "s3cret-Passw0rd", "t0ken-xyz"
	reg := newRegistry(t, user, pass, token)
	ref := reg.push(t, "private/app:v1", appImage(t))
	denied := "registry denied access to " + ref + ": check the pool's registry credentials"

	tests := []struct {
		name    string
		auth    *sandbox.RegistryAuth
		wantErr string
	}{
		{"basic", &sandbox.RegistryAuth{Username: user, Password: pass}, ""},
		{"bearer token", &sandbox.RegistryAuth{Token: token}, ""},
		{"wrong password", &sandbox.RegistryAuth{Username: user, Password: "wrong"}, denied},
		{"wrong user", &sandbox.RegistryAuth{Username: "nobody", Password: pass}, denied},
		{"wrong token", &sandbox.RegistryAuth{Token: "nope"}, denied},
		{"anonymous", nil, denied},
		{"empty credentials", &sandbox.RegistryAuth{}, denied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			s := newStore(t, "", WithInsecureRegistries(reg.host), WithLogger(logger))
			img, err := s.Pull(context.Background(), ref, tt.auth)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Pull: %v", err)
				}
				checkAppRootFS(t, img)
				return
			}
			if !errors.Is(err, sandbox.ErrImage) {
				t.Fatalf("Pull error = %v, want sandbox.ErrImage", err)
			}
			if err.Error() != tt.wantErr {
				t.Errorf("Pull error = %q\nwant %q", err, tt.wantErr)
			}
			for _, secret := range []string{pass, token, "wrong", "nope"} {
				if strings.Contains(err.Error(), secret) || strings.Contains(logs.String(), secret) {
					t.Errorf("credential %q appears in the error or logs", secret)
				}
			}
		})
	}
}

func TestPullNotFound(t *testing.T) {
	reg := newRegistry(t, "", "", "")
	reg.push(t, "test/app:v1", appImage(t))
	s := newStore(t, "", WithInsecureRegistries(reg.host))
	for _, ref := range []string{
		reg.host + "/test/app:missing",
		reg.host + "/test/nothing:v1",
		reg.host + "/test/app@sha256:" + strings.Repeat("ab", 32),
	} {
		_, err := s.Pull(context.Background(), ref, nil)
		if !errors.Is(err, sandbox.ErrImage) {
			t.Fatalf("Pull(%s) = %v, want sandbox.ErrImage", ref, err)
		}
		if want := "image " + ref + " not found"; err.Error() != want {
			t.Errorf("Pull(%s) error = %q, want %q", ref, err, want)
		}
	}
}

func TestPullBadReference(t *testing.T) {
	s := newStore(t, "")
	for _, ref := range []string{"UPPER/case:tag", "oci-layout:", "docker-archive:", "reg.example/x@sha256:zz"} {
		_, err := s.Pull(context.Background(), ref, nil)
		if !errors.Is(err, sandbox.ErrImage) || !strings.Contains(err.Error(), "invalid image reference") {
			t.Errorf("Pull(%q) = %v, want an invalid reference error", ref, err)
		}
	}
}

func TestPullUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	host := strings.TrimPrefix(srv.URL, "http://")
	srv.Close()
	s := newStore(t, "", WithInsecureRegistries(host))
	ref := host + "/test/app:v1"
	_, err := s.Pull(context.Background(), ref, nil)
	if !errors.Is(err, sandbox.ErrImage) {
		t.Fatalf("Pull = %v, want sandbox.ErrImage", err)
	}
	if !strings.HasPrefix(err.Error(), "cannot reach registry "+host) {
		t.Errorf("Pull error = %q, want it to start with %q", err, "cannot reach registry "+host)
	}
}

// Without WithInsecureRegistries, even a loopback registry is spoken to
// over HTTPS only.
func TestPullRefusesPlainHTTP(t *testing.T) {
	reg := newRegistry(t, "", "", "")
	ref := reg.push(t, "test/app:v1", appImage(t))
	s := newStore(t, "")
	_, err := s.Pull(context.Background(), ref, nil)
	if !errors.Is(err, sandbox.ErrImage) || !strings.HasPrefix(err.Error(), "cannot reach registry "+reg.host) {
		t.Fatalf("Pull = %v, want cannot reach registry", err)
	}
	if n := reg.total(); n != 0 {
		t.Errorf("the registry got %d plain HTTP requests", n)
	}
}

func TestPullCacheHit(t *testing.T) {
	reg := newRegistry(t, "u", "p", "")
	ref := reg.push(t, "test/app:v1", appImage(t))
	auth := &sandbox.RegistryAuth{Username: "u", Password: "p"}
	root := filepath.Join(t.TempDir(), "images")
	s := newStore(t, root, WithInsecureRegistries(reg.host))

	first, err := s.Pull(context.Background(), ref, auth)
	if err != nil {
		t.Fatal(err)
	}
	if n := reg.count("GET", "/blobs/"); n != 3 {
		t.Errorf("first pull: %d blob fetches, want 3 (config and two layers)", n)
	}
	reg.reset()
	second, err := s.Pull(context.Background(), ref, auth)
	if err != nil {
		t.Fatal(err)
	}
	if n := reg.count("GET", "/blobs/") + reg.count("HEAD", "/blobs/"); n != 0 {
		t.Errorf("second pull: %d blob requests, want 0", n)
	}
	if reg.count("GET", "/manifests/") == 0 {
		t.Errorf("second pull did not check the manifest (and so the credentials) with the registry")
	}
	if second.RootFS != first.RootFS || second.Digest != first.Digest {
		t.Errorf("second pull = %+v, want %+v", second, first)
	}
	checkConfig(t, second.Config)
	if n := s.unpacks.Load(); n != 1 {
		t.Errorf("unpacked %d times, want 1", n)
	}

	// Credentials are still checked on a cache hit.
	_, err = s.Pull(context.Background(), ref, &sandbox.RegistryAuth{Username: "u", Password: "bad"})
	if !errors.Is(err, sandbox.ErrImage) {
		t.Errorf("cache hit with bad credentials: %v, want sandbox.ErrImage", err)
	}

	// After a restart, too.
	reg.reset()
	s2 := newStore(t, root, WithInsecureRegistries(reg.host))
	third, err := s2.Pull(context.Background(), ref, auth)
	if err != nil {
		t.Fatal(err)
	}
	if n := reg.count("GET", "/blobs/"); n != 0 {
		t.Errorf("pull after restart: %d blob fetches, want 0", n)
	}
	if third.RootFS != first.RootFS || s2.unpacks.Load() != 0 {
		t.Errorf("pull after restart unpacked again or moved: %s", third.RootFS)
	}
}

func TestPullConcurrent(t *testing.T) {
	reg := newRegistry(t, "", "", "")
	img := appImage(t)
	ref := reg.push(t, "test/app:v1", img)
	s := newStore(t, "", WithInsecureRegistries(reg.host))

	const n = 16
	var wg sync.WaitGroup
	results := make([]*Image, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			results[i], errs[i] = s.Pull(context.Background(), ref, nil)
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Pull %d: %v", i, errs[i])
		}
		if results[i].RootFS != results[0].RootFS {
			t.Errorf("Pull %d: RootFS %s, want %s", i, results[i].RootFS, results[0].RootFS)
		}
	}
	if got := s.unpacks.Load(); got != 1 {
		t.Errorf("unpacked %d times, want 1", got)
	}
	layers, _ := img.Layers()
	for _, l := range layers {
		d, _ := l.Digest()
		if got := reg.blobGets(d.String()); got != 1 {
			t.Errorf("layer %s fetched %d times, want 1", d, got)
		}
	}
	checkAppRootFS(t, results[0])
	// Callers get their own copies.
	results[0].Config.Env[0] = "CHANGED=1"
	if results[1].Config.Env[0] == "CHANGED=1" {
		t.Errorf("callers share Config slices")
	}
}

// A caller giving up does not fail the others waiting for the same image,
// and its error is its context's.
func TestPullCancel(t *testing.T) {
	reg := newRegistry(t, "", "", "")
	ref := reg.push(t, "test/app:v1", appImage(t))
	s := newStore(t, "", WithInsecureRegistries(reg.host))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Pull(ctx, ref, nil)
	if !errors.Is(err, context.Canceled) || errors.Is(err, sandbox.ErrImage) {
		t.Fatalf("Pull with a cancelled context = %v, want context.Canceled and not ErrImage", err)
	}
	if _, err := s.Pull(context.Background(), ref, nil); err != nil {
		t.Fatalf("Pull after a cancelled one: %v", err)
	}
}

func TestPullSharedLayers(t *testing.T) {
	reg := newRegistry(t, "", "", "")
	base := layer(t, file{name: "etc/os-release", body: "ID=test\n"})
	one := newImage(t, v1.Config{Cmd: []string{"one"}}, "", base, layer(t, file{name: "one", body: "1"}))
	two := newImage(t, v1.Config{Cmd: []string{"two"}}, "", base, layer(t, file{name: "two", body: "2"}))
	ref1 := reg.push(t, "test/one:v1", one)
	ref2 := reg.push(t, "test/two:v1", two)
	s := newStore(t, "", WithInsecureRegistries(reg.host))
	if _, err := s.Pull(context.Background(), ref1, nil); err != nil {
		t.Fatal(err)
	}
	reg.reset()
	img2, err := s.Pull(context.Background(), ref2, nil)
	if err != nil {
		t.Fatal(err)
	}
	bd, _ := base.Digest()
	if n := reg.blobGets(bd.String()); n != 0 {
		t.Errorf("shared base layer fetched %d times for the second image, want 0", n)
	}
	if got := readFile(t, filepath.Join(img2.RootFS, "two")); got != "2" {
		t.Errorf("two = %q", got)
	}
	if _, err := os.Lstat(filepath.Join(img2.RootFS, "one")); err == nil {
		t.Errorf("the second image has the first image's file")
	}
}

func TestPullMultiPlatform(t *testing.T) {
	reg := newRegistry(t, "", "", "")
	amd := newImage(t, v1.Config{Cmd: []string{"amd64"}}, "amd64", layer(t, file{name: "arch", body: "amd64"}))
	arm := newImage(t, v1.Config{Cmd: []string{"arm64"}}, "arm64", layer(t, file{name: "arch", body: "arm64"}))
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
	)
	ref := reg.pushIndex(t, "test/multi:v1", idx)
	for _, tt := range []struct {
		platform string
		img      v1.Image
	}{{"linux/amd64", amd}, {"linux/arm64", arm}, {"linux/arm64/v8", arm}} {
		t.Run(tt.platform, func(t *testing.T) {
			s := newStore(t, "", WithInsecureRegistries(reg.host), WithPlatform(tt.platform))
			got, err := s.Pull(context.Background(), ref, nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := digestString(t, tt.img); got.Digest != want {
				t.Errorf("Digest = %s, want %s", got.Digest, want)
			}
			arch := strings.Split(tt.platform, "/")[1]
			if b := readFile(t, filepath.Join(got.RootFS, "arch")); b != arch {
				t.Errorf("arch file = %q, want %q", b, arch)
			}
		})
	}
	s := newStore(t, "", WithInsecureRegistries(reg.host), WithPlatform("linux/s390x"))
	_, err := s.Pull(context.Background(), ref, nil)
	if !errors.Is(err, sandbox.ErrImage) || !strings.Contains(err.Error(), "no image for platform linux/s390x") {
		t.Errorf("Pull for a missing platform = %v", err)
	}
}

func TestPullWrongPlatform(t *testing.T) {
	reg := newRegistry(t, "", "", "")
	ref := reg.push(t, "test/s390x:v1", newImage(t, v1.Config{}, "s390x", layer(t, file{name: "x", body: "x"})))
	s := newStore(t, "", WithInsecureRegistries(reg.host), WithPlatform("linux/amd64"))
	_, err := s.Pull(context.Background(), ref, nil)
	if !errors.Is(err, sandbox.ErrImage) || !strings.Contains(err.Error(), "linux/s390x, not linux/amd64") {
		t.Errorf("Pull = %v, want a platform error", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(s.root, "rootfs")); len(entries) != 0 {
		t.Errorf("rootfs has %d entries after a refused pull", len(entries))
	}
}

func TestPullOCILayout(t *testing.T) {
	img := appImage(t)
	other := newImage(t, v1.Config{Cmd: []string{"other"}}, "", layer(t, file{name: "other", body: "o"}))
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "v1"})); err != nil {
		t.Fatal(err)
	}
	single := filepath.Join(t.TempDir(), "single")
	sp, err := layout.Write(single, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(other, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "other"})); err != nil {
		t.Fatal(err)
	}
	want := digestString(t, img)

	s := newStore(t, "")
	for _, ref := range []string{
		"oci-layout:" + dir + ":v1",
		"oci-layout:" + dir + "@" + want,
		"oci-layout:" + single,
	} {
		got, err := s.Pull(context.Background(), ref, nil)
		if err != nil {
			t.Fatalf("Pull(%s): %v", ref, err)
		}
		if got.Digest != want {
			t.Errorf("Pull(%s).Digest = %s, want %s", ref, got.Digest, want)
		}
		checkAppRootFS(t, got)
		checkConfig(t, got.Config)
	}
	if n := s.unpacks.Load(); n != 1 {
		t.Errorf("unpacked %d times, want 1", n)
	}
	for ref, wantErr := range map[string]string{
		"oci-layout:" + dir + ":nope":                              "image oci-layout:" + dir + ":nope not found",
		"oci-layout:" + dir + "/missing:v1":                        "image oci-layout:" + dir + "/missing:v1 not found",
		"oci-layout:" + dir + "@sha256:" + strings.Repeat("0", 64): "image oci-layout:" + dir + "@sha256:" + strings.Repeat("0", 64) + " not found",
		"oci-layout:" + dir:                                        "holds 2 images",
	} {
		_, err := s.Pull(context.Background(), ref, nil)
		if !errors.Is(err, sandbox.ErrImage) || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("Pull(%s) = %v, want %q", ref, err, wantErr)
		}
	}
}

func TestPullDockerArchive(t *testing.T) {
	img := appImage(t)
	dir := t.TempDir()

	// Written by go-containerregistry (compressed layers).
	gz := filepath.Join(dir, "app.tar")
	tag, err := name.NewTag("registry.example:5000/team/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(gz, tag, img); err != nil {
		t.Fatal(err)
	}
	// Shaped like `docker save` output (uncompressed layers).
	saved := filepath.Join(dir, "saved.tar")
	writeDockerSave(t, saved, "app:latest", img)

	s := newStore(t, "")
	for _, ref := range []string{
		"docker-archive:" + gz,
		"docker-archive:" + gz + ":registry.example:5000/team/app:v1",
		"docker-archive:" + saved,
		"docker-archive:" + saved + ":app:latest",
		"docker-archive:" + saved + ":app",
	} {
		got, err := s.Pull(context.Background(), ref, nil)
		if err != nil {
			t.Fatalf("Pull(%s): %v", ref, err)
		}
		checkAppRootFS(t, got)
		checkConfig(t, got.Config)
	}
	for ref, wantErr := range map[string]string{
		"docker-archive:" + saved + ":app:v2":       "image docker-archive:" + saved + ":app:v2 not found",
		"docker-archive:" + dir + "/missing.tar":    "image docker-archive:" + dir + "/missing.tar not found",
		"docker-archive:" + dir + "/missing.tar:v1": "not found",
	} {
		_, err := s.Pull(context.Background(), ref, nil)
		if !errors.Is(err, sandbox.ErrImage) || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("Pull(%s) = %v, want %q", ref, err, wantErr)
		}
	}
}

// writeDockerSave writes img the way `docker save` does: manifest.json, the
// config and uncompressed layer tars.
func writeDockerSave(t *testing.T, path, repoTag string, img v1.Image) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	add := func(name string, b []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	cfgName, _ := img.ConfigName()
	rawCfg, _ := img.RawConfigFile()
	add(cfgName.Hex+".json", rawCfg)
	layers, _ := img.Layers()
	var names []string
	for _, l := range layers {
		d, _ := l.DiffID()
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		buf.ReadFrom(rc)
		rc.Close()
		n := d.Hex + "/layer.tar"
		add(n, buf.Bytes())
		names = append(names, n)
	}
	add("manifest.json", mustJSON(t, []map[string]any{{
		"Config": cfgName.Hex + ".json", "RepoTags": []string{repoTag}, "Layers": names,
	}}))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestHostileImageThroughPull(t *testing.T) {
	reg := newRegistry(t, "", "", "")
	parent := t.TempDir()
	good := layer(t, file{name: "ok", body: "fine"})
	bad := layer(t, file{name: "../../../../../../" + parent + "/escaped", body: "pwned"})
	ref := reg.push(t, "test/hostile:v1", newImage(t, v1.Config{}, "", good, bad))
	s := newStore(t, filepath.Join(parent, "images"), WithInsecureRegistries(reg.host))
	_, err := s.Pull(context.Background(), ref, nil)
	if !errors.Is(err, sandbox.ErrImage) || !strings.Contains(err.Error(), "cannot be unpacked: layer 2") {
		t.Fatalf("Pull = %v, want an unpack error in layer 2", err)
	}
	if !errors.Is(err, errUnsafe) {
		t.Errorf("Pull error does not wrap the cause: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(parent, "escaped")); err == nil {
		t.Errorf("the hostile layer wrote outside the root")
	}
	for _, d := range []string{"rootfs", "tmp"} {
		if entries, _ := os.ReadDir(filepath.Join(s.root, d)); len(entries) != 0 {
			t.Errorf("%s has %d entries after a failed unpack", d, len(entries))
		}
	}
}

func TestPullLimits(t *testing.T) {
	reg := newRegistry(t, "", "", "")
	big := layer(t, file{name: "big", body: strings.Repeat("x", 64<<10)})
	ref := reg.push(t, "test/big:v1", newImage(t, v1.Config{}, "", big))
	s := newStore(t, "", WithInsecureRegistries(reg.host), WithMaxSize(16<<10))
	_, err := s.Pull(context.Background(), ref, nil)
	if !errors.Is(err, sandbox.ErrImage) || !strings.Contains(err.Error(), "larger than 16384 bytes") {
		t.Errorf("Pull of a too large image = %v", err)
	}
	var files []file
	for i := range 50 {
		files = append(files, file{name: "f" + strings.Repeat("x", i)})
	}
	ref = reg.push(t, "test/many:v1", newImage(t, v1.Config{}, "", layer(t, files...)))
	s = newStore(t, "", WithInsecureRegistries(reg.host), WithMaxEntries(20))
	_, err = s.Pull(context.Background(), ref, nil)
	if !errors.Is(err, sandbox.ErrImage) || !strings.Contains(err.Error(), "more than 20 entries") {
		t.Errorf("Pull of an image with too many entries = %v", err)
	}
}

// A crash leaves at most temporary files, which the next Store removes and
// never uses.
func TestCrashSafety(t *testing.T) {
	reg := newRegistry(t, "", "", "")
	img := appImage(t)
	ref := reg.push(t, "test/app:v1", img)
	root := filepath.Join(t.TempDir(), "images")
	newStore(t, root)
	d, _ := img.Digest()

	// What an interrupted unpack and download leave behind.
	stale := filepath.Join(root, "tmp", "unpack-"+d.Hex[:12]+"-123")
	if err := os.MkdirAll(filepath.Join(stale, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stale, "bin", "server"), []byte("half"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stale, "planted"), []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "tmp", "blob-"+d.Hex[:12]+"-9"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}

	s := newStore(t, root, WithInsecureRegistries(reg.host))
	if entries, err := os.ReadDir(filepath.Join(root, "tmp")); err != nil || len(entries) != 0 {
		t.Fatalf("tmp after NewStore: %d entries, %v; want none", len(entries), err)
	}
	got, err := s.Pull(context.Background(), ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(got.RootFS, "planted")); err == nil {
		t.Errorf("the unpacked image holds a file from the stale temporary directory")
	}
	checkAppRootFS(t, got)

	// A failing unpack (here: cancelled) leaves nothing in place.
	s2 := newStore(t, filepath.Join(t.TempDir(), "images"), WithInsecureRegistries(reg.host))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r, _ := s2.parse(ref, nil)
	res, err := r.resolve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.fill(ctx, res); err == nil {
		t.Fatalf("fill with a cancelled context succeeded")
	}
	for _, dir := range []string{"rootfs", "tmp"} {
		if entries, _ := os.ReadDir(filepath.Join(s2.root, dir)); len(entries) != 0 {
			t.Errorf("%s holds %d entries after a failed pull", dir, len(entries))
		}
	}
}

func TestRemove(t *testing.T) {
	reg := newRegistry(t, "", "", "")
	base := layer(t, file{name: "base", body: "b"})
	one := newImage(t, v1.Config{Cmd: []string{"one"}}, "", base, layer(t, file{name: "one", body: "1"}))
	two := newImage(t, v1.Config{Cmd: []string{"two"}}, "", base, layer(t, file{name: "two", body: "2"}))
	ref1 := reg.push(t, "test/one:v1", one)
	ref2 := reg.push(t, "test/two:v1", two)
	s := newStore(t, "", WithInsecureRegistries(reg.host))
	ctx := context.Background()
	img1, err := s.Pull(ctx, ref1, nil)
	if err != nil {
		t.Fatal(err)
	}
	img2, err := s.Pull(ctx, ref2, nil)
	if err != nil {
		t.Fatal(err)
	}
	blobs := func() int {
		hs, err := s.listBlobs()
		if err != nil {
			t.Fatal(err)
		}
		return len(hs)
	}
	if n := blobs(); n != 7 { // shared base + 2 × (manifest, config, own layer)
		t.Fatalf("%d blobs cached, want 7", n)
	}
	if err := s.Remove(ctx, img1.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(img1.RootFS); err == nil {
		t.Errorf("rootfs of the removed image is still there")
	}
	if n := blobs(); n != 4 {
		t.Errorf("%d blobs left, want 4 (the other image's and the shared base)", n)
	}
	bd, _ := base.Digest()
	if !s.hasBlob(bd, mustSize(t, base)) {
		t.Errorf("the shared base layer was removed")
	}
	if got := readFile(t, filepath.Join(img2.RootFS, "two")); got != "2" {
		t.Errorf("the other image was damaged")
	}
	if err := s.Remove(ctx, img1.Digest); err != nil {
		t.Errorf("removing twice: %v", err)
	}
	if err := s.Remove(ctx, "sha256:../../etc"); err == nil {
		t.Errorf("Remove accepted an invalid digest")
	}
	if err := s.Remove(ctx, img2.Digest); err != nil {
		t.Fatal(err)
	}
	if n := blobs(); n != 0 {
		t.Errorf("%d blobs left after removing every image", n)
	}
	reg.reset()
	again, err := s.Pull(ctx, ref1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(again.RootFS, "one")); got != "1" {
		t.Errorf("re-pulled image: one = %q", got)
	}
	if reg.count("GET", "/blobs/") != 3 {
		t.Errorf("re-pull fetched %d blobs, want 3", reg.count("GET", "/blobs/"))
	}
}

func mustSize(t *testing.T, l v1.Layer) int64 {
	t.Helper()
	n, err := l.Size()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestOptions(t *testing.T) {
	dir := t.TempDir()
	for name, opt := range map[string]Option{
		"nil logger":       WithLogger(nil),
		"empty host":       WithInsecureRegistries(""),
		"host with path":   WithInsecureRegistries("example.com/x"),
		"bad platform":     WithPlatform("linux"),
		"zero size":        WithMaxSize(0),
		"negative entries": WithMaxEntries(-1),
	} {
		if _, err := NewStore(dir, opt); err == nil {
			t.Errorf("NewStore with %s: no error", name)
		}
	}
	for _, root := range []string{"", filepath.Join(dir, "a:b"), filepath.Join(dir, "a,b")} {
		if _, err := NewStore(root); err == nil {
			t.Errorf("NewStore(%q): no error", root)
		}
	}
	s := newStore(t, filepath.Join(dir, "images"))
	if s.opts.platform.OS != "linux" || s.opts.platform.Architecture != runtime.GOARCH {
		t.Errorf("default platform = %v", s.opts.platform)
	}
	fi, err := os.Stat(filepath.Join(dir, "images", "rootfs"))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("rootfs directory mode = %v, %v; want 0700", fi.Mode(), err)
	}
}

// Pulls of several images and removals, all at once: no deadlock, no race,
// and every pull that succeeds returns a whole image.
func TestConcurrentPullRemove(t *testing.T) {
	reg := newRegistry(t, "", "", "")
	base := layer(t, file{name: "base", body: "b"})
	refs := map[string]string{}
	for _, n := range []string{"one", "two", "three"} {
		img := newImage(t, v1.Config{Cmd: []string{n}}, "", base, layer(t, file{name: n, body: n}))
		refs[n] = reg.push(t, "test/"+n+":v1", img)
	}
	s := newStore(t, "", WithInsecureRegistries(reg.host))
	ctx := context.Background()
	var wg sync.WaitGroup
	for n, ref := range refs {
		for range 3 {
			wg.Go(func() {
				for range 5 {
					img, err := s.Pull(ctx, ref, nil)
					if err != nil {
						t.Errorf("Pull(%s): %v", ref, err)
						return
					}
					// The image may be removed right after Pull returns;
					// if it is there, it is whole.
					if b, err := os.ReadFile(filepath.Join(img.RootFS, n)); err == nil && string(b) != n {
						t.Errorf("%s: file %s = %q", ref, n, b)
					}
					if n == "one" {
						if err := s.Remove(ctx, img.Digest); err != nil {
							t.Errorf("Remove: %v", err)
						}
					}
				}
			})
		}
	}
	wg.Wait()
	for n, ref := range refs {
		img, err := s.Pull(ctx, ref, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, filepath.Join(img.RootFS, n)); got != n {
			t.Errorf("%s: %q", n, got)
		}
		if got := readFile(t, filepath.Join(img.RootFS, "base")); got != "b" {
			t.Errorf("%s: base = %q", n, got)
		}
	}
	if entries, _ := os.ReadDir(s.tmpDir()); len(entries) != 0 {
		t.Errorf("tmp holds %d entries", len(entries))
	}
}

// TestPullIDShift: with an id shift, files belong to the shifted host ids,
// and the shifted rootfs is kept apart from an unshifted one of the same
// image in the same store.
func TestPullIDShift(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("ownership needs root")
	}
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(appImage(t)); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	const shift = 1 << 30
	owner := func(img *Image, name string) (uint32, uint32) {
		t.Helper()
		fi, err := os.Lstat(filepath.Join(img.RootFS, name))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		return st.Uid, st.Gid
	}
	shifted, err := newStore(t, root, WithIDShift(shift)).Pull(t.Context(), "oci-layout:"+dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := newStore(t, root).Pull(t.Context(), "oci-layout:"+dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if shifted.RootFS == plain.RootFS {
		t.Fatalf("shifted and plain images share %s", plain.RootFS)
	}
	for _, tt := range []struct {
		img      *Image
		name     string
		uid, gid uint32
	}{
		{shifted, "srv", shift + 1000, shift + 1000},
		{shifted, "srv/index.html", shift + 1000, shift + 1000},
		{shifted, "bin/server", shift, shift},
		{shifted, "bin/sh", shift, shift},
		{plain, "srv", 1000, 1000},
		{plain, "bin/server", 0, 0},
	} {
		if uid, gid := owner(tt.img, tt.name); uid != tt.uid || gid != tt.gid {
			t.Errorf("%s in %s: owner %d:%d, want %d:%d", tt.name, filepath.Base(tt.img.RootFS), uid, gid, tt.uid, tt.gid)
		}
	}
}
