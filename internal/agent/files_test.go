package agent_test

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/tidepool-dev/tidepool/internal/agent"
	"github.com/tidepool-dev/tidepool/internal/agent/client"
	"github.com/tidepool-dev/tidepool/internal/agent/wire"
)

func TestFiles(t *testing.T) {
	a := startAgent(t, nil)
	c, root := a.Client, a.cfg.FilesRoot
	ctx := t.Context()
	write := func(path, body string) (*wire.FileInfo, error) {
		return c.WriteFile(ctx, path, strings.NewReader(body), int64(len(body)))
	}
	read := func(path string) (string, *client.FileReader, error) {
		fr, err := c.ReadFile(ctx, path)
		if err != nil {
			return "", nil, err
		}
		defer fr.Close()
		b, err := io.ReadAll(fr)
		return string(b), fr, err
	}

	t.Run("write creates parents", func(t *testing.T) {
		fi, err := write("a/b/c.txt", "hello")
		if err != nil {
			t.Fatal(err)
		}
		if fi.Path != "a/b/c.txt" || fi.Name != "c.txt" || fi.Type != wire.TypeFile || fi.Size != 5 || fi.ContentType != "text/plain; charset=utf-8" {
			t.Errorf("FileInfo %+v", fi)
		}
		if b, _ := os.ReadFile(filepath.Join(root, "a/b/c.txt")); string(b) != "hello" {
			t.Errorf("on disk: %q", b)
		}
	})
	t.Run("overwrite", func(t *testing.T) {
		if _, err := write("a/b/c.txt", "bye"); err != nil {
			t.Fatal(err)
		}
		got, fr, err := read("a/b/c.txt")
		if err != nil || got != "bye" || fr.Size != 3 || fr.ContentType != "text/plain; charset=utf-8" || fr.ModTime.IsZero() {
			t.Errorf("read %q %+v %v", got, fr, err)
		}
	})
	t.Run("absolute path under root", func(t *testing.T) {
		got, _, err := read(filepath.Join(root, "a/b/c.txt"))
		if err != nil || got != "bye" {
			t.Errorf("read %q %v", got, err)
		}
		fi, err := c.Stat(ctx, root)
		if err != nil || fi.Type != wire.TypeDirectory || fi.Path != "." {
			t.Errorf("Stat(root) = %+v %v", fi, err)
		}
	})
	t.Run("empty file", func(t *testing.T) {
		if _, err := write("empty", ""); err != nil {
			t.Fatal(err)
		}
		got, fr, err := read("empty")
		if err != nil || got != "" || fr.Size != 0 {
			t.Errorf("read %q %+v %v", got, fr, err)
		}
	})
	t.Run("mkdir", func(t *testing.T) {
		fi, err := c.Mkdir(ctx, "d/e")
		if err != nil || fi.Type != wire.TypeDirectory || fi.Path != "d/e" || fi.Size != 0 {
			t.Errorf("Mkdir = %+v %v", fi, err)
		}
		if _, err := c.Mkdir(ctx, "d/e"); err != nil {
			t.Errorf("Mkdir again: %v", err)
		}
		_, err = c.Mkdir(ctx, "a/b/c.txt")
		wantCode(t, "Mkdir over a file", err, 409, wire.CodeAlreadyExists)
		_, err = c.Mkdir(ctx, "a/b/c.txt/x")
		wantCode(t, "Mkdir under a file", err, 400, wire.CodeNotADirectory)
	})
	t.Run("list", func(t *testing.T) {
		list, err := c.ListFiles(ctx, "", false)
		if err != nil {
			t.Fatal(err)
		}
		if got := paths(list); !slices.Equal(got, []string{"a", "d", "empty"}) {
			t.Errorf("list = %q", got)
		}
		list, err = c.ListFiles(ctx, "", true)
		if err != nil {
			t.Fatal(err)
		}
		if got := paths(list); !slices.Equal(got, []string{"a", "a/b", "a/b/c.txt", "d", "d/e", "empty"}) {
			t.Errorf("recursive list = %q", got)
		}
		list, err = c.ListFiles(ctx, "a", true)
		if err != nil {
			t.Fatal(err)
		}
		if got := paths(list); !slices.Equal(got, []string{"a/b", "a/b/c.txt"}) {
			t.Errorf("list a = %q", got)
		}
		if list[1].Size != 3 || list[0].Type != wire.TypeDirectory || list[1].Type != wire.TypeFile {
			t.Errorf("entries %+v", list)
		}
		list, err = c.ListFiles(ctx, "d/e", false)
		if err != nil || list == nil || len(list) != 0 {
			t.Errorf("list of an empty dir = %#v %v, want []", list, err)
		}
	})
	t.Run("errors", func(t *testing.T) {
		_, err := c.Stat(ctx, "nope")
		wantCode(t, "Stat missing", err, 404, wire.CodeFileNotFound)
		_, _, err = read("nope")
		wantCode(t, "ReadFile missing", err, 404, wire.CodeFileNotFound)
		_, err = c.ListFiles(ctx, "nope", false)
		wantCode(t, "ListFiles missing", err, 404, wire.CodeFileNotFound)
		err = c.DeleteFile(ctx, "nope", false)
		wantCode(t, "DeleteFile missing", err, 404, wire.CodeFileNotFound)
		_, _, err = read("a")
		wantCode(t, "ReadFile dir", err, 400, wire.CodeIsADirectory)
		_, err = c.ListFiles(ctx, "empty", false)
		wantCode(t, "ListFiles file", err, 400, wire.CodeNotADirectory)
		_, err = write("a", "x")
		wantCode(t, "WriteFile over dir", err, 400, wire.CodeIsADirectory)
		_, err = write("", "x")
		wantCode(t, "WriteFile root", err, 400, wire.CodeIsADirectory)
		_, err = write("empty/x", "x")
		wantCode(t, "WriteFile under a file", err, 400, wire.CodeNotADirectory)
		err = c.DeleteFile(ctx, "", true)
		wantCode(t, "DeleteFile root", err, 400, wire.CodeInvalidPath)
		err = c.DeleteFile(ctx, "a", false)
		wantCode(t, "DeleteFile non-empty dir", err, 409, wire.CodeDirectoryNotEmpty)
	})
	t.Run("delete", func(t *testing.T) {
		if err := c.DeleteFile(ctx, "empty", false); err != nil {
			t.Fatal(err)
		}
		if err := c.DeleteFile(ctx, "d/e", false); err != nil {
			t.Fatal(err)
		}
		if err := c.DeleteFile(ctx, "a", true); err != nil {
			t.Fatal(err)
		}
		list, err := c.ListFiles(ctx, "", true)
		if err != nil || !slices.Equal(paths(list), []string{"d"}) {
			t.Errorf("after deletes: %q %v", paths(list), err)
		}
	})
	t.Run("symlink inside", func(t *testing.T) {
		if _, err := write("real/f.json", `{"a":1}`); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("real", filepath.Join(root, "link")); err != nil {
			t.Fatal(err)
		}
		got, fr, err := read("link/f.json")
		if err != nil || got != `{"a":1}` || fr.ContentType != "application/json" {
			t.Errorf("read through link: %q %+v %v", got, fr, err)
		}
		list, _ := c.ListFiles(ctx, "", true)
		if got := paths(list); !slices.Equal(got, []string{"d", "link", "real", "real/f.json"}) {
			t.Errorf("list = %q (links are listed, not followed)", got)
		}
		if err := c.DeleteFile(ctx, "link", false); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(root, "real/f.json")); err != nil {
			t.Errorf("deleting a link removed its target: %v", err)
		}
	})
	t.Run("content type sniffed", func(t *testing.T) {
		png := "\x89PNG\r\n\x1a\n" + strings.Repeat("\x00", 32)
		if _, err := write("image.unknownext", png); err != nil {
			t.Fatal(err)
		}
		_, fr, err := read("image.unknownext")
		if err != nil || fr.ContentType != "image/png" {
			t.Errorf("ContentType = %q %v, want image/png", fr.ContentType, err)
		}
	})
	t.Run("range", func(t *testing.T) {
		if _, err := write("digits", "0123456789"); err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("GET", "http://agent/files/content?path=digits", nil)
		req.Header.Set("Range", "bytes=2-4")
		resp := rawRequest(t, c, req)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusPartialContent || string(b) != "234" {
			t.Errorf("got %d %q, want 206 \"234\"", resp.StatusCode, b)
		}
	})
	t.Run("fifo", func(t *testing.T) {
		if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
			t.Skip("mkfifo:", err)
		}
		_, _, err := read("fifo")
		wantCode(t, "ReadFile fifo", err, 400, wire.CodeInvalidPath)
		list, _ := c.ListFiles(ctx, "", false)
		if slices.Contains(paths(list), "fifo") {
			t.Errorf("fifo listed")
		}
	})
	t.Run("no temp files left", func(t *testing.T) {
		list, _ := c.ListFiles(ctx, "", true)
		for _, fi := range list {
			if strings.Contains(fi.Name, ".tidepool-upload-") {
				t.Errorf("temp file left: %s", fi.Path)
			}
		}
	})
}

func paths(list []wire.FileInfo) []string {
	var p []string
	for _, fi := range list {
		p = append(p, fi.Path)
	}
	return p
}

// TestFilesHostilePaths: nothing outside the root can be read, listed,
// written, created or deleted, whatever the path or the links inside.
func TestFilesHostilePaths(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "data")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{root, outside, filepath.Join(root, "sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "ok"), []byte("ok"), 0o644); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"up":         "../outside",              // relative, escapes
		"upfile":     "../outside/secret",       // relative, escapes
		"abs":        outside,                   // absolute, outside
		"absinside":  filepath.Join(root, "ok"), // absolute: os.Root refuses these too
		"etc":        "/etc",
		"sub/deep":   "../../outside",
		"loop":       "loop",
		"chain":      "sub/deep",
		"rootparent": "..",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	a := startAgent(t, func(c *agent.Config) { c.FilesRoot = root })
	c, ctx := a.Client, t.Context()

	hostile := []string{
		"..", "../", "../outside/secret", "a/../../outside/secret", "sub/../../outside",
		"/", "/etc/passwd", filepath.Join(root, "..", "outside", "secret"), root + "x", root + "/../outside",
		"./../outside", "sub/./../..", "nul\x00byte",
		"up", "up/secret", "upfile", "abs", "abs/secret", "absinside", "etc", "etc/passwd",
		"sub/deep", "sub/deep/secret", "chain/secret", "loop", "loop/x", "rootparent", "rootparent/outside/secret",
	}
	for _, p := range hostile {
		t.Run(p, func(t *testing.T) {
			_, err := c.Stat(ctx, p)
			wantCode(t, "Stat", err, 400, wire.CodeInvalidPath)
			_, err = c.ReadFile(ctx, p)
			wantCode(t, "ReadFile", err, 400, wire.CodeInvalidPath)
			_, err = c.ListFiles(ctx, p, true)
			wantCode(t, "ListFiles", err, 400, wire.CodeInvalidPath)
			_, err = c.Mkdir(ctx, p+"/newdir")
			wantCode(t, "Mkdir", err, 400, wire.CodeInvalidPath)
			_, err = c.WriteFile(ctx, p+"/newfile", strings.NewReader("x"), 1)
			wantCode(t, "WriteFile", err, 400, wire.CodeInvalidPath)
		})
	}
	// Writing or deleting a link replaces or removes the link itself.
	for _, p := range []string{"upfile", "abs"} {
		if err := c.DeleteFile(ctx, p, true); err != nil {
			t.Errorf("DeleteFile(%q): %v", p, err)
		}
	}
	if _, err := c.WriteFile(ctx, "up", strings.NewReader("replaced"), 8); err != nil {
		t.Errorf("WriteFile over a link: %v", err)
	}
	for _, p := range []string{"../outside", "/etc/x", "sub/deep/secret", "rootparent/outside"} {
		err := c.DeleteFile(ctx, p, true)
		wantCode(t, "DeleteFile "+p, err, 400, wire.CodeInvalidPath)
	}

	// Outside is as it was.
	ents, _ := os.ReadDir(outside)
	if len(ents) != 1 || ents[0].Name() != "secret" {
		t.Errorf("outside now holds %v", ents)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "secret" {
		t.Errorf("secret now %q", b)
	}
	ents, _ = os.ReadDir(base)
	if len(ents) != 2 {
		t.Errorf("the root's parent now holds %v", ents)
	}
	// Hostile links are left out of listings.
	list, err := c.ListFiles(ctx, "", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, fi := range list {
		if _, ok := links[fi.Path]; ok && fi.Path != "up" {
			t.Errorf("listed hostile link %q", fi.Path)
		}
	}
}

// TestFilesLarge streams 64 MiB each way, with a known length and chunked,
// and checks the bytes.
func TestFilesLarge(t *testing.T) {
	a := startAgent(t, nil)
	const size = 64 << 20
	for _, known := range []bool{true, false} {
		name := map[bool]string{true: "content-length", false: "chunked"}[known]
		t.Run(name, func(t *testing.T) {
			src := io.LimitReader(rand.NewChaCha8([32]byte{byte(len(name))}), size)
			h := sha256.New()
			n := int64(-1)
			if known {
				n = size
			}
			fi, err := a.WriteFile(t.Context(), name, io.TeeReader(src, h), n)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size != size {
				t.Errorf("Size = %d, want %d", fi.Size, size)
			}
			fr, err := a.ReadFile(t.Context(), name)
			if err != nil {
				t.Fatal(err)
			}
			defer fr.Close()
			h2 := sha256.New()
			got, err := io.Copy(h2, fr)
			if err != nil || got != size || fr.Size != size {
				t.Fatalf("read %d bytes (Content-Length %d): %v", got, fr.Size, err)
			}
			if !bytes.Equal(h.Sum(nil), h2.Sum(nil)) {
				t.Error("content differs")
			}
		})
	}
}

func TestFilesUploadCap(t *testing.T) {
	const max = 1 << 20
	a := startAgent(t, func(c *agent.Config) { c.MaxUploadBytes = max })
	body := func(n int) io.Reader { return bytes.NewReader(make([]byte, n)) }
	if _, err := a.WriteFile(t.Context(), "fits", body(max), max); err != nil {
		t.Errorf("WriteFile of exactly the cap: %v", err)
	}
	_, err := a.WriteFile(t.Context(), "big", body(max+1), max+1)
	wantCode(t, "WriteFile with Content-Length over the cap", err, 413, wire.CodePayloadTooLarge)
	_, err = a.WriteFile(t.Context(), "big", struct{ io.Reader }{body(2 * max)}, -1)
	wantCode(t, "WriteFile chunked over the cap", err, 413, wire.CodePayloadTooLarge)
	ents, _ := os.ReadDir(a.cfg.FilesRoot)
	if len(ents) != 1 || ents[0].Name() != "fits" {
		t.Errorf("root holds %v, want only fits", ents)
	}
}
