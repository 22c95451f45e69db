package cli

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
)

// Management api-versions the CLI speaks outside Microsoft.App.
const (
	groupsVersion     = "2022-09-01"
	providersVersion  = "2021-04-01"
	deploymentVersion = "2021-04-01"
)

func groupPath(sub, rg string) string {
	return "/subscriptions/" + sub + "/resourcegroups/" + url.PathEscape(rg)
}

func newGroupCommand(app *App, g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "group", Short: "Manage resource groups."}
	// name reads -n/--name or -g/--resource-group, as az's group commands.
	nameFlags := func(c *cobra.Command, name *string, rg *string) {
		c.Flags().StringVarP(name, "name", "n", "", "Name of the resource group.")
		c.Flags().StringVarP(rg, "resource-group", "g", "", "Name of the resource group (same as --name).")
	}
	pick := func(in *inv, name, rg string) (string, error) {
		if name == "" {
			name = rg
		}
		return in.resourceGroup(name)
	}

	var cName, cRG, cLoc string
	var cTags []string
	create := &cobra.Command{
		Use:     "create",
		Short:   "Create a new resource group, or update an existing one.",
		Example: "  tidepool group create -l westus -n MyResourceGroup\n  tidepool group create --name $RG --location $LOCATION --tags env=test",
		Args:    cobra.NoArgs,
	}
	nameFlags(create, &cName, &cRG)
	create.Flags().StringVarP(&cLoc, "location", "l", "", "Location. Default: 'tidepool configure --defaults location=<location>'.")
	multi(create, &cTags, "tags", "", "Space-separated tags: key[=value] [key[=value] ...].")
	create.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		if cName == "" {
			cName = cRG
		}
		cName, err := in.resourceGroup(cName)
		if err != nil {
			return nil, err
		}
		loc, err := in.location(cLoc)
		if err != nil {
			return nil, err
		}
		if err := required(loc, "--location/-l"); err != nil {
			return nil, err
		}
		c, err := in.arm()
		if err != nil {
			return nil, err
		}
		body := map[string]any{"location": loc}
		if cTags != nil {
			body["tags"] = parseTags(cTags)
		}
		r, err := c.call(ctx, http.MethodPut, groupPath(c.sub.ID, cName), groupsVersion, body)
		if err != nil {
			return nil, err
		}
		return r.json()
	})

	var sName, sRG string
	show := &cobra.Command{Use: "show", Short: "Get a resource group.", Example: "  tidepool group show -n MyResourceGroup", Args: cobra.NoArgs}
	nameFlags(show, &sName, &sRG)
	show.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		in.table = groupTable
		name, err := pick(in, sName, sRG)
		if err != nil {
			return nil, err
		}
		c, err := in.arm()
		if err != nil {
			return nil, err
		}
		return c.get(ctx, groupPath(c.sub.ID, name), groupsVersion)
	})

	list := &cobra.Command{Use: "list", Short: "List resource groups.", Example: "  tidepool group list -o table\n  tidepool group list --query \"[?location=='westus']\"", Args: cobra.NoArgs}
	list.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		in.table = groupTable
		c, err := in.arm()
		if err != nil {
			return nil, err
		}
		return c.list(ctx, "/subscriptions/"+c.sub.ID+"/resourcegroups", groupsVersion, false)
	})

	var dName, dRG string
	var dYes, dNoWait bool
	del := &cobra.Command{
		Use:     "delete",
		Short:   "Delete a resource group and every resource in it.",
		Example: "  tidepool group delete -n MyResourceGroup --yes\n  tidepool group delete --resource-group $RG --yes --no-wait",
		Args:    cobra.NoArgs,
	}
	nameFlags(del, &dName, &dRG)
	del.Flags().BoolVarP(&dYes, "yes", "y", false, "Do not prompt for confirmation.")
	del.Flags().BoolVar(&dNoWait, "no-wait", false, "Do not wait for the long-running operation to finish.")
	del.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		name, err := pick(in, dName, dRG)
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
		return noOutput{}, c.del(ctx, groupPath(c.sub.ID, name), groupsVersion, dNoWait)
	})

	var eName, eRG string
	exists := &cobra.Command{Use: "exists", Short: "Check whether a resource group exists: prints true or false.", Example: "  tidepool group exists -n MyResourceGroup", Args: cobra.NoArgs}
	nameFlags(exists, &eName, &eRG)
	exists.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		name, err := pick(in, eName, eRG)
		if err != nil {
			return nil, err
		}
		c, err := in.arm()
		if err != nil {
			return nil, err
		}
		r, err := c.call(ctx, http.MethodHead, groupPath(c.sub.ID, name), groupsVersion, nil)
		if isNotFound(err) || err == nil && r.Status == http.StatusNotFound {
			return false, nil
		}
		if err != nil {
			return nil, err
		}
		return true, nil
	})
	cmd.AddCommand(create, show, list, del, exists)
	return cmd
}

// groupTable is az's table for group show and list.
var groupTable = tableOf([2]string{"Name", "name"}, [2]string{"Location", "location"}, [2]string{"Status", "properties.provisioningState"})

// parseTags reads az's key[=value] tags.
func parseTags(tags []string) map[string]string {
	m := map[string]string{}
	for _, t := range tags {
		if t == "" {
			continue
		}
		k, v, _ := strings.Cut(t, "=")
		m[k] = v
	}
	return m
}

func newProviderCommand(app *App, g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "provider", Short: "Manage resource providers (every provider tidepool serves is always registered)."}
	var rNS string
	var rWait bool
	reg := &cobra.Command{
		Use:     "register",
		Short:   "Register a provider (a no-op answered 'Registered', so az setup steps run unchanged).",
		Example: "  tidepool provider register --namespace Microsoft.App",
		Args:    cobra.NoArgs,
	}
	reg.Flags().StringVarP(&rNS, "namespace", "n", "", "The resource namespace, e.g. Microsoft.App. Required.")
	reg.Flags().BoolVar(&rWait, "wait", false, "Wait for the registration to finish (it always has).")
	reg.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		if err := required(rNS, "--namespace/-n"); err != nil {
			return nil, err
		}
		c, err := in.arm()
		if err != nil {
			return nil, err
		}
		_, err = c.call(ctx, http.MethodPost, "/subscriptions/"+c.sub.ID+"/providers/"+url.PathEscape(rNS)+"/register", providersVersion, nil)
		return noOutput{}, err
	})
	var sNS string
	show := &cobra.Command{
		Use:     "show",
		Short:   "Get a provider's metadata: resource types, their locations and api-versions.",
		Example: "  tidepool provider show -n Microsoft.App --query registrationState\n  tidepool provider show -n Microsoft.App --query \"resourceTypes[?resourceType=='sessionPools'].locations\"",
		Args:    cobra.NoArgs,
	}
	show.Flags().StringVarP(&sNS, "namespace", "n", "", "The resource namespace. Required.")
	show.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		if err := required(sNS, "--namespace/-n"); err != nil {
			return nil, err
		}
		c, err := in.arm()
		if err != nil {
			return nil, err
		}
		return c.get(ctx, "/subscriptions/"+c.sub.ID+"/providers/"+url.PathEscape(sNS), providersVersion)
	})
	list := &cobra.Command{Use: "list", Short: "List providers.", Example: "  tidepool provider list --query [].namespace", Args: cobra.NoArgs}
	list.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		c, err := in.arm()
		if err != nil {
			return nil, err
		}
		return c.list(ctx, "/subscriptions/"+c.sub.ID+"/providers", providersVersion, false)
	})
	cmd.AddCommand(reg, show, list)
	return cmd
}

func topCommands(app *App, g *globals) []*cobra.Command {
	return []*cobra.Command{
		newLoginCommand(app, g),
		newLogoutCommand(app, g),
		newAccountCommand(app, g),
		newConfigureCommand(app, g),
		newGroupCommand(app, g),
		newProviderCommand(app, g),
		newSessionPoolCommand(app, g),
		newSessionCommand(app, g),
		newContainerAppCommand(app, g),
		newResourceCommand(app, g),
		newIdentityCommand(app, g),
		newRoleCommand(app, g),
		newDeploymentCommand(app, g),
	}
}
