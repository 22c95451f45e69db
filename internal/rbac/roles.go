// Package rbac decides who may do what where: Azure's built-in role
// definitions, role assignments at scopes, and the check every route of
// the management and data-plane APIs makes.
//
// The rules are Azure's: an assignment at a scope applies to that scope and
// everything below it; a role grants an action when one of its Actions (or
// DataActions, for data-plane calls) matches it and none of its NotActions
// (NotDataActions) does; patterns may hold "*" wildcards and compare
// case-insensitively. There are no deny assignments.
package rbac

import (
	"strings"
)

// Role is a role definition.
type Role struct {
	ID             string // a GUID, Azure's id for the built-in roles
	Name           string // roleName, as Azure spells it
	Description    string
	Actions        []string
	NotActions     []string
	DataActions    []string
	NotDataActions []string
}

// Well-known role ids.
const (
	OwnerID                   = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
	ContributorID             = "b24988ac-6180-42a0-ab88-20f7382dd24c"
	ReaderID                  = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
	UserAccessAdministratorID = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"
	SessionExecutorID         = "0fb8eba5-a2bb-4abe-b1c1-49dfad359bb0"
	ManagedIdentityOperatorID = "f1a07417-d97a-45cb-824c-7a7467783830"
)

// sessionData are the data actions of the pools' data plane. Azure's Owner
// and Contributor hold no data actions; tidepool grants them this one
// family, as the session pool documentation says Contributor may call the
// data plane (docs/security.md).
const sessionData = "Microsoft.App/sessionPools/*"

// BuiltIn are the role definitions this server knows. There are no custom
// roles.
var BuiltIn = []Role{
	{
		ID: OwnerID, Name: "Owner",
		Description: "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
		Actions:     []string{"*"},
		DataActions: []string{sessionData},
	},
	{
		ID: ContributorID, Name: "Contributor",
		Description: "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC.",
		Actions:     []string{"*"},
		NotActions: []string{
			"Microsoft.Authorization/*/Delete",
			"Microsoft.Authorization/*/Write",
			"Microsoft.Authorization/elevateAccess/Action",
			"Microsoft.Directory/*/write",
			"Microsoft.Directory/*/delete",
		},
		DataActions: []string{sessionData},
	},
	{
		ID: ReaderID, Name: "Reader",
		Description: "View all resources, but does not allow you to make any changes.",
		Actions:     []string{"*/read"},
	},
	{
		ID: UserAccessAdministratorID, Name: "User Access Administrator",
		Description: "Lets you manage user access to Azure resources.",
		Actions:     []string{"*/read", "Microsoft.Authorization/*", "Microsoft.Directory/*"},
	},
	{
		ID: SessionExecutorID, Name: "Azure ContainerApps Session Executor",
		Description: "Grants permission to execute sessions in a session pool.",
		DataActions: []string{"Microsoft.App/sessionPools/interpreters/*", "Microsoft.App/sessionPools/sessions/*"},
	},
	{
		ID: ManagedIdentityOperatorID, Name: "Managed Identity Operator",
		Description: "Read and Assign User Assigned Identity",
		Actions: []string{
			"Microsoft.ManagedIdentity/userAssignedIdentities/read",
			"Microsoft.ManagedIdentity/userAssignedIdentities/assign/action",
		},
	},
}

// RoleByID returns the built-in role with id, which may be the bare GUID or
// a role definition's resource id (".../roleDefinitions/{guid}").
func RoleByID(id string) (*Role, bool) {
	if i := strings.LastIndexByte(id, '/'); i >= 0 {
		id = id[i+1:]
	}
	for i := range BuiltIn {
		if strings.EqualFold(BuiltIn[i].ID, id) {
			return &BuiltIn[i], true
		}
	}
	return nil, false
}

// RoleByName returns the built-in role named name (case-insensitive).
func RoleByName(name string) (*Role, bool) {
	for i := range BuiltIn {
		if strings.EqualFold(BuiltIn[i].Name, name) {
			return &BuiltIn[i], true
		}
	}
	return nil, false
}

// Allows reports whether the role grants action: a management action, or a
// data action when data is true.
func (r *Role) Allows(action string, data bool) bool {
	allow, deny := r.Actions, r.NotActions
	if data {
		allow, deny = r.DataActions, r.NotDataActions
	}
	return matchAny(allow, action) && !matchAny(deny, action)
}

func matchAny(patterns []string, action string) bool {
	for _, p := range patterns {
		if MatchAction(p, action) {
			return true
		}
	}
	return false
}

// MatchAction reports whether an action pattern matches action: ASCII
// case-insensitive, each "*" standing for any run of characters.
func MatchAction(pattern, action string) bool {
	// Iterative glob matching with one backtrack point: linear for the
	// short patterns roles use, and never exponential.
	p, a := 0, 0
	star, mark := -1, 0
	for a < len(action) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, a
			p++
		case p < len(pattern) && lower(pattern[p]) == lower(action[a]):
			p++
			a++
		case star >= 0:
			p = star + 1
			mark++
			a = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// CleanScope returns scope in a comparable form: no empty segments, no
// trailing slash, a leading slash; "" and "/" are the root scope, "/".
func CleanScope(scope string) string {
	var b strings.Builder
	for seg := range strings.SplitSeq(scope, "/") {
		if seg != "" {
			b.WriteByte('/')
			b.WriteString(seg)
		}
	}
	if b.Len() == 0 {
		return "/"
	}
	return b.String()
}

// Covers reports whether an assignment at scope applies to target: target
// is scope or lies below it. Both must be clean (CleanScope); the
// comparison ignores case, as ARM ids do.
func Covers(scope, target string) bool {
	if scope == "/" {
		return true
	}
	if len(target) < len(scope) || !strings.EqualFold(target[:len(scope)], scope) {
		return false
	}
	return len(target) == len(scope) || target[len(scope)] == '/'
}
