package model

import (
	"errors"
	"fmt"
	"strings"
)

// ResourceID is a parsed ARM resource id or collection path:
//
//	/subscriptions/{sub}
//	/subscriptions/{sub}/resourceGroups/{rg}
//	/subscriptions/{sub}[/resourceGroups/{rg}]/providers/{ns}/{type}[/{name}[/{type}[/{name}]...]]
//
// Keywords match case-insensitively; names keep the casing given.
type ResourceID struct {
	Subscription  string
	ResourceGroup string // "" at subscription scope
	Namespace     string // provider namespace, "" without /providers
	// Types and Names alternate after the namespace. len(Types) is
	// len(Names) or len(Names)+1; the latter is a collection (or an action).
	Types []string
	Names []string
}

// ErrInvalidResourceID is wrapped by every ParseResourceID failure.
var ErrInvalidResourceID = errors.New("invalid resource id")

// ParseResourceID parses an ARM id or collection path. Empty segments (as
// from "//") are skipped and a trailing slash is ignored.
func ParseResourceID(s string) (*ResourceID, error) {
	var segs []string
	for seg := range strings.SplitSeq(s, "/") {
		if seg != "" {
			segs = append(segs, seg)
		}
	}
	bad := func(why string) (*ResourceID, error) {
		return nil, fmt.Errorf("%w %q: %s", ErrInvalidResourceID, truncate(s, 200), why)
	}
	if len(segs) < 2 || !strings.EqualFold(segs[0], "subscriptions") {
		return bad("it must start with /subscriptions/{subscriptionId}")
	}
	id := &ResourceID{Subscription: segs[1]}
	segs = segs[2:]
	if len(segs) > 0 && strings.EqualFold(segs[0], "resourceGroups") {
		if len(segs) < 2 {
			return bad("the resource group name is missing")
		}
		id.ResourceGroup = segs[1]
		segs = segs[2:]
	}
	if len(segs) == 0 {
		return id, nil
	}
	if !strings.EqualFold(segs[0], "providers") {
		return bad(fmt.Sprintf("unexpected segment %q", truncate(segs[0], 64)))
	}
	if len(segs) < 2 {
		return bad("the provider namespace is missing")
	}
	id.Namespace = segs[1]
	for i, seg := range segs[2:] {
		if i%2 == 0 {
			id.Types = append(id.Types, seg)
		} else {
			id.Names = append(id.Names, seg)
		}
	}
	return id, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// IsCollection reports whether the id ends in a type without a name.
func (id *ResourceID) IsCollection() bool { return len(id.Types) > len(id.Names) }

// ResourceType is the full type: "Microsoft.App/sessionPools",
// "Microsoft.Resources/resourceGroups" for a resource group,
// "Microsoft.Resources/subscriptions" for a subscription.
func (id *ResourceID) ResourceType() string {
	switch {
	case id.Namespace != "":
		return id.Namespace + "/" + strings.Join(id.Types, "/")
	case id.ResourceGroup != "":
		return "Microsoft.Resources/resourceGroups"
	}
	return "Microsoft.Resources/subscriptions"
}

// Name is the last name in the id (the resource group or subscription for those).
func (id *ResourceID) Name() string {
	switch {
	case len(id.Names) > 0:
		return id.Names[len(id.Names)-1]
	case id.Namespace == "" && id.ResourceGroup != "":
		return id.ResourceGroup
	case id.Namespace == "":
		return id.Subscription
	}
	return ""
}

// SubscriptionID returns "/subscriptions/{sub}".
func (id *ResourceID) SubscriptionID() string { return "/subscriptions/" + id.Subscription }

// ResourceGroupID returns "/subscriptions/{sub}/resourceGroups/{rg}", or "" at subscription scope.
func (id *ResourceID) ResourceGroupID() string {
	if id.ResourceGroup == "" {
		return ""
	}
	return id.SubscriptionID() + "/resourceGroups/" + id.ResourceGroup
}

// String renders the id in canonical form, with the keywords in ARM's casing.
func (id *ResourceID) String() string {
	var b strings.Builder
	b.WriteString(id.SubscriptionID())
	if id.ResourceGroup != "" {
		b.WriteString("/resourceGroups/" + id.ResourceGroup)
	}
	if id.Namespace != "" {
		b.WriteString("/providers/" + id.Namespace)
		for i, t := range id.Types {
			b.WriteString("/" + t)
			if i < len(id.Names) {
				b.WriteString("/" + id.Names[i])
			}
		}
	}
	return b.String()
}
