package mcpkeys

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tidepool-dev/tidepool/internal/auth"
	"github.com/tidepool-dev/tidepool/internal/model"
	"github.com/tidepool-dev/tidepool/internal/store"
)

const testPool = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.App/sessionPools/p1"

func openStore(t *testing.T, dir string) *store.SQLite {
	t.Helper()
	st, err := store.OpenSQLite(context.Background(), filepath.Join(dir, "db.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// putPool stores a pool with the given MCP settings (nil: none); version
// 0 creates it.
func putPool(t *testing.T, st store.Store, id string, enabled, keyDisabled *bool, version int64) *store.Resource {
	t.Helper()
	p := model.SessionPool{ID: id, Type: model.SessionPoolType, Properties: &model.PoolProperties{
		ContainerType: model.ContainerTypeShell, ProvisioningState: model.StateSucceeded}}
	if enabled != nil {
		p.Properties.McpServerSettings = &model.McpServerSettings{IsMcpServerEnabled: enabled, IsMcpServerAPIKeyDisabled: keyDisabled}
	}
	body, _ := json.Marshal(p)
	res := &store.Resource{ID: id, Type: model.SessionPoolType, Scope: "/subscriptions/s1/resourceGroups/rg", Body: body, Version: version}
	if err := st.PutResource(context.Background(), res); err != nil {
		t.Fatal(err)
	}
	return res
}

func ptr(b bool) *bool { return &b }

func check(t *testing.T, k *Keys, poolID, key string, want bool) {
	t.Helper()
	got, err := k.Check(context.Background(), poolID, key)
	if err != nil || got != want {
		t.Errorf("Check(%s, key) = %v, %v; want %v", poolID, got, err, want)
	}
}

func TestFetchRotate(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, t.TempDir())
	defer st.Close()
	putPool(t, st, testPool, ptr(true), nil, 0)
	k := New(st)

	first, err := k.Fetch(ctx, testPool)
	if err != nil || len(first) < 40 {
		t.Fatalf("Fetch = %q, %v; want a key of 40+ characters", first, err)
	}
	again, err := New(st).Fetch(ctx, strings.ToUpper(testPool))
	if err != nil || again != first {
		t.Fatalf("second Fetch (other Keys, other casing) = %q, %v; want the first key", again, err)
	}
	check(t, k, testPool, first, true)
	check(t, k, testPool, first+"x", false)
	check(t, k, testPool, "", false)

	rotated, err := k.Rotate(ctx, testPool)
	if err != nil || rotated == first {
		t.Fatalf("Rotate = %q, %v; want a new key", rotated, err)
	}
	check(t, k, testPool, first, false)
	check(t, k, testPool, rotated, true)
	if got, err := k.Fetch(ctx, testPool); err != nil || got != rotated {
		t.Errorf("Fetch after Rotate = %q, %v; want the rotated key", got, err)
	}

	if _, err := k.Fetch(ctx, testPool+"x"); !errors.Is(err, ErrPoolNotFound) {
		t.Errorf("Fetch of a missing pool: %v, want ErrPoolNotFound", err)
	}
	check(t, k, testPool+"x", rotated, false)
}

func TestCheckFollowsPoolSettings(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, t.TempDir())
	defer st.Close()
	res := putPool(t, st, testPool, ptr(true), nil, 0)
	k := New(st)
	key, err := k.Fetch(ctx, testPool)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                 string
		enabled, keyDisabled *bool
		want                 bool
	}{
		{"enabled", ptr(true), ptr(false), true},
		{"api keys disabled", ptr(true), ptr(true), false},
		{"mcp disabled", ptr(false), nil, false},
		{"no settings", nil, nil, false},
		{"enabled again", ptr(true), nil, true},
	}
	for _, tt := range tests {
		res = putPool(t, st, testPool, tt.enabled, tt.keyDisabled, res.Version)
		if got, err := k.Check(ctx, testPool, key); err != nil || got != tt.want {
			t.Errorf("%s: Check = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}

// TestRecreatedPoolGetsNewKey: a pool deleted and created again under the
// same name does not inherit the old key, even when the record stayed.
func TestRecreatedPoolGetsNewKey(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, t.TempDir())
	defer st.Close()
	putPool(t, st, testPool, ptr(true), nil, 0)
	k := New(st)
	old, err := k.Fetch(ctx, testPool)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteResource(ctx, testPool, 0); err != nil {
		t.Fatal(err)
	}
	putPool(t, st, testPool, ptr(true), nil, 0)
	check(t, k, testPool, old, false)
	fresh, err := k.Fetch(ctx, testPool)
	if err != nil || fresh == old {
		t.Fatalf("Fetch on the new pool = %q, %v; want a new key", fresh, err)
	}
	check(t, k, testPool, fresh, true)

	if err := k.Delete(ctx, testPool); err != nil {
		t.Fatal(err)
	}
	check(t, k, testPool, fresh, false)
	if err := k.Delete(ctx, testPool); err != nil {
		t.Errorf("second Delete: %v", err)
	}
}

// TestStoredHashedAndSealed reads the database files: the key appears
// nowhere in them, the record holds its hash and a sealed copy that opens
// only for its own pool.
func TestStoredHashedAndSealed(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, dir)
	putPool(t, st, testPool, ptr(true), nil, 0)
	other := testPool + "other"
	putPool(t, st, other, ptr(true), nil, 0)
	k := New(st)
	key, err := k.Fetch(ctx, testPool)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := k.Rotate(ctx, testPool)
	if err != nil {
		t.Fatal(err)
	}
	res, err := st.GetResource(ctx, RecordID(testPool))
	if err != nil {
		t.Fatal(err)
	}
	if res.Type != RecordType || !strings.EqualFold(res.Scope, testPool) {
		t.Errorf("record type %q scope %q, want %q under the pool", res.Type, res.Scope, RecordType)
	}
	var rec record
	if err := json.Unmarshal(res.Body, &rec); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rec.Hash, "sha256$") || !auth.CheckSecret(rec.Hash, rotated) {
		t.Errorf("record hash %q does not verify the key", rec.Hash)
	}

	// A sealed key moved to another pool's record does not open there.
	otherKey, err := k.Fetch(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	ores, err := st.GetResource(ctx, RecordID(other))
	if err != nil {
		t.Fatal(err)
	}
	var orec record
	json.Unmarshal(ores.Body, &orec)
	orec.Sealed = rec.Sealed
	ores.Body, _ = json.Marshal(orec)
	if err := st.PutResource(ctx, ores); err != nil {
		t.Fatal(err)
	}
	if got, err := k.Fetch(ctx, other); err == nil {
		t.Errorf("Fetch with another pool's sealed key = %q, want an error", got)
	}

	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	var sawHash bool
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{key, rotated, otherKey} {
			if bytes.Contains(data, []byte(secret)) {
				t.Errorf("%s holds a key in the clear", filepath.Base(f))
			}
		}
		sawHash = sawHash || bytes.Contains(data, []byte(rec.Hash))
	}
	if !sawHash {
		t.Errorf("the database files %v do not hold the key's hash: did the test read the right files?", files)
	}
}

// TestConcurrentFetch: racing first fetches agree on one key.
func TestConcurrentFetch(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, t.TempDir())
	defer st.Close()
	putPool(t, st, testPool, ptr(true), nil, 0)
	const n = 8
	keys := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { keys[i], errs[i] = New(st).Fetch(ctx, testPool) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || keys[i] != keys[0] {
			t.Errorf("Fetch %d = %q, %v; want %q like the first", i, keys[i], errs[i], keys[0])
		}
	}
}
