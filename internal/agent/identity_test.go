package agent

import (
	"net/url"
	"testing"

	"github.com/tidepool-dev/tidepool/internal/agent/wire"
)

func TestPickIdentity(t *testing.T) {
	system := wire.Identity{ClientID: "c-sys", PrincipalID: "p-sys", Default: true}
	user := wire.Identity{ClientID: "c-user", PrincipalID: "p-user", ResourceID: "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u"}
	tests := []struct {
		ids   []wire.Identity
		query string
		want  string // client id, or "" for an error
	}{
		{[]wire.Identity{system, user}, "", "c-sys"},
		{[]wire.Identity{system, user}, "client_id=C-USER", "c-user"},
		{[]wire.Identity{system, user}, "principal_id=p-user", "c-user"},
		{[]wire.Identity{system, user}, "object_id=p-sys", "c-sys"},
		{[]wire.Identity{system, user}, "mi_res_id=" + url.QueryEscape(user.ResourceID), "c-user"},
		{[]wire.Identity{system, user}, "client_id=nobody", ""},
		{[]wire.Identity{user}, "", "c-user"},
		{[]wire.Identity{user, {ClientID: "c-other"}}, "", ""},
		{nil, "", ""},
	}
	for _, tt := range tests {
		q, _ := url.ParseQuery(tt.query)
		got, err := pickIdentity(tt.ids, q)
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("pickIdentity(%q) = %s, want an error", tt.query, got.ClientID)
		case tt.want != "" && (err != nil || got.ClientID != tt.want):
			t.Errorf("pickIdentity(%q) = %v, %v; want %s", tt.query, got, err, tt.want)
		}
	}
	for in, want := range map[string]string{
		"https://management.azure.com/":         "https://management.azure.com",
		"https://Management.Azure.com/.default": "https://management.azure.com",
		"https://dynamicsessions.io":            "https://dynamicsessions.io",
	} {
		if got := canonicalResource(in); got != want {
			t.Errorf("canonicalResource(%q) = %q, want %q", in, got, want)
		}
	}
}
