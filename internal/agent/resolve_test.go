package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// hostileRoot makes a file root with an outside neighbour and symbolic
// links that try to reach it.
func hostileRoot(tb testing.TB) (f *fileRoot, realRoot string) {
	base := tb.TempDir()
	root := filepath.Join(base, "data")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(root, "sub", "deeper"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(outside, "secret"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(root, "sub", "file"), []byte("x"), 0o644)
	for name, target := range map[string]string{
		"up": "..", "out": "../outside", "abs": outside, "etc": "/etc", "in": "sub",
		"sub/back": "..", "sub/deeper/esc": "../../../outside", "sub/deeper/ok": "../file", "loop": "loop",
	} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			tb.Fatal(err)
		}
	}
	f, err := openFileRoot(root)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.root.Close() })
	realRoot, err = filepath.EvalSymlinks(root)
	if err != nil {
		tb.Fatal(err)
	}
	return f, realRoot
}

func within(root, p string) bool {
	return p == root || strings.HasPrefix(p, root+string(filepath.Separator))
}

// FuzzResolvePath: no input resolves outside the root, lexically or
// through the links inside it, and resolving never changes what a path
// names.
func FuzzResolvePath(f *testing.F) {
	fr, realRoot := hostileRoot(f)
	for _, s := range []string{
		"", ".", "..", "/", "a", "a/b", "./a", "a/../b", "a/../../b", "../outside/secret", "/etc/passwd",
		fr.dir, fr.dir + "/", fr.dir + "/a", fr.dir + "x", fr.dir + "/../outside", "//" + fr.dir, "up", "up/outside/secret",
		"out/secret", "abs/secret", "etc/passwd", "in/file", "in/back/out", "sub/back/up", "sub/deeper/esc/secret",
		"sub/deeper/ok", "loop", "a\x00b", "sub/./deeper/../..", ".../x", "~", strings.Repeat("../", 50),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		rel, err := fr.resolve(p)
		if err != nil {
			return
		}
		if rel != "." && !filepath.IsLocal(rel) {
			t.Fatalf("resolve(%q) = %q: not local", p, rel)
		}
		joined := filepath.Join(fr.dir, rel)
		if !within(fr.dir, joined) {
			t.Fatalf("resolve(%q) = %q: %s is outside the root", p, rel, joined)
		}
		want := filepath.Join(fr.dir, p)
		if filepath.IsAbs(p) {
			want = filepath.Clean(p)
		}
		if joined != want {
			t.Fatalf("resolve(%q) = %q names %s, want %s", p, rel, joined, want)
		}
		// What os.Root lets through is inside the root, links resolved.
		if _, err := fr.root.Stat(rel); err == nil {
			real, err := filepath.EvalSymlinks(joined)
			if err == nil && !within(realRoot, real) {
				t.Fatalf("resolve(%q) = %q reached %s outside the root", p, rel, real)
			}
		}
	})
}

func TestResolve(t *testing.T) {
	fr, _ := hostileRoot(t)
	tests := []struct {
		in, want string // want "" means refused
	}{
		{"", "."}, {".", "."}, {"a", "a"}, {"a/./b/", "a/b"}, {"a/../b", "b"}, {fr.dir, "."},
		{fr.dir + "/x/y", "x/y"}, {"/mnt/data/x", ""}, {"..", ""}, {"a/../..", ""}, {fr.dir + "x", ""},
		{fr.dir + "/..", ""}, {"/", ""}, {"a\x00", ""},
	}
	for _, tt := range tests {
		got, err := fr.resolve(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("resolve(%q) = %q, want refused", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("resolve(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	// os.Root refuses links out, and absolute links.
	for _, p := range []string{"up/outside", "out/secret", "abs/secret", "etc/passwd", "sub/deeper/esc/secret", "in/back/out"} {
		if _, err := fr.root.Stat(p); !fr.escapes(err) {
			t.Errorf("Stat(%q): %v, want an escape", p, err)
		}
	}
	if _, err := fr.root.Stat("sub/deeper/ok"); err != nil {
		t.Errorf("Stat of a link inside: %v", err)
	}
}

func TestIncompleteTail(t *testing.T) {
	e := "é"     // 2 bytes
	euro := "€"  // 3 bytes
	emoji := "🙂" // 4 bytes
	tests := []struct {
		in   string
		want int
	}{
		{"", 0}, {"abc", 0}, {e, 0}, {"a" + e[:1], 1}, {euro[:1], 1}, {euro[:2], 2}, {"x" + euro, 0},
		{emoji[:3], 3}, {emoji, 0}, {"\xff", 0}, {"\x80\x80\x80\x80", 0}, {emoji[1:], 0},
	}
	for _, tt := range tests {
		if got := incompleteTail([]byte(tt.in)); got != tt.want {
			t.Errorf("incompleteTail(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestEmitterKeepsRunesWhole(t *testing.T) {
	text := "añ€🙂z"
	for split := range len(text) + 1 {
		var got []string
		em := &emitter{send: func(data []byte) {
			if !utf8.Valid(data) {
				t.Errorf("split %d: invalid event %q", split, data)
			}
			got = append(got, string(data))
		}}
		em.emit([]byte(text[:split]))
		em.emit([]byte(text[split:]))
		em.flush()
		if strings.Join(got, "") != text {
			t.Errorf("split %d: got %q", split, got)
		}
	}
	// A sequence cut short for good still goes out, at the end.
	var got string
	em := &emitter{send: func(data []byte) { got += string(data) }}
	em.emit([]byte("ok\xe2\x82"))
	em.flush()
	if got != "ok\xe2\x82" {
		t.Errorf("got %q", got)
	}
}

func TestCapture(t *testing.T) {
	c := &capture{limit: 5}
	for _, s := range []string{"ab", "cdef", "gh"} {
		if n, err := c.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if string(c.buf) != "abcde" || c.n != 8 || !c.truncated() {
		t.Errorf("kept %q, counted %d, truncated %v", c.buf, c.n, c.truncated())
	}
	var emitted []byte
	c = &capture{limit: 3, emit: func(p []byte) { emitted = append(emitted, p...) }}
	c.Write([]byte("abcd"))
	if string(emitted) != "abc" || c.buf != nil {
		t.Errorf("emitted %q, kept %q", emitted, c.buf)
	}
}
