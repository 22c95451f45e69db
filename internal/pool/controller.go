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
	"github.com/tidepool-dev/tidepool/internal/sandbox"
	"github.com/tidepool-dev/tidepool/internal/store"
)

// Controller reconciles pools and resource groups and, with a sandbox
// runtime, runs the pools' sandboxes: the warm sets, the sessions bound to
// identifiers, their lifecycle. Create it with New and start it with Run;
// Run is called once.
type Controller struct {
	st            store.Store
	rt            sandbox.Runtime // nil: pools hold no sandboxes
	log           *slog.Logger
	clock         Clock
	retry         time.Duration
	starts        int           // concurrent warm starts, all pools together
	reapEvery     time.Duration // reaper period on clock
	flushEvery    time.Duration // period of last-activity writes on clock
	createTimeout time.Duration
	metrics       *Metrics        // nil: none
	builtins      builtinDefaults // pre-imports and images of built-in types
	tokens        TokenIssuer     // nil: sessions get no identity tokens

	// base is the context of background work (warm starts, destroys);
	// Run cancels it when it returns, then waits for bg.
	base     context.Context
	stopBase context.CancelFunc
	bg       sync.WaitGroup
	startSem chan struct{}
	// flushPoke asks the flusher to write new bindings now.
	flushPoke chan struct{}
	// flushMu serializes writes and deletes of binding records, so that a
	// record deleted for an ended session is never written again.
	// Lock order: flushMu, then mu.
	flushMu sync.Mutex
	// adopted is closed once Run has re-adopted the sandboxes of an
	// earlier process (or returned): session calls wait for it, so that a
	// request cannot bind a new sandbox to an identifier whose old one is
	// about to be adopted.
	adopted     chan struct{}
	adoptedOnce sync.Once

	// mu guards the fields that follow. It is never held across a store,
	// runtime or agent call.
	mu sync.Mutex
	// pending holds the ids waiting for a worker.
	pending map[string]bool
	wake    chan struct{}
	// pools holds the in-memory state of pools, by lower-cased id.
	pools map[string]*livePool
	// flights holds the claims in progress, by pool key and identifier:
	// concurrent first requests for one identifier wait for one claim.
	flights map[flightKey]*flight
	// closed is set when Run has returned: no new background work.
	closed bool
}

// Option configures a Controller.
type Option func(*Controller)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *Controller) { c.log = l } }

// WithClock sets the clock of the session lifecycle and of operation end
// times (default: the real clock). Retries of failed work wait in real time.
func WithClock(clk Clock) Option { return func(c *Controller) { c.clock = clk } }

// WithRetry sets how long a failed reconcile, or a pool whose sandboxes
// fail to start, waits before it tries again (default 1s).
func WithRetry(d time.Duration) Option { return func(c *Controller) { c.retry = d } }

// WithPreImport names the Python modules warm PythonLTS kernels import
// before any claim (default none: docs/preimport.md weighs the memory
// against the first-use latency).
func WithPreImport(modules ...string) Option {
	return func(c *Controller) { c.builtins.preImport = modules }
}

// WithBuiltinImages replaces the host's read-only root of built-in
// container types by OCI images: keys are sandbox kinds (sandbox.KindPython,
// KindNode, KindShell), values image references as CustomContainer pools
// name them. The image must hold the interpreter the kind runs.
func WithBuiltinImages(images map[string]string) Option {
	return func(c *Controller) { c.builtins.images = images }
}

// WithRuntime makes the controller run sandboxes on rt: warm sets,
// sessions, lifecycle. Without it (the default) pools only move through
// their provisioning states and Acquire fails with ErrPoolNotReady.
func WithRuntime(rt sandbox.Runtime) Option { return func(c *Controller) { c.rt = rt } }

// WithRefillConcurrency caps how many warm sandboxes start at once, across
// all pools (default 8). Cold starts for a request do not wait for it.
func WithRefillConcurrency(n int) Option {
	return func(c *Controller) {
		if n > 0 {
			c.starts = n
		}
	}
}

// WithReapInterval sets how often, on the controller's clock, the reaper
// looks for sessions to end (default 1s); last activity is written to the
// store as often.
func WithReapInterval(d time.Duration) Option {
	return func(c *Controller) {
		if d > 0 {
			c.reapEvery, c.flushEvery = d, d
		}
	}
}

// New returns a Controller over st.
func New(st store.Store, opts ...Option) *Controller {
	c := &Controller{
		st:            st,
		log:           slog.New(slog.DiscardHandler),
		clock:         realClock{},
		retry:         time.Second,
		starts:        8,
		reapEvery:     time.Second,
		flushEvery:    time.Second,
		createTimeout: 2 * time.Minute,
		flushPoke:     make(chan struct{}, 1),
		adopted:       make(chan struct{}),
		pending:       map[string]bool{},
		wake:          make(chan struct{}, 1),
		pools:         map[string]*livePool{},
		flights:       map[flightKey]*flight{},
	}
	for _, o := range opts {
		o(c)
	}
	c.base, c.stopBase = context.WithCancel(context.Background())
	c.startSem = make(chan struct{}, c.starts)
	return c
}

// Enqueue asks for id to be reconciled. Requests for the same id coalesce.
func (c *Controller) Enqueue(id string) {
	c.mu.Lock()
	c.enqueueLocked(id)
	c.mu.Unlock()
}

func (c *Controller) enqueueLocked(id string) {
	c.pending[strings.ToLower(id)] = true
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

// Run re-enqueues unfinished work and, with a runtime, re-adopts the
// sandboxes of an earlier process and starts the reaper; then it
// reconciles enqueued resources until ctx is done. When it returns, the
// background work has stopped and the sessions' last activity is stored;
// the sandboxes keep running for the next process.
func (c *Controller) Run(ctx context.Context) error {
	defer c.shutdown()
	if err := c.resync(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting: a shutdown, not a failure
		}
		return err
	}
	var loops sync.WaitGroup
	loopCtx, stopLoops := context.WithCancel(ctx)
	defer func() {
		stopLoops()
		loops.Wait()
	}()
	if c.rt != nil {
		if err := c.adopt(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		c.adoptedOnce.Do(func() { close(c.adopted) })
		loops.Go(func() { c.reapLoop(loopCtx) })
		loops.Go(func() { c.flushLoop(loopCtx) })
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

// shutdown stops background work and stores what is not yet stored.
func (c *Controller) shutdown() {
	c.adoptedOnce.Do(func() { close(c.adopted) })
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.stopBase()
	c.bg.Wait()
	if c.rt != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.flush(ctx); err != nil {
			c.log.Error("store last activity at shutdown", "err", err)
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
		if err := c.destroyPool(ctx, res.ID); err != nil {
			return fmt.Errorf("delete session pool %s: %w", res.ID, err)
		}
		if err := c.st.DeleteResource(ctx, res.ID, res.Version); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("delete session pool %s: %w", res.ID, err)
		}
		c.forgetPool(res.ID)
		c.log.InfoContext(ctx, "session pool deleted", "pool", res.ID)
		return c.completeOperations(ctx, res.ID, 0, nil)
	case model.StateInProgress:
		if c.rt != nil {
			up, fail := c.provision(res.ID, &p)
			if fail != nil {
				return c.failPool(ctx, res, &p, fail)
			}
			if !up {
				// The warm set is starting; the start that completes it
				// enqueues the pool again.
				return nil
			}
		}
		// The configuration is stored and the first ready set is up. This
		// is the one place a pool becomes Succeeded.
		p.Properties.ProvisioningState = model.StateSucceeded
		p.Properties.NodeCount = model.Int32(1)
		p.ActivateTemplate(c.templateCounts(res.ID))
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
		c.setPoolState(res.ID, model.StateSucceeded)
		c.log.InfoContext(ctx, "session pool ready", "pool", res.ID)
	case model.StateSucceeded, model.StateFailed:
		if c.rt != nil {
			c.provision(res.ID, &p)
		}
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

// failPool stores the pool as Failed with fail and fails its operations.
func (c *Controller) failPool(ctx context.Context, res *store.Resource, p *model.SessionPool, fail *model.ErrorInfo) error {
	p.Properties.ProvisioningState = model.StateFailed
	p.Properties.ProvisioningError = fail
	body, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("reconcile %s: encode: %w", res.ID, err)
	}
	res.Body = body
	if err := c.st.PutResource(ctx, res); errors.Is(err, store.ErrConflict) {
		return nil
	} else if err != nil {
		return fmt.Errorf("reconcile %s: store: %w", res.ID, err)
	}
	c.setPoolState(res.ID, model.StateFailed)
	c.log.WarnContext(ctx, "session pool failed", "pool", res.ID, "code", fail.Code, "message", fail.Message)
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
	if strings.EqualFold(res.Type, SessionRecordType) {
		// Normally gone with its pool, which sorts first.
		return c.dropRecord(ctx, res)
	}
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
		op.Status, op.Ended = store.OperationSucceeded, c.clock.Now().UTC()
		if fail != nil && op.Kind != "delete" {
			op.Status, op.ErrorCode, op.ErrorMsg = store.OperationFailed, fail.Code, fail.Message
		}
		if err := c.st.PutOperation(ctx, &op); err != nil {
			return fmt.Errorf("complete operation %s: %w", op.ID, err)
		}
	}
	return nil
}

// templateCounts counts a pool's sandboxes for templateUpdateStatus.
func (c *Controller) templateCounts(id string) model.TemplatePoolStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	ps := c.pools[strings.ToLower(id)]
	if ps == nil {
		return model.TemplatePoolStatus{}
	}
	st := model.TemplatePoolStatus{ReadyCount: int32(len(ps.ready)), AllocatedCount: int32(len(ps.claimed))}
	if ps.cfg != nil {
		st.ExpectedCount = int32(ps.cfg.ready)
	}
	for _, n := range ps.startingBy {
		st.PendingCount += int32(n)
	}
	return st
}
