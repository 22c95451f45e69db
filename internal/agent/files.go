package agent

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/tidepool-dev/tidepool/internal/agent/wire"
)

// fileRoot confines the /files routes to one directory. Paths are first
// resolved lexically (resolve), then every access goes through an os.Root,
// which refuses symbolic links that lead outside it (and absolute ones).
type fileRoot struct {
	dir  string // absolute and clean: the root as callers name it
	root *os.Root
	// escape is the error os.Root wraps when a path leaves the root; it
	// is unexported in package os, so openFileRoot provokes it once.
	escape error
}

func openFileRoot(dir string) (*fileRoot, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("file root: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("file root: %w", err)
	}
	f := &fileRoot{dir: dir, root: root}
	var pe *fs.PathError
	if _, err := root.Stat(".."); errors.As(err, &pe) {
		f.escape = pe.Err
	}
	return f, nil
}

// resolve turns a caller's path into a clean path relative to the root
// ("." for the root itself). Relative paths are relative to the root;
// absolute ones must lie under it. A path that leaves the root lexically is
// refused; symbolic links are left to os.Root.
func (f *fileRoot) resolve(p string) (string, error) {
	invalid := func(why string) error {
		return errorf(http.StatusBadRequest, wire.CodeInvalidPath, "path %q %s", p, why)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return "", invalid("contains a NUL byte")
	}
	if p == "" {
		return ".", nil
	}
	c := filepath.Clean(p)
	if filepath.IsAbs(c) {
		rel, err := filepath.Rel(f.dir, c)
		if err != nil || !filepath.IsLocal(rel) && rel != "." {
			return "", invalid("is outside the file root")
		}
		return rel, nil
	}
	if c != "." && !filepath.IsLocal(c) {
		return "", invalid("leaves the file root")
	}
	return c, nil
}

// fsError maps a file system error about the caller's path p to an answer.
func (f *fileRoot) fsError(err error, p string) error {
	switch {
	case f.escapes(err), errors.Is(err, syscall.ELOOP), errors.Is(err, syscall.ENAMETOOLONG), errors.Is(err, syscall.EINVAL):
		return errorf(http.StatusBadRequest, wire.CodeInvalidPath, "path %q leaves the file root or is invalid", p)
	case errors.Is(err, fs.ErrNotExist):
		return errorf(http.StatusNotFound, wire.CodeFileNotFound, "%q not found", p)
	case errors.Is(err, syscall.ENOTDIR):
		return errorf(http.StatusBadRequest, wire.CodeNotADirectory, "a parent of %q is not a directory", p)
	case errors.Is(err, syscall.EISDIR):
		return errorf(http.StatusBadRequest, wire.CodeIsADirectory, "%q is a directory", p)
	case errors.Is(err, syscall.ENOTEMPTY):
		return errorf(http.StatusConflict, wire.CodeDirectoryNotEmpty, "directory %q is not empty", p)
	case errors.Is(err, fs.ErrExist):
		return errorf(http.StatusConflict, wire.CodeAlreadyExists, "%q already exists", p)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return errorf(http.StatusInsufficientStorage, wire.CodeInsufficientStorage, "no space left for %q", p)
	}
	return &apiError{status: http.StatusInternalServerError, code: wire.CodeInternal, msg: fmt.Sprintf("cannot access %q", p), err: err}
}

func (f *fileRoot) escapes(err error) bool {
	if f.escape != nil && errors.Is(err, f.escape) {
		return true
	}
	return err != nil && strings.Contains(err.Error(), "path escapes from parent")
}

// info describes rel, which fi describes.
func fileInfo(rel string, fi fs.FileInfo) wire.FileInfo {
	p := filepath.ToSlash(rel)
	wi := wire.FileInfo{Name: path.Base(p), Path: p, Type: wire.TypeFile, ModTime: fi.ModTime().UTC()}
	if fi.IsDir() {
		wi.Type = wire.TypeDirectory
	} else {
		wi.Size = fi.Size()
		wi.ContentType = contentType(p)
	}
	return wi
}

func contentType(name string) string {
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, errorf(http.StatusBadRequest, wire.CodeInvalidRequest, "%s=%q: want true or false", name, v)
	}
	return b, nil
}

// pathParam resolves the path query parameter.
func (s *Server) pathParam(r *http.Request) (p, rel string, err error) {
	p = r.URL.Query().Get("path")
	rel, err = s.files.resolve(p)
	return p, rel, err
}

// handleList lists a directory (the root by default), recursively with
// recursive=true, in lexical order. Symbolic links are listed as what they
// point to, unless that lies outside the root (then they are left out);
// recursion does not follow them. Entries that are neither files nor
// directories are left out.
func (s *Server) handleList(w http.ResponseWriter, r *http.Request) error {
	p, rel, err := s.pathParam(r)
	if err != nil {
		return err
	}
	recursive, err := boolParam(r, "recursive")
	if err != nil {
		return err
	}
	fi, err := s.files.root.Stat(rel)
	if err != nil {
		return s.files.fsError(err, p)
	}
	if !fi.IsDir() {
		return errorf(http.StatusBadRequest, wire.CodeNotADirectory, "%q is not a directory", p)
	}
	list := []wire.FileInfo{}
	add := func(name string, d fs.DirEntry) {
		if strings.HasPrefix(d.Name(), uploadTempPrefix) {
			return // an upload in progress, not yet a file
		}
		var fi fs.FileInfo
		var err error
		if d.Type()&fs.ModeSymlink != 0 {
			fi, err = s.files.root.Stat(name)
		} else {
			fi, err = d.Info()
		}
		if err != nil || !fi.IsDir() && !fi.Mode().IsRegular() {
			return
		}
		list = append(list, fileInfo(name, fi))
	}
	fsys := s.files.root.FS()
	if recursive {
		err = fs.WalkDir(fsys, rel, func(name string, d fs.DirEntry, err error) error {
			if err != nil {
				if name == rel {
					return err
				}
				return nil // vanished meanwhile, or unreadable: skip it
			}
			if name != rel {
				add(name, d)
			}
			return nil
		})
	} else {
		var ents []fs.DirEntry
		ents, err = fs.ReadDir(fsys, rel)
		for _, d := range ents {
			add(path.Join(rel, d.Name()), d)
		}
	}
	if err != nil {
		return s.files.fsError(err, p)
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

// uploadTempPrefix names the temporary file an upload is written to before it
// is renamed into place; listings leave such files out.
const uploadTempPrefix = ".tidepool-upload-"

func (s *Server) handleStat(w http.ResponseWriter, r *http.Request) error {
	p, rel, err := s.pathParam(r)
	if err != nil {
		return err
	}
	fi, err := s.files.root.Stat(rel)
	if err != nil {
		return s.files.fsError(err, p)
	}
	writeJSON(w, http.StatusOK, fileInfo(rel, fi))
	return nil
}

// handleRead streams a regular file, with Content-Length, a Content-Type
// from the extension (or sniffed), Last-Modified and Range support.
func (s *Server) handleRead(w http.ResponseWriter, r *http.Request) error {
	p, rel, err := s.pathParam(r)
	if err != nil {
		return err
	}
	// O_NONBLOCK: opening a FIFO must not hang; it is refused below.
	f, err := s.files.root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return s.files.fsError(err, p)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return s.files.fsError(err, p)
	}
	switch {
	case fi.IsDir():
		return errorf(http.StatusBadRequest, wire.CodeIsADirectory, "%q is a directory", p)
	case !fi.Mode().IsRegular():
		return errorf(http.StatusBadRequest, wire.CodeInvalidPath, "%q is not a regular file", p)
	}
	http.ServeContent(w, r, filepath.Base(rel), fi.ModTime(), f)
	return nil
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// handleWrite stores the body at path: it is streamed to a temporary file
// in the same directory, then renamed over the target, so readers see the
// old content or the new, never a part. Missing parents are created. The
// answer is the new file's FileInfo, 201 when it did not exist before.
func (s *Server) handleWrite(w http.ResponseWriter, r *http.Request) error {
	p, rel, err := s.pathParam(r)
	if err != nil {
		return err
	}
	if rel == "." {
		return errorf(http.StatusBadRequest, wire.CodeIsADirectory, "%q is the file root", p)
	}
	max := s.cfg.MaxUploadBytes
	if max > 0 && r.ContentLength > max {
		return errorf(http.StatusRequestEntityTooLarge, wire.CodePayloadTooLarge, "the file exceeds %d bytes", max)
	}
	root := s.files.root
	existed := false
	if fi, err := root.Lstat(rel); err == nil {
		if fi.IsDir() {
			return errorf(http.StatusBadRequest, wire.CodeIsADirectory, "%q is a directory", p)
		}
		existed = true
	} else if !errors.Is(err, fs.ErrNotExist) {
		return s.files.fsError(err, p)
	}
	dir := filepath.Dir(rel)
	if err := root.MkdirAll(dir, 0o755); err != nil {
		return s.files.fsError(err, p)
	}
	var nonce [8]byte
	rand.Read(nonce[:])
	tmp := filepath.Join(dir, uploadTempPrefix+hex.EncodeToString(nonce[:]))
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return s.files.fsError(err, p)
	}
	body := io.Reader(r.Body)
	if max > 0 {
		body = http.MaxBytesReader(w, r.Body, max)
	}
	bufp := copyBufs.Get().(*[]byte)
	_, err = io.CopyBuffer(struct{ io.Writer }{f}, body, *bufp)
	copyBufs.Put(bufp)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(tmp, rel)
	}
	if err != nil {
		root.Remove(tmp)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errorf(http.StatusRequestEntityTooLarge, wire.CodePayloadTooLarge, "the file exceeds %d bytes", max)
		}
		if r.Context().Err() != nil {
			return nil // the caller is gone
		}
		var pe *fs.PathError
		var le *os.LinkError
		if errors.As(err, &pe) || errors.As(err, &le) {
			return s.files.fsError(err, p)
		}
		return errorf(http.StatusBadRequest, wire.CodeInvalidRequest, "read body: %v", err)
	}
	fi, err := root.Stat(rel)
	if err != nil {
		return s.files.fsError(err, p)
	}
	status := http.StatusCreated
	if existed {
		status = http.StatusOK
	}
	writeJSON(w, status, fileInfo(rel, fi))
	return nil
}

// handleDelete removes a file or an empty directory, or a whole tree with
// recursive=true; 204 when done. A symbolic link is removed, not its
// target. The root itself cannot be deleted.
func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) error {
	p, rel, err := s.pathParam(r)
	if err != nil {
		return err
	}
	recursive, err := boolParam(r, "recursive")
	if err != nil {
		return err
	}
	if rel == "." {
		return errorf(http.StatusBadRequest, wire.CodeInvalidPath, "the file root cannot be deleted")
	}
	if _, err := s.files.root.Lstat(rel); err != nil {
		return s.files.fsError(err, p)
	}
	if recursive {
		err = s.files.root.RemoveAll(rel)
	} else {
		err = s.files.root.Remove(rel)
	}
	if err != nil {
		return s.files.fsError(err, p)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// handleMkdir creates a directory and its missing parents; 201 with its
// FileInfo, or 200 when it existed.
func (s *Server) handleMkdir(w http.ResponseWriter, r *http.Request) error {
	p, rel, err := s.pathParam(r)
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if fi, err := s.files.root.Stat(rel); err == nil {
		if !fi.IsDir() {
			return errorf(http.StatusConflict, wire.CodeAlreadyExists, "%q exists and is not a directory", p)
		}
		status = http.StatusOK
	}
	if err := s.files.root.MkdirAll(rel, 0o755); err != nil {
		return s.files.fsError(err, p)
	}
	fi, err := s.files.root.Stat(rel)
	if err != nil {
		return s.files.fsError(err, p)
	}
	writeJSON(w, status, fileInfo(rel, fi))
	return nil
}
