package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// listTree returns the paths under dir, with a type marker: "d/" for
// directories, "@->target" for symlinks.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		switch {
		case fi.IsDir():
			rel += "/"
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			rel += "@->" + l
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func TestWhiteouts(t *testing.T) {
	dir := t.TempDir()
	l1 := tarBytes(t,
		file{name: "a/", typ: tar.TypeDir},
		file{name: "a/x", body: "x"},
		file{name: "a/y", body: "y"},
		file{name: "b/", typ: tar.TypeDir, mode: 0o700},
		file{name: "b/old", body: "old"},
		file{name: "b/olddir/", typ: tar.TypeDir},
		file{name: "b/olddir/f", body: "f"},
		file{name: "c", body: "c"},
		file{name: "d/sub/deep", body: "deep"},
		file{name: "d/sub/deeper/z", body: "z"},
		file{name: "e/", typ: tar.TypeDir},
		file{name: "f", typ: tar.TypeSymlink, link: "a"},
		file{name: "g/", typ: tar.TypeDir},
		file{name: "g/h", body: "h"},
	)
	l2 := tarBytes(t,
		// A plain whiteout.
		file{name: "a/.wh.x", body: ""},
		// An opaque directory: b's lower content goes, its new content stays,
		// whether it comes before or after the marker.
		file{name: "b/", typ: tar.TypeDir, mode: 0o755},
		file{name: "b/before", body: "before"},
		file{name: "b/.wh..wh..opq"},
		file{name: "b/new", body: "new"},
		// Whiteout of a file at the root.
		file{name: ".wh.c"},
		// Opaque d, with a child directory this layer writes into.
		file{name: "d/sub/keep", body: "keep"},
		file{name: "d/.wh..wh..opq"},
		// A whiteout does not hide what its own layer created.
		file{name: "e/fresh", body: "fresh"},
		file{name: "e/.wh.fresh"},
		// Whiteout of a symlink removes the link, not its target.
		file{name: ".wh.f"},
		// Whiteout of a directory removes it whole; then it comes back.
		file{name: ".wh.g"},
		// Whiteouts of things that never existed are no-ops.
		file{name: "nowhere/.wh.thing"},
		file{name: "a/.wh.nothing"},
		// AUFS metadata is ignored.
		file{name: ".wh..wh.plnk/", typ: tar.TypeDir},
	)
	l3 := tarBytes(t,
		file{name: "g/", typ: tar.TypeDir},
		file{name: "g/new", body: "new g"},
		file{name: "c/", typ: tar.TypeDir}, // was a file, whited out; now a directory
	)
	if err := unpackInto(dir, defaultLimits, l1, l2, l3); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"a/", "a/y",
		"b/", "b/before", "b/new",
		"c/",
		"d/", "d/sub/", "d/sub/keep",
		"e/", "e/fresh",
		"g/", "g/new",
	}
	if got := listTree(t, dir); !slices.Equal(got, want) {
		t.Errorf("tree after whiteouts:\n got %q\nwant %q", got, want)
	}
	fi, err := os.Stat(filepath.Join(dir, "b"))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("b mode = %v, %v; want the upper layer's 0755", fi.Mode(), err)
	}
}

func TestUnpackReplaces(t *testing.T) {
	dir := t.TempDir()
	l1 := tarBytes(t,
		file{name: "dir/", typ: tar.TypeDir},
		file{name: "dir/child", body: "child"},
		file{name: "file", body: "file"},
		file{name: "link", typ: tar.TypeSymlink, link: "file"},
		file{name: "hard", body: "shared"},
		file{name: "hard2", typ: tar.TypeLink, link: "hard"},
	)
	l2 := tarBytes(t,
		file{name: "dir", body: "now a file"},
		file{name: "file/", typ: tar.TypeDir},
		file{name: "link", body: "now a file, not written through the link"},
		// Rewriting one name of a hard link leaves the other alone.
		file{name: "hard2", body: "new"},
	)
	if err := unpackInto(dir, defaultLimits, l1, l2); err != nil {
		t.Fatal(err)
	}
	want := []string{"dir", "file/", "hard", "hard2", "link"}
	if got := listTree(t, dir); !slices.Equal(got, want) {
		t.Errorf("tree:\n got %q\nwant %q", got, want)
	}
	if got := readFile(t, filepath.Join(dir, "hard")); got != "shared" {
		t.Errorf("hard = %q, want it unchanged", got)
	}
	if got := readFile(t, filepath.Join(dir, "link")); !strings.HasPrefix(got, "now a file") {
		t.Errorf("link = %q", got)
	}
}

func TestUnpackMetadata(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("ownership needs root")
	}
	dir := t.TempDir()
	l := tarBytes(t,
		file{name: "./", typ: tar.TypeDir, mode: 0o755},
		file{name: "usr/bin/", typ: tar.TypeDir, mode: 0o755},
		file{name: "usr/bin/passwd", body: "suid", mode: 0o4755, uid: 0, gid: 0},
		file{name: "usr/bin/wall", body: "sgid", mode: 0o2755, uid: 0, gid: 5},
		file{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
		file{name: "home/user/", typ: tar.TypeDir, mode: 0o700, uid: 1000, gid: 1000},
		file{name: "home/user/.profile", body: "x", mode: 0o600, uid: 1000, gid: 1000},
		file{name: "home/user/link", typ: tar.TypeSymlink, link: ".profile", uid: 1000, gid: 1000},
		file{name: "dev/null", typ: tar.TypeChar},
		file{name: "dev/sda", typ: tar.TypeBlock},
		file{name: "run/fifo", typ: tar.TypeFifo},
	)
	if err := unpackInto(dir, defaultLimits, l); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path     string
		mode     os.FileMode
		uid, gid uint32
	}{
		{"usr/bin/passwd", 0o755 | os.ModeSetuid, 0, 0},
		{"usr/bin/wall", 0o755 | os.ModeSetgid, 0, 5},
		{"tmp", 0o777 | os.ModeSticky | os.ModeDir, 0, 0},
		{"home/user", 0o700 | os.ModeDir, 1000, 1000},
		{"home/user/.profile", 0o600, 1000, 1000},
		{"home/user/link", os.ModeSymlink | 0o777, 1000, 1000},
	} {
		fi, err := os.Lstat(filepath.Join(dir, tt.path))
		if err != nil {
			t.Errorf("%s: %v", tt.path, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode() != tt.mode || st.Uid != tt.uid || st.Gid != tt.gid {
			t.Errorf("%s: mode %v owner %d:%d, want %v %d:%d", tt.path, fi.Mode(), st.Uid, st.Gid, tt.mode, tt.uid, tt.gid)
		}
		if fi.Mode().IsRegular() && !fi.ModTime().Equal(testTime) {
			t.Errorf("%s: mtime %v, want %v", tt.path, fi.ModTime(), testTime)
		}
	}
	for _, p := range []string{"dev/null", "dev/sda", "run/fifo"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); err == nil {
			t.Errorf("special file %s was created", p)
		}
	}
}

func TestUnpackDiffID(t *testing.T) {
	l := tarBytes(t, file{name: "a", body: "a"})
	sum := sha256.Sum256(l)
	good := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	bad := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("0", 64)}
	for _, tt := range []struct {
		diffID  v1.Hash
		wantErr bool
	}{{good, false}, {bad, true}} {
		dir := t.TempDir()
		root, err := os.OpenRoot(dir)
		if err != nil {
			t.Fatal(err)
		}
		u := newUnpacker(root, defaultLimits, false, discardLogger())
		err = u.applyLayer(context.Background(), bytes.NewReader(l), tt.diffID)
		root.Close()
		if (err != nil) != tt.wantErr {
			t.Errorf("applyLayer with diff ID %s: %v, want error %v", tt.diffID, err, tt.wantErr)
		}
	}
}

// TestHostileLayers: whatever a layer holds, nothing outside the target
// directory changes. Each case is either refused (an error) or neutralised
// (written inside the root).
func TestHostileLayers(t *testing.T) {
	type tc struct {
		name    string
		layers  func(outside string) [][]byte
		lim     limits
		wantErr string                                     // "" when neutralised
		check   func(t *testing.T, target, outside string) // for neutralised cases
	}
	one := func(files ...file) func(string) [][]byte {
		return func(string) [][]byte { return [][]byte{tarBytes(t, files...)} }
	}
	exists := func(p string) func(t *testing.T, target, outside string) {
		return func(t *testing.T, target, _ string) {
			if _, err := os.Lstat(filepath.Join(target, p)); err != nil {
				t.Errorf("%s not written inside the root: %v", p, err)
			}
		}
	}
	var many []file
	for i := range 200 {
		many = append(many, file{name: strings.Repeat("d", i%7+1) + "/" + strings.Repeat("f", i+1)})
	}
	cases := []tc{
		{name: "dot-dot escape", layers: one(file{name: "../escaped", body: "x"}), wantErr: "escapes the root"},
		{name: "nested dot-dot escape", layers: one(file{name: "a/b/../../../escaped", body: "x"}), wantErr: "escapes the root"},
		{name: "dot-dot escape of a directory", layers: one(file{name: "../outside/", typ: tar.TypeDir, mode: 0o777}), wantErr: "escapes the root"},
		{name: "absolute path", layers: func(outside string) [][]byte {
			return [][]byte{tarBytes(t, file{name: outside + "/abs", body: "x"})}
		}, check: func(t *testing.T, target, outside string) {
			if got := readFile(t, filepath.Join(target, outside, "abs")); got != "x" {
				t.Errorf("absolute entry not written under the root")
			}
		}},
		{name: "absolute symlink then file through it", layers: func(outside string) [][]byte {
			return [][]byte{tarBytes(t,
				file{name: "evil", typ: tar.TypeSymlink, link: outside},
				file{name: "evil/secret", body: "overwritten"},
				file{name: "evil/new", body: "planted"},
			)}
		}, check: func(t *testing.T, target, outside string) {
			if got := readFile(t, filepath.Join(target, outside, "new")); got != "planted" {
				t.Errorf("file through an absolute symlink not written inside the root")
			}
		}},
		{name: "relative symlink climbing out then file through it", layers: func(outside string) [][]byte {
			return [][]byte{tarBytes(t,
				file{name: "a/evil", typ: tar.TypeSymlink, link: "../../../../../../../../" + outside},
				file{name: "a/evil/secret", body: "overwritten"},
			)}
		}, check: func(t *testing.T, target, outside string) {
			if got := readFile(t, filepath.Join(target, outside, "secret")); got != "overwritten" {
				t.Errorf("file through a climbing symlink not written inside the root")
			}
		}},
		{name: "symlink in one layer, file through it in the next", layers: func(outside string) [][]byte {
			return [][]byte{
				tarBytes(t, file{name: "etc", typ: tar.TypeSymlink, link: "../outside"}),
				tarBytes(t, file{name: "etc/secret", body: "overwritten"}),
			}
		}, check: exists("outside/secret")},
		{name: "symlink then a file with the link's name", layers: func(outside string) [][]byte {
			return [][]byte{tarBytes(t,
				file{name: "link", typ: tar.TypeSymlink, link: outside + "/secret"},
				file{name: "link", body: "replaces the link"},
			)}
		}, check: func(t *testing.T, target, _ string) {
			if got := readFile(t, filepath.Join(target, "link")); got != "replaces the link" {
				t.Errorf("link = %q", got)
			}
		}},
		{name: "symlink then a directory with the link's name", layers: func(outside string) [][]byte {
			return [][]byte{tarBytes(t,
				file{name: "link", typ: tar.TypeSymlink, link: outside},
				file{name: "link/", typ: tar.TypeDir, mode: 0o777},
			)}
		}, check: func(t *testing.T, target, _ string) {
			fi, err := os.Lstat(filepath.Join(target, "link"))
			if err != nil || !fi.IsDir() {
				t.Errorf("link is not a real directory: %v", err)
			}
		}},
		{name: "hard link climbing out", layers: one(file{name: "h", typ: tar.TypeLink, link: "../outside/secret"}), wantErr: "escapes the root"},
		{name: "hard link to an absolute path", layers: func(outside string) [][]byte {
			return [][]byte{tarBytes(t, file{name: "h", typ: tar.TypeLink, link: outside + "/secret"})}
		}, wantErr: "no such file"},
		{name: "hard link through a symlink to outside", layers: func(outside string) [][]byte {
			return [][]byte{tarBytes(t,
				file{name: "d", typ: tar.TypeSymlink, link: outside},
				file{name: "h", typ: tar.TypeLink, link: "d/secret"},
			)}
		}, wantErr: "no such file"},
		{name: "hard link to a symlink pointing outside", layers: func(outside string) [][]byte {
			return [][]byte{tarBytes(t,
				file{name: "s", typ: tar.TypeSymlink, link: outside + "/secret"},
				file{name: "h", typ: tar.TypeLink, link: "s"},
				file{name: "h", body: "rewritten"},
			)}
		}, check: exists("s")},
		{name: "hard link to a directory", layers: one(
			file{name: "d/", typ: tar.TypeDir},
			file{name: "h", typ: tar.TypeLink, link: "d"},
		), wantErr: "hard link to a directory"},
		{name: "symlink loop", layers: one(
			file{name: "a", typ: tar.TypeSymlink, link: "b"},
			file{name: "b", typ: tar.TypeSymlink, link: "a"},
			file{name: "a/x", body: "x"},
		), wantErr: "too many levels of symbolic links"},
		{name: "file as a parent", layers: one(
			file{name: "f", body: "f"},
			file{name: "f/x", body: "x"},
		), wantErr: "not a directory"},
		{name: "whiteout climbing out", layers: one(file{name: "../outside/.wh.secret"}), wantErr: "escapes the root"},
		{name: "whiteout of dot-dot", layers: one(file{name: "a/.wh..."}), wantErr: "invalid whiteout"},
		{name: "whiteout through a symlink to outside", layers: func(outside string) [][]byte {
			return [][]byte{
				tarBytes(t, file{name: "d", typ: tar.TypeSymlink, link: outside}),
				tarBytes(t, file{name: "d/.wh.secret"}, file{name: "d/.wh..wh..opq"}),
			}
		}},
		{name: "opaque marker at the root", layers: func(string) [][]byte {
			return [][]byte{
				tarBytes(t, file{name: "lower", body: "l"}),
				tarBytes(t, file{name: ".wh..wh..opq"}, file{name: "upper", body: "u"}),
			}
		}, check: func(t *testing.T, target, _ string) {
			if got := listTree(t, target); !slices.Equal(got, []string{"upper"}) {
				t.Errorf("tree = %q, want [upper]", got)
			}
		}},
		{name: "non-directory root entry", layers: one(file{name: ".", body: "x"}), wantErr: "non-directory at the root"},
		{name: "empty name", layers: one(file{name: "", body: "x"}), wantErr: "invalid name"},
		{name: "device nodes", layers: one(
			file{name: "dev/sda", typ: tar.TypeBlock},
			file{name: "dev/mem", typ: tar.TypeChar},
		), check: func(t *testing.T, target, _ string) {
			if got := listTree(t, target); !slices.Equal(got, []string{"dev/"}) {
				t.Errorf("tree = %q, want only dev/", got)
			}
		}},
		{name: "too many entries", layers: one(many...), lim: limits{maxSize: 1 << 20, maxEntries: 100}, wantErr: "more than 100 entries"},
		{name: "file larger than the limit", layers: one(file{name: "big", body: strings.Repeat("x", 5000)}),
			lim: limits{maxSize: 4096, maxEntries: 10}, wantErr: "larger than 4096 bytes"},
		{name: "files together larger than the limit", layers: func(string) [][]byte {
			return [][]byte{
				tarBytes(t, file{name: "a", body: strings.Repeat("x", 3000)}),
				tarBytes(t, file{name: "b", body: strings.Repeat("x", 3000)}),
			}
		}, lim: limits{maxSize: 8000, maxEntries: 10}, wantErr: "larger than 8000 bytes"},
		{name: "long name", layers: one(file{name: strings.Repeat("a/", 3000) + "x", body: "x"}), wantErr: "invalid name"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			parent, target, outside := sandboxDirs(t)
			before := treeState(t, parent)
			delete(before, "target")
			lim := tt.lim
			if lim.maxSize == 0 {
				lim = defaultLimits
			}
			err := unpackInto(target, lim, tt.layers(outside)...)
			switch {
			case tt.wantErr != "" && err == nil:
				t.Errorf("unpack succeeded, want an error with %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("unpack error = %v, want %q", err, tt.wantErr)
			case tt.wantErr == "" && tt.check != nil && err != nil:
				t.Errorf("unpack error = %v, want the entry neutralised", err)
			case tt.check != nil && err == nil:
				tt.check(t, target, outside)
			}
			after := treeState(t, parent)
			for p := range after {
				if p == "target" || strings.HasPrefix(p, "target/") {
					delete(after, p)
				}
			}
			for p, b := range before {
				if after[p] != b {
					t.Errorf("outside the root, %s changed: %q -> %q", p, b, after[p])
				}
			}
			for p, a := range after {
				if _, ok := before[p]; !ok {
					t.Errorf("outside the root, %s appeared: %q", p, a)
				}
			}
		})
	}
}

func TestGzipBomb(t *testing.T) {
	// A tar header for a 64 MiB file of zeros, then the zeros as repeated
	// gzip members of 1 MiB each: 64 MiB uncompressed from about 64 KiB.
	const mib = 1 << 20
	var hdr bytes.Buffer
	tw := tar.NewWriter(&hdr)
	if err := tw.WriteHeader(&tar.Header{Name: "zeros", Mode: 0o644, Size: 64 * mib, Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	var member bytes.Buffer
	zw := gzip.NewWriter(&member)
	zw.Write(make([]byte, mib))
	zw.Close()
	var bomb bytes.Buffer
	zw = gzip.NewWriter(&bomb)
	zw.Write(hdr.Bytes())
	zw.Close()
	for range 64 {
		bomb.Write(member.Bytes())
	}
	if bomb.Len() > 256<<10 {
		t.Fatalf("bomb is %d bytes compressed", bomb.Len())
	}

	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	zr, err := gzip.NewReader(bytes.NewReader(bomb.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	u := newUnpacker(root, limits{maxSize: 4 * mib, maxEntries: 10}, false, discardLogger())
	err = u.applyLayer(context.Background(), zr, v1.Hash{})
	if !errors.Is(err, errUnsafe) {
		t.Fatalf("applyLayer of a gzip bomb = %v, want errUnsafe", err)
	}
	if u.read > 5*mib {
		t.Errorf("read %d bytes of the bomb, want it stopped near the 4 MiB limit", u.read)
	}
	// The header declares more than the limit: refused before writing.
	if u.written != 0 {
		t.Errorf("wrote %d bytes", u.written)
	}
}

// The stream limit holds even where headers are small and the data follows
// the end of the archive.
func TestTrailingDataLimit(t *testing.T) {
	l := append(tarBytes(t, file{name: "a", body: "a"}), make([]byte, 3<<20)...)
	dir := t.TempDir()
	err := unpackInto(dir, limits{maxSize: 1 << 20, maxEntries: 10}, l)
	if !errors.Is(err, errUnsafe) || !strings.Contains(err.Error(), "larger than 1048576 bytes uncompressed") {
		t.Errorf("unpack with 3 MiB after the archive = %v, want the size limit", err)
	}
}

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{
		"a":         "a",
		"./a/b/":    "a/b",
		"/a":        "a",
		"//a//b":    "a/b",
		".":         "",
		"./":        "",
		"/":         "",
		"a/../b":    "b",
		"a/./b/../": "a",
	} {
		got, err := cleanPath(in)
		if err != nil || got != want {
			t.Errorf("cleanPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "..", "../a", "a/../..", "/../a", "a\x00b", strings.Repeat("a", 5000)} {
		if got, err := cleanPath(in); err == nil {
			t.Errorf("cleanPath(%q) = %q, want an error", in, got)
		}
	}
}

// BenchmarkUnpack unpacks a layer of 5,000 small files in 100 directories.
func BenchmarkUnpack(b *testing.B) {
	var files []file
	body := strings.Repeat("x", 1024)
	for d := range 100 {
		dir := "usr/lib/pkg" + strconv.Itoa(d) + "/"
		files = append(files, file{name: dir, typ: tar.TypeDir})
		for f := range 50 {
			files = append(files, file{name: dir + "file" + strconv.Itoa(f), body: body})
		}
	}
	l := tarBytes(b, files...)
	b.SetBytes(int64(len(l)))
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		b.StartTimer()
		if err := unpackInto(dir, defaultLimits, l); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(files))*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}
