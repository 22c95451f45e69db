package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// dataPlaneVersion is the data-plane api-version of the session commands
// (v2 shapes; a synchronous execution answers 200).
const dataPlaneVersion = "2025-10-02-preview"

// sessionFlags are the flags every session command shares.
type sessionFlags struct {
	name, rg, identifier, location string
}

func addSessionFlags(cmd *cobra.Command, f *sessionFlags) {
	cmd.Flags().StringVarP(&f.name, "name", "n", "", "The session pool name.")
	cmd.Flags().StringVarP(&f.rg, "resource-group", "g", "", "Name of resource group.")
	cmd.Flags().StringVarP(&f.identifier, "identifier", "i", "", "The session identifier.")
	cmd.Flags().StringVar(&f.location, "session-pool-location", "", "The pool's location: when given, the endpoint is built without reading the pool.")
}

// endpoint returns the pool's poolManagementEndpoint: built from the login's
// server with --session-pool-location, else read from the pool.
func (in *inv) endpoint(ctx context.Context, f *sessionFlags) (string, any, error) {
	if err := required(f.name, "--name/-n"); err != nil {
		return "", nil, err
	}
	if err := required(f.identifier, "--identifier/-i"); err != nil {
		return "", nil, err
	}
	rg, err := in.resourceGroup(f.rg)
	if err != nil {
		return "", nil, err
	}
	c, err := in.arm()
	if err != nil {
		return "", nil, err
	}
	ref := poolRef{c.sub.ID, rg, f.name}
	if f.location != "" {
		if err := in.checkLocation(ctx, c, f.location); err != nil {
			return "", nil, err
		}
		return c.prof.Login.Endpoint + "/subscriptions/" + ref.sub + "/resourceGroups/" + url.PathEscape(rg) + "/sessionPools/" + url.PathEscape(f.name), nil, nil
	}
	pool, err := c.get(ctx, ref.path(), poolVersion)
	if err != nil {
		return "", nil, err
	}
	ep := str(dig(pool, "properties.poolManagementEndpoint"))
	if ep == "" {
		return "", nil, &cliError{msg: fmt.Sprintf("The session pool '%s' has no poolManagementEndpoint yet (provisioningState %s).", f.name, str(dig(pool, "properties.provisioningState"))), code: 1}
	}
	return strings.TrimSuffix(ep, "/"), pool, nil
}

// dpURL builds a data-plane URL with identifier, api-version and extras.
func dpURL(endpoint, route, identifier string, extra url.Values) string {
	q := url.Values{}
	for k, v := range extra {
		q[k] = v
	}
	q.Set("identifier", identifier)
	q.Set("api-version", dataPlaneVersion)
	return endpoint + "/" + route + "?" + q.Encode()
}

// splitFilename moves a directory in --filename into path, as az's
// extract_path_from_filename.
func splitFilename(path, filename string) (string, string) {
	if i := strings.LastIndex(filename, "/"); i >= 0 {
		dir := filename[:i]
		filename = filename[i+1:]
		if path == "" {
			path = dir
		} else {
			path = strings.TrimSuffix(path, "/") + "/" + strings.TrimPrefix(dir, "/")
		}
	}
	return path, filename
}

// execute posts an execution and, when it answers 202, polls its
// Operation-Location until it is no longer Running.
func (in *inv) execute(ctx context.Context, endpoint, identifier string, body any) (any, error) {
	c := in.client
	r, err := c.send(ctx, http.MethodPost, dpURL(endpoint, "executions", identifier, nil), resourceDataPlane, body, "")
	if err != nil {
		return nil, err
	}
	res, err := r.json()
	if err != nil {
		return nil, err
	}
	loc := r.Header.Get("Operation-Location")
	for r.Status == http.StatusAccepted && loc != "" && strings.EqualFold(str(dig(res, "status")), "Running") {
		if err := c.sleep(ctx, r.Header); err != nil {
			return nil, err
		}
		if r, err = c.send(ctx, http.MethodGet, loc, resourceDataPlane, nil, ""); err != nil {
			return nil, err
		}
		if res, err = r.json(); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func newSessionCommand(app *App, g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "session", Short: "Commands to interact with sessions of a session pool."}
	ci := &cobra.Command{Use: "code-interpreter", Short: "Commands to run code and manage files in code interpreter sessions."}

	ef := &sessionFlags{}
	var code string
	var timeout int
	var eNoWait bool
	execute := &cobra.Command{
		Use:   "execute",
		Short: "Execute code in a session.",
		Example: `  tidepool containerapp session code-interpreter execute -n MySessionPool -g MyResourceGroup \
      --identifier MySession --code 'print("Hello world")' --timeout-in-seconds 30 --session-pool-location eastasia`,
		Args: cobra.NoArgs,
	}
	addSessionFlags(execute, ef)
	execute.Flags().StringVar(&code, "code", "", "The code to execute. Required.")
	execute.Flags().IntVar(&timeout, "timeout-in-seconds", 60, "Timeout in seconds, 1 to 220.")
	execute.Flags().BoolVar(&eNoWait, "no-wait", false, "Accepted for az compatibility; the execution is synchronous.")
	execute.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		if err := required(code, "--code"); err != nil {
			return nil, err
		}
		if timeout <= 0 || timeout > 220 {
			return nil, validationErr("Timeout in seconds must be in range [1, 220].")
		}
		ep, _, err := in.endpoint(ctx, ef)
		if err != nil {
			return nil, err
		}
		body := map[string]any{"properties": map[string]any{"identifier": ef.identifier, "codeInputType": "inline",
			"executionType": "synchronous", "timeoutInSeconds": timeout, "code": code}}
		return in.execute(ctx, ep, ef.identifier, body)
	})

	uf := &sessionFlags{}
	var filePath, uPath string
	var uNoWait bool
	upload := &cobra.Command{
		Use:     "upload-file",
		Short:   "Upload a file to a session.",
		Example: "  tidepool containerapp session code-interpreter upload-file -n MySessionPool -g MyResourceGroup \\\n      --identifier MySession --filepath example.txt --path my-directory",
		Args:    cobra.NoArgs,
	}
	addSessionFlags(upload, uf)
	upload.Flags().StringVar(&filePath, "filepath", "", "The local file to upload. Required.")
	upload.Flags().StringVar(&uPath, "path", "", "The directory in the session to upload to.")
	upload.Flags().BoolVar(&uNoWait, "no-wait", false, "Accepted for az compatibility; the upload is synchronous.")
	upload.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		if err := required(filePath, "--filepath"); err != nil {
			return nil, err
		}
		f, err := os.Open(filePath)
		if err != nil {
			return nil, &cliError{msg: fmt.Sprintf("read --filepath: %v", err), code: 1}
		}
		defer f.Close()
		ep, _, err := in.endpoint(ctx, uf)
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		part, err := mw.CreateFormFile("file", filepath.Base(filePath))
		if err != nil {
			return nil, fmt.Errorf("upload: %w", err)
		}
		if _, err := io.Copy(part, f); err != nil {
			return nil, fmt.Errorf("upload %s: %w", filePath, err)
		}
		if err := mw.Close(); err != nil {
			return nil, fmt.Errorf("upload: %w", err)
		}
		extra := url.Values{}
		if uPath != "" {
			extra.Set("path", uPath)
		}
		r, err := in.client.send(ctx, http.MethodPost, dpURL(ep, "files", uf.identifier, extra), resourceDataPlane, buf.Bytes(), mw.FormDataContentType())
		if err != nil {
			return nil, err
		}
		return r.json()
	})

	lf := &sessionFlags{}
	var lPath string
	list := &cobra.Command{
		Use:     "list-files",
		Short:   "List the files of a session.",
		Example: "  tidepool containerapp session code-interpreter list-files -n MySessionPool -g MyResourceGroup --identifier MySession --path my-directory",
		Args:    cobra.NoArgs,
	}
	addSessionFlags(list, lf)
	list.Flags().StringVar(&lPath, "path", "", "The directory to list.")
	list.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		ep, _, err := in.endpoint(ctx, lf)
		if err != nil {
			return nil, err
		}
		r, err := in.client.send(ctx, http.MethodGet, dpURL(ep, "files", lf.identifier, url.Values{"path": {lPath}}), resourceDataPlane, nil, "")
		if err != nil {
			return nil, err
		}
		return r.json()
	})

	fileCmd := func(use, short, example string, body func(ctx context.Context, in *inv, ep, id, path, name string) (any, error), confirm bool) *cobra.Command {
		f := &sessionFlags{}
		var filename, path string
		var yes, noWait bool
		c := &cobra.Command{Use: use, Short: short, Example: example, Args: cobra.NoArgs}
		addSessionFlags(c, f)
		c.Flags().StringVar(&filename, "filename", "", "The file's name. Required.")
		c.Flags().StringVar(&path, "path", "", "The file's directory in the session.")
		if confirm {
			c.Flags().BoolVarP(&yes, "yes", "y", false, "Do not prompt for confirmation.")
			c.Flags().BoolVar(&noWait, "no-wait", false, "Accepted for az compatibility; the call is synchronous.")
		}
		c.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
			if err := required(filename, "--filename"); err != nil {
				return nil, err
			}
			if confirm && !yes {
				if err := in.confirm(""); err != nil {
					return nil, err
				}
			}
			ep, _, err := in.endpoint(ctx, f)
			if err != nil {
				return nil, err
			}
			p, name := splitFilename(path, filename)
			return body(ctx, in, ep, f.identifier, p, name)
		})
		return c
	}
	pathQuery := func(p string) url.Values {
		if p == "" {
			return nil
		}
		return url.Values{"path": {p}}
	}
	content := fileCmd("show-file-content", "Show the content of a file in a session (the text on stderr, a JSON string on stdout, as az).",
		"  tidepool containerapp session code-interpreter show-file-content -n MySessionPool -g MyResourceGroup --identifier MySession --filename example.txt --path my-directory",
		func(ctx context.Context, in *inv, ep, id, p, name string) (any, error) {
			r, err := in.client.send(ctx, http.MethodGet, dpURL(ep, "files/"+url.PathEscape(name)+"/content", id, pathQuery(p)), resourceDataPlane, nil, "")
			if err != nil {
				return nil, err
			}
			fmt.Fprintln(in.app.stderr(), string(r.Body))
			return string(r.Body), nil
		}, false)
	meta := fileCmd("show-file-metadata", "Show the metadata of a file in a session.",
		"  tidepool containerapp session code-interpreter show-file-metadata -n MySessionPool -g MyResourceGroup --identifier MySession --filename example.txt",
		func(ctx context.Context, in *inv, ep, id, p, name string) (any, error) {
			r, err := in.client.send(ctx, http.MethodGet, dpURL(ep, "files/"+url.PathEscape(name), id, pathQuery(p)), resourceDataPlane, nil, "")
			if err != nil {
				return nil, err
			}
			return r.json()
		}, false)
	del := fileCmd("delete-file", "Delete a file from a session.",
		"  tidepool containerapp session code-interpreter delete-file -n MySessionPool -g MyResourceGroup --identifier MySession --filename example.txt --yes",
		func(ctx context.Context, in *inv, ep, id, p, name string) (any, error) {
			if _, err := in.client.send(ctx, http.MethodDelete, dpURL(ep, "files/"+url.PathEscape(name), id, pathQuery(p)), resourceDataPlane, nil, ""); err != nil {
				return nil, err
			}
			in.warn("file successfully deleted")
			return noOutput{}, nil
		}, true)
	ci.AddCommand(execute, upload, list, content, meta, del)

	sf := &sessionFlags{}
	stop := &cobra.Command{
		Use:     "stop",
		Short:   "Stop a session of a CustomContainer pool.",
		Example: "  tidepool containerapp session stop -n MySessionPool -g MyResourceGroup --identifier MySession",
		Args:    cobra.NoArgs,
	}
	addSessionFlags(stop, sf)
	stop.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		sf.location = "" // the pool's type is needed: always read the pool
		ep, pool, err := in.endpoint(ctx, sf)
		if err != nil {
			return nil, err
		}
		if str(dig(pool, "properties.containerType")) != "CustomContainer" {
			return nil, validationErr("Stop session operation is only supported for session pools with type 'CustomContainer'.")
		}
		r, err := in.client.send(ctx, http.MethodPost, dpURL(ep, ".management/stopSession", sf.identifier, nil), resourceDataPlane, nil, "")
		if err != nil {
			return nil, err
		}
		return strings.TrimSpace(string(r.Body)), nil
	})

	shell := &cobra.Command{Use: "shell", Short: "Commands for Shell pools (tidepool only; az has none)."}
	xf := &sessionFlags{}
	var command string
	var argv []string
	var xTimeout int
	exec := &cobra.Command{
		Use:   "exec",
		Short: "Run a shell command in a session of a Shell pool (tidepool only).",
		Long: `Run a shell command in a session: --command runs with bash -c; --argv runs a program
with arguments, without a shell. The answer is the execution: status is the exit
code as a string, result.stdout and result.stderr the output. Not in az: the
Shell-pool tutorial posts the same request with curl.`,
		Example: `  tidepool session shell exec -n myshellpool -g MyResourceGroup -i $EXEC_ID --command "echo 'hello world'; echo 'hi'"
  tidepool session shell exec -n myshellpool -g MyResourceGroup -i $EXEC_ID --argv ls -la /mnt/data --query result.stdout -o tsv`,
		Args: cobra.NoArgs,
	}
	addSessionFlags(exec, xf)
	exec.Flags().StringVar(&command, "command", "", "The command line, run with bash -c.")
	multi(exec, &argv, "argv", "", "The program and its arguments (space-separated), run without a shell.")
	exec.Flags().IntVar(&xTimeout, "timeout-in-seconds", 60, "Timeout in seconds, 1 to 600.")
	exec.RunE = run(app, g, func(ctx context.Context, in *inv, _ []string) (any, error) {
		if (command == "") == (len(argv) == 0) {
			return nil, usageErr("usage error: give one of --command or --argv")
		}
		if xTimeout <= 0 || xTimeout > 600 {
			return nil, validationErr("Timeout in seconds must be in range [1, 600].")
		}
		ep, _, err := in.endpoint(ctx, xf)
		if err != nil {
			return nil, err
		}
		body := map[string]any{"timeoutInSeconds": xTimeout}
		if command != "" {
			body["shellCommand"] = command
		} else {
			body["command"] = argv
		}
		res, err := in.execute(ctx, ep, xf.identifier, body)
		if err != nil {
			return nil, err
		}
		if st := str(dig(res, "status")); st != "" && st != "0" {
			if _, err := strconv.Atoi(st); err == nil {
				in.warn("the command exited with status %s", st)
			}
		}
		return res, nil
	})
	shell.AddCommand(exec)
	cmd.AddCommand(ci, stop, shell)
	return cmd
}
