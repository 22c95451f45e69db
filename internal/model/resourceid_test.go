package model

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseResourceID(t *testing.T) {
	const sub = "34adfa4f-cedf-4dc0-ba29-b6d1a69ab345"
	tests := []struct {
		in           string
		want         ResourceID
		str          string // String(); "" means in
		resourceType string
		name         string
		collection   bool
	}{
		{
			in:   "/subscriptions/" + sub,
			want: ResourceID{Subscription: sub}, resourceType: "Microsoft.Resources/subscriptions", name: sub,
		},
		{
			in:   "/subscriptions/" + sub + "/resourceGroups/rg",
			want: ResourceID{Subscription: sub, ResourceGroup: "rg"}, resourceType: "Microsoft.Resources/resourceGroups", name: "rg",
		},
		{
			in:           "/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.App/sessionPools/testsessionpool",
			want:         ResourceID{Subscription: sub, ResourceGroup: "rg", Namespace: "Microsoft.App", Types: []string{"sessionPools"}, Names: []string{"testsessionpool"}},
			resourceType: "Microsoft.App/sessionPools", name: "testsessionpool",
		},
		{
			in:           "/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.App/sessionPools",
			want:         ResourceID{Subscription: sub, ResourceGroup: "rg", Namespace: "Microsoft.App", Types: []string{"sessionPools"}},
			resourceType: "Microsoft.App/sessionPools", collection: true,
		},
		{
			in:           "/subscriptions/" + sub + "/providers/Microsoft.App/sessionPools",
			want:         ResourceID{Subscription: sub, Namespace: "Microsoft.App", Types: []string{"sessionPools"}},
			resourceType: "Microsoft.App/sessionPools", collection: true,
		},
		{
			in:           "/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.App/sessionPools/p/fetchMcpServerCredentials",
			want:         ResourceID{Subscription: sub, ResourceGroup: "rg", Namespace: "Microsoft.App", Types: []string{"sessionPools", "fetchMcpServerCredentials"}, Names: []string{"p"}},
			resourceType: "Microsoft.App/sessionPools/fetchMcpServerCredentials", name: "p", collection: true,
		},
		{
			in:           "/subscriptions/" + sub + "/providers/Microsoft.App/locations/eastus/operationResults/amF3YQ",
			want:         ResourceID{Subscription: sub, Namespace: "Microsoft.App", Types: []string{"locations", "operationResults"}, Names: []string{"eastus", "amF3YQ"}},
			resourceType: "Microsoft.App/locations/operationResults", name: "amF3YQ",
		},
		{
			in:   "/subscriptions/" + sub + "/providers/Microsoft.App",
			want: ResourceID{Subscription: sub, Namespace: "Microsoft.App"}, resourceType: "Microsoft.App/",
		},
		{
			// Keywords in any casing (TUT-SHELL, the CLI's lower-cased ids); names keep theirs.
			in:   "/SUBSCRIPTIONS/" + sub + "/resourcegroups/MyRG/PROVIDERS/Microsoft.App/sessionpools/MyShellPool",
			want: ResourceID{Subscription: sub, ResourceGroup: "MyRG", Namespace: "Microsoft.App", Types: []string{"sessionpools"}, Names: []string{"MyShellPool"}},
			str:  "/subscriptions/" + sub + "/resourceGroups/MyRG/providers/Microsoft.App/sessionpools/MyShellPool", resourceType: "Microsoft.App/sessionpools", name: "MyShellPool",
		},
		{
			in:   "//subscriptions//" + sub + "///resourceGroups/rg//providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1/",
			want: ResourceID{Subscription: sub, ResourceGroup: "rg", Namespace: "Microsoft.ManagedIdentity", Types: []string{"userAssignedIdentities"}, Names: []string{"id1"}},
			str:  "/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1", resourceType: "Microsoft.ManagedIdentity/userAssignedIdentities", name: "id1",
		},
		{
			in:   "subscriptions/" + sub + "/resourceGroups/rg/",
			want: ResourceID{Subscription: sub, ResourceGroup: "rg"},
			str:  "/subscriptions/" + sub + "/resourceGroups/rg", resourceType: "Microsoft.Resources/resourceGroups", name: "rg",
		},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			id, err := ParseResourceID(tt.in)
			if err != nil {
				t.Fatalf("ParseResourceID(%q) = %v", tt.in, err)
			}
			if !reflect.DeepEqual(*id, tt.want) {
				t.Errorf("ParseResourceID(%q) = %+v, want %+v", tt.in, *id, tt.want)
			}
			str := tt.str
			if str == "" {
				str = tt.in
			}
			if got := id.String(); got != str {
				t.Errorf("ParseResourceID(%q).String() = %q, want %q", tt.in, got, str)
			}
			if got := id.ResourceType(); got != tt.resourceType {
				t.Errorf("ParseResourceID(%q).ResourceType() = %q, want %q", tt.in, got, tt.resourceType)
			}
			if got := id.Name(); got != tt.name {
				t.Errorf("ParseResourceID(%q).Name() = %q, want %q", tt.in, got, tt.name)
			}
			if got := id.IsCollection(); got != tt.collection {
				t.Errorf("ParseResourceID(%q).IsCollection() = %v, want %v", tt.in, got, tt.collection)
			}
			again, err := ParseResourceID(id.String())
			if err != nil || !reflect.DeepEqual(again, id) {
				t.Errorf("ParseResourceID(%q.String()) = %+v, %v; want %+v", tt.in, again, err, id)
			}
			if got, want := id.SubscriptionID(), "/subscriptions/"+sub; got != want {
				t.Errorf("SubscriptionID() = %q, want %q", got, want)
			}
			wantRG := ""
			if tt.want.ResourceGroup != "" {
				wantRG = "/subscriptions/" + sub + "/resourceGroups/" + tt.want.ResourceGroup
			}
			if got := id.ResourceGroupID(); got != wantRG {
				t.Errorf("ResourceGroupID() = %q, want %q", got, wantRG)
			}
		})
	}
}

func TestParseResourceIDErrors(t *testing.T) {
	for _, in := range []string{
		"",
		"/",
		"///",
		"/subscriptions",
		"/subscriptions/",
		"/tenants/t/providers/Microsoft.App",
		"/subscriptions/s/resourceGroups",
		"/subscriptions/s/resourceGroups/",
		"/subscriptions/s/resourceGroups/rg/providers",
		"/subscriptions/s/providers/",
		"/subscriptions/s/locations/eastus",
		"/subscriptions/s/resourceGroups/rg/sessionPools/p",
		"https://management.azure.com/subscriptions/s",
		"/subscriptions/s/" + strings.Repeat("x", 500),
	} {
		t.Run(in, func(t *testing.T) {
			id, err := ParseResourceID(in)
			if err == nil {
				t.Fatalf("ParseResourceID(%q) = %+v, want an error", in, id)
			}
			if !errors.Is(err, ErrInvalidResourceID) {
				t.Errorf("ParseResourceID(%q) error = %v, want it to wrap ErrInvalidResourceID", in, err)
			}
			if len(err.Error()) > 400 {
				t.Errorf("ParseResourceID(%q) error is %d bytes long, want the input truncated", in, len(err.Error()))
			}
		})
	}
}
