package pool

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tidepool-dev/tidepool/internal/agent/wire"
	"github.com/tidepool-dev/tidepool/internal/model"
	"github.com/tidepool-dev/tidepool/internal/store"
)

// Allocation values of Session.Allocation.
const (
	AllocationExisting = "existing"
	AllocationClaimed  = "claimed"
	AllocationCold     = "cold"
)

// initTimeout bounds the agent's /init at claim.
const initTimeout = 30 * time.Second

type flightKey struct{ pool, ident string }

// flight is a claim in progress; waiters read err once done is closed.
type flight struct {
	done chan struct{}
	err  error
}

// identHash is how logs name an identifier: identifiers are the callers'
// secrets (whoever knows one reaches the session).
func identHash(ident string) string {
	sum := sha256.Sum256([]byte(ident))
	return hex.EncodeToString(sum[:6])
}

// Acquire returns the session bound to identifier in pool poolID, binding
// a sandbox to it first if there is none: one from the warm set (Allocation
// "claimed") or, when the warm set is empty, one started for it ("cold").
// Concurrent first requests for one identifier share one claim. A new
// identifier beyond maxConcurrentSessions gets ErrPoolFull. Every call
// counts as activity of the session (it resets the cooldown).
func (c *Controller) Acquire(ctx context.Context, poolID, identifier string) (*Session, error) {
	start := time.Now()
	if identifier == "" {
		return nil, fmt.Errorf("acquire: empty identifier: %w", ErrSessionNotFound)
	}
	ps, err := c.poolFor(ctx, poolID)
	if err != nil {
		return nil, err
	}
	key := flightKey{ps.key, identifier}
	for {
		c.mu.Lock()
		if s := ps.claimed[identifier]; s != nil {
			c.touchLocked(s)
			out := c.snapshotLocked(ps, s, AllocationExisting)
			c.mu.Unlock()
			out.AllocationDuration = time.Since(start)
			return out, nil
		}
		f := c.flights[key]
		if f == nil {
			break // leader; c.mu still held
		}
		c.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("acquire session %s: %w", identHash(identifier), ctx.Err())
		}
		if f.err != nil {
			return nil, f.err
		}
	}
	// c.mu is held.
	if err := ps.acceptingLocked(); err != nil {
		c.mu.Unlock()
		return nil, err
	}
	if ps.boundLocked() >= ps.cfg.max {
		n := ps.cfg.max
		c.mu.Unlock()
		return nil, fmt.Errorf("claim %s: all %d sessions of %s are allocated: %w", identHash(identifier), n, ps.id, ErrPoolFull)
	}
	f := &flight{done: make(chan struct{})}
	c.flights[key] = f
	ps.claiming++
	ps.highWater = max(ps.highWater, ps.boundLocked())
	sb := ps.popReadyLocked()
	cfg := ps.cfg
	// The refill starts after the claim and its first execution (see
	// afterClaimDelay): a sandbox starting now would compete with them for the
	// CPU.
	c.mu.Unlock()

	sb, alloc, err := c.bind(ctx, ps, cfg, sb, identifier)

	c.mu.Lock()
	delete(c.flights, key)
	ps.claiming--
	var out *Session
	if err == nil {
		if aerr := ps.acceptingLocked(); aerr != nil || c.closed {
			c.destroyLaterLocked(ps, sb)
			err = cmpErr(aerr, fmt.Errorf("claim: controller stopped: %w", ErrPoolNotReady))
		}
	}
	if err == nil {
		now := c.clock.Now()
		s := &session{ident: identifier, sb: sb, created: now, last: now}
		ps.claimed[identifier] = s
		out = c.snapshotLocked(ps, s, alloc)
	}
	f.err = err
	close(f.done)
	ps.notifyLocked()
	if err == nil {
		c.afterClaimLocked(ps)
	} else {
		c.ensureLocked(ps)
	}
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	out.AllocationDuration = time.Since(start)
	c.metrics.claimed(ps.key, alloc, out.AllocationDuration)
	c.log.DebugContext(ctx, "session bound", "pool", ps.id, "identifier_hash", identHash(identifier), "sandbox", sb.id, "allocation", alloc, "duration", out.AllocationDuration)
	return out, nil
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// bind initializes sb (or, when nil, a sandbox started for the purpose)
// for identifier. A sandbox whose agent fails /init is destroyed and
// another one tried.
func (c *Controller) bind(ctx context.Context, ps *livePool, cfg *poolConfig, sb *sandboxRef, identifier string) (*sandboxRef, string, error) {
	alloc := AllocationClaimed
	for attempt := 1; ; attempt++ {
		if sb == nil {
			alloc = AllocationCold
			var err error
			if sb, err = c.create(ctx, ps, cfg, startCold); err != nil {
				return nil, "", fmt.Errorf("claim %s: start a sandbox: %w", identHash(identifier), err)
			}
		}
		req := wire.InitRequest{Identifier: identifier}
		if sb.cfg != nil {
			req.Env, req.Secrets = sb.cfg.initEnv, sb.cfg.initSecrets
		}
		ictx, cancel := context.WithTimeout(ctx, initTimeout)
		_, err := sb.agent.Init(ictx, req)
		cancel()
		if err == nil && c.tokens != nil && len(cfg.identities) > 0 {
			var exp time.Time
			if exp, err = c.pushIdentities(ctx, sb, cfg.identities); err == nil {
				c.mu.Lock()
				sb.identityExpires = exp
				c.mu.Unlock()
			}
		}
		if err == nil {
			return sb, alloc, nil
		}
		c.log.WarnContext(ctx, "sandbox refused init; discarding it", "pool", ps.id, "identifier_hash", identHash(identifier), "sandbox", sb.id, "err", err)
		c.mu.Lock()
		c.destroyLaterLocked(ps, sb)
		sb = nil
		if attempt >= 3 || ctx.Err() != nil {
			c.mu.Unlock()
			return nil, "", fmt.Errorf("claim %s: init sandbox: %w", identHash(identifier), err)
		}
		sb = ps.popReadyLocked()
		c.ensureLocked(ps)
		c.mu.Unlock()
	}
}

// acceptingLocked says whether the pool takes new sessions.
func (ps *livePool) acceptingLocked() error {
	switch ps.state {
	case model.StateDeleting:
		return fmt.Errorf("session pool %s is being deleted: %w", ps.id, ErrPoolNotReady)
	case model.StateFailed:
		return fmt.Errorf("session pool %s failed to provision: %w", ps.id, ErrPoolNotReady)
	}
	if ps.cfg == nil {
		return fmt.Errorf("session pool %s is not loaded: %w", ps.id, ErrPoolNotReady)
	}
	return nil
}

// poolFor returns the state of pool poolID, loading it from the store if
// the controller has not seen it yet.
func (c *Controller) poolFor(ctx context.Context, poolID string) (*livePool, error) {
	if c.rt == nil {
		return nil, fmt.Errorf("session pool %s: no sandbox runtime is configured: %w", poolID, ErrPoolNotReady)
	}
	if err := c.waitAdopted(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	ps := c.pools[strings.ToLower(poolID)]
	if ps != nil && ps.cfg != nil {
		err := ps.acceptingLocked()
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
		return ps, nil
	}
	c.mu.Unlock()
	res, err := c.st.GetResource(ctx, poolID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !strings.EqualFold(res.Type, model.SessionPoolType)) {
		return nil, fmt.Errorf("session pool %s: %w", poolID, ErrPoolNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("session pool %s: %w", poolID, err)
	}
	var p model.SessionPool
	if err := json.Unmarshal(res.Body, &p); err != nil {
		return nil, fmt.Errorf("session pool %s: decode: %w", poolID, err)
	}
	if p.Properties == nil {
		p.Properties = &model.PoolProperties{}
	}
	switch p.Properties.ProvisioningState {
	case model.StateDeleting, model.StateFailed:
		return nil, fmt.Errorf("session pool %s is %s: %w", poolID, p.Properties.ProvisioningState, ErrPoolNotReady)
	}
	c.provision(res.ID, &p)
	c.mu.Lock()
	defer c.mu.Unlock()
	ps = c.pools[strings.ToLower(poolID)]
	if err := ps.acceptingLocked(); err != nil {
		return nil, err
	}
	return ps, nil
}

// Lookup returns the session bound to identifier without creating one
// (ErrSessionNotFound). It counts as activity of the session.
func (c *Controller) Lookup(ctx context.Context, poolID, identifier string) (*Session, error) {
	if err := c.waitAdopted(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	ps := c.pools[strings.ToLower(poolID)]
	if ps != nil && ps.cfg != nil {
		if s := ps.claimed[identifier]; s != nil {
			c.touchLocked(s)
			out := c.snapshotLocked(ps, s, AllocationExisting)
			c.mu.Unlock()
			return out, nil
		}
		c.mu.Unlock()
		return nil, fmt.Errorf("session %s: %w", identHash(identifier), ErrSessionNotFound)
	}
	c.mu.Unlock()
	if err := c.poolExists(ctx, poolID); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("session %s: %w", identHash(identifier), ErrSessionNotFound)
}

func (c *Controller) poolExists(ctx context.Context, poolID string) error {
	res, err := c.st.GetResource(ctx, poolID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !strings.EqualFold(res.Type, model.SessionPoolType)) {
		return fmt.Errorf("session pool %s: %w", poolID, ErrPoolNotFound)
	}
	if err != nil {
		return fmt.Errorf("session pool %s: %w", poolID, err)
	}
	return nil
}

// Sessions returns the pool's live sessions, oldest first. It does not
// count as activity.
func (c *Controller) Sessions(ctx context.Context, poolID string) ([]Session, error) {
	if err := c.waitAdopted(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	ps := c.pools[strings.ToLower(poolID)]
	if ps != nil && ps.cfg != nil {
		out := make([]Session, 0, len(ps.claimed))
		for _, s := range ps.claimed {
			out = append(out, *c.snapshotLocked(ps, s, AllocationExisting))
		}
		c.mu.Unlock()
		slices.SortFunc(out, func(a, b Session) int {
			if d := a.Created.Compare(b.Created); d != 0 {
				return d
			}
			return strings.Compare(a.SandboxID, b.SandboxID)
		})
		return out, nil
	}
	c.mu.Unlock()
	if err := c.poolExists(ctx, poolID); err != nil {
		return nil, err
	}
	return []Session{}, nil
}

// Stop ends the session bound to identifier: its sandbox is destroyed and
// the identifier is free again.
func (c *Controller) Stop(ctx context.Context, poolID, identifier string) error {
	if err := c.waitAdopted(ctx); err != nil {
		return err
	}
	c.mu.Lock()
	ps := c.pools[strings.ToLower(poolID)]
	var s *session
	if ps != nil {
		s = ps.claimed[identifier]
	}
	c.mu.Unlock()
	if s == nil {
		if err := c.poolExists(ctx, poolID); err != nil {
			return err
		}
		return fmt.Errorf("session %s: %w", identHash(identifier), ErrSessionNotFound)
	}
	if !c.endSession(ctx, ps, s, EndStopped, nil) {
		return fmt.Errorf("session %s: %w", identHash(identifier), ErrSessionNotFound)
	}
	return nil
}

// endSession ends s if it is still bound and, when still is given, still
// qualifies (checked under c.mu). It destroys the sandbox, then the
// binding record.
func (c *Controller) endSession(ctx context.Context, ps *livePool, s *session, reason string, still func() bool) bool {
	c.mu.Lock()
	if ps.claimed[s.ident] != s || (still != nil && !still()) {
		c.mu.Unlock()
		return false
	}
	delete(ps.claimed, s.ident)
	s.gone = true
	ps.stopping++
	c.mu.Unlock()

	c.destroy(ps, s.sb)
	c.metrics.sessionsEnded(ps.key, reason, 1)
	c.log.InfoContext(ctx, "session ended", "pool", ps.id, "identifier_hash", identHash(s.ident), "sandbox", s.sb.id, "reason", reason)

	c.mu.Lock()
	ps.stopping--
	ps.notifyLocked()
	c.ensureLocked(ps)
	c.mu.Unlock()
	if err := c.deleteRecord(context.WithoutCancel(ctx), ps.id, s.ident); err != nil {
		c.log.ErrorContext(ctx, "delete session record", "pool", ps.id, "identifier_hash", identHash(s.ident), "err", err)
	}
	return true
}

// waitAdopted waits until Run has adopted the sandboxes of an earlier
// process; without a runtime there is nothing to wait for.
func (c *Controller) waitAdopted(ctx context.Context) error {
	if c.rt == nil {
		return nil
	}
	select {
	case <-c.adopted:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for the pool controller to start: %w", ctx.Err())
	}
}

func (c *Controller) touchLocked(s *session) {
	if now := c.clock.Now(); now.After(s.last) {
		s.last = now
	}
}

func (c *Controller) snapshotLocked(ps *livePool, s *session, alloc string) *Session {
	out := &Session{
		PoolID:       ps.id,
		Identifier:   s.ident,
		SandboxID:    s.sb.id,
		Kind:         s.sb.kind,
		Agent:        s.sb.agent,
		Created:      s.created,
		LastActivity: s.last,
		Allocation:   alloc,
	}
	if ps.cfg != nil {
		out.Expires = ps.cfg.expires(s.created, s.last)
	}
	return out
}
