package pool

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tidepool-dev/tidepool/internal/agent/client"
	"github.com/tidepool-dev/tidepool/internal/agent/wire"
	"github.com/tidepool-dev/tidepool/internal/model"
	"github.com/tidepool-dev/tidepool/internal/sandbox"
	"github.com/tidepool-dev/tidepool/internal/store"
)

// SessionRecordType is the store type of session bindings: private to the
// controller, invisible to ARM (whose lists select their own types). A
// record's id is the pool id + "/sessions/" + a hash of the identifier, its
// scope the pool id, so that a pool's and a resource group's deletion find
// them.
const SessionRecordType = "Tidepool/sessions"

// bindingRecord is the stored form of a session.
type bindingRecord struct {
	Identifier   string    `json:"identifier"`
	SandboxID    string    `json:"sandboxId"`
	Kind         string    `json:"kind"`
	Template     string    `json:"template"`
	Created      time.Time `json:"created"`
	LastActivity time.Time `json:"lastActivity"`
	Expires      time.Time `json:"expires,omitzero"`
}

func recordID(poolID, ident string) string {
	sum := sha256.Sum256([]byte(ident))
	return poolID + "/sessions/" + hex.EncodeToString(sum[:16])
}

// flushLoop stores new bindings when poked and last activity every
// flushEvery on the controller's clock.
func (c *Controller) flushLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.flushPoke:
		case <-c.clock.After(c.flushEvery):
		}
		if err := c.flush(ctx); err != nil && ctx.Err() == nil {
			c.log.ErrorContext(ctx, "store session bindings", "err", err)
		}
	}
}

type pendingWrite struct {
	ps      *livePool
	s       *session
	rec     bindingRecord
	version int64
}

// flush writes the bindings that are new or whose last activity changed.
func (c *Controller) flush(ctx context.Context) error {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	var writes []pendingWrite
	c.mu.Lock()
	for _, ps := range c.pools {
		if ps.state == model.StateDeleting {
			continue
		}
		for _, s := range ps.claimed {
			if s.gone || (s.version != 0 && s.last.Equal(s.persisted)) {
				continue
			}
			rec := bindingRecord{Identifier: s.ident, SandboxID: s.sb.id, Kind: s.sb.kind, Template: s.sb.hash, Created: s.created.UTC(), LastActivity: s.last.UTC()}
			if ps.cfg != nil {
				rec.Expires = ps.cfg.expires(s.created, s.last).UTC()
			}
			writes = append(writes, pendingWrite{ps, s, rec, s.version})
		}
	}
	c.mu.Unlock()
	var errs []error
	for _, w := range writes {
		version, err := c.putRecord(ctx, w.ps.id, &w.rec, w.version)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.mu.Lock()
		w.s.version, w.s.persisted = version, w.rec.LastActivity
		c.mu.Unlock()
	}
	return errors.Join(errs...)
}

func (c *Controller) putRecord(ctx context.Context, poolID string, rec *bindingRecord, version int64) (int64, error) {
	body, err := json.Marshal(rec)
	if err != nil {
		return 0, err
	}
	id := recordID(poolID, rec.Identifier)
	for attempt := 0; ; attempt++ {
		res := &store.Resource{ID: id, Type: SessionRecordType, Scope: poolID, Body: body, Version: version}
		err := c.st.PutResource(ctx, res)
		if err == nil {
			return res.Version, nil
		}
		if attempt > 0 || !(errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrExists)) {
			return 0, fmt.Errorf("store session %s: %w", identHash(rec.Identifier), err)
		}
		// Another version is there (a record of an earlier process).
		cur, gerr := c.st.GetResource(ctx, id)
		switch {
		case errors.Is(gerr, store.ErrNotFound):
			version = 0
		case gerr != nil:
			return 0, fmt.Errorf("store session %s: %w", identHash(rec.Identifier), gerr)
		default:
			version = cur.Version
		}
	}
}

// deleteRecord deletes the binding record of ident in pool poolID.
func (c *Controller) deleteRecord(ctx context.Context, poolID, ident string) error {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	if err := c.st.DeleteResource(ctx, recordID(poolID, ident), 0); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// deleteRecords deletes every binding record of pool poolID.
func (c *Controller) deleteRecords(ctx context.Context, poolID string) error {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	for {
		page, err := c.st.ListResources(ctx, store.ListOptions{Type: SessionRecordType, Scope: poolID, Limit: 500})
		if err != nil {
			return fmt.Errorf("list session records: %w", err)
		}
		for _, r := range page.Items {
			if err := c.st.DeleteResource(ctx, r.ID, 0); err != nil && !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("delete session record: %w", err)
			}
		}
		if page.Next == "" {
			return nil
		}
	}
}

// dropRecord deletes a binding record met by a resource group's deletion
// (its pool normally took it already): its session ends first.
func (c *Controller) dropRecord(ctx context.Context, res *store.Resource) error {
	var rec bindingRecord
	if json.Unmarshal(res.Body, &rec) == nil && rec.Identifier != "" {
		c.mu.Lock()
		ps := c.pools[strings.ToLower(res.Scope)]
		var s *session
		if ps != nil {
			s = ps.claimed[rec.Identifier]
		}
		c.mu.Unlock()
		if s != nil {
			c.endSession(ctx, ps, s, "resource group deleted", nil)
		} else if c.rt != nil && rec.SandboxID != "" {
			if err := c.rt.Destroy(ctx, rec.SandboxID); err != nil && !errors.Is(err, sandbox.ErrNotFound) {
				return fmt.Errorf("destroy sandbox %s: %w", rec.SandboxID, err)
			}
		}
	}
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	if err := c.st.DeleteResource(ctx, res.ID, 0); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("delete %s: %w", res.ID, err)
	}
	return nil
}

// listAll lists every resource of typ.
func (c *Controller) listAll(ctx context.Context, typ string) ([]store.Resource, error) {
	var out []store.Resource
	var after string
	for {
		page, err := c.st.ListResources(ctx, store.ListOptions{Type: typ, After: after, Limit: 500})
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", typ, err)
		}
		out = append(out, page.Items...)
		if page.Next == "" {
			return out, nil
		}
		after = page.Next
	}
}

type storedRecord struct {
	bindingRecord
	poolKey string
	id      string
	version int64
}

// adopt reconciles the runtime's sandboxes with the store after a start:
//
//   - a sandbox whose pool is gone, is being deleted, or cannot be loaded,
//     or whose agent does not answer or speaks another API version, is
//     destroyed;
//   - a sandbox whose agent reports an identifier becomes that session
//     again, with the created and last-activity times of its binding
//     record; one without a record (the process ended before the flusher
//     stored it) is adopted too, its last activity being now;
//   - an unbound sandbox of the pool's current template joins the ready
//     set up to its target; others are destroyed;
//   - a binding record whose sandbox is gone is deleted (that session's
//     state is lost).
//
// Then every loaded pool's warm set is refilled.
func (c *Controller) adopt(ctx context.Context) error {
	sbs, err := c.rt.List(ctx)
	if err != nil {
		return fmt.Errorf("adopt: list sandboxes: %w", err)
	}
	recs, err := c.listAll(ctx, SessionRecordType)
	if err != nil {
		return fmt.Errorf("adopt: %w", err)
	}
	bySandbox := map[string]*storedRecord{}
	for _, r := range recs {
		sr := &storedRecord{poolKey: strings.ToLower(r.Scope), id: r.ID, version: r.Version}
		if json.Unmarshal(r.Body, &sr.bindingRecord) != nil {
			sr.SandboxID = ""
		}
		bySandbox[sr.SandboxID] = sr
	}
	pools, err := c.listAll(ctx, model.SessionPoolType)
	if err != nil {
		return fmt.Errorf("adopt: %w", err)
	}
	for _, res := range pools {
		var p model.SessionPool
		if json.Unmarshal(res.Body, &p) != nil {
			continue
		}
		if p.Properties == nil {
			p.Properties = &model.PoolProperties{}
		}
		if p.Properties.ProvisioningState == model.StateDeleting {
			continue // its reconcile destroys its sandboxes
		}
		cfg, err := newPoolConfig(res.ID, &p, c.builtins)
		if err != nil {
			continue
		}
		c.mu.Lock()
		ps := c.poolLocked(res.ID)
		ps.id, ps.cfg, ps.state = res.ID, cfg, p.Properties.ProvisioningState
		c.mu.Unlock()
	}

	var destroy []string
	var stale []*storedRecord
	adopted, warm := 0, 0
	for _, sb := range sbs {
		c.mu.Lock()
		ps := c.pools[sb.Labels[LabelPool]]
		ok := ps != nil && ps.cfg != nil && ps.state != model.StateDeleting
		c.mu.Unlock()
		rec := bySandbox[sb.ID]
		delete(bySandbox, sb.ID)
		if !ok {
			destroy = append(destroy, sb.ID)
			if rec != nil && ps == nil {
				stale = append(stale, rec) // a deleting pool's reconcile takes its own
			}
			continue
		}
		agent := client.New(sb.Socket)
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		h, err := agent.Health(hctx)
		cancel()
		if err == nil {
			err = adoptable(h)
		}
		if err == nil && h.Version != wire.Version {
			c.log.WarnContext(ctx, "keeping a session whose agent is from another release", "pool", ps.id, "sandbox", sb.ID,
				"agent_version", h.Version, "want", wire.Version)
		}
		if err != nil {
			c.log.WarnContext(ctx, "sandbox not adoptable; destroying it", "pool", ps.id, "sandbox", sb.ID, "err", err)
			agent.Close()
			destroy = append(destroy, sb.ID)
			if rec != nil {
				stale = append(stale, rec)
			}
			continue
		}
		ref := &sandboxRef{id: sb.ID, kind: sb.Labels[LabelKind], hash: sb.Labels[LabelTemplate], created: sb.Created, agent: agent}
		ident := h.Identifier
		now := c.clock.Now()
		c.mu.Lock()
		if ref.hash == ps.cfg.hash {
			ref.cfg = ps.cfg
		}
		if ref.kind == "" {
			ref.kind = ps.cfg.spec.Kind
		}
		switch {
		case rec != nil && rec.Identifier != ident:
			// The record and the agent disagree (the agent lost its
			// binding): the sandbox may hold a session's files, so it is
			// never reused.
			destroy = append(destroy, sb.ID)
			stale = append(stale, rec)
			agent.Close()
		case ident != "" && ps.claimed[ident] == nil:
			s := &session{ident: ident, sb: ref, created: now, last: now}
			if rec != nil {
				s.created, s.last, s.persisted, s.version = rec.Created, rec.LastActivity, rec.LastActivity, rec.version
				if rec.Kind != "" {
					ref.kind = rec.Kind
				}
			}
			ps.claimed[ident] = s
			adopted++
		case ident == "" && rec == nil && ref.cfg != nil && len(ps.ready) < ps.targetLocked():
			ps.ready = append(ps.ready, ref)
			warm++
		default:
			destroy = append(destroy, sb.ID)
			agent.Close()
		}
		c.mu.Unlock()
	}
	for _, rec := range bySandbox {
		stale = append(stale, rec)
	}
	for _, rec := range stale {
		c.log.WarnContext(ctx, "session lost: its sandbox is gone", "identifier_hash", identHash(rec.Identifier), "sandbox", rec.SandboxID)
		if err := c.st.DeleteResource(ctx, rec.id, 0); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("adopt: delete record: %w", err)
		}
	}
	for _, id := range destroy {
		if err := c.rt.Destroy(ctx, id); err != nil && !errors.Is(err, sandbox.ErrNotFound) {
			c.log.ErrorContext(ctx, "destroy unadopted sandbox", "sandbox", id, "err", err)
		}
	}
	c.mu.Lock()
	for _, ps := range c.pools {
		if ps.cfg != nil && len(ps.ready) >= ps.targetLocked() {
			ps.filled = ps.cfg.hash
		}
		c.ensureLocked(ps)
	}
	c.mu.Unlock()
	c.log.InfoContext(ctx, "sandboxes adopted", "sessions", adopted, "warm", warm, "destroyed", len(destroy))
	return nil
}

// adoptable decides whether a running sandbox found at start can be kept.
// An agent from another release (another API version) is kept while it
// holds a session: replacing it would lose the session's interpreter state
// and files, and the routes a session uses have stayed compatible. An
// unbound one is replaced by a sandbox of this release.
func adoptable(h *wire.Health) error {
	if h.Version != wire.Version && h.Identifier == "" {
		return fmt.Errorf("agent speaks API version %q, want %q; an unbound sandbox is replaced", h.Version, wire.Version)
	}
	return nil
}
