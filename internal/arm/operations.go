package arm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tidepool-dev/tidepool/internal/model"
	"github.com/tidepool-dev/tidepool/internal/store"
)

type operationStatus struct {
	ID         string           `json:"id"`
	Name       string           `json:"name"`
	Status     string           `json:"status"`
	ResourceID string           `json:"resourceId,omitempty"`
	StartTime  time.Time        `json:"startTime"`
	EndTime    *time.Time       `json:"endTime,omitempty"`
	Error      *model.ErrorInfo `json:"error,omitempty"`
}

// getOperation serves both operation URLs:
// .../operationStatuses/{id} (Azure-AsyncOperation) always answers 200 with
// the status; .../operationResults/{id} (Location) answers 202 while the
// operation runs and then what the synchronous call would have answered.
func (s *Server) getOperation(w http.ResponseWriter, r *http.Request) error {
	if _, err := apiVersion(r, nil); err != nil {
		return err
	}
	id, err := model.ParseResourceID(r.URL.Path)
	if err != nil {
		return unknownRoute(r)
	}
	opID := id.Names[1]
	op, err := s.st.GetOperation(r.Context(), opID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !strings.HasPrefix(strings.ToLower(op.ResourceID), strings.ToLower(id.SubscriptionID()+"/"))) {
		return errorf(http.StatusNotFound, "OperationNotFound", "The operation '%s' was not found.", clip(opID))
	}
	if err != nil {
		return fmt.Errorf("get operation %s: %w", opID, err)
	}
	// Whoever may read the resource may follow its operations.
	if err := s.authorize(r.Context(), op.ResourceID, readAction(op.ResourceID)); err != nil {
		return err
	}
	if op, err = s.awaitOperation(r.Context(), op); err != nil {
		return err
	}
	if eq(id.Types[1], "operationStatuses") {
		return s.writeOperationStatus(w, r, op)
	}
	return s.writeOperationResult(w, r, op)
}

// awaitOperation gives an operation in progress a short while to finish
// before the caller is told to come back. Most operations take milliseconds,
// and a poller told "in progress" waits its Retry-After: a full second.
func (s *Server) awaitOperation(ctx context.Context, op *store.Operation) (*store.Operation, error) {
	deadline := time.Now().Add(s.opWait)
	for delay := time.Millisecond; op.Status == store.OperationInProgress && time.Now().Before(deadline); delay = min(2*delay, 20*time.Millisecond) {
		select {
		case <-ctx.Done():
			return op, nil
		case <-time.After(delay):
		}
		next, err := s.st.GetOperation(ctx, op.ID)
		if err != nil {
			return nil, fmt.Errorf("get operation %s: %w", op.ID, err)
		}
		op = next
	}
	return op, nil
}

func (s *Server) writeOperationStatus(w http.ResponseWriter, r *http.Request, op *store.Operation) error {
	st := operationStatus{
		ID: strings.Join(append([]string{""}, splitPath(r.URL.Path)...), "/"), Name: op.ID,
		Status: op.Status, ResourceID: op.ResourceID, StartTime: op.Started,
	}
	if !op.Ended.IsZero() {
		st.EndTime = &op.Ended
	}
	if op.Status == store.OperationFailed || op.Status == store.OperationCanceled {
		st.Error = &model.ErrorInfo{Code: op.ErrorCode, Message: op.ErrorMsg}
	}
	if op.Status == store.OperationInProgress {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) writeOperationResult(w http.ResponseWriter, r *http.Request, op *store.Operation) error {
	switch op.Status {
	case store.OperationInProgress:
		w.Header().Set("Location", s.publicURL+r.URL.RequestURI())
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusAccepted)
		return nil
	case store.OperationFailed, store.OperationCanceled:
		status := http.StatusBadRequest
		if op.ErrorCode == "InternalServerError" {
			status = http.StatusInternalServerError
		}
		return &Error{Status: status, Code: op.ErrorCode, Message: op.ErrorMsg}
	}
	if op.Kind == "delete" {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	// PUT and PATCH: the resource as it is now.
	res, err := s.st.GetResource(r.Context(), op.ResourceID)
	if errors.Is(err, store.ErrNotFound) {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		return fmt.Errorf("get %s: %w", op.ResourceID, err)
	}
	if !eq(res.Type, model.SessionPoolType) {
		writeJSON(w, http.StatusOK, json.RawMessage(res.Body))
		return nil
	}
	p, err := decodeStoredPool(res.Body)
	if err != nil {
		return err
	}
	v, ok := model.ParseSessionPoolVersion(r.URL.Query().Get("api-version"))
	if !ok {
		v = model.LatestSessionPoolVersion
	}
	writeJSON(w, http.StatusOK, p.ForVersion(v))
	return nil
}

// readAction is the action that reads the resource id names.
func readAction(resourceID string) string {
	id, err := model.ParseResourceID(resourceID)
	switch {
	case err != nil:
		return "*/read"
	case id.Namespace == "" && id.ResourceGroup != "":
		return groupActions + "/read"
	}
	return id.ResourceType() + "/read"
}
