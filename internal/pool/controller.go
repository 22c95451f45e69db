package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/tidepool-dev/tidepool/internal/model"
	"github.com/tidepool-dev/tidepool/internal/store"
)

// Controller reconciles pools and resource groups. Create it with New and
// start it with Run.
type Controller struct {
	st    store.Store
	log   *slog.Logger
	now   func() time.Time
	retry time.Duration

	mu sync.Mutex
	// pending holds the ids waiting for a worker; mu guards it.
	pending map[string]bool
	wake    chan struct{}
}

// Option configures a Controller.
type Option func(*Controller)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *Controller) { c.log = l } }

// WithClock sets the clock (default: time.Now).
func WithClock(now func() time.Time) Option { return func(c *Controller) { c.now = now } }

// WithRetry sets how long a failed reconcile waits before it runs again (default 1s).
func WithRetry(d time.Duration) Option { return func(c *Controller) { c.retry = d } }

// New returns a Controller over st.
func New(st store.Store, opts ...Option) *Controller {
	c := &Controller{
		st:      st,
		log:     slog.New(slog.DiscardHandler),
		now:     time.Now,
		retry:   time.Second,
		pending: map[string]bool{},
		wake:    make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Enqueue asks for id to be reconciled. Requests for the same id coalesce.
func (c *Controller) Enqueue(id string) {
	c.mu.Lock()
	c.pending[strings.ToLower(id)] = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// next takes one pending id, or "" when none is pending.
func (c *Controller) next() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range c.pending {
		delete(c.pending, id)
		return id
	}
	return ""
}

// Run re-enqueues unfinished work, then reconciles enqueued resources until
// ctx is done.
func (c *Controller) Run(ctx context.Context) error {
	if err := c.resync(ctx); err != nil {
		return err
	}
	var retries sync.WaitGroup
	defer retries.Wait()
	for {
		id := c.next()
		if id == "" {
			select {
			case <-ctx.Done():
				return nil
			case <-c.wake:
				continue
			}
		}
		if err := c.Reconcile(ctx, id); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			c.log.ErrorContext(ctx, "reconcile failed; retrying", "id", id, "err", err, "retry", c.retry)
			retries.Go(func() {
				select {
				case <-ctx.Done():
				case <-time.After(c.retry):
					c.Enqueue(id)
				}
			})
		}
	}
}

// resync enqueues every resource with an operation in progress or a
// non-terminal provisioning state: the work a restart interrupted.
func (c *Controller) resync(ctx context.Context) error {
	ops, err := c.st.ListOperations(ctx, store.OperationInProgress, "")
	if err != nil {
		return fmt.Errorf("resync: list operations: %w", err)
	}
	for _, op := range ops {
		c.Enqueue(op.ResourceID)
	}
	for _, typ := range []string{model.SessionPoolType, model.ResourceGroupType} {
		var after string
		for {
			page, err := c.st.ListResources(ctx, store.ListOptions{Type: typ, After: after, Limit: 500})
			if err != nil {
				return fmt.Errorf("resync: list %s: %w", typ, err)
			}
			for _, res := range page.Items {
				if state := provisioningState(res.Body); state == model.StateInProgress || state == model.StateDeleting {
					c.Enqueue(res.ID)
				}
			}
			if page.Next == "" {
				break
			}
			after = page.Next
		}
	}
	return nil
}

// provisioningState reads properties.provisioningState of any stored resource.
func provisioningState(body []byte) string {
	var r struct {
		Properties struct {
			ProvisioningState string `json:"provisioningState"`
		} `json:"properties"`
	}
	if json.Unmarshal(body, &r) != nil {
		return ""
	}
	return r.Properties.ProvisioningState
}

// Reconcile converges one resource and completes its operations.
func (c *Controller) Reconcile(ctx context.Context, id string) error {
	res, err := c.st.GetResource(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		// Gone: whatever was pending on it (a delete) is done.
		return c.completeOperations(ctx, id, 0, nil)
	}
	if err != nil {
		return fmt.Errorf("reconcile %s: %w", id, err)
	}
	switch {
	case strings.EqualFold(res.Type, model.SessionPoolType):
		return c.reconcilePool(ctx, res)
	case strings.EqualFold(res.Type, model.ResourceGroupType):
		return c.reconcileGroup(ctx, res)
	}
	return c.completeOperations(ctx, res.ID, res.Version, nil)
}

func (c *Controller) reconcilePool(ctx context.Context, res *store.Resource) error {
	var p model.SessionPool
	if err := json.Unmarshal(res.Body, &p); err != nil {
		return fmt.Errorf("reconcile %s: decode: %w", res.ID, err)
	}
	if p.Properties == nil {
		p.Properties = &model.PoolProperties{}
	}
	switch p.Properties.ProvisioningState {
	case model.StateDeleting:
		// No sandboxes exist yet; once they do, they are destroyed here first.
		if err := c.st.DeleteResource(ctx, res.ID, res.Version); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("delete session pool %s: %w", res.ID, err)
		}
		c.log.InfoContext(ctx, "session pool deleted", "pool", res.ID)
		return c.completeOperations(ctx, res.ID, 0, nil)
	case model.StateInProgress:
		// The configuration is stored; that is all a pool needs until the
		// warm set exists. This is the one place a pool becomes Succeeded.
		p.Properties.ProvisioningState = model.StateSucceeded
		p.Properties.NodeCount = model.Int32(1)
		body, err := json.Marshal(&p)
		if err != nil {
			return fmt.Errorf("reconcile %s: encode: %w", res.ID, err)
		}
		res.Body = body
		if err := c.st.PutResource(ctx, res); errors.Is(err, store.ErrConflict) {
			return nil // a newer write won; its own Enqueue follows
		} else if err != nil {
			return fmt.Errorf("reconcile %s: store: %w", res.ID, err)
		}
		c.log.InfoContext(ctx, "session pool ready", "pool", res.ID)
	}
	var fail *model.ErrorInfo
	if p.Properties.ProvisioningState == model.StateFailed {
		fail = p.Properties.ProvisioningError
		if fail == nil {
			fail = &model.ErrorInfo{Code: "ProvisioningFailed", Message: "The session pool could not be provisioned."}
		}
	}
	return c.completeOperations(ctx, res.ID, res.Version, fail)
}

// reconcileGroup deletes a group being deleted: first what it holds, then itself.
func (c *Controller) reconcileGroup(ctx context.Context, res *store.Resource) error {
	if provisioningState(res.Body) != model.StateDeleting {
		return c.completeOperations(ctx, res.ID, res.Version, nil)
	}
	for {
		page, err := c.st.ListResources(ctx, store.ListOptions{Scope: res.ID, Recursive: true, Limit: 200})
		if err != nil {
			return fmt.Errorf("delete resource group %s: list: %w", res.ID, err)
		}
		if len(page.Items) == 0 {
			break
		}
		for _, child := range page.Items {
			if err := c.deleteChild(ctx, &child); err != nil {
				return fmt.Errorf("delete resource group %s: %w", res.ID, err)
			}
		}
	}
	if err := c.st.DeleteResource(ctx, res.ID, 0); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("delete resource group %s: %w", res.ID, err)
	}
	c.log.InfoContext(ctx, "resource group deleted", "group", res.ID)
	return c.completeOperations(ctx, res.ID, 0, nil)
}

// deleteChild deletes one resource of a group being deleted. Pools go
// through their own deletion so that their sandboxes go with them.
func (c *Controller) deleteChild(ctx context.Context, res *store.Resource) error {
	if !strings.EqualFold(res.Type, model.SessionPoolType) {
		if err := c.st.DeleteResource(ctx, res.ID, 0); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("delete %s: %w", res.ID, err)
		}
		return c.completeOperations(ctx, res.ID, 0, nil)
	}
	var p model.SessionPool
	if err := json.Unmarshal(res.Body, &p); err != nil {
		return fmt.Errorf("decode %s: %w", res.ID, err)
	}
	if p.Properties == nil {
		p.Properties = &model.PoolProperties{}
	}
	if p.Properties.ProvisioningState != model.StateDeleting {
		p.Properties.ProvisioningState = model.StateDeleting
		body, err := json.Marshal(&p)
		if err != nil {
			return fmt.Errorf("encode %s: %w", res.ID, err)
		}
		res.Body = body
		if err := c.st.PutResource(ctx, res); err != nil {
			return fmt.Errorf("mark %s deleting: %w", res.ID, err)
		}
	}
	return c.reconcilePool(ctx, res)
}

// completeOperations ends the in-progress operations on id: Succeeded, or
// Failed with fail. version is the version of id the reconcile left, 0 when
// it deleted id. If id has been written since, the operations are left to
// the reconcile that the newer write enqueued: one of them may stand for
// that write, which this reconcile has not seen. Handlers write a resource
// before they record its operation, so reading id after listing the
// operations catches every such write.
func (c *Controller) completeOperations(ctx context.Context, id string, version int64, fail *model.ErrorInfo) error {
	ops, err := c.st.ListOperations(ctx, store.OperationInProgress, id)
	if err != nil {
		return fmt.Errorf("complete operations on %s: %w", id, err)
	}
	if len(ops) == 0 {
		return nil
	}
	var current int64
	switch res, err := c.st.GetResource(ctx, id); {
	case err == nil:
		current = res.Version
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("complete operations on %s: %w", id, err)
	}
	if current != version {
		return nil
	}
	for _, op := range ops {
		op.Status, op.Ended = store.OperationSucceeded, c.now().UTC()
		if fail != nil && op.Kind != "delete" {
			op.Status, op.ErrorCode, op.ErrorMsg = store.OperationFailed, fail.Code, fail.Message
		}
		if err := c.st.PutOperation(ctx, &op); err != nil {
			return fmt.Errorf("complete operation %s: %w", op.ID, err)
		}
	}
	return nil
}
