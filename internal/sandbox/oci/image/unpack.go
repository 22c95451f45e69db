package image

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The OCI whiteout markers (image-spec layer.md, "Whiteouts").
const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh." // AUFS metadata (.wh..wh.plnk, ...)
	whiteoutOpaque = ".wh..wh..opq"
)

const (
	maxPathLen  = 4096 // PATH_MAX: longer entry or link names are refused
	maxSymlinks = 40   // symlinks followed resolving one path, as Linux's ELOOP
)

// limits bound what unpacking one image may cost.
type limits struct {
	maxSize    int64 // uncompressed bytes read from all layers, and file bytes written
	maxEntries int64 // tar entries in all layers
}

// unpacker applies the layers of one image, in order, to a directory
// opened as an os.Root. It is not safe for concurrent use.
//
// Safety: every file system call goes through the os.Root, so nothing can
// be created, changed or removed outside the directory, whatever the layers
// hold. On top of that, paths are resolved the way the container will see
// them: a symlink met on the way to an entry's parent directory is followed
// inside the root (an absolute target is taken relative to the root, ".."
// stops at the root), and the entry's own name is never followed: whatever
// is there is removed first and the new file is created with O_EXCL.
type dirHeader struct {
	hdr *tar.Header
	seq int64
}

type unpacker struct {
	root  *os.Root
	lim   limits
	chown bool // apply uid/gid from the tar headers (needs root)
	// idShift is added to those ids (see WithIDShift).
	idShift int64
	log     *slog.Logger

	read    int64 // uncompressed tar bytes read
	written int64 // file content bytes written
	entries int64
	steps   int64 // path lookups and directory entries visited
	budget  int64 // limit on steps

	// dirs holds directories known to exist on a path without symlinks,
	// so that most lookups cost nothing. Removing a directory clears it.
	dirs map[string]bool

	// Directory metadata is applied once all layers are written (writing
	// into a directory changes its mtime, a read-only mode would stop
	// later writes). dirMeta holds the last header naming each directory,
	// with the entry's sequence number; removed holds the sequence number
	// of the last removal of each path, so that metadata recorded before
	// a directory (or a parent) was removed is not applied to whatever
	// took its place.
	seq     int64
	dirMeta map[string]dirHeader
	removed map[string]int64

	// Per layer.
	touched map[string]bool // paths this layer created, and their parents
	opaqued map[string]bool // directories made opaque by this layer

	buf []byte
}

func newUnpacker(root *os.Root, lim limits, chown bool, log *slog.Logger) *unpacker {
	return &unpacker{
		root:    root,
		lim:     lim,
		chown:   chown,
		log:     log,
		budget:  16*lim.maxEntries + 1<<20,
		dirs:    map[string]bool{},
		dirMeta: map[string]dirHeader{},
		removed: map[string]int64{},
		buf:     make([]byte, 256<<10),
	}
}

// applyLayer applies one uncompressed layer (a tar stream). If diffID is
// set, the stream must hash to it. Once all layers are applied, finish
// completes the job.
func (u *unpacker) applyLayer(ctx context.Context, r io.Reader, diffID v1.Hash) error {
	u.touched = map[string]bool{}
	u.opaqued = map[string]bool{}

	hasher := sha256.New()
	stream := io.TeeReader(&countingReader{ctx: ctx, r: r, n: &u.read, max: u.lim.maxSize}, hasher)
	tr := tar.NewReader(stream)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return u.streamErr(ctx, err)
		}
		u.seq++
		if u.entries++; u.entries > u.lim.maxEntries {
			return fmt.Errorf("more than %d entries: %w", u.lim.maxEntries, errUnsafe)
		}
		if err := u.apply(hdr, tr); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("entry %q: %w", truncate(hdr.Name), err)
		}
	}
	// The diff ID covers the whole stream, including what follows the
	// end-of-archive marker.
	if _, err := io.Copy(io.Discard, stream); err != nil {
		return u.streamErr(ctx, err)
	}
	if diffID.Hex != "" {
		if got := hex.EncodeToString(hasher.Sum(nil)); got != diffID.Hex || diffID.Algorithm != "sha256" {
			return fmt.Errorf("layer content has diff ID sha256:%s, the config says %s: %w", got, diffID, errUnsafe)
		}
	}
	return nil
}

// streamErr qualifies an error reading the layer stream.
func (u *unpacker) streamErr(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, errUnsafe): // a limit
		return err
	default:
		return fmt.Errorf("malformed layer: %w: %w", err, errUnsafe)
	}
}

// apply applies one tar entry; r reads its content.
func (u *unpacker) apply(hdr *tar.Header, r io.Reader) error {
	rel, err := cleanPath(hdr.Name)
	if err != nil {
		return err
	}
	if rel == "" {
		if hdr.Typeflag != tar.TypeDir {
			return fmt.Errorf("non-directory at the root: %w", errUnsafe)
		}
		u.dirMeta["."] = dirHeader{hdr, u.seq}
		return nil
	}
	dir, base := splitPath(rel)
	if strings.HasPrefix(base, whiteoutPrefix) {
		return u.whiteout(dir, base)
	}
	parent, err := u.resolveDir(dir, true)
	if err != nil {
		return err
	}
	full := joinPath(parent, base)

	switch hdr.Typeflag {
	case tar.TypeDir:
		return u.mkdir(full, hdr)
	case tar.TypeReg, tar.TypeGNUSparse, tar.TypeCont:
		return u.writeFile(full, hdr, r)
	case tar.TypeSymlink:
		return u.symlink(full, hdr)
	case tar.TypeLink:
		return u.hardlink(full, hdr)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		// Device nodes and FIFOs are not created: a sandbox gets its
		// devices from the runtime, never from an image. What lower
		// layers had at the path is removed, as the entry replaces it.
		u.log.Debug("image: skipping special file", "path", truncate(full), "type", string(hdr.Typeflag))
		return u.clear(full)
	default:
		u.log.Debug("image: skipping tar entry of unknown type", "path", truncate(full), "type", string(hdr.Typeflag))
		return nil
	}
}

func (u *unpacker) mkdir(full string, hdr *tar.Header) error {
	fi, err := u.root.Lstat(full)
	switch {
	case err == nil && fi.IsDir():
		// An existing directory is kept; its metadata is updated.
	case err == nil || errors.Is(err, fs.ErrNotExist):
		if err == nil {
			if err := u.remove(full, fi); err != nil {
				return err
			}
		}
		if err := u.root.Mkdir(full, 0o700); err != nil {
			return err
		}
	default:
		return err
	}
	u.dirs[full] = true
	u.touch(full)
	u.dirMeta[full] = dirHeader{hdr, u.seq}
	return nil
}

func (u *unpacker) writeFile(full string, hdr *tar.Header, r io.Reader) (err error) {
	if hdr.Size < 0 {
		return fmt.Errorf("negative size: %w", errUnsafe)
	}
	if hdr.Size > u.lim.maxSize-u.written {
		return fmt.Errorf("files larger than %d bytes in all: %w", u.lim.maxSize, errUnsafe)
	}
	uid, gid, err := u.owner(hdr)
	if err != nil {
		return err
	}
	if err := u.clear(full); err != nil {
		return err
	}
	f, err := u.root.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	n, err := io.CopyBuffer(onlyWriter{f}, io.LimitReader(r, hdr.Size), u.buf)
	u.written += n
	if err != nil {
		return err
	}
	if n != hdr.Size {
		return fmt.Errorf("truncated file: %w", io.ErrUnexpectedEOF)
	}
	u.touch(full)
	if u.chown {
		// Before chmod: chown clears the set-user-ID and set-group-ID bits.
		if err := f.Chown(uid, gid); err != nil {
			return err
		}
	}
	if err := f.Chmod(fileMode(hdr)); err != nil {
		return err
	}
	return u.root.Chtimes(full, accessTime(hdr), hdr.ModTime)
}

func (u *unpacker) symlink(full string, hdr *tar.Header) error {
	if hdr.Linkname == "" || len(hdr.Linkname) > maxPathLen || strings.IndexByte(hdr.Linkname, 0) >= 0 {
		return fmt.Errorf("invalid symlink target: %w", errUnsafe)
	}
	uid, gid, err := u.owner(hdr)
	if err != nil {
		return err
	}
	if err := u.clear(full); err != nil {
		return err
	}
	// The target is stored as is: it is only ever followed inside the
	// root, by resolveDir here and by the kernel inside the sandbox.
	if err := u.root.Symlink(hdr.Linkname, full); err != nil {
		return err
	}
	u.touch(full)
	if u.chown {
		return u.root.Lchown(full, uid, gid)
	}
	return nil
}

func (u *unpacker) hardlink(full string, hdr *tar.Header) error {
	trel, err := cleanPath(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hard link target: %w", err)
	}
	if trel == "" {
		return fmt.Errorf("hard link to the root: %w", errUnsafe)
	}
	tdir, tbase := splitPath(trel)
	tparent, err := u.resolveDir(tdir, false)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", truncate(hdr.Linkname), err)
	}
	target := joinPath(tparent, tbase)
	fi, err := u.root.Lstat(target)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", truncate(hdr.Linkname), err)
	}
	if fi.IsDir() {
		return fmt.Errorf("hard link to a directory: %w", errUnsafe)
	}
	if target == full {
		u.touch(full)
		return nil
	}
	if err := u.clear(full); err != nil {
		return err
	}
	// linkat without AT_SYMLINK_FOLLOW: a symlink target is linked itself.
	if err := u.root.Link(target, full); err != nil {
		return err
	}
	u.touch(full)
	return nil
}

// whiteout applies a whiteout entry base (".wh.NAME" or the opaque marker)
// in directory dir. Whiteouts hide what lower layers put there, never what
// this layer created.
func (u *unpacker) whiteout(dir, base string) error {
	if base != whiteoutOpaque && strings.HasPrefix(base, whiteoutMeta) {
		u.log.Debug("image: skipping AUFS metadata", "path", truncate(joinPath(dir, base)))
		return nil
	}
	name := strings.TrimPrefix(base, whiteoutPrefix)
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("invalid whiteout: %w", errUnsafe)
	}
	parent, err := u.resolveDir(dir, false)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir) {
		return nil // nothing below to hide
	}
	if err != nil {
		return err
	}
	if base == whiteoutOpaque {
		return u.opaque(parent)
	}
	full := joinPath(parent, name)
	if u.touched[full] {
		return nil
	}
	return u.clear(full)
}

// opaque empties dir of everything lower layers put there, keeping what
// this layer created in it (wherever the marker comes in the layer).
func (u *unpacker) opaque(dir string) error {
	if u.opaqued[dir] {
		return nil
	}
	u.opaqued[dir] = true
	u.touch(dir)
	return u.hideLower(dir)
}

func (u *unpacker) hideLower(dir string) error {
	f, err := u.root.Open(rootName(dir))
	if err != nil {
		return err
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := u.step(); err != nil {
			return err
		}
		p := joinPath(dir, e.Name())
		if !u.touched[p] {
			if err := u.root.RemoveAll(p); err != nil {
				return err
			}
			u.removed[p] = u.seq
			if e.IsDir() {
				clear(u.dirs)
			}
			continue
		}
		if e.IsDir() {
			if err := u.hideLower(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// finish sets the metadata of directories, now that their content is
// written: the last header that named each, unless it was removed since.
func (u *unpacker) finish() error {
	for p, dh := range u.dirMeta {
		if u.removedSince(p, dh.seq) {
			continue
		}
		fi, err := u.root.Lstat(p)
		if err != nil || !fi.IsDir() {
			continue // replaced since
		}
		hdr := dh.hdr
		mode := fileMode(hdr)
		if u.chown {
			uid, gid, err := u.owner(hdr)
			if err != nil {
				return fmt.Errorf("entry %q: %w", truncate(hdr.Name), err)
			}
			if err := u.root.Lchown(p, uid, gid); err != nil {
				return err
			}
		} else {
			mode |= 0o700 // so that the directory can be removed
		}
		if err := u.root.Chmod(p, mode); err != nil {
			return err
		}
		if err := u.root.Chtimes(p, accessTime(hdr), hdr.ModTime); err != nil {
			return err
		}
	}
	return nil
}

// removedSince reports whether p or one of its parents was removed after
// entry seq.
func (u *unpacker) removedSince(p string, seq int64) bool {
	for p != "" && p != "." {
		if u.removed[p] > seq {
			return true
		}
		p, _ = splitPath(p)
	}
	return false
}

var errNotDir = errors.New("not a directory")

// resolveDir returns the real path (no symlinks) of directory dir, a clean
// relative path, following symlinks inside the root as the container would.
// With create, missing directories are made (mode 0755); without, a missing
// one is an fs.ErrNotExist error.
func (u *unpacker) resolveDir(dir string, create bool) (string, error) {
	if dir == "" || u.dirs[dir] {
		return dir, nil
	}
	pending := strings.Split(dir, "/")
	cur := ""
	links := 0
	for len(pending) > 0 {
		c := pending[0]
		pending = pending[1:]
		if c == "" || c == "." {
			continue
		}
		next := joinPath(cur, c)
		if u.dirs[next] {
			cur = next
			continue
		}
		if err := u.step(); err != nil {
			return "", err
		}
		fi, err := u.root.Lstat(next)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if !create {
				return "", err
			}
			if err := u.root.Mkdir(next, 0o755); err != nil {
				return "", err
			}
			if err := u.root.Chmod(next, 0o755); err != nil { // whatever the umask
				return "", err
			}
			u.dirs[next] = true
			cur = next
		case err != nil:
			return "", err
		case fi.IsDir():
			u.dirs[next] = true
			cur = next
		case fi.Mode()&fs.ModeSymlink != 0:
			if links++; links > maxSymlinks {
				return "", fmt.Errorf("too many levels of symbolic links: %w", errUnsafe)
			}
			target, err := u.root.Readlink(next)
			if err != nil {
				return "", err
			}
			from := "/" + cur
			if path.IsAbs(target) {
				from = "/"
			}
			// Rooted, so that ".." stops at the root.
			t := strings.TrimPrefix(path.Join(from, target), "/")
			if len(t)+len(pending) > 2*maxPathLen {
				return "", fmt.Errorf("path too long: %w", errUnsafe)
			}
			if t != "" {
				pending = append(strings.Split(t, "/"), pending...)
			}
			cur = ""
		default:
			return "", fmt.Errorf("%s: %w: %w", truncate(next), errNotDir, errUnsafe)
		}
	}
	return cur, nil
}

// clear removes whatever is at full, if anything.
func (u *unpacker) clear(full string) error {
	fi, err := u.root.Lstat(full)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return u.remove(full, fi)
}

func (u *unpacker) remove(full string, fi fs.FileInfo) error {
	if err := u.root.RemoveAll(full); err != nil {
		return err
	}
	u.removed[full] = u.seq
	if fi.IsDir() {
		clear(u.dirs)
	}
	return nil
}

// touch records that the current layer created p (and so its parents).
func (u *unpacker) touch(p string) {
	for p != "" && p != "." && !u.touched[p] {
		u.touched[p] = true
		p, _ = splitPath(p)
	}
}

func (u *unpacker) step() error {
	if u.steps++; u.steps > u.budget {
		return fmt.Errorf("too many path lookups: %w", errUnsafe)
	}
	return nil
}

// cleanPath turns a tar entry name into a clean path relative to the root
// ("" for the root itself). Absolute names are taken relative to the root;
// names that climb out of it with ".." are refused.
func cleanPath(name string) (string, error) {
	if name == "" || len(name) > maxPathLen || strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("invalid name: %w", errUnsafe)
	}
	p := path.Clean(strings.TrimLeft(name, "/"))
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", fmt.Errorf("path escapes the root: %w", errUnsafe)
	}
	if p == "." {
		return "", nil
	}
	return p, nil
}

func splitPath(p string) (dir, base string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p
	}
	return p[:i], p[i+1:]
}

func joinPath(dir, base string) string {
	if dir == "" {
		return base
	}
	return dir + "/" + base
}

// rootName is p as an os.Root method wants it.
func rootName(p string) string {
	if p == "" {
		return "."
	}
	return p
}

func fileMode(hdr *tar.Header) fs.FileMode {
	m := fs.FileMode(hdr.Mode) & fs.ModePerm
	if hdr.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if hdr.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if hdr.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// owner returns the host ids an entry's file gets: the header's, shifted.
func (u *unpacker) owner(hdr *tar.Header) (uid, gid int, err error) {
	huid, hgid := int64(hdr.Uid)+u.idShift, int64(hdr.Gid)+u.idShift
	if hdr.Uid < 0 || hdr.Gid < 0 || huid >= math.MaxUint32 || hgid >= math.MaxUint32 {
		return 0, 0, fmt.Errorf("invalid owner %d:%d: %w", hdr.Uid, hdr.Gid, errUnsafe)
	}
	return int(huid), int(hgid), nil
}

func accessTime(hdr *tar.Header) time.Time {
	if hdr.AccessTime.IsZero() {
		return hdr.ModTime
	}
	return hdr.AccessTime
}

// truncate shortens a name from an image for messages and logs.
func truncate(s string) string {
	const max = 200
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// countingReader counts the bytes read into *n, fails once *n exceeds max,
// and stops when ctx ends.
type countingReader struct {
	ctx context.Context
	r   io.Reader
	n   *int64
	max int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	*c.n += int64(n)
	if *c.n > c.max {
		return n, fmt.Errorf("layers larger than %d bytes uncompressed: %w", c.max, errUnsafe)
	}
	return n, err
}

// onlyWriter hides the ReadFrom method of *os.File, so that io.CopyBuffer
// uses the buffer instead of copy_file_range/splice attempts per entry.
type onlyWriter struct{ io.Writer }
