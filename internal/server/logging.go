package server

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
)

type requestIDKey struct{}

// withRequestID gives r a request id: the x-ms-request-id of its answer
// (arm.SetRequestHeaders keeps it) and, through its context, the
// request_id attribute of every log record written with that context.
func withRequestID(w http.ResponseWriter, r *http.Request) *http.Request {
	id := rand.Text()
	w.Header().Set("x-ms-request-id", id)
	return r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
}

// contextHandler adds the request id found in a record's context.
type contextHandler struct{ slog.Handler }

func (h contextHandler) Handle(ctx context.Context, rec slog.Record) error {
	if id, ok := ctx.Value(requestIDKey{}).(string); ok {
		rec.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, rec)
}

func (h contextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(attrs)}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name)}
}
