package pool

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tidepool-dev/tidepool/internal/agent/client"
	"github.com/tidepool-dev/tidepool/internal/agent/wire"
	"github.com/tidepool-dev/tidepool/internal/model"
	"github.com/tidepool-dev/tidepool/internal/sandbox"
)

// livePool is the in-memory state of one pool. Every field is guarded by
// Controller.mu.
type livePool struct {
	id  string // as stored
	key string // lower-cased id
	// cfg is the current configuration; nil until the pool is loaded.
	cfg *poolConfig
	// state mirrors the stored provisioningState.
	state string
	// ready holds warm, unclaimed sandboxes of cfg's template, oldest
	// first.
	ready []*sandboxRef
	// claimed maps identifiers to their sessions.
	claimed map[string]*session
	// claiming counts claims in progress; they count as claimed.
	claiming int
	// startingBy counts warm starts in progress by template hash; those of
	// the current template count toward the ready target.
	startingBy map[string]int
	// stopping counts sandboxes being destroyed.
	stopping int
	// filled is the template hash whose ready set was complete once.
	filled string
	// startErr is the last failed warm start, cleared by a success;
	// backoff holds further starts until a retry.
	startErr error
	backoff  bool
	// changed is closed and replaced whenever work in flight ends.
	changed chan struct{}
	// highWater is the largest claimed+claiming ever seen (for tests of
	// the invariant claimed ≤ max).
	highWater int
	// afterClaimPending is set while the work after a claim waits to
	// start (afterClaimLocked).
	afterClaimPending bool
}

// sandboxRef is a running sandbox of a pool.
type sandboxRef struct {
	id      string
	kind    string
	hash    string      // template
	cfg     *poolConfig // template it was made from; nil when adopted from an older one
	created time.Time
	agent   *client.Client
	// identityExpires is when the identity tokens given to the sandbox
	// expire; zero when it has none from this process. Guarded by
	// Controller.mu.
	identityExpires time.Time
}

// session is an identifier bound to a sandbox.
type session struct {
	ident     string
	sb        *sandboxRef
	created   time.Time
	last      time.Time
	persisted time.Time // last activity as stored
	version   int64     // of the binding record; 0 until stored
	gone      bool      // ended; never stored again
}

func (ps *livePool) boundLocked() int { return len(ps.claimed) + ps.claiming }

func (ps *livePool) inFlightLocked() int {
	n := ps.claiming + ps.stopping
	for _, v := range ps.startingBy {
		n += v
	}
	return n
}

func (ps *livePool) notifyLocked() {
	close(ps.changed)
	ps.changed = make(chan struct{})
}

// targetLocked is the size the ready set converges to:
// min(readySessionInstances, max − claimed).
func (ps *livePool) targetLocked() int {
	if ps.cfg == nil {
		return 0
	}
	return max(0, min(ps.cfg.ready, ps.cfg.max-ps.boundLocked()))
}

// popReadyLocked takes the oldest ready sandbox, or nil.
func (ps *livePool) popReadyLocked() *sandboxRef {
	if len(ps.ready) == 0 {
		return nil
	}
	sb := ps.ready[0]
	ps.ready[0] = nil
	ps.ready = ps.ready[1:]
	return sb
}

// poolLocked returns the state of pool id, creating it empty.
func (c *Controller) poolLocked(id string) *livePool {
	key := strings.ToLower(id)
	ps := c.pools[key]
	if ps == nil {
		ps = &livePool{id: id, key: key, claimed: map[string]*session{}, startingBy: map[string]int{}, changed: make(chan struct{})}
		c.pools[key] = ps
	}
	return ps
}

func (c *Controller) setPoolState(id, state string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ps := c.pools[strings.ToLower(id)]; ps != nil && ps.state != model.StateDeleting {
		ps.state = state
	}
}

// forgetPool drops the state of a deleted pool.
func (c *Controller) forgetPool(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := strings.ToLower(id)
	if ps := c.pools[key]; ps != nil && ps.state == model.StateDeleting {
		delete(c.pools, key)
	}
}

// provision applies the stored pool p to its in-memory state and starts
// what the warm set lacks. It reports whether the ready set of the current
// template has been complete, or why the pool fails.
func (c *Controller) provision(id string, p *model.SessionPool) (up bool, fail *model.ErrorInfo) {
	cfg, err := newPoolConfig(id, p, c.builtins)
	c.mu.Lock()
	defer c.mu.Unlock()
	ps := c.poolLocked(id)
	ps.id = id
	if err != nil {
		ps.state = model.StateFailed
		return false, &model.ErrorInfo{Code: "InvalidSessionPoolTemplate", Message: "The session pool's template is invalid: " + err.Error() + "."}
	}
	state := p.Properties.ProvisioningState
	if ps.state == model.StateFailed && state == model.StateInProgress {
		// A new attempt (an update of a failed pool).
		ps.startErr, ps.backoff = nil, false
	}
	if ps.cfg == nil || ps.cfg.hash != cfg.hash {
		if ps.cfg != nil {
			c.log.Info("session pool template changed; replacing the ready set", "pool", id, "from", ps.cfg.hash, "to", cfg.hash, "ready", len(ps.ready))
		}
		for _, sb := range ps.ready {
			c.destroyLaterLocked(ps, sb)
		}
		ps.ready = nil
		ps.startErr, ps.backoff = nil, false
	}
	ps.cfg = cfg
	ps.state = state
	if len(ps.ready) >= ps.targetLocked() {
		ps.filled = cfg.hash
	}
	c.ensureLocked(ps)
	if ps.filled == cfg.hash {
		return true, nil
	}
	if ps.startErr != nil && state == model.StateInProgress {
		return false, provisioningError(ps.startErr)
	}
	return false, nil
}

// provisioningError is what a client sees of a failed start: the error for
// the classes whose messages are meant for users, a pointer to the log
// otherwise (it may hold host paths or a runtime's stderr).
func provisioningError(err error) *model.ErrorInfo {
	switch {
	case errors.Is(err, sandbox.ErrImage):
		return &model.ErrorInfo{Code: "ImagePullFailed", Message: "Sessions cannot start: " + clip(err.Error(), 400)}
	case errors.Is(err, sandbox.ErrRuntimeMissing):
		return &model.ErrorInfo{Code: "SandboxRuntimeMissing", Message: "Sessions cannot start: " + clip(err.Error(), 400)}
	}
	return &model.ErrorInfo{Code: "SessionStartFailed", Message: "Sessions cannot start; the server log has the cause."}
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// goLocked runs fn as background work owned by the controller; false when
// the controller has stopped.
func (c *Controller) goLocked(fn func()) bool {
	if c.closed {
		return false
	}
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		fn()
	}()
	return true
}

// afterClaimDelay is how long after a claim its background work starts:
// the refill and the write of the new binding. The claim's first execution
// follows at once, usually in the same request, and work started meanwhile
// takes a CPU from it (a python sandbox's start costs ~50 ms of CPU, a
// store write a few hundred µs, against the 2 ms a first execution should
// take). Until the binding is written a restart still finds the session:
// its agent reports the identifier it was bound to.
const afterClaimDelay = 20 * time.Millisecond

// afterClaimLocked refills ps and stores new bindings afterClaimDelay from
// now, once for all the claims of that interval.
func (c *Controller) afterClaimLocked(ps *livePool) {
	if ps.afterClaimPending || c.closed {
		return
	}
	ps.afterClaimPending = true
	time.AfterFunc(afterClaimDelay, func() {
		c.mu.Lock()
		ps.afterClaimPending = false
		c.ensureLocked(ps)
		c.mu.Unlock()
		select {
		case c.flushPoke <- struct{}{}:
		default:
		}
	})
}

// ensureLocked starts the warm sandboxes ps lacks and destroys the ready
// ones beyond its target.
func (c *Controller) ensureLocked(ps *livePool) {
	if c.rt == nil || ps.cfg == nil || ps.state == model.StateDeleting || ps.state == model.StateFailed {
		return
	}
	target := ps.targetLocked()
	if extra := len(ps.ready) - target; extra > 0 {
		// Scale down: only ready sandboxes go, the newest first.
		for _, sb := range ps.ready[len(ps.ready)-extra:] {
			c.destroyLaterLocked(ps, sb)
		}
		clear(ps.ready[len(ps.ready)-extra:])
		ps.ready = ps.ready[:len(ps.ready)-extra]
	}
	if ps.backoff {
		return
	}
	cfg := ps.cfg
	for have := len(ps.ready) + ps.startingBy[cfg.hash]; have < target; have++ {
		ps.startingBy[cfg.hash]++
		if !c.goLocked(func() { c.startWarm(ps, cfg) }) {
			ps.startingBy[cfg.hash]--
			return
		}
	}
}

func newSandboxID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return "tp-" + hex.EncodeToString(b[:])
}

// create starts one sandbox of cfg for ps; start (startWarm or startCold)
// labels its metrics.
func (c *Controller) create(ctx context.Context, ps *livePool, cfg *poolConfig, start string) (_ *sandboxRef, retErr error) {
	ctx, cancel := context.WithTimeout(ctx, c.createTimeout)
	defer cancel()
	began := time.Now()
	defer func() {
		// A start abandoned (shutdown, caller gone) is no failure.
		if retErr == nil || !errors.Is(ctx.Err(), context.Canceled) {
			c.metrics.started(ps.key, start, time.Since(began), retErr)
		}
	}()
	id := newSandboxID()
	spec, err := c.withRegistryToken(cfg, cfg.specFor(id, ps.key))
	if err != nil {
		return nil, err
	}
	sb, err := c.rt.Create(ctx, spec)
	if err != nil {
		return nil, err
	}
	ref := &sandboxRef{id: sb.ID, kind: cfg.spec.Kind, hash: cfg.hash, cfg: cfg, created: c.clock.Now(), agent: client.New(sb.Socket)}
	// One request now checks the agent's API version and leaves a warm
	// connection for the claim: the first request to a fresh agent costs
	// milliseconds, later ones tens of microseconds.
	h, err := ref.agent.Health(ctx)
	if err == nil && h.Version != wire.Version {
		err = fmt.Errorf("agent speaks API version %q, want %q", h.Version, wire.Version)
	}
	if err != nil {
		c.destroy(ps, ref)
		return nil, fmt.Errorf("sandbox %s: %w", sb.ID, err)
	}
	return ref, nil
}

// startWarm starts one warm sandbox and adds it to the ready set, if the
// pool still wants it.
func (c *Controller) startWarm(ps *livePool, cfg *poolConfig) {
	var sb *sandboxRef
	var err error
	select {
	case c.startSem <- struct{}{}:
		sb, err = c.create(c.base, ps, cfg, startWarm)
		<-c.startSem
	case <-c.base.Done():
		err = c.base.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ps.startingBy[cfg.hash]--; ps.startingBy[cfg.hash] <= 0 {
		delete(ps.startingBy, cfg.hash)
	}
	ps.notifyLocked()
	if err != nil {
		if c.base.Err() != nil {
			return
		}
		c.log.Warn("warm sandbox failed to start", "pool", ps.id, "err", err)
		ps.startErr = err
		if ps.state == model.StateInProgress {
			c.enqueueLocked(ps.id)
		}
		if !ps.backoff {
			ps.backoff = true
			c.goLocked(func() {
				select {
				case <-c.base.Done():
				case <-time.After(c.retry):
				}
				c.mu.Lock()
				defer c.mu.Unlock()
				ps.backoff = false
				c.ensureLocked(ps)
			})
		}
		return
	}
	if ps.state == model.StateDeleting || ps.cfg == nil || ps.cfg.hash != cfg.hash || len(ps.ready) >= ps.targetLocked() {
		c.destroyLaterLocked(ps, sb)
		return
	}
	ps.ready = append(ps.ready, sb)
	ps.startErr = nil
	if len(ps.ready) >= ps.targetLocked() && ps.filled != cfg.hash {
		ps.filled = cfg.hash
		if ps.state == model.StateInProgress {
			c.enqueueLocked(ps.id)
		}
	}
}

// destroyLaterLocked destroys sb in the background.
func (c *Controller) destroyLaterLocked(ps *livePool, sb *sandboxRef) {
	ps.stopping++
	ok := c.goLocked(func() {
		c.destroy(ps, sb)
		c.mu.Lock()
		ps.stopping--
		ps.notifyLocked()
		c.mu.Unlock()
	})
	if !ok {
		// Stopped: the next process destroys it (no record claims it).
		ps.stopping--
	}
}

// destroy destroys sb; a sandbox already gone is not an error.
func (c *Controller) destroy(ps *livePool, sb *sandboxRef) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.base), time.Minute)
	defer cancel()
	sb.agent.Close()
	if err := c.rt.Destroy(ctx, sb.id); err != nil && !errors.Is(err, sandbox.ErrNotFound) {
		c.log.Error("destroy sandbox", "pool", ps.id, "sandbox", sb.id, "err", err)
	}
}

// waitIdle waits until ps has no start, claim or destroy in flight.
func (c *Controller) waitIdle(ctx context.Context, ps *livePool) error {
	for {
		c.mu.Lock()
		n, ch := ps.inFlightLocked(), ps.changed
		c.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// destroyPool destroys every sandbox of pool id and its binding records.
func (c *Controller) destroyPool(ctx context.Context, id string) error {
	if c.rt == nil {
		return c.deleteRecords(ctx, id)
	}
	c.mu.Lock()
	ps := c.poolLocked(id)
	ps.state = model.StateDeleting
	victims := ps.ready
	ps.ready = nil
	for _, s := range ps.claimed {
		s.gone = true
		victims = append(victims, s.sb)
	}
	c.metrics.sessionsEnded(ps.key, EndPoolDeleted, len(ps.claimed))
	clear(ps.claimed)
	ps.stopping += len(victims)
	c.mu.Unlock()

	sem := make(chan struct{}, 16)
	done := make(chan struct{}, len(victims))
	for _, sb := range victims {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; done <- struct{}{} }()
			c.destroy(ps, sb)
		}()
	}
	for range victims {
		<-done
	}
	c.mu.Lock()
	ps.stopping -= len(victims)
	ps.notifyLocked()
	c.mu.Unlock()
	if err := c.waitIdle(ctx, ps); err != nil {
		return err
	}
	// Sandboxes no memory holds (adoption leftovers, a crash mid-start).
	list, err := c.rt.List(ctx)
	if err != nil {
		return fmt.Errorf("list sandboxes: %w", err)
	}
	for _, sb := range list {
		if sb.Labels[LabelPool] != ps.key {
			continue
		}
		if err := c.rt.Destroy(ctx, sb.ID); err != nil && !errors.Is(err, sandbox.ErrNotFound) {
			return fmt.Errorf("destroy sandbox %s: %w", sb.ID, err)
		}
	}
	c.log.InfoContext(ctx, "session pool sandboxes destroyed", "pool", id, "count", len(victims))
	return c.deleteRecords(ctx, id)
}
