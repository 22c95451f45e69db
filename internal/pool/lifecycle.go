package pool

import (
	"context"
	"strings"
	"time"

	"github.com/tidepool-dev/tidepool/internal/model"
	"github.com/tidepool-dev/tidepool/internal/sandbox"
)

// reapLoop runs reap every reapEvery on the controller's clock.
func (c *Controller) reapLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.clock.After(c.reapEvery):
			c.reap(ctx)
			c.refreshIdentities(ctx)
		}
	}
}

type reapCandidate struct {
	ps *livePool
	s  *session
}

// reap ends the sessions whose time is up: Timed ones cooldown after their
// last activity, and any session maxAlivePeriod after its creation (the
// earlier of the two when both are set); OnContainerExit ones also when
// their container's process has exited.
func (c *Controller) reap(ctx context.Context) {
	now := c.clock.Now()
	var expired, check []reapCandidate
	c.mu.Lock()
	for _, ps := range c.pools {
		if ps.cfg == nil || ps.state == model.StateDeleting {
			continue
		}
		for _, s := range ps.claimed {
			if exp := ps.cfg.expires(s.created, s.last); !exp.IsZero() && !now.Before(exp) {
				expired = append(expired, reapCandidate{ps, s})
			} else if strings.EqualFold(ps.cfg.lifecycle, model.LifecycleOnContainerExit) && s.sb.kind == sandbox.KindCustom {
				check = append(check, reapCandidate{ps, s})
			}
		}
	}
	c.mu.Unlock()

	for _, cand := range expired {
		ps, s := cand.ps, cand.s
		c.endSession(ctx, ps, s, ps.cfg.expiryReason(s.created, now), func() bool {
			exp := ps.cfg.expires(s.created, s.last)
			return !exp.IsZero() && !c.clock.Now().Before(exp)
		})
	}
	for _, cand := range check {
		if ctx.Err() != nil {
			return
		}
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		h, err := cand.s.sb.agent.Health(hctx)
		cancel()
		if err == nil && h.ContainerExit != nil {
			c.endSession(ctx, cand.ps, cand.s, EndContainerExit, nil)
		}
	}
}
