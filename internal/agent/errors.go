package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"

	"github.com/tidepool-dev/tidepool/internal/agent/wire"
)

// apiError is an error answer: status and the {"error":{"code","message"}}
// body. Handlers return it; writeError sends it. err, the cause, is logged
// and never sent.
type apiError struct {
	status    int
	code, msg string
	err       error
}

func (e *apiError) Error() string {
	if e.err != nil {
		return fmt.Sprintf("%s: %s: %v", e.code, e.msg, e.err)
	}
	return e.code + ": " + e.msg
}

func (e *apiError) Unwrap() error { return e.err }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

// handlerFunc is a handler that returns its error instead of writing it.
// A handler that has begun its answer (a stream) handles its own errors
// and returns nil.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (s *Server) handle(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// writeError sends err; an error that is not an *apiError is a 500 whose
// cause is logged, not sent.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{status: http.StatusInternalServerError, code: wire.CodeInternal, msg: "internal error", err: err}
	}
	if ae.status >= 500 {
		s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "code", ae.code, "err", err)
	} else {
		s.log.DebugContext(r.Context(), "request refused", "method", r.Method, "path", r.URL.Path, "code", ae.code, "message", ae.msg)
	}
	writeJSON(w, ae.status, wire.ErrorResponse{Error: wire.ErrorBody{Code: ae.code, Message: ae.msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		// Only unencodable types fail; they are bugs.
		panic(fmt.Sprintf("encode %T: %v", v, err))
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", fmt.Sprint(buf.Len()))
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// decodeJSON reads the whole body (so that the server notices when the
// client goes away) into v.
func decodeJSON(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxJSONBody+1))
	if err != nil {
		return errorf(http.StatusBadRequest, wire.CodeInvalidRequest, "read body: %v", err)
	}
	if len(body) > maxJSONBody {
		return errorf(http.StatusRequestEntityTooLarge, wire.CodePayloadTooLarge, "body exceeds %d bytes", maxJSONBody)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return errorf(http.StatusBadRequest, wire.CodeInvalidRequest, "invalid JSON body: %v", err)
	}
	return nil
}

// recoverer turns a panic into a 500 (or, when the answer has begun, an
// aborted connection) instead of a dead agent.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tw := &trackingWriter{ResponseWriter: w}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.ErrorContext(r.Context(), "panic", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			if tw.wrote {
				panic(http.ErrAbortHandler)
			}
			s.writeError(tw, r, errorf(http.StatusInternalServerError, wire.CodeInternal, "internal error"))
		}()
		next.ServeHTTP(tw, r)
	})
}

// trackingWriter notes whether the answer has begun. It unwraps for
// http.ResponseController (Flush, Hijack) and passes ReadFrom through
// (sendfile for downloads).
type trackingWriter struct {
	http.ResponseWriter
	wrote bool
}

func (t *trackingWriter) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		t.wrote = true
	}
	t.ResponseWriter.WriteHeader(code)
}

func (t *trackingWriter) Write(p []byte) (int, error) {
	t.wrote = true
	return t.ResponseWriter.Write(p)
}

func (t *trackingWriter) ReadFrom(r io.Reader) (int64, error) {
	t.wrote = true
	return io.Copy(t.ResponseWriter, r)
}

func (t *trackingWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// headerRecorder captures the status and headers of the mux's fallback
// handlers (404, 405, redirects) and drops their plain-text bodies.
type headerRecorder struct {
	header http.Header
	status int
}

func (h *headerRecorder) Header() http.Header { return h.header }

func (h *headerRecorder) WriteHeader(code int) {
	if h.status == 0 {
		h.status = code
	}
}

func (h *headerRecorder) Write(p []byte) (int, error) {
	h.WriteHeader(http.StatusOK)
	return len(p), nil
}
