package dataplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

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
