package cli

import (
	"context"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"
)

// identityVersion is the Microsoft.ManagedIdentity api-version.
const identityVersion = "2023-01-31"

// flatten moves an object's "properties" into its top level, as az's
// track-2 SDK models print (identity: principalId, clientId, tenantId).
// rename maps property names that would clash (role definitions' type).
func flatten(v any, rename map[string]string) any {
	switch x := v.(type) {
	case []any:
		for i := range x {
			x[i] = flatten(x[i], rename)
		}
		return x
	case map[string]any:
		props, ok := x["properties"].(map[string]any)
		if !ok {
			return x
		}
		delete(x, "properties")
		for k, pv := range props {
			if r, ok := rename[k]; ok {
				k = r
			}
			if _, exists := x[k]; !exists {
				x[k] = pv
			}
		}
		return x
	}
	return v
}

func identityPath(sub, rg, name string) string {
	return "/subscriptions/" + sub + "/resourceGroups/" + url.PathEscape(rg) + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" + url.PathEscape(name)
}

func newIdentityCommand(app *App, g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "identity", Short: "Manage user-assigned managed identities."}
	var ids []string
	target := func(in *inv, name, rg string, ids []string) (string, error) {
		c, err := in.arm()
		if err != nil {
			return "", err
		}
		if len(ids) > 0 {
			if len(ids) > 1 {
				return "", usageErr("usage error: give one --ids value")
			}
			return ids[0], nil
		}
		if err := required(name, "--name/-n"); err != nil {
			return "", err
		}
		rg, err = in.resourceGroup(rg)
		if err != nil {
			return "", err
		}
		return identityPath(c.sub.ID, rg, name), nil
	}
	nameFlags := func(c *cobra.Command, name, rg *string, ids *[]string) {
		c.Flags().StringVarP(name, "name", "n", "", "The identity's name.")
		c.Flags().StringVarP(rg, "resource-group", "g", "", "Name of resource group.")
		if ids != nil {
			multi(c, ids, "ids", "", "The identity's resource ID.")
		}
	}

	var cName, cRG, cLoc string
	var cTags []string
	create := &cobra.Command{
		Use:     "create",
		Short:   "Create a user-assigned identity.",
		Example: "  tidepool identity create --resource-group $RG --name $UAMI_NAME --location $LOCATION",
		Args:    cobra.NoArgs,
	}
	nameFlags(create, &cName, &cRG, nil)
	create.Flags().StringVarP(&cLoc, "location", "l", "", "Location. Default: the configured default, else the resource group's.")
	multi(create, &cTags, "tags", "", "Space-separated tags: key[=value] [key[=value] ...].")
	create.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		path, err := target(in, cName, cRG, nil)
		if err != nil {
			return nil, err
		}
		c := in.client
		loc, err := in.location(cLoc)
		if err != nil {
			return nil, err
		}
		if loc == "" {
			r, _ := parseARMID(path)
			grp, err := c.get(ctx, groupPath(c.sub.ID, r.rg), groupsVersion)
			if err != nil {
				return nil, err
			}
			loc = str(dig(grp, "location"))
		}
		body := map[string]any{"location": loc}
		if cTags != nil {
			body["tags"] = parseTags(cTags)
		}
		r, err := c.call(ctx, http.MethodPut, path, identityVersion, body)
		if err != nil {
			return nil, err
		}
		v, err := r.json()
		return flatten(v, nil), err
	})

	var sName, sRG string
	show := &cobra.Command{
		Use:     "show",
		Short:   "Show a user-assigned identity (properties flattened, as az: principalId, clientId, tenantId).",
		Example: "  tidepool identity show --resource-group $RG --name $UAMI_NAME --query principalId -o tsv",
		Args:    cobra.NoArgs,
	}
	nameFlags(show, &sName, &sRG, &ids)
	show.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		path, err := target(in, sName, sRG, ids)
		if err != nil {
			return nil, err
		}
		v, err := in.client.get(ctx, path, identityVersion)
		return flatten(v, nil), err
	})

	var lRG string
	list := &cobra.Command{Use: "list", Short: "List user-assigned identities.", Example: "  tidepool identity list -g $RG -o table", Args: cobra.NoArgs}
	list.Flags().StringVarP(&lRG, "resource-group", "g", "", "Name of resource group.")
	list.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		c, err := in.arm()
		if err != nil {
			return nil, err
		}
		p := "/subscriptions/" + c.sub.ID
		if lRG != "" {
			p += "/resourceGroups/" + url.PathEscape(lRG)
		}
		l, err := c.list(ctx, p+"/providers/Microsoft.ManagedIdentity/userAssignedIdentities", identityVersion, false)
		if err != nil {
			return nil, err
		}
		return flatten(l, nil), nil
	})

	var dName, dRG string
	var dIDs []string
	del := &cobra.Command{Use: "delete", Short: "Delete a user-assigned identity.", Example: "  tidepool identity delete -g $RG -n $UAMI_NAME", Args: cobra.NoArgs}
	nameFlags(del, &dName, &dRG, &dIDs)
	del.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		path, err := target(in, dName, dRG, dIDs)
		if err != nil {
			return nil, err
		}
		_, err = in.client.call(ctx, http.MethodDelete, path, identityVersion, nil)
		return noOutput{}, err
	})
	cmd.AddCommand(create, show, list, del)
	return cmd
}
