package pool

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidepool-dev/tidepool/internal/model"
	"github.com/tidepool-dev/tidepool/internal/store"
)

const (
	groupID = "/subscriptions/s1/resourceGroups/rg1"
	poolID  = groupID + "/providers/Microsoft.App/sessionPools/p1"
)

func newStore(t testing.TB) store.Store {
	t.Helper()
	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func putJSON(t *testing.T, st store.Store, id, typ, scope string, v any) {
	t.Helper()
	body, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutResource(context.Background(), &store.Resource{ID: id, Type: typ, Scope: scope, Body: body}); err != nil {
		t.Fatal(err)
	}
}

func putPool(t *testing.T, st store.Store, state string) {
	t.Helper()
	putJSON(t, st, poolID, model.SessionPoolType, groupID, &model.SessionPool{
		ID: poolID, Name: "p1", Location: "eastus",
		Properties: &model.PoolProperties{ProvisioningState: state},
	})
}

func putGroup(t *testing.T, st store.Store, state string) {
	t.Helper()
	putJSON(t, st, groupID, model.ResourceGroupType, "/subscriptions/s1", &model.ResourceGroup{
		ID: groupID, Name: "rg1", Location: "eastus",
		Properties: &model.ResourceGroupProperties{ProvisioningState: state},
	})
}

func startOp(t testing.TB, st store.Store, id, kind, resource string) {
	t.Helper()
	op := &store.Operation{ID: id, Kind: kind, ResourceID: resource, Status: store.OperationInProgress, Started: time.Unix(100, 0)}
	if err := st.PutOperation(context.Background(), op); err != nil {
		t.Fatal(err)
	}
}

func opStatus(t testing.TB, st store.Store, id string) *store.Operation {
	t.Helper()
	op, err := st.GetOperation(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return op
}

func poolState(t *testing.T, st store.Store) string {
	t.Helper()
	res, err := st.GetResource(context.Background(), poolID)
	if errors.Is(err, store.ErrNotFound) {
		return "gone"
	}
	if err != nil {
		t.Fatal(err)
	}
	return provisioningState(res.Body)
}

// TestReconcile runs Reconcile twice on each starting state: the second pass
// must change nothing (level-based, idempotent).
func TestReconcile(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(t *testing.T, st store.Store)
		reconcile string
		wantPool  string
		wantGroup string // "" means not checked
		wantOp    string // status of operation "op"
		wantErr   string // error code of operation "op"
	}{
		{
			name: "in progress becomes succeeded",
			setup: func(t *testing.T, st store.Store) {
				putPool(t, st, model.StateInProgress)
				startOp(t, st, "op", "put", poolID)
			},
			reconcile: poolID, wantPool: model.StateSucceeded, wantOp: store.OperationSucceeded,
		},
		{
			name: "deleting pool is removed",
			setup: func(t *testing.T, st store.Store) {
				putPool(t, st, model.StateDeleting)
				startOp(t, st, "op", "delete", poolID)
			},
			reconcile: poolID, wantPool: "gone", wantOp: store.OperationSucceeded,
		},
		{
			name:      "missing resource completes its delete",
			setup:     func(t *testing.T, st store.Store) { startOp(t, st, "op", "delete", poolID) },
			reconcile: poolID, wantPool: "gone", wantOp: store.OperationSucceeded,
		},
		{
			name: "failed pool fails its operation",
			setup: func(t *testing.T, st store.Store) {
				putJSON(t, st, poolID, model.SessionPoolType, groupID, &model.SessionPool{ID: poolID, Properties: &model.PoolProperties{
					ProvisioningState: model.StateFailed, ProvisioningError: &model.ErrorInfo{Code: "ImagePullFailed", Message: "no such image"},
				}})
				startOp(t, st, "op", "put", poolID)
			},
			reconcile: poolID, wantPool: model.StateFailed, wantOp: store.OperationFailed, wantErr: "ImagePullFailed",
		},
		{
			name: "operation on another resource is left alone",
			setup: func(t *testing.T, st store.Store) {
				putPool(t, st, model.StateInProgress)
				startOp(t, st, "op", "put", groupID+"/providers/Microsoft.App/sessionPools/other")
			},
			reconcile: poolID, wantPool: model.StateSucceeded, wantOp: store.OperationInProgress,
		},
		{
			name: "deleting group takes its pools and environments",
			setup: func(t *testing.T, st store.Store) {
				putGroup(t, st, model.StateDeleting)
				putPool(t, st, model.StateSucceeded)
				putJSON(t, st, groupID+"/providers/Microsoft.App/managedEnvironments/e1", model.ManagedEnvironmentType, groupID, map[string]any{})
				startOp(t, st, "op", "delete", groupID)
			},
			reconcile: groupID, wantPool: "gone", wantGroup: "gone", wantOp: store.OperationSucceeded,
		},
		{
			name: "succeeded group is kept",
			setup: func(t *testing.T, st store.Store) {
				putGroup(t, st, model.StateSucceeded)
				putPool(t, st, model.StateSucceeded)
				startOp(t, st, "op", "put", groupID)
			},
			reconcile: groupID, wantPool: model.StateSucceeded, wantGroup: model.StateSucceeded, wantOp: store.OperationSucceeded,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newStore(t)
			tt.setup(t, st)
			c := New(st)
			ctx := context.Background()
			for pass := 1; pass <= 2; pass++ {
				if err := c.Reconcile(ctx, tt.reconcile); err != nil {
					t.Fatalf("pass %d: Reconcile(%s) = %v", pass, tt.reconcile, err)
				}
				if got := poolState(t, st); got != tt.wantPool {
					t.Errorf("pass %d: pool state = %q, want %q", pass, got, tt.wantPool)
				}
				if tt.wantGroup != "" {
					res, err := st.GetResource(ctx, groupID)
					got := "gone"
					if err == nil {
						got = provisioningState(res.Body)
					}
					if got != tt.wantGroup {
						t.Errorf("pass %d: group state = %q, want %q", pass, got, tt.wantGroup)
					}
				}
				op := opStatus(t, st, "op")
				if op.Status != tt.wantOp || op.ErrorCode != tt.wantErr {
					t.Errorf("pass %d: operation = %s/%q, want %s/%q", pass, op.Status, op.ErrorCode, tt.wantOp, tt.wantErr)
				}
				if op.Status != store.OperationInProgress && op.Ended.IsZero() {
					t.Errorf("pass %d: finished operation has no end time", pass)
				}
			}
		})
	}
}

// TestRunResumesWork checks that Run finishes what a previous process left:
// a pool in progress and a pending operation, with nothing enqueued.
func TestRunResumesWork(t *testing.T) {
	st := newStore(t)
	putPool(t, st, model.StateInProgress)
	startOp(t, st, "op", "put", poolID)

	c := New(st)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for opStatus(t, st, "op").Status == store.OperationInProgress {
		if time.Now().After(deadline) {
			t.Fatal("operation still in progress after 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := poolState(t, st); got != model.StateSucceeded {
		t.Errorf("pool state = %q, want %q", got, model.StateSucceeded)
	}
}

// TestRunStoppedWhileStarting: a Run whose context ends before its
// resync has read the store is a shutdown, not a failure.
func TestRunStoppedWhileStarting(t *testing.T) {
	st := newStore(t)
	putPool(t, st, model.StateInProgress)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := New(st).Run(ctx); err != nil {
		t.Errorf("Run with a context ended at start = %v, want nil", err)
	}
}

// TestEnqueueCoalesces checks that repeated requests for one id before a
// worker runs become one pending item.
func TestEnqueueCoalesces(t *testing.T) {
	c := New(nil)
	for range 5 {
		c.Enqueue(poolID)
	}
	c.Enqueue(groupID)
	seen := map[string]int{}
	for id := c.next(); id != ""; id = c.next() {
		seen[id]++
	}
	if len(seen) != 2 || seen[strings.ToLower(poolID)] != 1 || seen[strings.ToLower(groupID)] != 1 {
		t.Errorf("pending = %v, want each id once", seen)
	}
}
