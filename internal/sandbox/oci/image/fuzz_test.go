package image

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// fuzzLimits keep each fuzz input cheap.
var fuzzLimits = limits{maxSize: 1 << 20, maxEntries: 256}

// scriptLayers turns a fuzz script into tar layers. Lines are entries,
// "type|name|arg|mode" with type f (file, arg = content), d (directory),
// s (symlink, arg = target), h (hard link, arg = target), c (char device),
// p (FIFO), x (PAX-only oddities: arg as the name of a GNU long link); a
// line "-" starts a new layer. "@OUT@" stands for the absolute path of a
// directory outside the root, "@PARENT@" for its parent.
func scriptLayers(script, outside, parent string) [][]byte {
	script = strings.ReplaceAll(script, "@OUT@", outside)
	script = strings.ReplaceAll(script, "@PARENT@", parent)
	var layers [][]byte
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	flush := func() {
		tw.Close()
		layers = append(layers, bytes.Clone(buf.Bytes()))
		buf.Reset()
		tw = tar.NewWriter(&buf)
	}
	for line := range strings.SplitSeq(script, "\n") {
		if line == "-" {
			flush()
			continue
		}
		fields := strings.SplitN(line, "|", 4)
		if len(fields) < 2 || len(fields[0]) != 1 {
			continue
		}
		hdr := &tar.Header{Name: fields[1], Mode: 0o644, ModTime: testTime, Format: tar.FormatPAX}
		arg := ""
		if len(fields) > 2 {
			arg = fields[2]
		}
		if len(fields) > 3 {
			if m, err := strconv.ParseInt(fields[3], 8, 64); err == nil {
				hdr.Mode = m & 0o7777
			}
		}
		switch fields[0][0] {
		case 'f':
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(arg))
		case 'd':
			hdr.Typeflag = tar.TypeDir
		case 's':
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, arg
		case 'h':
			hdr.Typeflag, hdr.Linkname = tar.TypeLink, arg
		case 'c':
			hdr.Typeflag = tar.TypeChar
		case 'p':
			hdr.Typeflag = tar.TypeFifo
		default:
			continue
		}
		if err := tw.WriteHeader(hdr); err != nil {
			continue // archive/tar refuses to write it; a reader would too
		}
		if hdr.Typeflag == tar.TypeReg {
			tw.Write([]byte(arg))
		}
	}
	flush()
	return layers
}

var fuzzSeeds = []string{
	"f|a|hello\nd|b/\nf|b/c|x\ns|l|b\nf|l/d|through\nh|hl|b/c",
	"f|../escape|x",
	"f|a/../../escape|x",
	"f|@OUT@/abs|x",
	"s|evil|@OUT@\nf|evil/secret|overwritten\nf|evil/new|x",
	"s|evil|../../../../../../..@OUT@\nf|evil/secret|overwritten",
	"s|evil|..\nf|evil/outside/secret|overwritten",
	"s|evil|../outside\n-\nf|evil/secret|overwritten",
	"s|link|@OUT@/secret\nf|link|replaced",
	"s|link|@OUT@/secret\nh|hard|link\nf|hard|rewritten",
	"h|h|../outside/secret",
	"h|h|@OUT@/secret",
	"s|d|@OUT@\nh|h|d/secret",
	"s|d|@PARENT@\nf|d/outside/secret|x\nd|d/outside/|\n",
	"s|a|b\ns|b|a\nf|a/x|x",
	"s|a|.\nf|a/a/a/a/a/a/a/a/a/a/x|x",
	"d|x/|\nf|x/y|1\n-\nf|x/.wh.y|\nf|.wh..wh..opq|\nf|z|2",
	"s|d|@OUT@\n-\nf|d/.wh.secret|\nf|d/.wh..wh..opq|",
	"f|a/.wh...|",
	"f|.wh...|",
	"f|.|x",
	"d|./|\nd|/|\nf|/etc/passwd|root::0:0::/:/bin/sh",
	"c|dev/null|\np|fifo|\nc|@OUT@/secret|",
	"d|ro/||0555\nf|ro/f|x|0444\n-\nf|ro/g|y",
	"f|suid|x|4755\nd|sticky/||1777",
	"s|abs|/\nf|abs/abs/abs/file|x\nh|abs/hl|file",
	"h|self|self",
	"d|dir/|\nh|dir2|dir",
	"f|a|1\nf|a/b|2",
}

// FuzzUnpack unpacks fuzzed layers and checks that nothing outside the
// target directory changed, whatever the outcome.
func FuzzUnpack(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, script string) {
		parent, target, outside := sandboxDirs(t)
		layers := scriptLayers(script, outside, parent)
		before := outsideState(t, parent)
		_ = unpackInto(target, fuzzLimits, layers...)
		after := outsideState(t, parent)
		for p, b := range before {
			if after[p] != b {
				t.Fatalf("outside the root, %s changed: %q -> %q\nscript: %q", p, b, after[p], script)
			}
		}
		for p, a := range after {
			if _, ok := before[p]; !ok {
				t.Fatalf("outside the root, %s appeared: %q\nscript: %q", p, a, script)
			}
		}
	})
}

// FuzzUnpackRaw feeds raw bytes to the unpacker as a layer.
func FuzzUnpackRaw(f *testing.F) {
	for _, s := range fuzzSeeds {
		for _, l := range scriptLayers(s, "/tmp/fuzz-outside", "/tmp") {
			f.Add(l)
		}
	}
	f.Fuzz(func(t *testing.T, layer []byte) {
		parent, target, _ := sandboxDirs(t)
		before := outsideState(t, parent)
		root, err := os.OpenRoot(target)
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close()
		u := newUnpacker(root, fuzzLimits, os.Geteuid() == 0, discardLogger())
		if u.applyLayer(context.Background(), bytes.NewReader(layer), v1.Hash{}) == nil {
			u.finish()
		}
		after := outsideState(t, parent)
		for p, b := range before {
			if after[p] != b {
				t.Fatalf("outside the root, %s changed: %q -> %q", p, b, after[p])
			}
		}
		if len(after) != len(before) {
			t.Fatalf("outside the root, entries appeared: %d -> %d", len(before), len(after))
		}
	})
}

// outsideState is treeState of parent without the target subtree.
func outsideState(t *testing.T, parent string) map[string]string {
	st := treeState(t, parent)
	for p := range st {
		if p == "target" || strings.HasPrefix(p, "target/") {
			delete(st, p)
		}
	}
	return st
}
