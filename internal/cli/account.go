package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"
)

// subscriptionsVersion is the api-version of the subscriptions list.
const subscriptionsVersion = "2022-12-01"

// credentialsFile is the admin credentials file `tidepool serve` writes.
type credentialsFile struct {
	TenantID       string `json:"tenantId"`
	SubscriptionID string `json:"subscriptionId"`
	ClientID       string `json:"clientId"`
	ClientSecret   string `json:"clientSecret"`
	Endpoint       string `json:"endpoint"`
}

// accountView is an az account entry.
type accountView struct {
	CloudName        string   `json:"cloudName"`
	HomeTenantID     string   `json:"homeTenantId"`
	ID               string   `json:"id"`
	IsDefault        bool     `json:"isDefault"`
	ManagedByTenants []string `json:"managedByTenants"`
	Name             string   `json:"name"`
	State            string   `json:"state"`
	TenantID         string   `json:"tenantId"`
	User             struct {
		Name string `json:"name"`
		Type string `json:"type"`
	} `json:"user"`
}

func (p *profile) view(s subscriptionEntry) accountView {
	v := accountView{CloudName: "Tidepool", HomeTenantID: s.TenantID, ID: s.ID, IsDefault: s.IsDefault,
		ManagedByTenants: []string{}, Name: s.Name, State: s.State, TenantID: s.TenantID}
	if p.Login != nil {
		v.User.Name, v.User.Type = p.Login.ClientID, "servicePrincipal"
	}
	return v
}

func newLoginCommand(app *App, g *globals) *cobra.Command {
	var servicePrincipal bool
	var username, password, tenant, endpoint, credFile string
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in to a tidepool server with a service principal.",
		Long: `Log in to a tidepool server with a service principal.

The server is --endpoint, else $TIDEPOOL_ENDPOINT. --credentials-file reads
endpoint, tenant, subscription, client id and secret from the
admin-credentials.json that 'tidepool serve' writes in its data directory.
The profile is stored in ~/.tidepool (or $TIDEPOOL_CONFIG_DIR), mode 0600.`,
		Example: `  tidepool login --service-principal -u $CLIENT_ID -p $SECRET --tenant $TENANT --endpoint http://127.0.0.1:7380
  tidepool login --credentials-file /var/lib/tidepool/admin-credentials.json`,
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.BoolVar(&servicePrincipal, "service-principal", false, "The credential is a service principal (the only kind tidepool serves).")
	f.StringVarP(&username, "username", "u", "", "The service principal's client (application) id.")
	f.StringVarP(&password, "password", "p", "", "The service principal's secret.")
	f.StringVarP(&tenant, "tenant", "t", "", "The tenant id.")
	f.StringVar(&endpoint, "endpoint", "", "The server's base URL. Default: $TIDEPOOL_ENDPOINT.")
	f.StringVar(&credFile, "credentials-file", "", "An admin-credentials.json written by 'tidepool serve'.")
	cmd.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		l := &loginInfo{Endpoint: endpoint, TenantID: tenant, ClientID: username, ClientSecret: password}
		var wantSub string
		if credFile != "" {
			data, err := os.ReadFile(credFile)
			if err != nil {
				return nil, &cliError{msg: fmt.Sprintf("read credentials file: %v", err), code: 1}
			}
			var cf credentialsFile
			if err := json.Unmarshal(data, &cf); err != nil {
				return nil, &cliError{msg: fmt.Sprintf("read credentials file %s: %v", credFile, err), code: 1}
			}
			l = &loginInfo{Endpoint: cf.Endpoint, TenantID: cf.TenantID, ClientID: cf.ClientID, ClientSecret: cf.ClientSecret}
			if endpoint != "" {
				l.Endpoint = endpoint
			}
			wantSub = cf.SubscriptionID
		} else if !servicePrincipal {
			return nil, usageErr("tidepool logs in with a service principal only: use --service-principal -u CLIENT_ID -p SECRET --tenant TENANT, or --credentials-file admin-credentials.json")
		}
		if l.Endpoint == "" {
			l.Endpoint = in.app.getenv("TIDEPOOL_ENDPOINT")
		}
		switch {
		case l.Endpoint == "":
			return nil, usageErr("the server is unknown: pass --endpoint or set TIDEPOOL_ENDPOINT")
		case l.ClientID == "" || l.ClientSecret == "":
			return nil, usageErr("usage error: --service-principal requires --username and --password")
		case l.TenantID == "":
			return nil, usageErr("usage error: --service-principal requires --tenant")
		}
		l.Endpoint = strings.TrimSuffix(l.Endpoint, "/")
		p, err := in.profile()
		if err != nil {
			return nil, err
		}
		p.Login, p.Tokens, p.Subscriptions = l, nil, nil
		c := &armClient{app: in.app, prof: p, log: in.log}
		subs, err := c.list(ctx, "/subscriptions", subscriptionsVersion, false)
		if err != nil {
			return nil, err
		}
		for _, s := range subs {
			m, _ := s.(map[string]any)
			e := subscriptionEntry{ID: str(m["subscriptionId"]), Name: str(m["displayName"]), State: str(m["state"]), TenantID: str(m["tenantId"])}
			if e.TenantID == "" {
				e.TenantID = l.TenantID
			}
			p.Subscriptions = append(p.Subscriptions, e)
		}
		if len(p.Subscriptions) == 0 {
			return nil, &cliError{msg: "No subscriptions found for " + l.ClientID + ".", code: 1}
		}
		def := 0
		for i, s := range p.Subscriptions {
			if strings.EqualFold(s.ID, wantSub) {
				def = i
			}
		}
		p.Subscriptions[def].IsDefault = true
		if err := p.save(); err != nil {
			return nil, err
		}
		out := []accountView{}
		for _, s := range p.Subscriptions {
			out = append(out, p.view(s))
		}
		return out, nil
	})
	return cmd
}

func newLogoutCommand(app *App, g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "logout",
		Short:   "Log out: forget the login, its subscriptions and cached tokens.",
		Example: "  tidepool logout",
		Args:    cobra.NoArgs,
	}
	cmd.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		p, err := in.profile()
		if err != nil {
			return nil, err
		}
		if p.Login == nil {
			return nil, &cliError{msg: "There are no active accounts.", code: 1}
		}
		p.Login, p.Subscriptions, p.Tokens = nil, nil, nil
		return noOutput{}, p.save()
	})
	return cmd
}

func newAccountCommand(app *App, g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "account", Short: "Manage the login's subscriptions and tokens."}
	show := &cobra.Command{
		Use:     "show",
		Short:   "Get the details of a subscription (the default one unless --subscription).",
		Example: "  tidepool account show\n  tidepool account show --query id -o tsv",
		Args:    cobra.NoArgs,
	}
	show.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		p, err := loggedIn(in)
		if err != nil {
			return nil, err
		}
		s, err := p.subscription(in.g.subscription)
		if err != nil {
			return nil, err
		}
		return p.view(*s), nil
	})
	list := &cobra.Command{
		Use:     "list",
		Short:   "Get the subscriptions of the login.",
		Example: "  tidepool account list -o table",
		Args:    cobra.NoArgs,
	}
	var all bool
	list.Flags().BoolVar(&all, "all", false, "List all subscriptions (every subscription is listed; accepted for az compatibility).")
	list.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		in.table = tableOf([2]string{"Name", "name"}, [2]string{"CloudName", "cloudName"}, [2]string{"SubscriptionId", "id"},
			[2]string{"TenantId", "tenantId"}, [2]string{"State", "state"}, [2]string{"IsDefault", "isDefault"})
		p, err := loggedIn(in)
		if err != nil {
			return nil, err
		}
		out := []accountView{}
		for _, s := range p.Subscriptions {
			out = append(out, p.view(s))
		}
		return out, nil
	})
	set := &cobra.Command{
		Use:     "set",
		Short:   "Set the default subscription.",
		Example: "  tidepool account set --subscription $SUBSCRIPTION",
		Args:    cobra.NoArgs,
	}
	var setSub string
	set.Flags().StringVarP(&setSub, "subscription", "s", "", "Name or ID of the subscription. Required.")
	set.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		if setSub == "" {
			return nil, usageErr("the following arguments are required: --subscription/-s/--name/-n")
		}
		p, err := loggedIn(in)
		if err != nil {
			return nil, err
		}
		s, err := p.subscription(setSub)
		if err != nil {
			return nil, err
		}
		for i := range p.Subscriptions {
			p.Subscriptions[i].IsDefault = false
		}
		s.IsDefault = true
		return noOutput{}, p.save()
	})
	tok := &cobra.Command{
		Use:   "get-access-token",
		Short: "Get a token for a resource (default: the management API).",
		Example: `  tidepool account get-access-token --query accessToken -o tsv
  tidepool account get-access-token --resource https://dynamicsessions.io
  tidepool account get-access-token --scope https://dynamicsessions.io/.default`,
		Args: cobra.NoArgs,
	}
	var resource, scope string
	tok.Flags().StringVar(&resource, "resource", "", "The resource the token is for. Default: the management API (https://management.core.windows.net/).")
	tok.Flags().StringVar(&scope, "scope", "", "A scope in the form <resource>/.default, instead of --resource.")
	tok.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		if resource != "" && scope != "" {
			return nil, usageErr("usage error: --resource and --scope can't be used together.")
		}
		if scope != "" {
			var ok bool
			if resource, ok = strings.CutSuffix(scope, "/.default"); !ok {
				return nil, usageErr("usage error: --scope must be of the form <resource>/.default")
			}
		}
		if resource == "" {
			resource = resourceARM
		}
		c, err := in.arm()
		if err != nil {
			return nil, err
		}
		t, err := c.token(ctx, resource)
		if err != nil {
			return nil, err
		}
		return map[string]any{
			"accessToken":  t.AccessToken,
			"expiresOn":    t.ExpiresOn.Local().Format("2006-01-02 15:04:05.000000"),
			"expires_on":   t.ExpiresOn.Unix(),
			"subscription": c.sub.ID,
			"tenant":       c.prof.Login.TenantID,
			"tokenType":    "Bearer",
		}, nil
	})
	cmd.AddCommand(show, list, set, tok)
	return cmd
}

func loggedIn(in *inv) (*profile, error) {
	p, err := in.profile()
	if err != nil {
		return nil, err
	}
	if p.Login == nil {
		return nil, &cliError{msg: "Please run 'tidepool login' to setup account.", code: 1}
	}
	return p, nil
}

func newConfigureCommand(app *App, g *globals) *cobra.Command {
	var defaults []string
	var listDefaults bool
	cmd := &cobra.Command{
		Use:   "configure",
		Short: "Manage defaults: the resource group and location commands use when not given.",
		Example: `  tidepool configure --defaults group=myRG location=eastasia
  tidepool configure --defaults group=''
  tidepool configure --list-defaults -o table`,
		Args: cobra.NoArgs,
	}
	multi(cmd, &defaults, "defaults", "d", "Space-separated key=value pairs; keys: group, location. An empty value clears the default.")
	cmd.Flags().BoolVarP(&listDefaults, "list-defaults", "l", false, "List the defaults.")
	cmd.RunE = run(app, g, func(ctx context.Context, in *inv, args []string) (any, error) {
		p, err := in.profile()
		if err != nil {
			return nil, err
		}
		if listDefaults {
			keys := make([]string, 0, len(p.Defaults))
			for k := range p.Defaults {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			out := []map[string]string{}
			for _, k := range keys {
				out = append(out, map[string]string{"name": k, "source": p.dir, "value": p.Defaults[k]})
			}
			return out, nil
		}
		if len(defaults) == 0 {
			return nil, usageErr("usage error: tidepool configure is not interactive: pass --defaults key=value ... or --list-defaults")
		}
		for _, kv := range defaults {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return nil, usageErr("usage error: --defaults takes key=value pairs, got '%s'", kv)
			}
			if k != "group" && k != "location" {
				return nil, usageErr("usage error: unknown default '%s': tidepool knows 'group' and 'location'", k)
			}
			if p.Defaults == nil {
				p.Defaults = map[string]string{}
			}
			if v == "" {
				delete(p.Defaults, k)
			} else {
				p.Defaults[k] = v
			}
		}
		return noOutput{}, p.save()
	})
	return cmd
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}
