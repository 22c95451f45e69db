package cli

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// readJSONFile reads a JSON file into a generic value.
func readJSONFile(flag, path string) (map[string]any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, validationErr("read %s: %v", flag, err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, validationErr("%s %s is not a JSON object: %v", flag, path, err)
	}
	return m, nil
}

// templateParameters merges az's --parameters forms: @file or file (a
// parameters file, with or without the "parameters" wrapper), a JSON
// object, or key=value (typed by the template's parameter declaration).
func templateParameters(template map[string]any, args []string) (map[string]any, error) {
	out := map[string]any{}
	merge := func(m map[string]any) {
		if p, ok := m["parameters"].(map[string]any); ok && (m["$schema"] != nil || m["contentVersion"] != nil || len(m) == 1) {
			m = p
		}
		for k, v := range m {
			out[k] = v
		}
	}
	decls, _ := template["parameters"].(map[string]any)
	for _, a := range args {
		switch {
		case strings.HasPrefix(a, "{"):
			var m map[string]any
			if err := json.Unmarshal([]byte(a), &m); err != nil {
				return nil, validationErr("--parameters: invalid JSON: %v", err)
			}
			merge(m)
		case strings.HasPrefix(a, "@") || !strings.Contains(a, "="):
			m, err := readJSONFile("--parameters", strings.TrimPrefix(a, "@"))
			if err != nil {
				return nil, err
			}
			merge(m)
		default:
			k, v, _ := strings.Cut(a, "=")
			var val any = v
			switch strings.ToLower(str(dig(decls[k], "type"))) {
			case "int", "bool", "object", "array", "secureobject":
				if err := json.Unmarshal([]byte(v), &val); err != nil {
					return nil, validationErr("--parameters %s: the value is not valid JSON for type %s", k, str(dig(decls[k], "type")))
				}
			}
			out[k] = map[string]any{"value": val}
		}
	}
	return out, nil
}

func newDeploymentCommand(app *App, g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "deployment", Short: "Deploy ARM templates."}
	group := &cobra.Command{Use: "group", Short: "Deployments at resource group scope."}
	var rg, file, name, mode string
	var params []string
	var noWait bool
	create := &cobra.Command{
		Use:   "create",
		Short: "Deploy a template to a resource group and wait for it.",
		Long: `Deploy a template to a resource group: PUT the deployment (mode Incremental by
default) and wait for its long-running operation. The server evaluates the template.`,
		Example: `  tidepool deployment group create --resource-group $RG --template-file deploy.json
  tidepool deployment group create -g $RG -f deploy.json --parameters @params.json poolName=mypool`,
		Args: cobra.NoArgs,
	}
	create.Flags().StringVarP(&rg, "resource-group", "g", "", "Name of resource group.")
	create.Flags().StringVarP(&file, "template-file", "f", "", "The template file. Required.")
	create.Flags().StringVarP(&name, "name", "n", "", "The deployment name. Default: the template file's base name.")
	create.Flags().StringVar(&mode, "mode", "Incremental", "Incremental or Complete.")
	multi(create, &params, "parameters", "p", "Parameters: @file.json, a JSON object, or name=value (space-separated, repeatable).")
	create.Flags().BoolVar(&noWait, "no-wait", false, "Do not wait for the long-running operation to finish.")
	create.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		if err := required(file, "--template-file/-f"); err != nil {
			return nil, err
		}
		rg, err := in.resourceGroup(rg)
		if err != nil {
			return nil, err
		}
		m, err := enum("--mode", mode, "Incremental", "Complete")
		if err != nil {
			return nil, err
		}
		tmpl, err := readJSONFile("--template-file", file)
		if err != nil {
			return nil, err
		}
		ps, err := templateParameters(tmpl, params)
		if err != nil {
			return nil, err
		}
		if name == "" {
			name = strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
		}
		c, err := in.arm()
		if err != nil {
			return nil, err
		}
		path := "/subscriptions/" + c.sub.ID + "/resourcegroups/" + url.PathEscape(rg) + "/providers/Microsoft.Resources/deployments/" + url.PathEscape(name)
		body := map[string]any{"properties": map[string]any{"mode": m, "template": tmpl, "parameters": ps}}
		return c.put(ctx, http.MethodPut, path, deploymentVersion, body, noWait)
	})
	group.AddCommand(create)
	cmd.AddCommand(group)
	return cmd
}
