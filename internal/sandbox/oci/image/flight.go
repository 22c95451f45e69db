package image

import (
	"context"
	"sync"
)

// group runs one call per key at a time and gives its result to every
// caller that asked for that key while it ran (like
// golang.org/x/sync/singleflight, with contexts).
//
// The call runs in its own goroutine under a context detached from any one
// caller's cancellation: a caller that gives up does not fail the others.
// When the last waiting caller gives up, the call's context is cancelled,
// which stops the goroutine, and the key is freed so that a later caller
// starts afresh rather than joining a cancelled call.
type group[V any] struct {
	// mu guards calls and the waiters count of each call.
	mu    sync.Mutex
	calls map[string]*call[V]
}

type call[V any] struct {
	done    chan struct{} // closed when val and err are set
	val     V
	err     error
	waiters int
	cancel  context.CancelFunc
}

// do returns the result of fn for key, running fn unless a call for key is
// already under way. fn's context keeps ctx's values but not its deadline or
// cancellation. If ctx ends first, do returns ctx.Err().
func (g *group[V]) do(ctx context.Context, key string, fn func(context.Context) (V, error)) (V, error) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = map[string]*call[V]{}
	}
	c, ok := g.calls[key]
	if !ok {
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		c = &call[V]{done: make(chan struct{}), cancel: cancel}
		g.calls[key] = c
		go func() {
			defer cancel()
			v, err := fn(cctx)
			g.mu.Lock()
			c.val, c.err = v, err
			if g.calls[key] == c {
				delete(g.calls, key)
			}
			g.mu.Unlock()
			close(c.done)
		}()
	}
	c.waiters++
	g.mu.Unlock()

	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
		g.mu.Lock()
		c.waiters--
		if c.waiters == 0 {
			c.cancel()
			if g.calls[key] == c {
				delete(g.calls, key)
			}
		}
		g.mu.Unlock()
		var zero V
		return zero, ctx.Err()
	}
}
