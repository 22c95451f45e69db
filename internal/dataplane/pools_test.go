package dataplane

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tidepool-dev/tidepool/internal/model"
	"github.com/tidepool-dev/tidepool/internal/pool"
)

// countingPools answers from a map and counts reads.
type countingPools struct {
	pools map[string]*model.SessionPool
	reads int
}

func (c *countingPools) GetPool(_ context.Context, id string) (*model.SessionPool, error) {
	c.reads++
	if p, ok := c.pools[id]; ok {
		return p, nil
	}
	return nil, pool.ErrPoolNotFound
}

func TestCachedPools(t *testing.T) {
	ctx := context.Background()
	src := &countingPools{pools: map[string]*model.SessionPool{"/p/A": {Name: "a"}}}
	now := time.Unix(1000, 0)
	c := CachedPools(src, time.Second).(*cachedPools)
	c.now = func() time.Time { return now }

	get := func(id string) (*model.SessionPool, error) { t.Helper(); return c.GetPool(ctx, id) }
	if p, err := get("/p/A"); err != nil || p.Name != "a" {
		t.Fatalf("first GetPool = %v, %v", p, err)
	}
	if _, err := get("/p/a"); err != nil || src.reads != 1 {
		t.Errorf("second GetPool (other casing): err %v, %d reads; want a cache hit", err, src.reads)
	}
	now = now.Add(time.Second)
	if _, err := get("/p/A"); err != nil || src.reads != 2 {
		t.Errorf("after ttl: err %v, %d reads; want a fresh read", err, src.reads)
	}

	// Misses are not cached: a pool created meanwhile is served at once.
	if _, err := get("/p/B"); !errors.Is(err, pool.ErrPoolNotFound) {
		t.Fatalf("missing pool: %v", err)
	}
	src.pools["/p/B"] = &model.SessionPool{Name: "b"}
	if p, err := get("/p/B"); err != nil || p.Name != "b" {
		t.Errorf("pool created after a miss = %v, %v", p, err)
	}

	// An error drops what was cached.
	delete(src.pools, "/p/A")
	now = now.Add(time.Second)
	if _, err := get("/p/A"); !errors.Is(err, pool.ErrPoolNotFound) {
		t.Errorf("deleted pool after ttl: %v, want ErrPoolNotFound", err)
	}
}
