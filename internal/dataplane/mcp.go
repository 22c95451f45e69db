package dataplane

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/tidepool-dev/tidepool/internal/agent/wire"
	"github.com/tidepool-dev/tidepool/internal/arm"
	"github.com/tidepool-dev/tidepool/internal/mcpkeys"
	"github.com/tidepool-dev/tidepool/internal/pool"
	"github.com/tidepool-dev/tidepool/internal/sandbox"
)

// MCPKeys checks the API keys of pools' MCP servers; *mcpkeys.Keys
// implements it. Check reports whether key is the pool's current key and
// the pool's MCP server accepts keys.
type MCPKeys interface {
	Check(ctx context.Context, poolID, key string) (bool, error)
}

var _ MCPKeys = (*mcpkeys.Keys)(nil)

const (
	// mcpHeader carries the pool's MCP key.
	mcpHeader = "x-ms-apikey"
	// maxMCPBody caps an MCP request body.
	maxMCPBody = 4 << 20
	// mcpProtocolVersion is the MCP revision Azure's server answers with.
	mcpProtocolVersion = "2025-03-26"
	mcpServerName      = "Tidepool MCP Server"
	mcpServerVersion   = "1.0.0"
)

// mcpProtocolVersions are the revisions initialize echoes when a client
// asks for one of them; any other gets mcpProtocolVersion.
var mcpProtocolVersions = []string{"2024-11-05", "2025-03-26", "2025-06-18"}

// isMCP reports whether the path after the pool's base is the MCP
// endpoint, which authenticates its callers itself (serveMCP).
func isMCP(rest []string) bool {
	return len(rest) == 1 && strings.EqualFold(rest[0], "mcp")
}

// serveMCP answers the pool's MCP endpoint: JSON-RPC 2.0 over POST
// (MCP's Streamable HTTP transport, answered with application/json).
//
// A request with an x-ms-apikey header must hold the pool's current key
// (mcpkeys); anything else about the key, the pool or its settings is the
// same 401, so that the endpoint tells a caller without a key nothing.
// A request without the header authenticates with a bearer token and
// goes through the data plane's one authorization check (ActionExecute),
// like an execution; that is the only way in when the pool has
// isMcpServerApiKeyDisabled. On a CustomContainer pool the path is the
// container's, proxied like any other after bearer authentication.
func (h *Handler) serveMCP(w http.ResponseWriter, req *request) error {
	r := req.r
	if keys := r.Header.Values(mcpHeader); len(keys) > 0 {
		if err := h.checkMCPKey(req, keys); err != nil {
			return err
		}
		p, err := h.pools.GetPool(r.Context(), req.poolID)
		if err != nil {
			return err
		}
		req.pool = p
		if req.isCustom() {
			return errMCPNotEnabled
		}
	} else {
		claims, err := h.auth.Authenticate(r, h.audiences...)
		if err != nil {
			if r.Header.Get("Authorization") == "" {
				return errMCPUnauthorized
			}
			return arm.AuthError(err)
		}
		req.claims = claims
		if err := h.check(req, ActionExecute); err != nil {
			return err
		}
		if req.isCustom() {
			return h.proxy(w, req)
		}
		if !mcpkeys.Enabled(req.pool.Properties.McpServerSettings) {
			return errMCPNotEnabled
		}
	}
	if r.Method != http.MethodPost {
		// Streamable HTTP: a server that offers no event stream answers
		// GET with 405; there are no MCP sessions to DELETE.
		return methodNotAllowed(r.Method, http.MethodPost)
	}
	body, err := readBody(w, r, maxMCPBody)
	if err != nil {
		return &arm.Error{Status: http.StatusRequestEntityTooLarge, Code: "RequestBodyTooLarge",
			Message: fmt.Sprintf("The request body is larger than %d bytes.", maxMCPBody), Err: err}
	}
	msgs, batch, fail := parseRPC(body)
	if fail != nil {
		// The input as a whole is unusable: an HTTP error whose body is a
		// JSON-RPC error without an id (Streamable HTTP).
		writeJSON(w, http.StatusBadRequest, fail)
		return nil
	}
	var answers []*rpcResponse
	for _, m := range msgs {
		switch {
		case m.Invalid != nil:
			answers = append(answers, m.Invalid)
		case m.Req != nil:
			if a := h.mcpDispatch(req, m.Req); a != nil && m.Req.ID != nil {
				answers = append(answers, a)
			}
		}
	}
	switch {
	case len(answers) == 0:
		// Only notifications and responses: accepted, nothing to say.
		w.WriteHeader(http.StatusAccepted)
	case !batch && msgs[0].Invalid != nil:
		writeJSON(w, http.StatusBadRequest, answers[0])
	case !batch:
		writeJSON(w, http.StatusOK, answers[0])
	default:
		writeJSON(w, http.StatusOK, answers)
	}
	return nil
}

var (
	errMCPUnauthorized = &arm.Error{Status: http.StatusUnauthorized, Code: "AuthenticationFailed",
		Message: "The MCP server needs the pool's key in the x-ms-apikey header (from fetchMcpServerCredentials) or, when the pool disables API keys, a bearer token.",
		Header:  http.Header{"Www-Authenticate": {`Bearer, ApiKey header="x-ms-apikey"`}}}
	errMCPBadKey = &arm.Error{Status: http.StatusUnauthorized, Code: "InvalidApiKey",
		Message: "The x-ms-apikey header does not hold a valid MCP server key of this session pool. Fetch the current key with fetchMcpServerCredentials; a pool with isMcpServerApiKeyDisabled accepts bearer tokens only.",
		Header:  http.Header{"Www-Authenticate": {`ApiKey header="x-ms-apikey"`}}}
	errMCPNotEnabled = &arm.Error{Status: http.StatusNotFound, Code: "SessionMCPServerNotEnabled",
		Message: "The MCP server of this session pool is not enabled; set properties.mcpServerSettings.isMcpServerEnabled to true (not possible on CustomContainer pools)."}
)

// checkMCPKey accepts exactly one x-ms-apikey value that is the pool's
// current key. The key is never logged.
func (h *Handler) checkMCPKey(req *request, keys []string) error {
	if len(keys) != 1 || h.mcpKeys == nil {
		return errMCPBadKey
	}
	ok, err := h.mcpKeys.Check(req.r.Context(), req.poolID, strings.TrimSpace(keys[0]))
	if err != nil {
		return fmt.Errorf("check MCP key: %w", err)
	}
	if !ok {
		return errMCPBadKey
	}
	return nil
}

// mcpDispatch answers one request; the answer of a notification is
// dropped by the caller.
func (h *Handler) mcpDispatch(req *request, m *rpcRequest) *rpcResponse {
	switch m.Method {
	case "initialize":
		return h.mcpInitialize(m)
	case "ping":
		return rpcResult(m.ID, struct{}{})
	case "tools/list":
		return rpcResult(m.ID, map[string]any{"tools": mcpTools})
	case "tools/call":
		return h.mcpCallTool(req, m)
	}
	if m.ID == nil && strings.HasPrefix(m.Method, "notifications/") {
		return nil // notifications/initialized, notifications/cancelled, ...
	}
	return rpcFail(m.ID, rpcMethodNotFound, "Method not found: "+clip(m.Method))
}

func (h *Handler) mcpInitialize(m *rpcRequest) *rpcResponse {
	version := mcpProtocolVersion
	if m.Params != nil {
		var p struct {
			ProtocolVersion any `json:"protocolVersion"`
		}
		if m.Params[0] != '{' || json.Unmarshal(m.Params, &p) != nil {
			return rpcFail(m.ID, rpcInvalidParams, "Invalid params: initialize takes an object.")
		}
		if v, ok := p.ProtocolVersion.(string); ok && slices.Contains(mcpProtocolVersions, v) {
			version = v
		}
	}
	return rpcResult(m.ID, map[string]any{
		"protocolVersion": version,
		"serverInfo":      map[string]string{"name": mcpServerName, "version": mcpServerVersion},
		"capabilities":    map[string]any{"tools": map[string]bool{"call": true, "list": true}},
	})
}

// mcpTool is a tool as tools/list describes it.
type mcpTool struct {
	Name        string         `json:"name"`
	Description string         `json:"description"`
	InputSchema map[string]any `json:"inputSchema"`
}

// Tool names, as Azure's MCP server has them.
const (
	toolLaunchShell       = "launchShell"
	toolLaunchPython      = "launchPythonEnvironment"
	toolRunShellCommand   = "runShellCommandInRemoteEnvironment"
	toolRunPythonCode     = "runPythonCodeInRemoteEnvironment"
	environmentIDArgument = "environmentId"
)

var noArguments = map[string]any{"type": "object", "properties": map[string]any{}}

var environmentIDSchema = map[string]any{"type": "string",
	"description": "The environmentId a launch tool returned."}

var mcpTools = []mcpTool{
	{Name: toolLaunchShell, InputSchema: noArguments,
		Description: "Launch a new remote environment, a sandboxed session of this pool, and return its environmentId. " +
			"Use it with runShellCommandInRemoteEnvironment and runPythonCodeInRemoteEnvironment; files and state persist between calls " +
			"until the environment has been idle for the pool's cooldown period."},
	{Name: toolLaunchPython, InputSchema: noArguments,
		Description: "Launch a new remote Python environment and return its environmentId (the same as launchShell)."},
	{Name: toolRunShellCommand,
		Description: "Run a shell command (bash -c) in a remote environment and return its stdout, stderr and exit code. " +
			"Give either shellCommand (a string) or execCommandAndArgs (the program and its arguments).",
		InputSchema: map[string]any{
			"type": "object",
			"properties": map[string]any{
				environmentIDArgument: environmentIDSchema,
				"shellCommand":        map[string]any{"type": "string", "description": "The command line, run with bash -c."},
				"execCommandAndArgs": map[string]any{"type": "array", "items": map[string]any{"type": "string"},
					"description": "The program and its arguments, run without a shell."},
				"stdin": map[string]any{"type": "string", "description": "Text written to the command's standard input."},
			},
			"required": []string{environmentIDArgument},
		}},
	{Name: toolRunPythonCode,
		Description: "Run Python code in a remote environment and return its stdout, stderr and the value of the last expression. " +
			"Variables and imports persist between calls in the same environment.",
		InputSchema: map[string]any{
			"type": "object",
			"properties": map[string]any{
				environmentIDArgument: environmentIDSchema,
				"pythonCode":          map[string]any{"type": "string", "description": "The Python code to run."},
			},
			"required": []string{environmentIDArgument, "pythonCode"},
		}},
}

// mcpContent is a content block of a tool result.
type mcpContent struct {
	Type     string `json:"type"`
	Text     string `json:"text,omitempty"`
	Data     string `json:"data,omitempty"`
	MimeType string `json:"mimeType,omitempty"`
}

// mcpToolResult is MCP's CallToolResult. Content's first block is the
// structured content as JSON text, for clients that read only content.
type mcpToolResult struct {
	Content           []mcpContent `json:"content"`
	StructuredContent any          `json:"structuredContent,omitempty"`
	IsError           bool         `json:"isError"`
}

func toolResult(structured any, failed bool) *mcpToolResult {
	text, _ := json.Marshal(structured)
	return &mcpToolResult{Content: []mcpContent{{Type: "text", Text: string(text)}}, StructuredContent: structured, IsError: failed}
}

// toolError is a tool that ran and failed: the model sees the message.
func toolError(msg string) *mcpToolResult {
	return &mcpToolResult{Content: []mcpContent{{Type: "text", Text: msg}}, IsError: true}
}

func (h *Handler) mcpCallTool(req *request, m *rpcRequest) *rpcResponse {
	var p struct {
		Name      *string         `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	}
	if m.Params == nil || m.Params[0] != '{' || json.Unmarshal(m.Params, &p) != nil || p.Name == nil {
		return rpcFail(m.ID, rpcInvalidParams, `Invalid params: tools/call takes {"name": "<tool>", "arguments": {...}}.`)
	}
	args := bytes.TrimSpace(p.Arguments)
	if len(args) == 0 || isNull(args) {
		args = []byte("{}")
	}
	if args[0] != '{' {
		return rpcFail(m.ID, rpcInvalidParams, "Invalid params: arguments must be an object.")
	}
	var res *mcpToolResult
	var bad error
	switch name := *p.Name; {
	case strings.EqualFold(name, toolLaunchShell), strings.EqualFold(name, toolLaunchPython):
		res = h.mcpLaunch(req)
	case strings.EqualFold(name, toolRunShellCommand):
		res, bad = h.mcpRun(req, args, false)
	case strings.EqualFold(name, toolRunPythonCode):
		res, bad = h.mcpRun(req, args, true)
	default:
		return rpcFail(m.ID, rpcInvalidParams, "Unknown tool: "+clip(name))
	}
	if bad != nil {
		return rpcFail(m.ID, rpcInvalidParams, "Invalid arguments: "+bad.Error())
	}
	return rpcResult(m.ID, res)
}

// mcpLaunch binds a session to a new environment id now, so that a full
// pool says so at launch and the first command finds a warm session.
func (h *Handler) mcpLaunch(req *request) *mcpToolResult {
	id := uuid.NewString()
	if _, err := h.acquireID(req, id); err != nil {
		return h.toolFailure(req, err)
	}
	return toolResult(map[string]string{environmentIDArgument: id}, false)
}

// argError is an argument the tool cannot use (→ -32602).
type argError string

func (e argError) Error() string { return string(e) }

// mcpRun runs a shell command or Python code in the environment args
// name. A wrong argument is returned as an error; everything that happens
// once the arguments are good is the tool result.
func (h *Handler) mcpRun(req *request, args []byte, python bool) (*mcpToolResult, error) {
	var a struct {
		EnvironmentID *string `json:"environmentId"`
	}
	if json.Unmarshal(args, &a) != nil || a.EnvironmentID == nil {
		return nil, argError("environmentId (a string) is required; launch an environment with launchShell first")
	}
	envID := *a.EnvironmentID
	if err := validateIdentifier(envID); err != nil {
		return nil, argError("environmentId is not a valid id")
	}
	er, err := decodeExecution(args)
	if err != nil {
		var ae *arm.Error
		if errors.As(err, &ae) {
			return nil, argError(ae.Message)
		}
		return nil, argError("the arguments cannot be read")
	}
	switch {
	case python && strings.TrimSpace(er.Code) == "":
		return nil, argError("pythonCode (a string) is required")
	case !python && !er.HasShell:
		return nil, argError("give shellCommand (a string) or execCommandAndArgs (an array of strings)")
	}
	timeout, _ := h.timeout(er, !python)
	ctx := req.r.Context()
	if _, err := h.sessions.Lookup(ctx, req.poolID, envID); errors.Is(err, pool.ErrSessionNotFound) {
		return toolError("No environment has the id '" + clip(envID) + "': it was never launched, or it ended after the pool's cooldown period without use. Launch a new one with launchShell."), nil
	} else if err != nil {
		return h.toolFailure(req, err), nil
	}
	sess, err := h.acquireID(req, envID) // counts the call as activity
	if err != nil {
		return h.toolFailure(req, err), nil
	}
	x := &execution{PoolID: req.poolID, Identifier: envID, Timeout: timeout, Started: h.now()}
	lang := ""
	switch {
	case !python:
		x.Shell = true
	case sess.Kind == sandbox.KindPython || sess.Kind == "":
		lang = wire.LangPython
	default:
		// A Shell (or Node) session has no Python kernel: run the code
		// with the environment's python3, state not kept between calls.
		x.Shell, er.Argv, er.ShellCommand = true, []string{"python3", "-c", er.Code}, ""
	}
	h.log.DebugContext(ctx, "mcp tool", "pool", req.poolID, "identifier_hash", hashIdentifier(envID), "sandbox", sess.SandboxID, "python", python)
	runCtx, cancel := context.WithTimeout(ctx, timeout+agentMargin)
	defer cancel()
	h.run(runCtx, sess, er, lang, x)
	if x.Err != nil && x.Code == nil && x.ShellResult == nil {
		return h.toolFailure(req, x.Err), nil
	}
	o := x.outcome()
	if !python {
		return toolResult(map[string]any{"stdout": o.stdout, "stderr": o.stderr, "exitCode": x.ShellResult.ExitCode}, !o.ok), nil
	}
	out := map[string]any{"stdout": o.stdout, "stderr": o.stderr, "result": ""}
	if x.Code != nil {
		var s string
		if json.Unmarshal(o.v2Value, &s) == nil {
			out["result"] = s
		}
	}
	if o.err != nil {
		out["error"] = o.err
	}
	res := toolResult(out, !o.ok)
	for _, img := range o.images {
		res.Content = append(res.Content, mcpContent{Type: "image", Data: img.Base64Data, MimeType: "image/" + img.Format})
	}
	return res, nil
}

// toolFailure turns an error of the session machinery into a tool error
// with the data plane's client message; causes behind a 5xx are logged.
func (h *Handler) toolFailure(req *request, err error) *mcpToolResult {
	e := h.asError(err)
	if e.Status >= 500 {
		h.log.ErrorContext(req.r.Context(), "mcp tool failed", "pool", req.poolID, "code", e.Code, "err", err)
	}
	return toolError(e.Message)
}
