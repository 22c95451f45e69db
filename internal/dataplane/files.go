package dataplane

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/tidepool-dev/tidepool/internal/agent/client"
	"github.com/tidepool-dev/tidepool/internal/agent/wire"
	"github.com/tidepool-dev/tidepool/internal/arm"
)

// multipartSlack is what a multipart body may carry beyond its file:
// boundaries, part headers, small fields.
const multipartSlack = 1 << 20

// fileRoot is where sessions keep files; clients send names under it.
const fileRoot = "/mnt/data"

// relPath turns a client's path (absolute under /mnt/data, or relative to
// it) into one relative to the file root; "" is the root.
func relPath(p string) (string, error) {
	p = strings.ReplaceAll(p, "\\", "/")
	if p == fileRoot || strings.HasPrefix(p, fileRoot+"/") {
		p = p[len(fileRoot):]
	}
	p = strings.TrimLeft(p, "/")
	if p == "" {
		return "", nil
	}
	c := path.Clean(p)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", badRequest("InvalidFilePath", "The file path must stay inside /mnt/data.")
	}
	if c == "." {
		return "", nil
	}
	return c, nil
}

// filePath joins the request's path query and a file name.
func (req *request) filePath(name string) (string, error) {
	dir, err := relPath(queryGet(req.query, "path"))
	if err != nil {
		return "", err
	}
	n, err := relPath(name)
	if err != nil {
		return "", err
	}
	if n == "" {
		return "", badRequest("InvalidFileName", "The file name is empty.")
	}
	if dir == "" {
		return n, nil
	}
	return dir + "/" + n, nil
}

// upload answers files/upload (v1), files (POST; v1 or v2 by
// api-version) and files:uploadFile. The body is multipart/form-data; each
// part with a filename (normally the one field "file") is streamed into
// the session, never held in memory.
func (h *Handler) upload(w http.ResponseWriter, req *request, fam family) error {
	if req.r.ContentLength > h.maxUpload+multipartSlack {
		return h.tooLarge()
	}
	mr, err := req.r.MultipartReader()
	if err != nil {
		return badRequest("InvalidUpload", "The upload must be a multipart/form-data body with the file in a field named 'file'.")
	}
	sess, err := h.acquire(req)
	if err != nil {
		return err
	}
	var infos []wire.FileInfo
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return badRequest("InvalidUpload", "The multipart body is malformed.")
		}
		name := partFileName(part)
		if name == "" {
			if strings.EqualFold(part.FormName(), "file") {
				part.Close()
				return badRequest("InvalidUpload", "The 'file' part has no filename in its Content-Disposition.")
			}
			part.Close()
			continue
		}
		p, err := req.filePath(name)
		if err != nil {
			part.Close()
			return err
		}
		lr := &limitReader{r: part, left: h.maxUpload}
		fi, err := sess.Agent.WriteFile(req.r.Context(), p, lr, -1)
		part.Close()
		if lr.exceeded {
			return h.tooLarge()
		}
		if err != nil {
			return fromAgent(err)
		}
		infos = append(infos, *fi)
	}
	if len(infos) == 0 {
		return badRequest("InvalidUpload", "The upload has no file: send it in a multipart field named 'file' with a filename.")
	}
	if fam == familyV1 {
		writeJSON(w, http.StatusOK, v1FileList(infos))
		return nil
	}
	dir, _ := relPath(queryGet(req.query, "path"))
	writeJSON(w, http.StatusOK, v2File(infos[len(infos)-1], dir))
	return nil
}

// partFileName is the part's filename parameter, unaltered (Part.FileName
// drops directories).
func partFileName(p *multipart.Part) string {
	_, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
	if err != nil {
		return p.FileName()
	}
	return params["filename"]
}

func (h *Handler) tooLarge() error {
	return &arm.Error{Status: http.StatusRequestEntityTooLarge, Code: "PayloadTooLarge",
		Message: fmt.Sprintf("The file is larger than the %d MB upload limit.", h.maxUpload>>20)}
}

// limitReader fails once more than left bytes are read.
type limitReader struct {
	r        io.Reader
	left     int64
	exceeded bool
}

var errTooLarge = errors.New("upload exceeds the size limit")

func (l *limitReader) Read(p []byte) (int, error) {
	if l.exceeded {
		return 0, errTooLarge
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		l.exceeded = true
		return 0, errTooLarge
	}
	return n, err
}

// listFiles answers GET files: v1 or v2 by api-version; recursive on v2.
func (h *Handler) listFiles(w http.ResponseWriter, req *request) error {
	dir, err := relPath(queryGet(req.query, "path"))
	if err != nil {
		return err
	}
	fam := versionFamily(req.version)
	recursive := false
	if fam == familyV2 {
		recursive, _ = strconv.ParseBool(queryGet(req.query, "recursive"))
	}
	sess, err := h.acquire(req)
	if err != nil {
		return err
	}
	infos, err := sess.Agent.ListFiles(req.r.Context(), dir, recursive)
	if err != nil {
		return fromAgent(err)
	}
	if fam == familyV1 {
		files := infos[:0:0]
		for _, fi := range infos {
			if fi.Type == wire.TypeFile {
				files = append(files, fi)
			}
		}
		writeJSON(w, http.StatusOK, v1FileList(files))
		return nil
	}
	list := v2FileList{Value: make([]v2FileInfo, 0, len(infos))}
	for _, fi := range infos {
		list.Value = append(list.Value, v2File(fi, dir))
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

// fileMetadata answers GET files/{name}.
func (h *Handler) fileMetadata(w http.ResponseWriter, req *request, name string) error {
	p, err := req.filePath(name)
	if err != nil {
		return err
	}
	sess, err := h.acquire(req)
	if err != nil {
		return err
	}
	fi, err := sess.Agent.Stat(req.r.Context(), p)
	if err != nil {
		return fromAgent(err)
	}
	if versionFamily(req.version) == familyV1 {
		writeJSON(w, http.StatusOK, v1FileList([]wire.FileInfo{*fi}))
		return nil
	}
	dir, _ := relPath(queryGet(req.query, "path"))
	writeJSON(w, http.StatusOK, v2File(*fi, dir))
	return nil
}

// openFile opens the session's file name for reading.
func (h *Handler) openFile(req *request, name string) (*client.FileReader, error) {
	p, err := req.filePath(name)
	if err != nil {
		return nil, err
	}
	sess, err := h.acquire(req)
	if err != nil {
		return nil, err
	}
	f, err := sess.Agent.ReadFile(req.r.Context(), p)
	if err != nil {
		return nil, fromAgent(err)
	}
	return f, nil
}

// download answers GET files/content/{name} (v1) and files/{name}/content
// (v2): the raw bytes, streamed.
func (h *Handler) download(w http.ResponseWriter, req *request, name string) error {
	f, err := h.openFile(req, name)
	if err != nil {
		return err
	}
	defer f.Close()
	hd := w.Header()
	hd.Set("Content-Type", cmpOr(f.ContentType, "application/octet-stream"))
	if f.Size >= 0 {
		hd.Set("Content-Length", strconv.FormatInt(f.Size, 10))
	}
	if !f.ModTime.IsZero() {
		hd.Set("Last-Modified", f.ModTime.UTC().Format(http.TimeFormat))
	}
	w.WriteHeader(http.StatusOK)
	if req.r.Method == http.MethodHead {
		return nil
	}
	if _, err := io.Copy(w, f); err != nil {
		h.log.DebugContext(req.r.Context(), "download cut short", "err", err)
	}
	return nil
}

// downloadBase64 answers POST files/{name}:downloadFile (2024-09-01
// swagger): {"content": base64}.
func (h *Handler) downloadBase64(w http.ResponseWriter, req *request, name string) error {
	f, err := h.openFile(req, name)
	if err != nil {
		return err
	}
	defer f.Close()
	if f.Size > h.maxUpload {
		return h.tooLarge()
	}
	data, err := io.ReadAll(io.LimitReader(f, h.maxUpload+1))
	if err != nil {
		return fromAgent(err)
	}
	writeJSON(w, http.StatusOK, map[string]string{"content": base64.StdEncoding.EncodeToString(data)})
	return nil
}

// deleteFile answers DELETE files/{name}: 204 on v2, 200 with a message on
// v1 (the 2024-08-02-preview sample).
func (h *Handler) deleteFile(w http.ResponseWriter, req *request, name string) error {
	p, err := req.filePath(name)
	if err != nil {
		return err
	}
	sess, err := h.acquire(req)
	if err != nil {
		return err
	}
	if err := sess.Agent.DeleteFile(req.r.Context(), p, false); err != nil {
		return fromAgent(err)
	}
	if versionFamily(req.version) == familyV1 {
		writeJSON(w, http.StatusOK, map[string]string{"message": "file deleted successfully"})
		return nil
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// v1 shapes: {"$id":"1","value":[{"$id":"2","properties":{"$id":"3",...}}]}.
type v1Files struct {
	ID    string        `json:"$id"`
	Value []v1FileEntry `json:"value"`
}

type v1FileEntry struct {
	ID         string      `json:"$id"`
	Properties v1FileProps `json:"properties"`
}

type v1FileProps struct {
	ID               string `json:"$id"`
	Filename         string `json:"filename"`
	Size             int64  `json:"size"`
	LastModifiedTime string `json:"lastModifiedTime"`
}

func v1FileList(infos []wire.FileInfo) v1Files {
	out := v1Files{ID: "1", Value: make([]v1FileEntry, 0, len(infos))}
	n := 2
	for _, fi := range infos {
		out.Value = append(out.Value, v1FileEntry{ID: strconv.Itoa(n), Properties: v1FileProps{
			ID: strconv.Itoa(n + 1), Filename: fi.Path, Size: fi.Size, LastModifiedTime: armTime(fi.ModTime),
		}})
		n += 2
	}
	return out
}

// v2FileInfo is SessionResourceFile.
type v2FileInfo struct {
	Name           string `json:"name"`
	Type           string `json:"type"`
	ContentType    string `json:"contentType,omitempty"`
	SizeInBytes    int64  `json:"sizeInBytes"`
	LastModifiedAt string `json:"lastModifiedAt"`
	// Directory is relative to the listed path; absent at its top.
	Directory string `json:"directory,omitempty"`
}

type v2FileList struct {
	Value    []v2FileInfo `json:"value"`
	NextLink *string      `json:"nextLink"`
}

// v2File renders fi; dir is the requested path, relative to the root.
func v2File(fi wire.FileInfo, dir string) v2FileInfo {
	out := v2FileInfo{Name: fi.Name, Type: "File", ContentType: fi.ContentType, SizeInBytes: fi.Size,
		LastModifiedAt: armTime(fi.ModTime)}
	if fi.Type == wire.TypeDirectory {
		out.Type, out.ContentType, out.SizeInBytes = "Directory", "", 4096
	}
	rel := fi.Path
	if dir != "" {
		rel = strings.TrimPrefix(strings.TrimPrefix(rel, dir), "/")
	}
	if d := path.Dir(rel); d != "." && d != "/" {
		out.Directory = d
	}
	return out
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
