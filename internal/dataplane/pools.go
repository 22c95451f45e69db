package dataplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/tidepool-dev/tidepool/internal/model"
	"github.com/tidepool-dev/tidepool/internal/pool"
	"github.com/tidepool-dev/tidepool/internal/store"
)

// StorePools reads pools from a store.Store.
func StorePools(st store.Store) Pools { return storePools{st} }

type storePools struct{ st store.Store }

// GetPool returns the stored pool; pool.ErrPoolNotFound when there is
// none, pool.ErrPoolNotReady while it is being deleted.
func (p storePools) GetPool(ctx context.Context, poolID string) (*model.SessionPool, error) {
	res, err := p.st.GetResource(ctx, poolID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("get pool: %w", pool.ErrPoolNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get pool: %w", err)
	}
	if !strings.EqualFold(res.Type, model.SessionPoolType) {
		return nil, fmt.Errorf("get pool: %w", pool.ErrPoolNotFound)
	}
	var sp model.SessionPool
	if err := json.Unmarshal(res.Body, &sp); err != nil {
		return nil, fmt.Errorf("decode stored session pool: %w", err)
	}
	if sp.Properties == nil {
		sp.Properties = &model.PoolProperties{}
	}
	if sp.Properties.ProvisioningState == model.StateDeleting {
		return nil, fmt.Errorf("get pool: %w", pool.ErrPoolNotReady)
	}
	return &sp, nil
}

// CachedPools remembers each pool p returns for ttl. The data plane reads
// the pool on every request, and a store read costs several times the
// loopback floor (docs/performance.md). A change through the management
// API reaches the data plane within ttl; the pool controller, which every
// session request goes through, is authoritative on pools being deleted.
// Misses and errors are not cached, so a new pool is served at once. The
// pools returned are shared: callers must not modify them.
func CachedPools(p Pools, ttl time.Duration) Pools {
	return &cachedPools{next: p, ttl: ttl, now: time.Now, m: map[string]cachedPool{}}
}

type cachedPools struct {
	next Pools
	ttl  time.Duration
	now  func() time.Time

	mu sync.Mutex
	m  map[string]cachedPool // guarded by mu; keys are lower-cased pool ids
}

type cachedPool struct {
	pool    *model.SessionPool
	expires time.Time
}

// maxCachedPools bounds the cache; past it, expired entries are dropped.
const maxCachedPools = 4096

func (c *cachedPools) GetPool(ctx context.Context, poolID string) (*model.SessionPool, error) {
	key, now := strings.ToLower(poolID), c.now()
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.pool, nil
	}
	p, err := c.next.GetPool(ctx, poolID)
	if err != nil {
		c.mu.Lock()
		delete(c.m, key)
		c.mu.Unlock()
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedPools {
		for k, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxCachedPools {
			clear(c.m)
		}
	}
	c.m[key] = cachedPool{pool: p, expires: now.Add(c.ttl)}
	return p, nil
}
