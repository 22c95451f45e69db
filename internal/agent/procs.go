package agent

import (
	"sync"
	"syscall"
	"time"
)

// procTable tracks the process groups of the agent's children (commands
// and the custom container) so that a stopping agent can end them all.
// Each child leads its own group; its pid is the group id.
type procTable struct {
	mu      sync.Mutex // guards the fields that follow
	groups  map[int]struct{}
	closed  bool          // stopping: no new children
	drained chan struct{} // closed when closed and groups is empty
}

// add records the group pgid. It reports false when the agent is stopping;
// the caller then kills the group itself.
func (p *procTable) add(pgid int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	if p.groups == nil {
		p.groups = map[int]struct{}{}
	}
	p.groups[pgid] = struct{}{}
	return true
}

// remove forgets pgid once its leader has been waited for.
func (p *procTable) remove(pgid int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.groups, pgid)
	if p.closed && len(p.groups) == 0 && p.drained != nil {
		close(p.drained)
		p.drained = nil
	}
}

// stopping reports whether terminate has begun.
func (p *procTable) stopping() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// signalLocked sends sig to every group.
func (p *procTable) signalLocked(sig syscall.Signal) {
	for pgid := range p.groups {
		syscall.Kill(-pgid, sig)
	}
}

// terminate refuses new children, sends SIGTERM to every group, and
// SIGKILL to those whose leader has not exited after grace. It returns when
// all leaders have been waited for, or a second later at most.
func (p *procTable) terminate(grace time.Duration) {
	p.mu.Lock()
	p.closed = true
	if len(p.groups) == 0 {
		p.mu.Unlock()
		return
	}
	drained := make(chan struct{})
	p.drained = drained
	p.signalLocked(syscall.SIGTERM)
	p.mu.Unlock()

	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-drained:
		return
	case <-t.C:
	}
	p.mu.Lock()
	p.signalLocked(syscall.SIGKILL)
	p.mu.Unlock()
	t.Reset(time.Second)
	select {
	case <-drained:
	case <-t.C:
	}
}
