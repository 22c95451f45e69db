package arm

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/tidepool-dev/tidepool/internal/model"
)

// Error is an ARM error response: the HTTP status and the body
// {"error":{"code","message","target","details"}}. Handlers return it; one
// place (writeError) sends it.
type Error struct {
	Status  int
	Code    string
	Message string
	Target  string
	Details []*Error
	// Header holds extra response headers (WWW-Authenticate on a 401).
	Header http.Header
	// Err is the cause, logged and never sent.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

type errorBody struct {
	Code    string       `json:"code"`
	Message string       `json:"message"`
	Target  string       `json:"target,omitempty"`
	Details []*errorBody `json:"details,omitempty"`
}

func (e *Error) body() *errorBody {
	b := &errorBody{Code: e.Code, Message: e.Message, Target: e.Target}
	for _, d := range e.Details {
		b.Details = append(b.Details, d.body())
	}
	return b
}

func errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func badRequest(code, format string, args ...any) *Error {
	return errorf(http.StatusBadRequest, code, format, args...)
}

func notFound(resourceType, name, group string) *Error {
	return errorf(http.StatusNotFound, "ResourceNotFound",
		"The Resource '%s/%s' under resource group '%s' was not found.", resourceType, name, group)
}

func groupNotFound(group string) *Error {
	return errorf(http.StatusNotFound, "ResourceGroupNotFound", "Resource group '%s' could not be found.", group)
}

// asARM converts any error a handler returns into an *Error. Validation
// errors from the model become 400s; anything unclassified is a 500 whose
// cause is logged, not sent.
func asARM(err error) *Error {
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	var fe *model.FieldError
	if errors.As(err, &fe) {
		return &Error{Status: http.StatusBadRequest, Code: fe.Code, Message: fe.Message, Target: fe.Target}
	}
	var fes model.Errors
	if errors.As(err, &fes) && len(fes) > 0 {
		top := &Error{Status: http.StatusBadRequest, Code: fes[0].Code, Message: fes[0].Message, Target: fes[0].Target}
		if len(fes) > 1 {
			top.Message = fmt.Sprintf("%s (and %d more problems; see details)", top.Message, len(fes)-1)
			for _, f := range fes {
				top.Details = append(top.Details, &Error{Code: f.Code, Message: f.Message, Target: f.Target})
			}
		}
		return top
	}
	return &Error{Status: http.StatusInternalServerError, Code: "InternalServerError",
		Message: "The server encountered an internal error. Retry the request; if it keeps failing, the server log has the cause under this request's x-ms-request-id.", Err: err}
}

// writeError logs err as its class deserves and sends it.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	ae := asARM(err)
	if ae.Status >= 500 {
		s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	} else if ae.Err != nil {
		s.log.DebugContext(r.Context(), "request refused", "code", ae.Code, "err", ae.Err)
	}
	WriteError(w, ae)
}

// WriteError sends e in ARM's error shape, with x-ms-error-code.
func WriteError(w http.ResponseWriter, e *Error) {
	for k, v := range e.Header {
		w.Header()[k] = v
	}
	w.Header().Set("x-ms-error-code", e.Code)
	writeJSON(w, e.Status, struct {
		Error *errorBody `json:"error"`
	}{e.body()})
}

// writeJSON sends v as the JSON body with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		// Every type sent is marshalable; this is a programming error.
		http.Error(w, `{"error":{"code":"InternalServerError","message":"response encoding failed"}}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(data)
}
