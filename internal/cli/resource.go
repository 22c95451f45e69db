package cli

import (
	"context"
	"sort"
	"strings"

	"github.com/spf13/cobra"
)

// knownVersions are the api-versions used for providers the server's
// metadata does not list.
var knownVersions = map[string]string{
	"microsoft.managedidentity/userassignedidentities": identityVersion,
	"microsoft.authorization/roleassignments":          authorizationVersion,
	"microsoft.authorization/roledefinitions":          authorizationVersion,
	"microsoft.resources/deployments":                  deploymentVersion,
	"microsoft.resources/resourcegroups":               groupsVersion,
}

// resourceType returns the provider namespace and the type path (nested
// types joined by '/') of a resource id, from its last providers segment.
func resourceType(id string) (ns, typ string, ok bool) {
	segs := strings.Split(strings.Trim(id, "/"), "/")
	last := -1
	for i, s := range segs {
		if strings.EqualFold(s, "providers") {
			last = i
		}
	}
	if last < 0 {
		if len(segs) == 4 && strings.EqualFold(segs[2], "resourceGroups") {
			return "Microsoft.Resources", "resourceGroups", true
		}
		return "", "", false
	}
	rest := segs[last+1:]
	if len(rest) < 3 || len(rest)%2 != 1 {
		return "", "", false
	}
	var types []string
	for i := 1; i < len(rest); i += 2 {
		types = append(types, rest[i])
	}
	return rest[0], strings.Join(types, "/"), true
}

// apiVersionFor picks az's api-version for a resource type: the newest
// stable version in the provider's metadata, else the newest preview.
func (in *inv) apiVersionFor(ctx context.Context, c *armClient, sub, ns, typ string) (string, error) {
	key := strings.ToLower(ns + "/" + typ)
	if strings.EqualFold(ns, "Microsoft.Resources") && strings.EqualFold(typ, "resourceGroups") {
		return groupsVersion, nil
	}
	p, err := c.get(ctx, "/subscriptions/"+sub+"/providers/"+ns, providersVersion)
	if err != nil {
		if v, ok := knownVersions[key]; ok && isNotFound(err) {
			return v, nil
		}
		return "", err
	}
	types, _ := dig(p, "resourceTypes").([]any)
	for _, t := range types {
		if !strings.EqualFold(str(dig(t, "resourceType")), typ) {
			continue
		}
		var versions []string
		for _, v := range dig(t, "apiVersions").([]any) {
			versions = append(versions, str(v))
		}
		sort.Sort(sort.Reverse(sort.StringSlice(versions)))
		for _, v := range versions {
			if !strings.Contains(strings.ToLower(v), "preview") {
				return v, nil
			}
		}
		if len(versions) > 0 {
			return versions[0], nil
		}
	}
	if v, ok := knownVersions[key]; ok {
		return v, nil
	}
	return "", validationErr("The resource type '%s' could not be found in the namespace '%s' for api version ''.", typ, ns)
}

func newResourceCommand(app *App, g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "resource", Short: "Manage resources by id, whatever their type."}
	resolve := func(ctx context.Context, in *inv, ids []string, name, rg, rtype, version string) ([][2]string, error) {
		c, err := in.arm()
		if err != nil {
			return nil, err
		}
		if len(ids) == 0 {
			if name == "" || rtype == "" {
				return nil, usageErr("usage error: --ids IDS [...] | --resource-group RG --name NAME --resource-type NAMESPACE/TYPE")
			}
			rg, err := in.resourceGroup(rg)
			if err != nil {
				return nil, err
			}
			ids = []string{"/subscriptions/" + c.sub.ID + "/resourceGroups/" + rg + "/providers/" + rtype + "/" + name}
		}
		var out [][2]string
		for _, id := range ids {
			r, ok := parseARMID(id)
			ns, typ, ok2 := resourceType(id)
			if !ok || !ok2 {
				return nil, usageErr("argument --ids: invalid resource ID '%s'", id)
			}
			v := version
			if v == "" {
				if v, err = in.apiVersionFor(ctx, c, r.sub, ns, typ); err != nil {
					return nil, err
				}
			}
			out = append(out, [2]string{id, v})
		}
		return out, nil
	}
	var sIDs []string
	var sName, sRG, sType, sVersion string
	show := &cobra.Command{
		Use:   "show",
		Short: "Get a resource by id; the api-version comes from the provider's metadata unless --api-version.",
		Example: `  tidepool resource show --ids "/subscriptions/$SUBSCRIPTION/resourceGroups/$RG/providers/Microsoft.App/sessionpools/$POOL" \
      --query '{name:name, location:location, provisioningState:properties.provisioningState}'
  tidepool resource show -g $RG -n $POOL --resource-type Microsoft.App/sessionPools`,
		Args: cobra.NoArgs,
	}
	resFlags := func(c *cobra.Command, ids *[]string, name, rg, rtype, version *string) {
		multi(c, ids, "ids", "", "One or more resource IDs (space-delimited).")
		c.Flags().StringVarP(name, "name", "n", "", "The resource name (with --resource-type).")
		c.Flags().StringVarP(rg, "resource-group", "g", "", "Name of resource group.")
		c.Flags().StringVar(rtype, "resource-type", "", "The resource type, NAMESPACE/TYPE, e.g. Microsoft.App/sessionPools.")
		c.Flags().StringVar(version, "api-version", "", "The api-version. Default: the newest stable one the provider lists.")
	}
	resFlags(show, &sIDs, &sName, &sRG, &sType, &sVersion)
	show.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		targets, err := resolve(ctx, in, sIDs, sName, sRG, sType, sVersion)
		if err != nil {
			return nil, err
		}
		var out []any
		for _, t := range targets {
			v, err := in.client.get(ctx, t[0], t[1])
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		if len(out) == 1 {
			return out[0], nil
		}
		return out, nil
	})
	var dIDs []string
	var dName, dRG, dType, dVersion string
	var dNoWait bool
	del := &cobra.Command{
		Use:     "delete",
		Short:   "Delete resources by id.",
		Example: "  tidepool resource delete --ids $POOL_ID $IDENTITY_ID",
		Args:    cobra.NoArgs,
	}
	resFlags(del, &dIDs, &dName, &dRG, &dType, &dVersion)
	del.Flags().BoolVar(&dNoWait, "no-wait", false, "Do not wait for the long-running operation to finish.")
	del.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		targets, err := resolve(ctx, in, dIDs, dName, dRG, dType, dVersion)
		if err != nil {
			return nil, err
		}
		for _, t := range targets {
			if err := in.client.del(ctx, t[0], t[1], dNoWait); err != nil {
				return nil, err
			}
		}
		return noOutput{}, nil
	})
	cmd.AddCommand(show, del)
	return cmd
}
