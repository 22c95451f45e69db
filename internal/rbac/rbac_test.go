package rbac

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/tidepool-dev/tidepool/internal/store"
)

func TestMatchAction(t *testing.T) {
	tests := []struct {
		pattern, action string
		want            bool
	}{
		{"*", "Microsoft.App/sessionPools/write", true},
		{"*/read", "Microsoft.App/sessionPools/read", true},
		{"*/read", "Microsoft.App/sessionPools/write", false},
		{"*/read", "Microsoft.App/sessionPools/read/action", false},
		{"Microsoft.Authorization/*/Write", "Microsoft.Authorization/roleAssignments/write", true},
		{"Microsoft.Authorization/*/Write", "Microsoft.App/sessionPools/write", false},
		{"Microsoft.App/sessionPools/*", "microsoft.app/SESSIONPOOLS/interpreters/execute/action", true},
		{"Microsoft.App/sessionPools/*", "Microsoft.App/sessionPoolsX/read", false},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"", "", true},
		{"", "x", false},
		{"**", "x", true},
	}
	for _, tt := range tests {
		if got := MatchAction(tt.pattern, tt.action); got != tt.want {
			t.Errorf("MatchAction(%q, %q) = %v, want %v", tt.pattern, tt.action, got, tt.want)
		}
	}
}

func TestCovers(t *testing.T) {
	pool := "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.App/sessionPools/p"
	tests := []struct {
		scope, target string
		want          bool
	}{
		{"/", pool, true},
		{"/subscriptions/s1", pool, true},
		{"/SUBSCRIPTIONS/S1/resourcegroups/RG", pool, true},
		{pool, pool, true},
		{"/subscriptions/s1/resourceGroups/rg2", pool, false},
		{"/subscriptions/s1/resourceGroups/r", pool, false},
		{pool, "/subscriptions/s1/resourceGroups/rg", false},
		{"/subscriptions/s1/resourceGroups/rg/providers/Microsoft.App/sessionPools/p2", pool, false},
	}
	for _, tt := range tests {
		if got := Covers(CleanScope(tt.scope), CleanScope(tt.target)); got != tt.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", tt.scope, tt.target, got, tt.want)
		}
	}
}

func TestRoles(t *testing.T) {
	const (
		poolWrite  = "Microsoft.App/sessionPools/write"
		poolRead   = "Microsoft.App/sessionPools/read"
		assignW    = "Microsoft.Authorization/roleAssignments/write"
		execute    = "Microsoft.App/sessionPools/interpreters/execute/action"
		stopAction = "Microsoft.App/sessionPools/sessions/delete"
	)
	tests := []struct {
		role   string
		action string
		data   bool
		want   bool
	}{
		{OwnerID, poolWrite, false, true},
		{OwnerID, assignW, false, true},
		{OwnerID, execute, true, true},
		{ContributorID, poolWrite, false, true},
		{ContributorID, assignW, false, false},
		{ContributorID, execute, true, true},
		{ReaderID, poolRead, false, true},
		{ReaderID, poolWrite, false, false},
		{ReaderID, execute, true, false},
		{UserAccessAdministratorID, assignW, false, true},
		{UserAccessAdministratorID, poolWrite, false, false},
		{SessionExecutorID, execute, true, true},
		{SessionExecutorID, stopAction, true, true},
		{SessionExecutorID, poolRead, false, false},
		{SessionExecutorID, execute, false, false}, // a data action is not a management action
	}
	for _, tt := range tests {
		r, ok := RoleByID(tt.role)
		if !ok {
			t.Fatalf("RoleByID(%s) not found", tt.role)
		}
		if got := r.Allows(tt.action, tt.data); got != tt.want {
			t.Errorf("%s.Allows(%q, data=%v) = %v, want %v", r.Name, tt.action, tt.data, got, tt.want)
		}
	}
	if r, ok := RoleByID("/subscriptions/x/providers/Microsoft.Authorization/roleDefinitions/" + SessionExecutorID); !ok || r.Name != "Azure ContainerApps Session Executor" {
		t.Errorf("RoleByID(full id) = %v, %v", r, ok)
	}
	if r, ok := RoleByName("reader"); !ok || r.ID != ReaderID {
		t.Errorf("RoleByName(reader) = %v, %v", r, ok)
	}
}

func TestAuthorizer(t *testing.T) {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	put := func(a Assignment) {
		t.Helper()
		body, _ := json.Marshal(a)
		if err := st.PutResource(ctx, &store.Resource{ID: a.ID, Type: AssignmentType, Scope: a.Scope, Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	rg := "/subscriptions/s1/resourceGroups/rg"
	pool := rg + "/providers/Microsoft.App/sessionPools/p"
	put(Assignment{ID: rg + "/providers/Microsoft.Authorization/roleAssignments/a1", Scope: rg, RoleID: ReaderID, PrincipalID: "alice"})
	put(Assignment{ID: pool + "/providers/Microsoft.Authorization/roleAssignments/a2", Scope: pool, RoleID: SessionExecutorID, PrincipalID: "bob"})

	az := NewAuthorizer(st)
	check := func(who, scope, action string, data, want bool) {
		t.Helper()
		got, err := az.Allowed(ctx, who, scope, action, data)
		if err != nil || got != want {
			t.Errorf("Allowed(%s, %s, %s, %v) = %v, %v; want %v", who, scope, action, data, got, err, want)
		}
	}
	check("alice", pool, "Microsoft.App/sessionPools/read", false, true)
	check("ALICE", pool, "Microsoft.App/sessionPools/read", false, true)
	check("alice", "/subscriptions/s1", "Microsoft.Resources/subscriptions/read", false, false)
	check("alice", "/subscriptions/s1/resourceGroups/rg2/x", "Microsoft.App/sessionPools/read", false, false)
	check("bob", pool, "Microsoft.App/sessionPools/interpreters/execute/action", true, true)
	check("bob", pool+"2", "Microsoft.App/sessionPools/interpreters/execute/action", true, false)
	check("", pool, "Microsoft.App/sessionPools/read", false, false)

	if ok, _ := az.Related(ctx, "bob", "/subscriptions/s1"); !ok {
		t.Error("Related(bob, subscription) = false, want true")
	}
	if ok, _ := az.Related(ctx, "bob", "/subscriptions/s2"); ok {
		t.Error("Related(bob, other subscription) = true, want false")
	}

	// A new assignment shows after Invalidate, without waiting for maxAge.
	put(Assignment{ID: "/providers/Microsoft.Authorization/roleAssignments/a3", Scope: "/", RoleID: OwnerID, PrincipalID: "carol"})
	check("carol", pool, "Microsoft.App/sessionPools/write", false, false)
	az.Invalidate()
	check("carol", pool, "Microsoft.App/sessionPools/write", false, true)
}

func FuzzMatchAction(f *testing.F) {
	f.Add("*/read", "Microsoft.App/sessionPools/read")
	f.Add("a*b*c*d*e*f", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
	f.Fuzz(func(t *testing.T, pattern, action string) {
		if MatchAction(pattern, action) && pattern == "" && action != "" {
			t.Fatal("empty pattern matched a non-empty action")
		}
		if !MatchAction("*", action) {
			t.Fatal("* did not match")
		}
		if !MatchAction(action, action) && !containsStar(action) {
			t.Fatalf("%q does not match itself", action)
		}
	})
}

func containsStar(s string) bool {
	for i := range len(s) {
		if s[i] == '*' {
			return true
		}
	}
	return false
}
