package arm

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/tidepool-dev/tidepool/internal/model"
	"github.com/tidepool-dev/tidepool/internal/store"
)

// SubscriptionType is the store type of subscriptions.
const SubscriptionType = "Microsoft.Resources/subscriptions"

// readBody reads a bounded request body.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, errorf(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "The request body is larger than the limit of %d bytes.", mbe.Limit)
	case err != nil:
		return nil, badRequest("InvalidRequestContent", "The request content could not be read: %v.", err)
	case len(data) == 0:
		return nil, badRequest("InvalidRequestContent", "The request content was invalid and could not be deserialized: the body is empty.")
	}
	return data, nil
}

// requireSubscription returns 404 SubscriptionNotFound for an unknown subscription.
func (s *Server) requireSubscription(ctx context.Context, sub string) error {
	_, err := s.st.GetResource(ctx, "/subscriptions/"+sub)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, "SubscriptionNotFound", "The subscription '%s' could not be found.", clip(sub))
	}
	if err != nil {
		return fmt.Errorf("get subscription %s: %w", sub, err)
	}
	return nil
}

// requireGroup returns the resource group of id, or 404 ResourceGroupNotFound.
// A group being deleted accepts no new resources.
func (s *Server) requireGroup(ctx context.Context, id *model.ResourceID, forWrite bool) (*model.ResourceGroup, error) {
	if err := s.requireSubscription(ctx, id.Subscription); err != nil {
		return nil, err
	}
	res, err := s.st.GetResource(ctx, id.ResourceGroupID())
	if errors.Is(err, store.ErrNotFound) {
		return nil, groupNotFound(id.ResourceGroup)
	}
	if err != nil {
		return nil, fmt.Errorf("get resource group %s: %w", id.ResourceGroup, err)
	}
	var g model.ResourceGroup
	if err := json.Unmarshal(res.Body, &g); err != nil {
		return nil, fmt.Errorf("decode resource group %s: %w", id.ResourceGroup, err)
	}
	if forWrite && g.Properties != nil && g.Properties.ProvisioningState == model.StateDeleting {
		return nil, errorf(http.StatusConflict, "ResourceGroupBeingDeleted", "The resource group '%s' is in deprovisioning state and cannot perform this operation.", g.Name)
	}
	return &g, nil
}

// checkTracked checks what every tracked resource's PUT carries: a
// location, and tags within ARM's limits.
func checkTracked(location string, tags map[string]string) error {
	if strings.TrimSpace(location) == "" {
		return &Error{Status: http.StatusBadRequest, Code: "LocationRequired", Target: "location", Message: "The location property is required for this definition."}
	}
	return model.ValidateTags(tags)
}

// systemData returns the systemData for a write by the request's caller,
// keeping the creation fields of prev.
func (s *Server) systemData(ctx context.Context, prev *model.SystemData) *model.SystemData {
	now := s.now().UTC()
	by, byType := "unknown", "Application"
	if c := claimsFrom(ctx); c != nil {
		by = c.AppID
		if by == "" {
			by = c.ObjectID
		}
	}
	sd := &model.SystemData{CreatedBy: by, CreatedByType: byType, CreatedAt: &now, LastModifiedBy: by, LastModifiedByType: byType, LastModifiedAt: &now}
	if prev != nil && prev.CreatedAt != nil {
		sd.CreatedBy, sd.CreatedByType, sd.CreatedAt = prev.CreatedBy, prev.CreatedByType, prev.CreatedAt
	}
	return sd
}

// putResource stores v as the resource id at version (0 creates), mapping
// a lost race to 409. The 409 wraps the store's error, for retryConflicts.
func (s *Server) putResource(ctx context.Context, id, typ, scope string, version int64, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", id, err)
	}
	res := &store.Resource{ID: id, Type: typ, Scope: scope, Body: body, Version: version}
	err = s.st.PutResource(ctx, res)
	if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrExists) {
		return &Error{Status: http.StatusConflict, Code: "Conflict", Err: err,
			Message: fmt.Sprintf("The resource '%s' was changed by another request at the same time; retry the request.", id)}
	}
	if err != nil {
		return fmt.Errorf("store %s: %w", id, err)
	}
	return nil
}

// conflictRetries bounds how often a read-modify-write starts over because
// the resource changed between its read and its write. The pool controller
// writes provisioning states, so a request that follows another closely
// loses that race with no other client writing at all.
const conflictRetries = 5

// retryConflicts runs fn, a read-modify-write of one resource, again while
// its write loses a race (putResource's 409).
func retryConflicts(fn func() error) error {
	for i := 0; ; i++ {
		err := fn()
		if i == conflictRetries || !(errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrExists)) {
			return err
		}
	}
}

// startOperation records an in-progress operation on resourceID.
func (s *Server) startOperation(ctx context.Context, kind, resourceID string) (*store.Operation, error) {
	op := &store.Operation{ID: uuid.NewString(), Kind: kind, ResourceID: resourceID, Status: store.OperationInProgress, Started: s.now().UTC()}
	if err := s.st.PutOperation(ctx, op); err != nil {
		return nil, fmt.Errorf("record %s operation on %s: %w", kind, resourceID, err)
	}
	return op, nil
}

// operationURL is the absolute URL of an operation's status
// (operationStatuses, for Azure-AsyncOperation) or result (operationResults,
// for Location).
func (s *Server) operationURL(sub, namespace, location, kind, opID, apiVersion string) string {
	loc := model.NormalizeLocation(location)
	if loc == "" {
		loc = "local"
	}
	return fmt.Sprintf("%s/subscriptions/%s/providers/%s/locations/%s/%s/%s?api-version=%s",
		s.publicURL, url.PathEscape(sub), namespace, url.PathEscape(loc), kind, opID, url.QueryEscape(apiVersion))
}

// listScope selects resources of typ for a list request in a resource
// group (which must exist) or, recursively, in a subscription.
func (s *Server) listScope(r *http.Request, typ string) (store.ListOptions, error) {
	id, err := model.ParseResourceID(r.URL.Path)
	if err != nil {
		return store.ListOptions{}, unknownRoute(r)
	}
	if id.ResourceGroup != "" {
		_, err := s.requireGroup(r.Context(), id, false)
		return store.ListOptions{Type: typ, Scope: id.ResourceGroupID()}, err
	}
	err = s.requireSubscription(r.Context(), id.Subscription)
	return store.ListOptions{Type: typ, Scope: id.SubscriptionID(), Recursive: true}, err
}

// listPage answers a list request with one page of items selected by opts,
// rendered by render, and a nextLink when more remain.
func (s *Server) listPage(w http.ResponseWriter, r *http.Request, opts store.ListOptions, render func(store.Resource) (any, error)) error {
	q := r.URL.Query()
	opts.Limit = s.pageSize
	if top := q.Get("$top"); top != "" {
		n, err := strconv.Atoi(top)
		if err != nil || n < 1 {
			return badRequest("InvalidParameter", "The $top query parameter must be a positive integer; got '%s'.", clip(top))
		}
		opts.Limit = min(n, s.pageSize)
	}
	if tok := q.Get("$skipToken"); tok != "" {
		after, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			return badRequest("InvalidSkipToken", "The $skipToken query parameter is not one this server issued.")
		}
		opts.After = string(after)
	}
	page, err := s.st.ListResources(r.Context(), opts)
	if err != nil {
		return fmt.Errorf("list %s: %w", opts.Type, err)
	}
	out := struct {
		Value    []any   `json:"value"`
		NextLink *string `json:"nextLink"`
	}{Value: []any{}}
	filter := listFilter(r.Context())
	for _, res := range page.Items {
		if filter != "" {
			if err := s.authorize(r.Context(), res.ID, filter); err != nil {
				if _, denied := err.(*Error); denied {
					continue
				}
				return err
			}
		}
		v, err := render(res)
		if err != nil {
			return err
		}
		if v != nil {
			out.Value = append(out.Value, v)
		}
	}
	if page.Next != "" {
		nq := url.Values{}
		for k, v := range q {
			if k != "$skipToken" {
				nq[k] = v
			}
		}
		nq.Set("$skipToken", base64.RawURLEncoding.EncodeToString([]byte(page.Next)))
		link := s.publicURL + "/" + strings.Join(splitPath(r.URL.Path), "/") + "?" + nq.Encode()
		out.NextLink = &link
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
