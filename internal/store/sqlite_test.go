package store

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	sub = "/subscriptions/00000000-0000-0000-0000-000000000001"
	rg  = sub + "/resourceGroups/rg"
)

func openTest(t testing.TB, path string) *SQLite {
	t.Helper()
	s, err := OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatalf("OpenSQLite(%q): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newTest(t testing.TB) *SQLite {
	t.Helper()
	return openTest(t, filepath.Join(t.TempDir(), "tidepool.db"))
}

func pool(scope, name string) *Resource {
	return &Resource{
		ID:    scope + "/providers/Microsoft.App/sessionPools/" + name,
		Type:  "Microsoft.App/sessionPools",
		Scope: scope,
		Body:  []byte(`{"name":"` + name + `"}`),
	}
}

// integrityCheck runs SQLite's own consistency check of the whole file.
func integrityCheck(t *testing.T, s *SQLite) {
	t.Helper()
	var res string
	if err := s.r.QueryRowContext(t.Context(), "PRAGMA integrity_check").Scan(&res); err != nil {
		t.Fatalf("integrity_check: %v", err)
	}
	if res != "ok" {
		t.Fatalf("integrity_check = %q, want ok", res)
	}
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	// The path holds characters that mean something in a URI.
	path := filepath.Join(t.TempDir(), "data dir", "a?b#c%d.db")
	s := openTest(t, path)
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := s.PutResource(t.Context(), pool(rg, "p")); err != nil {
		t.Fatalf("PutResource: %v", err)
	}
	for _, tc := range []struct {
		path string
		mode os.FileMode
	}{
		{filepath.Dir(path), 0o700 | os.ModeDir},
		{path, 0o600},
		{path + "-wal", 0o600},
		{path + "-shm", 0o600},
	} {
		fi, err := os.Stat(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != tc.mode {
			t.Errorf("mode of %s = %v, want %v", tc.path, fi.Mode(), tc.mode)
		}
	}
}

func TestPragmas(t *testing.T) {
	s := newTest(t)
	for _, tc := range []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"foreign_keys", "1"},
		{"busy_timeout", "5000"},
	} {
		for name, db := range map[string]*sql.DB{"writer": s.w, "reader": s.r} {
			var got string
			if err := db.QueryRowContext(t.Context(), "PRAGMA "+tc.pragma).Scan(&got); err != nil {
				t.Fatalf("%s: PRAGMA %s: %v", name, tc.pragma, err)
			}
			if got != tc.want {
				t.Errorf("%s: PRAGMA %s = %q, want %q", name, tc.pragma, got, tc.want)
			}
		}
	}
	if _, err := s.r.ExecContext(t.Context(), "DELETE FROM settings"); err == nil {
		t.Error("write through a reader connection succeeded, want an error")
	}
}

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tidepool.db")
	s := openTest(t, path)
	r := pool(rg, "p")
	if err := s.PutResource(t.Context(), r); err != nil {
		t.Fatalf("PutResource: %v", err)
	}
	if _, err := s.SetSettingIfAbsent(t.Context(), "tenant", "t1"); err != nil {
		t.Fatalf("SetSettingIfAbsent: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	for range 2 {
		s = openTest(t, path)
		var v int
		if err := s.r.QueryRowContext(t.Context(), "PRAGMA user_version").Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v != len(migrations) {
			t.Errorf("user_version = %d, want %d", v, len(migrations))
		}
		got, err := s.GetResource(t.Context(), r.ID)
		if err != nil {
			t.Fatalf("GetResource after reopen: %v", err)
		}
		if got.Version != 1 || !got.Created.Equal(r.Created) || string(got.Body) != string(r.Body) {
			t.Errorf("GetResource after reopen = %+v, want %+v", got, r)
		}
		if v, err := s.Setting(t.Context(), "tenant"); err != nil || v != "t1" {
			t.Errorf("Setting(tenant) after reopen = %q, %v; want t1", v, err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
}

func TestOpenNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tidepool.db")
	s := openTest(t, path)
	if _, err := s.w.ExecContext(t.Context(), fmt.Sprintf("PRAGMA user_version = %d", len(migrations)+1)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := OpenSQLite(t.Context(), path); err == nil {
		s.Close()
		t.Fatal("OpenSQLite of a newer schema succeeded, want an error")
	}
}

func TestPutGetResource(t *testing.T) {
	ctx := t.Context()
	s := newTest(t)

	r := pool(rg, "Pool1")
	before := time.Now()
	if err := s.PutResource(ctx, r); err != nil {
		t.Fatalf("create: %v", err)
	}
	if r.Version != 1 || r.Created.Before(before) || !r.Updated.Equal(r.Created) {
		t.Fatalf("after create: Version %d, Created %v, Updated %v", r.Version, r.Created, r.Updated)
	}
	created := r.Created

	for _, id := range []string{r.ID, strings.ToUpper(r.ID), strings.ToLower(r.ID)} {
		got, err := s.GetResource(ctx, id)
		if err != nil {
			t.Fatalf("GetResource(%s): %v", id, err)
		}
		if got.ID != r.ID || got.Type != r.Type || got.Scope != r.Scope || string(got.Body) != string(r.Body) ||
			got.Version != 1 || !got.Created.Equal(r.Created) || !got.Updated.Equal(r.Updated) {
			t.Errorf("GetResource(%s) = %+v, want %+v", id, got, r)
		}
	}

	// A create under another casing is the same resource.
	dup := pool(rg, "POOL1")
	if err := s.PutResource(ctx, dup); !errors.Is(err, ErrExists) {
		t.Errorf("create again = %v, want ErrExists", err)
	}
	if dup.Version != 0 {
		t.Errorf("failed create set Version to %d", dup.Version)
	}

	// Update with the current version, under new casing.
	upd := pool(strings.ToUpper(rg), "POOL1")
	upd.Body = []byte(`{"v":2}`)
	upd.Version = 1
	if err := s.PutResource(ctx, upd); err != nil {
		t.Fatalf("update: %v", err)
	}
	if upd.Version != 2 || !upd.Created.Equal(created) || upd.Updated.Before(created) {
		t.Errorf("after update: Version %d, Created %v (want %v), Updated %v", upd.Version, upd.Created, created, upd.Updated)
	}
	got, err := s.GetResource(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != upd.ID || got.Scope != upd.Scope || string(got.Body) != `{"v":2}` || got.Version != 2 || !got.Created.Equal(created) {
		t.Errorf("after update GetResource = %+v, want id %s body {\"v\":2} version 2", got, upd.ID)
	}

	for _, tc := range []struct {
		name    string
		id      string
		version int64
		want    error
	}{
		{"stale version", r.ID, 1, ErrConflict},
		{"future version", r.ID, 7, ErrConflict},
		{"missing", rg + "/providers/Microsoft.App/sessionPools/nope", 1, ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Resource{ID: tc.id, Type: r.Type, Scope: rg, Version: tc.version}
			if err := s.PutResource(ctx, p); !errors.Is(err, tc.want) {
				t.Errorf("PutResource(version %d) = %v, want %v", tc.version, err, tc.want)
			}
			if p.Version != tc.version {
				t.Errorf("failed PutResource changed Version to %d", p.Version)
			}
		})
	}

	if _, err := s.GetResource(ctx, rg+"/providers/Microsoft.App/sessionPools/nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetResource(missing) = %v, want ErrNotFound", err)
	}
	if err := s.PutResource(ctx, &Resource{}); err == nil {
		t.Error("PutResource with empty id succeeded")
	}
}

func TestDeleteResource(t *testing.T) {
	ctx := t.Context()
	for _, tc := range []struct {
		name    string
		id      func(id string) string
		version int64
		want    error
	}{
		{"any version", strings.ToUpper, 0, nil},
		{"current version", strings.ToLower, 2, nil},
		{"stale version", strings.ToLower, 1, ErrConflict},
		{"missing", func(id string) string { return id + "x" }, 0, ErrNotFound},
		{"missing at version", func(id string) string { return id + "x" }, 2, ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTest(t)
			r := pool(rg, "p")
			if err := s.PutResource(ctx, r); err != nil {
				t.Fatal(err)
			}
			if err := s.PutResource(ctx, r); err != nil { // version 2
				t.Fatal(err)
			}
			err := s.DeleteResource(ctx, tc.id(r.ID), tc.version)
			if !errors.Is(err, tc.want) {
				t.Fatalf("DeleteResource(version %d) = %v, want %v", tc.version, err, tc.want)
			}
			_, err = s.GetResource(ctx, r.ID)
			if deleted := errors.Is(err, ErrNotFound); deleted != (tc.want == nil) {
				t.Errorf("after DeleteResource: GetResource = %v", err)
			}
		})
	}
}

func TestListResources(t *testing.T) {
	ctx := t.Context()
	s := newTest(t)

	// Resource group names may hold '_' and '%', which LIKE would treat as
	// wildcards, and may share prefixes.
	var (
		rgOdd  = sub + "/resourceGroups/r_g%1"
		rgX    = sub + "/resourceGroups/rxgx1"  // matches r_g%1 as a LIKE pattern
		rg2    = sub + "/resourceGroups/rg2"    // shares the prefix "rg"
		rgDash = sub + "/resourceGroups/rg-dev" // '-' sorts before '/'
		sub2   = "/subscriptions/00000000-0000-0000-0000-000000000002"
	)
	groups := map[string]*Resource{}
	for _, id := range []string{rg, rgOdd, rgX, rg2, rgDash, sub2 + "/resourceGroups/rg"} {
		r := &Resource{ID: id, Type: "Microsoft.Resources/resourceGroups", Scope: id[:strings.Index(id, "/resourceGroups")]}
		groups[id] = r
		if err := s.PutResource(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, scope := range []string{rg, rgOdd, rgX, rg2, rgDash} {
		for _, name := range []string{"b", "a"} {
			if err := s.PutResource(ctx, pool(scope, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	env := &Resource{ID: rg + "/providers/Microsoft.App/managedEnvironments/env", Type: "Microsoft.App/managedEnvironments", Scope: rg}
	if err := s.PutResource(ctx, env); err != nil {
		t.Fatal(err)
	}
	// A resource whose scope lies below a group's.
	child := func(scope string) string {
		return pool(scope, "a").ID + "/providers/Microsoft.Authorization/roleAssignments/1"
	}
	for _, scope := range []string{rg, rgOdd, rgX, rg2, rgDash} {
		r := &Resource{ID: child(scope), Type: "Microsoft.Authorization/roleAssignments", Scope: pool(scope, "a").ID}
		if err := s.PutResource(ctx, r); err != nil {
			t.Fatal(err)
		}
	}

	pools := func(scopes ...string) []string {
		var ids []string
		for _, sc := range scopes {
			ids = append(ids, pool(sc, "a").ID, pool(sc, "b").ID)
		}
		return ids
	}
	for _, tc := range []struct {
		name string
		opts ListOptions
		want []string
	}{
		{"pools in rg", ListOptions{Type: "microsoft.app/SESSIONPOOLS", Scope: rg}, pools(rg)},
		{"all in rg", ListOptions{Scope: strings.ToUpper(rg)}, append([]string{env.ID}, pools(rg)...)},
		{"odd name", ListOptions{Type: "Microsoft.App/sessionPools", Scope: rgOdd}, pools(rgOdd)},
		{"odd name recursive", ListOptions{Scope: rgOdd, Recursive: true}, append(pools(rgOdd), child(rgOdd))},
		{"rg recursive excludes rg2 and rg-dev", ListOptions{Scope: rg, Recursive: true}, append(pools(rg), env.ID, child(rg))},
		{"assignments below a pool", ListOptions{Scope: pool(rgOdd, "A").ID, Recursive: true}, []string{child(rgOdd)}},
		{"assignments in subscription", ListOptions{Type: "Microsoft.Authorization/roleAssignments", Scope: sub, Recursive: true}, []string{child(rg), child(rgOdd), child(rgX), child(rg2), child(rgDash)}},
		{"subscription recursive", ListOptions{Type: "Microsoft.App/sessionPools", Scope: sub, Recursive: true}, pools(rg, rgOdd, rgX, rg2, rgDash)},
		{"groups in subscription", ListOptions{Type: "Microsoft.Resources/resourceGroups", Scope: sub}, []string{rg, rgOdd, rgX, rg2, rgDash}},
		{"groups everywhere", ListOptions{Type: "Microsoft.Resources/resourceGroups"}, []string{rg, rgOdd, rgX, rg2, rgDash, sub2 + "/resourceGroups/rg"}},
		{"empty scope", ListOptions{Scope: sub + "/resourceGroups/none", Recursive: true}, nil},
		{"unknown type", ListOptions{Type: "Microsoft.App/jobs"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := s.ListResources(ctx, tc.opts)
			if err != nil {
				t.Fatalf("ListResources(%+v): %v", tc.opts, err)
			}
			var got []string
			for _, r := range res.Items {
				got = append(got, r.ID)
			}
			want := slices.Clone(tc.want)
			slices.SortFunc(want, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
			if !slices.Equal(got, want) {
				t.Errorf("ListResources(%+v) =\n%q\nwant\n%q", tc.opts, got, want)
			}
			if res.Next != "" {
				t.Errorf("ListResources(%+v).Next = %q, want none", tc.opts, res.Next)
			}
		})
	}

	all, err := s.ListResources(ctx, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(groups) + 10 + 1 + 5; len(all.Items) != n {
		t.Errorf("ListResources() returned %d items, want %d", len(all.Items), n)
	}
}

func TestListResourcesPaging(t *testing.T) {
	ctx := t.Context()
	s := newTest(t)
	var want []string
	for i := range 10 {
		r := pool(rg, fmt.Sprintf("p%02d", i))
		if err := s.PutResource(ctx, r); err != nil {
			t.Fatal(err)
		}
		want = append(want, r.ID)
	}
	// Something in another scope must not end a page early or late.
	if err := s.PutResource(ctx, pool(rg+"2", "p")); err != nil {
		t.Fatal(err)
	}

	for _, limit := range []int{1, 3, 5, 9, 10, 11, 0} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			var (
				got   []string
				pages int
			)
			opts := ListOptions{Scope: rg, Limit: limit}
			for {
				res, err := s.ListResources(ctx, opts)
				if err != nil {
					t.Fatalf("ListResources(%+v): %v", opts, err)
				}
				pages++
				if limit > 0 && len(res.Items) > limit {
					t.Fatalf("page %d has %d items, limit %d", pages, len(res.Items), limit)
				}
				for _, r := range res.Items {
					got = append(got, r.ID)
				}
				if res.Next == "" {
					break
				}
				if len(res.Items) == 0 {
					t.Fatalf("page %d is empty but has a Next", pages)
				}
				opts.After = res.Next
			}
			if !slices.Equal(got, want) {
				t.Errorf("paged listing = %q, want %q", got, want)
			}
			wantPages := 1
			if limit > 0 {
				wantPages = (len(want) + limit - 1) / limit
			}
			if pages != wantPages {
				t.Errorf("%d pages, want %d", pages, wantPages)
			}
		})
	}
}

func TestOperations(t *testing.T) {
	ctx := t.Context()
	s := newTest(t)
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.FixedZone("X", 3600))
	ops := []*Operation{
		{ID: "op-c", Kind: "put", ResourceID: rg + "/x", Status: OperationInProgress, Started: t0.Add(2 * time.Second)},
		{ID: "op-a", Kind: "delete", ResourceID: rg + "/y", Status: OperationInProgress, Started: t0},
		{ID: "op-b", Kind: "patch", ResourceID: rg + "/z", Status: OperationInProgress, Started: t0.Add(time.Nanosecond)},
	}
	for _, op := range ops {
		if err := s.PutOperation(ctx, op); err != nil {
			t.Fatalf("PutOperation(%s): %v", op.ID, err)
		}
	}

	got, err := s.GetOperation(ctx, "op-c")
	if err != nil {
		t.Fatalf("GetOperation: %v", err)
	}
	if !got.Started.Equal(ops[0].Started) || !got.Ended.IsZero() || got.Kind != "put" || got.ResourceID != rg+"/x" {
		t.Errorf("GetOperation(op-c) = %+v, want %+v", got, ops[0])
	}
	if _, err := s.GetOperation(ctx, "OP-C"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetOperation(OP-C) = %v, want ErrNotFound (operation ids are exact)", err)
	}
	if _, err := s.GetOperation(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetOperation(missing) = %v, want ErrNotFound", err)
	}

	// Finish one: the upsert replaces it.
	done := *ops[0]
	done.Status, done.ErrorCode, done.ErrorMsg, done.Ended = OperationFailed, "ImagePullFailed", "no such image", t0.Add(time.Minute)
	if err := s.PutOperation(ctx, &done); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetOperation(ctx, "op-c")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != OperationFailed || got.ErrorCode != done.ErrorCode || got.ErrorMsg != done.ErrorMsg || !got.Ended.Equal(done.Ended) {
		t.Errorf("after update GetOperation = %+v, want %+v", got, done)
	}

	for _, tc := range []struct {
		status, resource string
		want             []string
	}{
		{OperationInProgress, "", []string{"op-a", "op-b"}},
		{OperationFailed, "", []string{"op-c"}},
		{OperationSucceeded, "", nil},
		{OperationInProgress, strings.ToUpper(ops[2].ResourceID), []string{"op-b"}},
		{OperationInProgress, "/subscriptions/none", nil},
	} {
		list, err := s.ListOperations(ctx, tc.status, tc.resource)
		if err != nil {
			t.Fatalf("ListOperations(%s, %q): %v", tc.status, tc.resource, err)
		}
		var ids []string
		for _, op := range list {
			ids = append(ids, op.ID)
		}
		if !slices.Equal(ids, tc.want) {
			t.Errorf("ListOperations(%s, %q) = %q, want %q", tc.status, tc.resource, ids, tc.want)
		}
	}
}

func TestPrincipals(t *testing.T) {
	ctx := t.Context()
	s := newTest(t)
	created := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	p := &Principal{
		ObjectID:    "6F1C2F4E-0000-4000-8000-000000000001",
		ClientID:    "A1B2C3D4-0000-4000-8000-000000000002",
		DisplayName: "ci",
		Kind:        "ServicePrincipal",
		Secrets: []Secret{
			{ID: "s1", Hash: "sha256$salt$abcd", Hint: "abc", Expires: created.Add(365 * 24 * time.Hour)},
			{ID: "s2", Hash: "sha256$salt$ef01"},
		},
		Created: created,
	}
	if err := s.PutPrincipal(ctx, p); err != nil {
		t.Fatalf("PutPrincipal: %v", err)
	}

	same := func(got *Principal, want *Principal) bool {
		if got.ObjectID != want.ObjectID || got.ClientID != want.ClientID || got.DisplayName != want.DisplayName ||
			got.Kind != want.Kind || !got.Created.Equal(want.Created) || len(got.Secrets) != len(want.Secrets) {
			return false
		}
		for i, s := range got.Secrets {
			w := want.Secrets[i]
			if s.ID != w.ID || s.Hash != w.Hash || s.Hint != w.Hint || !s.Expires.Equal(w.Expires) {
				return false
			}
		}
		return true
	}
	for _, tc := range []struct {
		name string
		get  func() (*Principal, error)
	}{
		{"by object id", func() (*Principal, error) { return s.GetPrincipal(ctx, p.ObjectID) }},
		{"by lower object id", func() (*Principal, error) { return s.GetPrincipal(ctx, strings.ToLower(p.ObjectID)) }},
		{"by client id", func() (*Principal, error) { return s.GetPrincipalByClientID(ctx, p.ClientID) }},
		{"by lower client id", func() (*Principal, error) { return s.GetPrincipalByClientID(ctx, strings.ToLower(p.ClientID)) }},
	} {
		got, err := tc.get()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !same(got, p) {
			t.Errorf("%s = %+v, want %+v", tc.name, got, p)
		}
	}

	// Upsert: a new secret list, kept client id.
	p.Secrets = p.Secrets[:1]
	p.DisplayName = "ci-renamed"
	if err := s.PutPrincipal(ctx, p); err != nil {
		t.Fatalf("PutPrincipal update: %v", err)
	}
	got, err := s.GetPrincipalByClientID(ctx, p.ClientID)
	if err != nil || !same(got, p) {
		t.Errorf("after update = %+v, %v; want %+v", got, err, p)
	}

	// Another principal may not take the client id, in any casing.
	other := &Principal{ObjectID: "other", ClientID: strings.ToLower(p.ClientID), Kind: "ServicePrincipal"}
	if err := s.PutPrincipal(ctx, other); !errors.Is(err, ErrExists) {
		t.Errorf("PutPrincipal with a taken client id = %v, want ErrExists", err)
	}
	if _, err := s.GetPrincipal(ctx, "other"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetPrincipal(other) = %v, want ErrNotFound", err)
	}

	// Principals without a client id (users, later) do not collide.
	for _, id := range []string{"user1", "user2"} {
		if err := s.PutPrincipal(ctx, &Principal{ObjectID: id, Kind: "User"}); err != nil {
			t.Errorf("PutPrincipal(%s) without client id: %v", id, err)
		}
	}
	if _, err := s.GetPrincipalByClientID(ctx, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetPrincipalByClientID(\"\") = %v, want ErrNotFound", err)
	}

	// Changing a principal's client id frees the old one.
	old := p.ClientID
	p.ClientID = "new-client"
	if err := s.PutPrincipal(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetPrincipalByClientID(ctx, old); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetPrincipalByClientID(old) = %v, want ErrNotFound", err)
	}
	if err := s.PutPrincipal(ctx, other); err != nil {
		t.Errorf("PutPrincipal(other) with the freed client id: %v", err)
	}

	if _, err := s.GetPrincipal(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetPrincipal(missing) = %v, want ErrNotFound", err)
	}
	if _, err := s.GetPrincipalByClientID(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetPrincipalByClientID(missing) = %v, want ErrNotFound", err)
	}
}

func TestSettings(t *testing.T) {
	ctx := t.Context()
	s := newTest(t)
	if _, err := s.Setting(ctx, "signing-key"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Setting(missing) = %v, want ErrNotFound", err)
	}
	for _, tc := range []struct {
		value, want string
	}{
		{"first", "first"},
		{"second", "first"},
	} {
		got, err := s.SetSettingIfAbsent(ctx, "signing-key", tc.value)
		if err != nil || got != tc.want {
			t.Errorf("SetSettingIfAbsent(%q) = %q, %v; want %q", tc.value, got, err, tc.want)
		}
	}
	if got, err := s.Setting(ctx, "signing-key"); err != nil || got != "first" {
		t.Errorf("Setting = %q, %v; want first", got, err)
	}
}

// TestConcurrentWriters checks that concurrent writers queue rather than
// fail with SQLITE_BUSY, and that optimistic versions lose no update.
func TestConcurrentWriters(t *testing.T) {
	ctx := t.Context()
	s := newTest(t)
	counter := pool(rg, "counter")
	counter.Body = []byte(`{"n":0}`)
	if err := s.PutResource(ctx, counter); err != nil {
		t.Fatal(err)
	}

	const workers, rounds = 8, 20
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				own := pool(rg, fmt.Sprintf("w%d-%d", w, i))
				if err := s.PutResource(ctx, own); err != nil {
					t.Errorf("PutResource(%s): %v", own.ID, err)
					return
				}
				if _, err := s.GetResource(ctx, own.ID); err != nil {
					t.Errorf("GetResource(%s): %v", own.ID, err)
					return
				}
				if _, err := s.ListResources(ctx, ListOptions{Scope: rg, Limit: 5}); err != nil {
					t.Errorf("ListResources: %v", err)
					return
				}
				if err := increment(ctx, s, counter.ID); err != nil {
					t.Errorf("increment: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()

	got, err := s.GetResource(ctx, counter.ID)
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ N int }
	if err := json.Unmarshal(got.Body, &body); err != nil {
		t.Fatal(err)
	}
	if body.N != workers*rounds || got.Version != workers*rounds+1 {
		t.Errorf("counter = %d at version %d, want %d at version %d", body.N, got.Version, workers*rounds, workers*rounds+1)
	}
}

// increment is a read-modify-write that retries on ErrConflict.
func increment(ctx context.Context, s Store, id string) error {
	for {
		r, err := s.GetResource(ctx, id)
		if err != nil {
			return err
		}
		var body struct{ N int }
		if err := json.Unmarshal(r.Body, &body); err != nil {
			return err
		}
		body.N++
		r.Body, _ = json.Marshal(body)
		err = s.PutResource(ctx, r)
		if !errors.Is(err, ErrConflict) {
			return err
		}
	}
}

const helperEnv = "TIDEPOOL_STORE_HELPER_DB"

// TestHelperWriter is not a test: TestCrashDurability runs it in a child
// process, which writes until it is killed.
func TestHelperWriter(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("helper process for TestCrashDurability")
	}
	s, err := OpenSQLite(t.Context(), path)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	for i := 0; ; i++ {
		r := pool(rg, fmt.Sprintf("crash-%06d", i))
		r.Body = []byte(strings.Repeat("x", 2000)) // fill pages so checkpoints happen
		if err := s.PutResource(t.Context(), r); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("ack", r.ID)
	}
}

// TestCrashDurability kills a writing process with SIGKILL and checks that
// the database is intact and holds every write that was acknowledged.
func TestCrashDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	path := filepath.Join(t.TempDir(), "tidepool.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriter$")
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// A bound, not an assertion: stop after 5s however many acks came.
	timer := time.AfterFunc(5*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()

	// Every line read is a write the child saw acknowledged, including
	// those still in the pipe when it died.
	var acked []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if id, ok := strings.CutPrefix(line, "ack "); ok {
			acked = append(acked, id)
			if len(acked) == 300 {
				cmd.Process.Kill()
			}
		} else if strings.HasPrefix(line, "error:") {
			t.Errorf("child: %s", line)
		}
	}
	if err := cmd.Wait(); err == nil {
		t.Error("the child exited cleanly, want killed")
	}
	if len(acked) == 0 {
		t.Fatal("the child acknowledged no write")
	}
	t.Logf("killed the writer after %d acknowledged writes", len(acked))

	s := openTest(t, path)
	integrityCheck(t, s)
	for _, id := range acked {
		if _, err := s.GetResource(t.Context(), id); err != nil {
			t.Errorf("acknowledged write lost: %v", err)
		}
	}
}

func BenchmarkPutResource(b *testing.B) {
	s := newTest(b)
	r := pool(rg, "bench")
	r.Body = []byte(strings.Repeat("x", 1000))
	for b.Loop() {
		if err := s.PutResource(b.Context(), r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetResource(b *testing.B) {
	s := newTest(b)
	r := pool(rg, "bench")
	r.Body = []byte(strings.Repeat("x", 1000))
	if err := s.PutResource(b.Context(), r); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.GetResource(b.Context(), r.ID); err != nil {
			b.Fatal(err)
		}
	}
}
