package oci

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tidepool-dev/tidepool/internal/sandbox"
	"github.com/tidepool-dev/tidepool/internal/sandbox/sandboxtest"
)

// fakeImages is an ImageStore with one tiny image: dash, sleep and the
// libraries they need, copied from the host, owned as the runtime's id
// shift requires.
type fakeImages struct {
	dir   string
	shift int // host uid of image uid 0
	mu    sync.Mutex
	pulls []string
	img   *Image
}

func (f *fakeImages) Pull(_ context.Context, ref string, _ *sandbox.RegistryAuth) (*Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pulls = append(f.pulls, ref)
	if ref == "example.test/evil:1" {
		return f.evil()
	}
	if ref != "example.test/tiny:1" && ref != "example.test/tiny-user:1" {
		return nil, fmt.Errorf("pull %s: %w", ref, sandbox.ErrImage)
	}
	if f.img == nil {
		if err := f.build(); err != nil {
			return nil, err
		}
	}
	if ref == "example.test/tiny-user:1" {
		img := *f.img
		img.Config.User = "app"
		return &img, nil
	}
	return f.img, nil
}

func (f *fakeImages) build() error {
	root := filepath.Join(f.dir, "rootfs")
	for _, bin := range []string{"/usr/bin/dash", "/usr/bin/sleep", "/usr/bin/cat"} {
		if err := copyWithLibs(bin, root); err != nil {
			return err
		}
	}
	if err := os.Symlink("/usr/bin/dash", filepath.Join(root, "usr/bin/sh")); err != nil {
		return err
	}
	if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\napp:x:1001:1002::/app:/bin/sh\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "etc/marker"), []byte("from the image\n"), 0o644); err != nil {
		return err
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, f.shift, f.shift)
	})
	if err != nil {
		return err
	}
	if err := os.Chmod(f.dir, 0o755); err != nil {
		return err
	}
	f.img = &Image{RootFS: root, Config: ImageConfig{
		Entrypoint: []string{"/bin/sh", "-c"},
		Cmd:        []string{"echo started > /tmp/started; exec sleep 1000"},
		Env:        []string{"PATH=/usr/bin:/bin", "IMAGE_VAR=from-image"},
		WorkingDir: "/app",
	}}
	return nil
}

// evil is an image whose /etc and working directory are symlinks to host
// paths (under the test's directory), hoping that the runtime writes its
// /etc/hosts, or chowns the working directory, through them.
func (f *fakeImages) evil() (*Image, error) {
	root := filepath.Join(f.dir, "evil")
	host := filepath.Join(f.dir, "host")
	for _, d := range []string{root, host} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(host, "hosts"), []byte("HOST\n"), 0o644); err != nil {
		return nil, err
	}
	if err := os.Symlink(host, filepath.Join(root, "etc")); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	if err := os.Symlink(host, filepath.Join(root, "app")); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	return &Image{RootFS: root, Config: ImageConfig{Cmd: []string{"/nothing"}, WorkingDir: "/app/sub"}}, nil
}

// copyWithLibs copies a host binary and the shared libraries ldd names
// into root, at the same paths.
func copyWithLibs(bin, root string) error {
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		return fmt.Errorf("ldd %s: %w", bin, err)
	}
	files := []string{bin}
	for _, line := range strings.Split(string(out), "\n") {
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "/") {
				files = append(files, f)
			}
		}
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		dst := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, b, 0o755); err != nil {
			return err
		}
	}
	return nil
}

func TestCustomImage(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, flavour string) {
		shift := DefaultIDBase
		if flavour == flavourRunsc {
			shift = 0
		}
		dir, err := os.MkdirTemp("", "tpimg")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		images := &fakeImages{dir: dir, shift: shift}
		rt := newTestRuntime(t, flavour, WithImageStore(images))
		warm := sandboxtest.BaseSpec(sandboxtest.NewID("warm"))
		mustCreate(t, rt, warm)
		mustDestroy(t, rt, warm.ID)
		before := snapshot(t, rt.root)

		spec := sandboxtest.BaseSpec(sandboxtest.NewID("custom"))
		spec.Kind = sandbox.KindCustom
		spec.Image = "example.test/tiny:1"
		spec.Env = map[string]string{"SPEC_VAR": "from-spec"}
		sb := mustCreate(t, rt, spec)

		res := execIn(t, sb, 10*time.Second, "sh", "-c",
			`i=0; while [ ! -e /tmp/started ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; cat /tmp/started /etc/marker /etc/hostname; echo "$IMAGE_VAR $SPEC_VAR"; echo written > /written && cat /written; test -e /usr/bin/python3 && echo host-usr || echo image-usr`)
		want := "started\nfrom the image\nsandbox\nfrom-image from-spec\nwritten\n"
		if res.ExitCode != 0 || !strings.HasPrefix(res.Stdout, want) {
			t.Errorf("in the custom sandbox: %+v\nwant stdout starting %q", res, want)
		}
		// The image's /usr, not the host's.
		if !strings.HasSuffix(res.Stdout, "image-usr\n") {
			t.Errorf("the sandbox does not see the image's /usr: %q", res.Stdout)
		}
		// Writes land in the sandbox's layer on its own disk; the image
		// is untouched.
		upper := filepath.Join(rt.dir(spec.ID), "disk", "upper")
		if b, err := os.ReadFile(filepath.Join(upper, "written")); err != nil || string(b) != "written\n" {
			t.Errorf("upper layer: %q, %v", b, err)
		}
		if _, err := os.Stat(filepath.Join(images.img.RootFS, "written")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the write reached the image: %v", err)
		}
		mustDestroy(t, rt, spec.ID)
		if d := diffSnapshots(before, snapshot(t, rt.root)); d != "" {
			t.Errorf("left behind:\n%s", d)
		}

		// An image that names its user: the agent and the container run
		// as it, and /mnt/data and the working directory are its.
		user := sandboxtest.BaseSpec(sandboxtest.NewID("user"))
		user.Kind, user.Image = sandbox.KindCustom, "example.test/tiny-user:1"
		sbu := mustCreate(t, rt, user)
		res = execIn(t, sbu, 10*time.Second, "sh", "-c",
			`cat /proc/self/status | while read k v rest; do [ "$k" = Uid: ] && echo uid=$v; done; echo x > /mnt/data/f && echo data=ok; echo x > /app/f && echo app=ok; i=0; while [ ! -e /tmp/started ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; cat /tmp/started`)
		if res.ExitCode != 0 || !strings.Contains(res.Stdout, "uid=1001") || !strings.Contains(res.Stdout, "data=ok") || !strings.Contains(res.Stdout, "app=ok") || !strings.Contains(res.Stdout, "started") {
			t.Errorf("image with a user: %+v", res)
		}
		mustDestroy(t, rt, user.ID)

		// An image's symlinks cannot turn the runtime's writes into writes
		// on the host.
		evil := sandboxtest.BaseSpec(sandboxtest.NewID("evil"))
		evil.Kind, evil.Image = sandbox.KindCustom, "example.test/evil:1"
		if sb, err := rt.Create(context.Background(), evil); err == nil {
			mustDestroy(t, rt, sb.ID)
		} else {
			t.Logf("evil image: %v", err)
		}
		host := filepath.Join(dir, "host")
		if b, err := os.ReadFile(filepath.Join(host, "hosts")); err != nil || string(b) != "HOST\n" {
			t.Errorf("host file written through the image's symlink: %q, %v", b, err)
		}
		if entries, _ := os.ReadDir(host); len(entries) != 1 {
			t.Errorf("host directory changed through the image's symlink: %v", entries)
		}
		if st, err := os.Stat(host); err != nil || st.Sys().(*syscall.Stat_t).Uid != 0 {
			t.Errorf("host directory chowned through the image's symlink: %v", err)
		}

		// A bad reference fails with ErrImage, leaving nothing.
		bad := sandboxtest.BaseSpec(sandboxtest.NewID("badimg"))
		bad.Kind, bad.Image = sandbox.KindCustom, "example.test/missing:1"
		if _, err := rt.Create(context.Background(), bad); !errors.Is(err, sandbox.ErrImage) {
			t.Errorf("Create with a missing image: %v, want ErrImage", err)
		}
		if d := diffSnapshots(before, snapshot(t, rt.root)); d != "" {
			t.Errorf("failed pull left behind:\n%s", d)
		}
	})
}

// TestBuiltinKindImage: a built-in kind (Shell) given an image by server
// configuration runs in the image's root instead of the host's.
func TestBuiltinKindImage(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, flavour string) {
		shift := DefaultIDBase
		if flavour == flavourRunsc {
			shift = 0
		}
		dir, err := os.MkdirTemp("", "tpbimg")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		rt := newTestRuntime(t, flavour, WithImageStore(&fakeImages{dir: dir, shift: shift}))
		spec := sandboxtest.BaseSpec(sandboxtest.NewID("bimg"))
		spec.Kind = sandbox.KindShell
		spec.Image = "example.test/tiny:1"
		sb := mustCreate(t, rt, spec)
		defer mustDestroy(t, rt, spec.ID)
		res := execIn(t, sb, 10*time.Second, "sh", "-c", `cat /etc/marker; test -e /usr/bin/python3 && echo host-usr || echo image-usr`)
		if res.ExitCode != 0 || res.Stdout != "from the image\nimage-usr\n" {
			t.Errorf("in a Shell sandbox with an image: %+v", res)
		}
	})
}
