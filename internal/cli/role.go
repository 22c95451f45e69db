package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"

	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
)

// authorizationVersion is the Microsoft.Authorization api-version.
const authorizationVersion = "2022-04-01"

var guidRule = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// graphGet GETs a Microsoft Graph path on the login's server, with a Graph
// token, or a management token when the server issues none for Graph.
func (c *armClient) graphGet(ctx context.Context, path string) (any, error) {
	resource := resourceGraph
	if _, err := c.token(ctx, resourceGraph); err != nil {
		resource = resourceARM
	}
	r, err := c.send(ctx, http.MethodGet, path, resource, nil, "")
	if err != nil {
		return nil, err
	}
	return r.json()
}

// resolveAssignee returns the object id of --assignee (an object id, or a
// service principal's client id) and its principal type when known.
func (in *inv) resolveAssignee(ctx context.Context, c *armClient, assignee string) (string, string, error) {
	q := url.Values{"$filter": {"appId eq '" + strings.ReplaceAll(assignee, "'", "''") + "'"}}
	v, err := c.graphGet(ctx, "/v1.0/servicePrincipals?"+q.Encode())
	if err == nil {
		if l, _ := dig(v, "value").([]any); len(l) > 0 {
			t := str(dig(l[0], "servicePrincipalType"))
			if t == "" || strings.EqualFold(t, "Application") || strings.EqualFold(t, "ManagedIdentity") {
				t = "ServicePrincipal"
			}
			return str(dig(l[0], "id")), t, nil
		}
	} else {
		in.log.Debug("resolve assignee through Graph", "err", err)
	}
	if guidRule.MatchString(assignee) {
		return assignee, "", nil
	}
	return "", "", validationErr("Cannot find user or service principal in graph database for '%s'. If the assignee is an appId, make sure the corresponding service principal is created with 'az ad sp create --id %s'.", assignee, assignee)
}

// roleDefinitions lists the role definitions at scope, filtered by name.
func (c *armClient) roleDefinitions(ctx context.Context, scope, name string) ([]any, error) {
	p := strings.TrimSuffix(scope, "/") + "/providers/Microsoft.Authorization/roleDefinitions"
	if name != "" {
		p += "?" + url.Values{"$filter": {"roleName eq '" + strings.ReplaceAll(name, "'", "''") + "'"}}.Encode()
	}
	return c.list(ctx, p, authorizationVersion, false)
}

// resolveRole returns the full role definition id of --role: a GUID, an
// id, or a role name.
func (in *inv) resolveRole(ctx context.Context, c *armClient, scope, role string) (string, error) {
	switch {
	case strings.HasPrefix(role, "/"):
		return role, nil
	case guidRule.MatchString(role):
		return "/subscriptions/" + c.sub.ID + "/providers/Microsoft.Authorization/roleDefinitions/" + role, nil
	}
	defs, err := c.roleDefinitions(ctx, scope, role)
	if err != nil {
		return "", err
	}
	switch len(defs) {
	case 0:
		return "", validationErr("Role '%s' doesn't exist.", role)
	case 1:
		return str(dig(defs[0], "id")), nil
	}
	return "", validationErr("Multiple role definitions are found with the name '%s'. Please use the role definition id instead.", role)
}

func lastSegment(id string) string {
	return id[strings.LastIndex(id, "/")+1:]
}

// roleNames maps role definition GUIDs (lower-case) to names.
func (c *armClient) roleNames(ctx context.Context) map[string]string {
	m := map[string]string{}
	defs, err := c.roleDefinitions(ctx, "/subscriptions/"+c.sub.ID, "")
	if err != nil {
		c.log.Debug("list role definitions", "err", err)
		return m
	}
	for _, d := range defs {
		m[strings.ToLower(str(dig(d, "name")))] = str(dig(d, "properties.roleName"))
	}
	return m
}

// assignmentTable is az's table transformer for role assignment list.
func assignmentTable(v any) any {
	l, ok := v.([]any)
	if !ok {
		l = []any{v}
	}
	rows := []any{}
	for _, a := range l {
		p := str(dig(a, "principalName"))
		if p == "" {
			p = str(dig(a, "principalId"))
		}
		rows = append(rows, ordered{keys: []string{"Principal", "Role", "Scope"},
			m: map[string]any{"Principal": p, "Role": str(dig(a, "roleDefinitionName")), "Scope": str(dig(a, "scope"))}})
	}
	return rows
}

func newRoleCommand(app *App, g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "role", Short: "Manage role assignments and read role definitions."}
	assignment := &cobra.Command{Use: "assignment", Short: "Manage role assignments."}
	definition := &cobra.Command{Use: "definition", Short: "Read role definitions."}

	var cAssignee, cObjectID, cPrincipalType, cRole, cScope, cRG string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a role assignment.",
		Example: `  tidepool role assignment create --assignee $UAMI_PRINCIPAL --role "0fb8eba5-a2bb-4abe-b1c1-49dfad359bb0" --scope $POOL_ID
  tidepool role assignment create --assignee $CLIENT_ID --role "Azure ContainerApps Session Executor" --scope $POOL_ID`,
		Args: cobra.NoArgs,
	}
	create.Flags().StringVar(&cAssignee, "assignee", "", "The principal: an object id, or a service principal's client (app) id.")
	create.Flags().StringVar(&cObjectID, "assignee-object-id", "", "The principal's object id, used as is (no Graph lookup).")
	create.Flags().StringVar(&cPrincipalType, "assignee-principal-type", "", "With --assignee-object-id: User, Group, ServicePrincipal, ForeignGroup.")
	create.Flags().StringVar(&cRole, "role", "", "Role name or id. Required.")
	create.Flags().StringVar(&cScope, "scope", "", "Scope the assignment applies to. Default: the subscription, or the resource group of -g.")
	create.Flags().StringVarP(&cRG, "resource-group", "g", "", "Use the resource group as scope.")
	create.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		if err := required(cRole, "--role"); err != nil {
			return nil, err
		}
		if cAssignee == "" && cObjectID == "" {
			return nil, usageErr("usage error: --assignee STRING | --assignee-object-id GUID")
		}
		c, err := in.arm()
		if err != nil {
			return nil, err
		}
		scope := assignmentScope(c, cScope, cRG)
		roleID, err := in.resolveRole(ctx, c, scope, cRole)
		if err != nil {
			return nil, err
		}
		principal, ptype := cObjectID, cPrincipalType
		if principal == "" {
			if principal, ptype, err = in.resolveAssignee(ctx, c, cAssignee); err != nil {
				return nil, err
			}
		}
		props := map[string]any{"roleDefinitionId": roleID, "principalId": principal}
		if ptype != "" {
			props["principalType"] = ptype
		}
		path := strings.TrimSuffix(scope, "/") + "/providers/Microsoft.Authorization/roleAssignments/" + uuid.NewString()
		r, err := c.call(ctx, http.MethodPut, path, authorizationVersion, map[string]any{"properties": props})
		if err != nil {
			return nil, err
		}
		v, err := r.json()
		return flatten(v, nil), err
	})

	var lScope, lAssignee, lRole, lRG string
	var lAll, lInherited bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List role assignments: those at --scope (default: the subscription), or every one with --all.",
		Example: `  tidepool role assignment list --scope "/subscriptions/$SUBSCRIPTION/resourceGroups/$RG/providers/Microsoft.App/sessionpools/$POOL" --output table
  tidepool role assignment list --assignee $UAMI_PRINCIPAL --all`,
		Args: cobra.NoArgs,
	}
	list.Flags().StringVar(&lScope, "scope", "", "Scope of the assignments.")
	list.Flags().StringVarP(&lRG, "resource-group", "g", "", "Use the resource group as scope.")
	list.Flags().StringVar(&lAssignee, "assignee", "", "Only the assignments of this principal (object id or client id).")
	list.Flags().StringVar(&lRole, "role", "", "Only the assignments of this role (name or id).")
	list.Flags().BoolVar(&lAll, "all", false, "Every assignment in the subscription, at any scope.")
	list.Flags().BoolVar(&lInherited, "include-inherited", false, "Also the assignments at scopes above --scope.")
	list.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		in.table = assignmentTable
		c, err := in.arm()
		if err != nil {
			return nil, err
		}
		return in.listAssignments(ctx, c, assignmentScope(c, lScope, lRG), lAssignee, lRole, lAll, lInherited)
	})

	var dIDs []string
	var dScope, dAssignee, dRole, dRG string
	var dYes bool
	del := &cobra.Command{
		Use:   "delete",
		Short: "Delete role assignments, by id or by --assignee, --role and --scope.",
		Example: `  tidepool role assignment delete --assignee $UAMI_PRINCIPAL --role "Azure ContainerApps Session Executor" --scope $POOL_ID
  tidepool role assignment delete --ids $ASSIGNMENT_ID`,
		Args: cobra.NoArgs,
	}
	multi(del, &dIDs, "ids", "", "Role assignment ids (space-delimited).")
	del.Flags().StringVar(&dScope, "scope", "", "Scope of the assignments.")
	del.Flags().StringVarP(&dRG, "resource-group", "g", "", "Use the resource group as scope.")
	del.Flags().StringVar(&dAssignee, "assignee", "", "The principal (object id or client id).")
	del.Flags().StringVar(&dRole, "role", "", "The role (name or id).")
	del.Flags().BoolVarP(&dYes, "yes", "y", false, "Accepted for az compatibility: nothing is asked.")
	del.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		c, err := in.arm()
		if err != nil {
			return nil, err
		}
		ids := dIDs
		if len(ids) == 0 {
			if dAssignee == "" && dRole == "" && dScope == "" && dRG == "" {
				return nil, usageErr("usage error: --ids IDS | --assignee, --role and --scope to choose the assignments")
			}
			l, err := in.listAssignments(ctx, c, assignmentScope(c, dScope, dRG), dAssignee, dRole, false, false)
			if err != nil {
				return nil, err
			}
			for _, a := range l {
				ids = append(ids, str(dig(a, "id")))
			}
			if len(ids) == 0 {
				return nil, &cliError{msg: "No matched assignments were found to delete", code: 1}
			}
		}
		for _, id := range ids {
			if _, err := c.call(ctx, http.MethodDelete, id, authorizationVersion, nil); err != nil {
				return nil, err
			}
		}
		return noOutput{}, nil
	})
	assignment.AddCommand(create, list, del)

	var rName, rScope string
	var rCustom bool
	dlist := &cobra.Command{
		Use:     "list",
		Short:   "List role definitions (properties flattened as az; properties.type becomes roleType).",
		Example: "  tidepool role definition list --name \"Azure ContainerApps Session Executor\" --query [].name -o tsv\n  tidepool role definition list -o table",
		Args:    cobra.NoArgs,
	}
	dlist.Flags().StringVarP(&rName, "name", "n", "", "The role's name or id.")
	dlist.Flags().StringVar(&rScope, "scope", "", "Scope. Default: the subscription.")
	dlist.Flags().BoolVar(&rCustom, "custom-role-only", false, "Only custom roles.")
	dlist.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		in.table = tableOf([2]string{"Name", "roleName"}, [2]string{"Type", "roleType"}, [2]string{"Description", "description"})
		c, err := in.arm()
		if err != nil {
			return nil, err
		}
		scope := rScope
		if scope == "" {
			scope = "/subscriptions/" + c.sub.ID
		}
		var defs []any
		if guidRule.MatchString(rName) {
			d, err := c.get(ctx, strings.TrimSuffix(scope, "/")+"/providers/Microsoft.Authorization/roleDefinitions/"+rName, authorizationVersion)
			if err != nil {
				return nil, err
			}
			defs = []any{d}
		} else if defs, err = c.roleDefinitions(ctx, scope, rName); err != nil {
			return nil, err
		}
		out := []any{}
		for _, d := range defs {
			if rCustom && strings.EqualFold(str(dig(d, "properties.type")), "BuiltInRole") {
				continue
			}
			out = append(out, flatten(d, map[string]string{"type": "roleType"}))
		}
		return out, nil
	})
	definition.AddCommand(dlist)
	cmd.AddCommand(assignment, definition)
	return cmd
}

func assignmentScope(c *armClient, scope, rg string) string {
	switch {
	case scope != "":
		return scope
	case rg != "":
		return "/subscriptions/" + c.sub.ID + "/resourceGroups/" + rg
	}
	return "/subscriptions/" + c.sub.ID
}

// listAssignments lists assignments at scope (exact scope unless all or
// inherited), filtered by assignee and role, flattened, with az's
// principalName and roleDefinitionName.
func (in *inv) listAssignments(ctx context.Context, c *armClient, scope, assignee, role string, all, inherited bool) ([]any, error) {
	filter := "atScope()"
	var principal string
	if assignee != "" {
		var err error
		if principal, _, err = in.resolveAssignee(ctx, c, assignee); err != nil {
			return nil, err
		}
		filter = "principalId eq '" + principal + "'"
	}
	listScope := scope
	if all {
		listScope = "/subscriptions/" + c.sub.ID
		if assignee == "" {
			filter = ""
		}
	}
	p := strings.TrimSuffix(listScope, "/") + "/providers/Microsoft.Authorization/roleAssignments"
	if filter != "" {
		p += "?" + url.Values{"$filter": {filter}}.Encode()
	}
	l, err := c.list(ctx, p, authorizationVersion, false)
	if err != nil {
		return nil, err
	}
	var roleID string
	if role != "" {
		if roleID, err = in.resolveRole(ctx, c, scope, role); err != nil {
			return nil, err
		}
	}
	names := c.roleNames(ctx)
	out := []any{}
	for _, a := range l {
		a = flatten(a, nil)
		s := str(dig(a, "scope"))
		switch {
		case all:
		case inherited:
			if !strings.HasPrefix(strings.ToLower(scope)+"/", strings.ToLower(strings.TrimSuffix(s, "/"))+"/") {
				continue
			}
		case !strings.EqualFold(strings.TrimSuffix(s, "/"), strings.TrimSuffix(scope, "/")):
			continue
		}
		if principal != "" && !strings.EqualFold(str(dig(a, "principalId")), principal) {
			continue
		}
		rd := str(dig(a, "roleDefinitionId"))
		if roleID != "" && !strings.EqualFold(lastSegment(rd), lastSegment(roleID)) {
			continue
		}
		if m, ok := a.(map[string]any); ok {
			if _, has := m["roleDefinitionName"]; !has {
				m["roleDefinitionName"] = names[strings.ToLower(lastSegment(rd))]
			}
			if _, has := m["principalName"]; !has {
				m["principalName"] = ""
			}
		}
		out = append(out, a)
	}
	return out, nil
}

// sessionExecutorRole is the built-in role "Azure ContainerApps Session
// Executor", which az gives a pool's creator.
const sessionExecutorRole = "0fb8eba5-a2bb-4abe-b1c1-49dfad359bb0"

// tokenObjectID returns the oid claim of a JWT, unverified: the caller's
// own object id, as az reads it from Graph's /me.
func tokenObjectID(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	data, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return ""
	}
	var claims struct {
		OID string `json:"oid"`
	}
	if json.Unmarshal(data, &claims) != nil {
		return ""
	}
	return claims.OID
}

// assignCreator gives the caller the Session Executor role on a new pool,
// as az does after create; failures are only a warning and an existing
// assignment is fine.
func (in *inv) assignCreator(ctx context.Context, c *armClient, poolPath string) {
	tok, err := c.token(ctx, resourceARM)
	oid := tokenObjectID(tok.AccessToken)
	if err == nil && oid != "" {
		body := map[string]any{"properties": map[string]any{
			"roleDefinitionId": "/subscriptions/" + c.sub.ID + "/providers/Microsoft.Authorization/roleDefinitions/" + sessionExecutorRole,
			"principalId":      oid,
		}}
		_, err = c.call(ctx, http.MethodPut, poolPath+"/providers/Microsoft.Authorization/roleAssignments/"+uuid.NewString(), authorizationVersion, body)
		var se *serviceError
		if err == nil || errors.As(err, &se) && strings.EqualFold(se.Code, "RoleAssignmentExists") {
			return
		}
	}
	in.log.Info("assign the creator the Session Executor role", "err", err)
	in.warn("Could not add user as session pool creator role to the session pool, please follow the docs https://learn.microsoft.com/en-us/azure/container-apps/sessions-code-interpreter?tabs=azure-cli#authentication to add the role assignment manually.")
}
