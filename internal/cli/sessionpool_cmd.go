package cli

import (
	"context"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
)

// parseID splits an ARM resource id into subscription, group, and the
// last type and name.
type armID struct {
	sub, rg, namespace, typ, name string
}

func parseARMID(id string) (armID, bool) {
	segs := strings.Split(strings.Trim(id, "/"), "/")
	var r armID
	if len(segs) < 2 || !strings.EqualFold(segs[0], "subscriptions") {
		return r, false
	}
	r.sub = segs[1]
	rest := segs[2:]
	if len(rest) >= 2 && strings.EqualFold(rest[0], "resourceGroups") {
		r.rg = rest[1]
		rest = rest[2:]
	}
	if len(rest) == 0 {
		return r, true
	}
	if len(rest) < 4 || !strings.EqualFold(rest[0], "providers") || len(rest)%2 != 0 {
		return r, false
	}
	r.namespace, r.typ, r.name = rest[1], rest[len(rest)-2], rest[len(rest)-1]
	if u, err := url.PathUnescape(r.name); err == nil {
		r.name = u
	}
	return r, true
}

// poolRefs returns the pools named by --ids, or by -n and -g.
func (in *inv) poolRefs(ids []string, name, rg string) ([]poolRef, error) {
	c, err := in.arm()
	if err != nil {
		return nil, err
	}
	if len(ids) > 0 {
		if name != "" || rg != "" {
			return nil, usageErr("usage error: --ids cannot be combined with --name or --resource-group")
		}
		var refs []poolRef
		for _, id := range ids {
			r, ok := parseARMID(id)
			if !ok || r.rg == "" || !strings.EqualFold(r.typ, "sessionPools") {
				return nil, usageErr("argument --ids: invalid session pool resource ID '%s'", id)
			}
			refs = append(refs, poolRef{r.sub, r.rg, r.name})
		}
		return refs, nil
	}
	if name == "" {
		return nil, usageErr("the following arguments are required: --name/-n (or --ids)")
	}
	rg, err = in.resourceGroup(rg)
	if err != nil {
		return nil, err
	}
	return []poolRef{{c.sub.ID, rg, name}}, nil
}

// eachRef runs f on every ref: one result, or a list for several --ids.
func eachRef(refs []poolRef, f func(poolRef) (any, error)) (any, error) {
	var out []any
	for _, r := range refs {
		v, err := f(r)
		if err != nil {
			return nil, err
		}
		if _, ok := v.(noOutput); ok {
			continue
		}
		out = append(out, v)
	}
	switch {
	case len(out) == 0:
		return noOutput{}, nil
	case len(refs) == 1:
		return out[0], nil
	}
	return out, nil
}

func newSessionPoolCommand(app *App, g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "sessionpool", Short: "Commands to manage session pools."}

	cf := &poolFlags{}
	create := &cobra.Command{
		Use:   "create",
		Short: "Create or update a session pool.",
		Example: `  # PythonLTS pool with default settings
  tidepool containerapp sessionpool create -n mysessionpool -g MyResourceGroup --location eastasia

  # PythonLTS, max concurrent sessions 30, ready sessions 20
  tidepool containerapp sessionpool create -n mysessionpool -g MyResourceGroup \
      --container-type PythonLTS --max-sessions 30 --ready-sessions 20 --location eastasia

  # CustomContainer with secrets and environment variables
  tidepool containerapp sessionpool create -n mysessionpool -g MyResourceGroup \
      --container-type CustomContainer --environment MyEnvironment \
      --cpu 0.5 --memory 1Gi --target-port 80 --image MyImage \
      --env-vars GREETING="Hello, world" SECRETENV=secretref:anothersecret \
      --secrets mysecret=secretvalue1 anothersecret="secret value 2" --location eastasia

  # CustomContainer from a private registry
  tidepool containerapp sessionpool create -n mysessionpool -g MyResourceGroup \
      --container-type CustomContainer --environment MyEnvironment --image MyImage \
      --cpu 0.5 --memory 1Gi --target-port 80 --registry-server myregistry.azurecr.io \
      --registry-username myregistry --registry-password $REGISTRY_PASSWORD --location eastasia

  # CustomContainer with system- and user-assigned identities
  tidepool containerapp sessionpool create -n mysessionpool -g MyResourceGroup \
      --container-type CustomContainer --environment MyEnvironment --image MyImage \
      --cpu 0.5 --memory 1Gi --target-port 80 \
      --mi-system-assigned --mi-user-assigned MyUserIdentityResourceId --location eastasia

  # CustomContainer with a 360 s cooldown
  tidepool containerapp sessionpool create -n mysessionpool -g MyResourceGroup \
      --environment MyEnvironment --cpu 0.5 --memory 1Gi --target-port 80 \
      --container-type CustomContainer --cooldown-period 360 --location eastasia

  # Shell pool (tidepool and newer api-versions)
  tidepool containerapp sessionpool create -n myshellpool -g MyResourceGroup \
      --container-type Shell --network-status EgressEnabled --location northcentralus`,
		Args: cobra.NoArgs,
	}
	addPoolFlags(create, cf, true)
	create.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		return createPool(ctx, in, cf)
	})

	uf := &poolFlags{}
	update := &cobra.Command{
		Use:   "update",
		Short: "Update a session pool.",
		Example: `  tidepool containerapp sessionpool update -n mysessionpool -g MyResourceGroup --max-sessions 20 --image MyNewImage
  tidepool containerapp sessionpool update --ids $POOL_ID --network-status EgressEnabled --cooldown-period 600`,
		Args: cobra.NoArgs,
	}
	addPoolFlags(update, uf, false)
	update.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		refs, err := in.poolRefs(uf.ids, uf.name, uf.rg)
		if err != nil {
			return nil, err
		}
		return eachRef(refs, func(r poolRef) (any, error) {
			f := *uf
			f.name = r.name
			return updatePool(ctx, in, &f, r)
		})
	})

	var sName, sRG string
	var sIDs []string
	show := &cobra.Command{
		Use:   "show",
		Short: "Show details of a session pool.",
		Example: `  tidepool containerapp sessionpool show -n mysessionpool -g MyResourceGroup
  tidepool containerapp sessionpool show -n mysessionpool -g MyResourceGroup --query properties.poolManagementEndpoint -o tsv`,
		Args: cobra.NoArgs,
	}
	refFlags(show, &sName, &sRG, &sIDs)
	show.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		refs, err := in.poolRefs(sIDs, sName, sRG)
		if err != nil {
			return nil, err
		}
		return eachRef(refs, func(r poolRef) (any, error) { return in.client.get(ctx, r.path(), poolVersion) })
	})

	var lRG string
	list := &cobra.Command{
		Use:   "list",
		Short: "List session pools by subscription or resource group.",
		Example: `  tidepool containerapp sessionpool list
  tidepool containerapp sessionpool list -g MyResourceGroup -o table`,
		Args: cobra.NoArgs,
	}
	list.Flags().StringVarP(&lRG, "resource-group", "g", "", "Name of resource group.")
	list.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		c, err := in.arm()
		if err != nil {
			return nil, err
		}
		if lRG == "" {
			if p, _ := in.profile(); p != nil {
				lRG = p.defaultValue("group")
			}
		}
		if lRG != "" {
			return c.list(ctx, "/subscriptions/"+c.sub.ID+"/resourceGroups/"+url.PathEscape(lRG)+"/providers/Microsoft.App/sessionPools", poolVersion, true)
		}
		return c.list(ctx, "/subscriptions/"+c.sub.ID+"/providers/Microsoft.App/sessionPools", poolVersion, false)
	})

	var dName, dRG string
	var dIDs []string
	var dYes, dNoWait bool
	del := &cobra.Command{
		Use:     "delete",
		Short:   "Delete a session pool.",
		Example: "  tidepool containerapp sessionpool delete -n mysessionpool -g MyResourceGroup --yes",
		Args:    cobra.NoArgs,
	}
	refFlags(del, &dName, &dRG, &dIDs)
	del.Flags().BoolVarP(&dYes, "yes", "y", false, "Do not prompt for confirmation.")
	del.Flags().BoolVar(&dNoWait, "no-wait", false, "Do not wait for the long-running operation to finish.")
	del.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		refs, err := in.poolRefs(dIDs, dName, dRG)
		if err != nil {
			return nil, err
		}
		if !dYes {
			if err := in.confirm(""); err != nil {
				return nil, err
			}
		}
		for _, r := range refs {
			if err := in.client.del(ctx, r.path(), poolVersion, dNoWait); err != nil {
				return nil, err
			}
			if !dNoWait {
				in.warn("Session pool successfully deleted")
			}
		}
		return noOutput{}, nil
	})
	cmd.AddCommand(create, update, show, list, del)
	return cmd
}

// refFlags defines -n, -g and --ids.
func refFlags(cmd *cobra.Command, name, rg *string, ids *[]string) {
	cmd.Flags().StringVarP(name, "name", "n", "", "The session pool name.")
	cmd.Flags().StringVarP(rg, "resource-group", "g", "", "Name of resource group. You can configure the default group using 'tidepool configure --defaults group=<name>'.")
	multi(cmd, ids, "ids", "", "One or more resource IDs (space-delimited). If provided, no other 'Resource Id' arguments should be specified.")
}

func newEnvCommand(app *App, g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "env", Short: "Commands to manage managed environments (tidepool keeps only their name and location)."}
	path := func(sub, rg, name string) string {
		return "/subscriptions/" + sub + "/resourceGroups/" + url.PathEscape(rg) + "/providers/Microsoft.App/managedEnvironments/" + url.PathEscape(name)
	}
	var cName, cRG, cLoc string
	var cTags []string
	var cNoWait bool
	create := &cobra.Command{
		Use:     "create",
		Short:   "Create a managed environment.",
		Example: "  tidepool containerapp env create -n myenvironment -g MyResourceGroup --location eastasia",
		Args:    cobra.NoArgs,
	}
	create.Flags().StringVarP(&cName, "name", "n", "", "Name of the environment.")
	create.Flags().StringVarP(&cRG, "resource-group", "g", "", "Name of resource group.")
	create.Flags().StringVarP(&cLoc, "location", "l", "", "Location. Default: the configured default, else the resource group's.")
	multi(create, &cTags, "tags", "", "Space-separated tags: key[=value] [key[=value] ...].")
	create.Flags().BoolVar(&cNoWait, "no-wait", false, "Do not wait for the long-running operation to finish.")
	create.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		if err := required(cName, "--name/-n"); err != nil {
			return nil, err
		}
		rg, err := in.resourceGroup(cRG)
		if err != nil {
			return nil, err
		}
		c, err := in.arm()
		if err != nil {
			return nil, err
		}
		loc, err := in.location(cLoc)
		if err != nil {
			return nil, err
		}
		if loc == "" {
			g, err := c.get(ctx, groupPath(c.sub.ID, rg), groupsVersion)
			if err != nil {
				return nil, err
			}
			loc = str(dig(g, "location"))
		}
		body := map[string]any{"location": loc, "properties": map[string]any{}}
		if cTags != nil {
			body["tags"] = parseTags(cTags)
		}
		return c.put(ctx, "PUT", path(c.sub.ID, rg, cName), envVersion, body, cNoWait)
	})
	var sName, sRG string
	show := &cobra.Command{Use: "show", Short: "Show a managed environment.", Example: "  tidepool containerapp env show -n myenvironment -g MyResourceGroup", Args: cobra.NoArgs}
	show.Flags().StringVarP(&sName, "name", "n", "", "Name of the environment.")
	show.Flags().StringVarP(&sRG, "resource-group", "g", "", "Name of resource group.")
	show.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		if err := required(sName, "--name/-n"); err != nil {
			return nil, err
		}
		rg, err := in.resourceGroup(sRG)
		if err != nil {
			return nil, err
		}
		c, err := in.arm()
		if err != nil {
			return nil, err
		}
		return c.get(ctx, path(c.sub.ID, rg, sName), envVersion)
	})
	var lRG string
	list := &cobra.Command{Use: "list", Short: "List managed environments.", Example: "  tidepool containerapp env list -g MyResourceGroup -o table", Args: cobra.NoArgs}
	list.Flags().StringVarP(&lRG, "resource-group", "g", "", "Name of resource group.")
	list.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		c, err := in.arm()
		if err != nil {
			return nil, err
		}
		if lRG != "" {
			return c.list(ctx, "/subscriptions/"+c.sub.ID+"/resourceGroups/"+url.PathEscape(lRG)+"/providers/Microsoft.App/managedEnvironments", envVersion, false)
		}
		return c.list(ctx, "/subscriptions/"+c.sub.ID+"/providers/Microsoft.App/managedEnvironments", envVersion, false)
	})
	var dName, dRG string
	var dYes, dNoWait bool
	del := &cobra.Command{Use: "delete", Short: "Delete a managed environment.", Example: "  tidepool containerapp env delete -n myenvironment -g MyResourceGroup --yes", Args: cobra.NoArgs}
	del.Flags().StringVarP(&dName, "name", "n", "", "Name of the environment.")
	del.Flags().StringVarP(&dRG, "resource-group", "g", "", "Name of resource group.")
	del.Flags().BoolVarP(&dYes, "yes", "y", false, "Do not prompt for confirmation.")
	del.Flags().BoolVar(&dNoWait, "no-wait", false, "Do not wait for the long-running operation to finish.")
	del.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		if err := required(dName, "--name/-n"); err != nil {
			return nil, err
		}
		rg, err := in.resourceGroup(dRG)
		if err != nil {
			return nil, err
		}
		if !dYes {
			if err := in.confirm(""); err != nil {
				return nil, err
			}
		}
		c, err := in.arm()
		if err != nil {
			return nil, err
		}
		return noOutput{}, c.del(ctx, path(c.sub.ID, rg, dName), envVersion, dNoWait)
	})
	cmd.AddCommand(create, show, list, del)
	return cmd
}

func newContainerAppCommand(app *App, g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "containerapp",
		Short: "Session pools, sessions and managed environments, as az containerapp: scripts port by renaming the program.",
	}
	cmd.AddCommand(newSessionPoolCommand(app, g), newSessionCommand(app, g), newEnvCommand(app, g))
	return cmd
}
