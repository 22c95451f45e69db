package dataplane

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tidepool-dev/tidepool/internal/agent/wire"
	"github.com/tidepool-dev/tidepool/internal/arm"
	"github.com/tidepool-dev/tidepool/internal/model"
	"github.com/tidepool-dev/tidepool/internal/pool"
	"github.com/tidepool-dev/tidepool/internal/sandbox"
)

// wireShape is the response shape of an execution route.
type wireShape int

const (
	wireV1   wireShape = iota // code/execute, python/execute
	wireV2                    // executions
	wireFlat                  // execute (2024-09-01 swagger)
)

// agentMargin is how much longer than the execution's own timeout the
// server waits for the agent to answer.
const agentMargin = 30 * time.Second

// execute answers the three execution routes.
func (h *Handler) execute(w http.ResponseWriter, req *request, shape wireShape) error {
	start := h.now()
	body, err := readBody(w, req.r, maxJSONBody)
	if err != nil {
		return &arm.Error{Status: http.StatusRequestEntityTooLarge, Code: "RequestBodyTooLarge",
			Message: fmt.Sprintf("The request body is larger than %d bytes.", maxJSONBody), Err: err}
	}
	er, err := decodeExecution(body)
	if err != nil {
		return err
	}
	id := queryGet(req.query, "identifier")
	if id == "" && er.Identifier != "" {
		id = er.Identifier // the legacy family sends it in the body
	}
	if err := validateIdentifier(id); err != nil {
		return err
	}
	shell, lang, err := executionKind(req, er)
	if err != nil {
		return err
	}
	timeout, err := h.timeout(er, shell)
	if err != nil {
		return err
	}
	sess, err := h.acquireID(req, id)
	if err != nil {
		return err
	}
	if sess.Kind != "" {
		// The session knows best what it runs.
		switch sess.Kind {
		case sandbox.KindNode:
			lang = wire.LangNode
		case sandbox.KindPython:
			lang = wire.LangPython
		case sandbox.KindShell:
			if !shell {
				shell, er.ShellCommand, er.HasShell = true, er.Code, true
			}
		}
	}
	x := &execution{
		ID:            operationID(req.r),
		PoolID:        req.poolID,
		Identifier:    id,
		ExecutionType: er.ExecutionType,
		Shell:         shell,
		Jupyter:       er.JupyterFormat,
		Timeout:       timeout,
		Started:       start,
	}
	if h.log.Enabled(req.r.Context(), slog.LevelDebug) { // the hash is not free
		h.log.DebugContext(req.r.Context(), "execute", "pool", req.poolID, "identifier_hash", hashIdentifier(id),
			"sandbox", sess.SandboxID, "execution", x.ID, "shell", shell, "lang", lang, "async", er.ExecutionType == execAsynchronous)
	}
	setSessionHeaders(w, sess)
	w.Header().Set("Operation-Id", x.ID)
	if shape == wireV2 {
		w.Header().Set("Operation-Location", h.operationLocation(req, x.ID, id))
	}
	if shape == wireV2 && er.ExecutionType == execAsynchronous {
		h.execs.put(x)
		answer := x.v2()
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			ctx, cancel := context.WithTimeout(h.ctx, timeout+agentMargin)
			defer cancel()
			h.run(ctx, sess, er, lang, x)
		}()
		writeJSON(w, http.StatusAccepted, answer)
		return nil
	}
	ctx, cancel := context.WithTimeout(req.r.Context(), timeout+agentMargin)
	defer cancel()
	h.run(ctx, sess, er, lang, x)
	if x.Err != nil && x.Code == nil && x.ShellResult == nil {
		return x.Err // the agent failed: no execution result to report
	}
	h.execs.put(x)
	w.Header().Set("X-Ms-Container-Execution-Duration", strconv.FormatInt(x.durationMs(), 10))
	w.Header().Set("X-Ms-Execution-Request-Time", strconv.FormatFloat(float64(x.Finished.Sub(x.Started).Microseconds())/1000, 'f', 6, 64))
	w.Header().Set("X-Ms-Overall-Execution-Time", h.now().Sub(start).String())
	switch shape {
	case wireV1:
		writeJSON(w, http.StatusOK, x.v1())
	case wireFlat:
		writeJSON(w, http.StatusOK, x.flat())
	default:
		status := http.StatusOK
		if v := strings.ToLower(req.version); strings.HasPrefix(v, "2024-10-02") || strings.HasPrefix(v, "2025-02-02") {
			status = http.StatusAccepted // SPEC-2410 and SPEC-2502 model a long-running operation
		}
		writeJSON(w, status, x.v2())
	}
	return nil
}

// readBody reads r's body, at most limit bytes, in one allocation when
// the request says its length.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	var b bytes.Buffer
	if n := r.ContentLength; n > 0 && n <= limit {
		b.Grow(int(n) + bytes.MinRead) // ReadFrom wants MinRead free to read the end
	}
	_, err := b.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	return b.Bytes(), err
}

// executionKind says whether the request runs a shell command, and the
// kernel language otherwise.
func executionKind(req *request, er *executionRequest) (shell bool, lang string, err error) {
	ct := req.containerType()
	switch {
	case strings.EqualFold(ct, model.ContainerTypeShell):
		if !er.HasShell {
			if er.Code == "" {
				return false, "", badRequest("MissingShellCommand",
					"The request has no command: send 'shellCommand' (a string or an array), 'command' (an array), 'execCommandAndArgs' or 'code'.")
			}
			er.ShellCommand, er.HasShell = er.Code, true
		}
		return true, "", nil
	case er.HasShell:
		return true, "", nil
	case strings.EqualFold(ct, model.ContainerTypeNodeLTS):
		lang = wire.LangNode
	default:
		lang = wire.LangPython
	}
	if er.Code == "" {
		return false, "", badRequest("MissingCode", "The request has no code: send 'code' (or 'pythonCode') with codeInputType Inline.")
	}
	return false, lang, nil
}

// timeout is the execution's deadline: timeoutInSeconds when given,
// lowered to the bound (220 s for code, 600 s for shell commands by
// default); the code bound when absent.
func (h *Handler) timeout(er *executionRequest, shell bool) (time.Duration, error) {
	limit := h.maxExec
	if shell {
		limit = h.maxShell
	}
	if er.TimeoutSeconds <= 0 {
		return h.maxExec, nil
	}
	d := time.Duration(er.TimeoutSeconds) * time.Second
	if d > limit {
		d = limit
	}
	return d, nil
}

// operationID is the client's operation-id header when it is usable, or a
// new UUID.
func operationID(r *http.Request) string {
	if id := r.Header.Get("Operation-Id"); id != "" && len(id) <= 128 && !strings.ContainsAny(id, "/?#% \t\r\n") {
		return id
	}
	return uuid.NewString()
}

func (h *Handler) operationLocation(req *request, execID, identifier string) string {
	q := url.Values{}
	if req.version != "" {
		q.Set("api-version", req.version)
	}
	q.Set("identifier", identifier)
	return h.publicURL + req.base + "/executions/" + url.PathEscape(execID) + "?" + q.Encode()
}

// setSessionHeaders sets the allocation headers of Azure's code
// interpreter.
func setSessionHeaders(w http.ResponseWriter, s *pool.Session) {
	h := w.Header()
	if s.SandboxID != "" {
		h.Set("X-Ms-Session-Guid", s.SandboxID)
	}
	h.Set("X-Ms-Allocation-Time", strconv.FormatInt(s.AllocationDuration.Milliseconds(), 10))
	h.Set("X-Ms-New-Allocation", strconv.FormatBool(s.Allocation != "" && s.Allocation != "existing"))
	h.Set("X-Ms-Allocation-Retries", "0")
}

// run executes er in the session and records the outcome in x.
func (h *Handler) run(ctx context.Context, sess *pool.Session, er *executionRequest, lang string, x *execution) {
	var maxOut int64
	if er.OutputStreamsMaxLength > 0 {
		maxOut = er.OutputStreamsMaxLength
	}
	var (
		code  *wire.ExecuteResult
		shell *wire.ExecResult
		err   error
	)
	if x.Shell {
		shell, err = sess.Agent.Exec(ctx, wire.ExecRequest{
			ShellCommand:   er.ShellCommand,
			Argv:           er.Argv,
			Stdin:          er.Stdin,
			TimeoutMs:      x.Timeout.Milliseconds(),
			MaxOutputBytes: maxOut,
		})
	} else {
		code, err = sess.Agent.Execute(ctx, lang, wire.ExecuteRequest{
			Code:           er.Code,
			TimeoutMs:      x.Timeout.Milliseconds(),
			MaxOutputBytes: maxOut,
		})
	}
	if maxOut > 0 {
		// The agent caps bytes; outputStreamsMaxLength counts characters.
		if code != nil {
			code.Stdout, code.Stderr = capRunes(code.Stdout, maxOut), capRunes(code.Stderr, maxOut)
		}
		if shell != nil {
			shell.Stdout, shell.Stderr = capRunes(shell.Stdout, maxOut), capRunes(shell.Stderr, maxOut)
		}
	}
	done := h.now()
	h.execs.finish(x, code, shell, fromAgent(err), done)
	kind := lang
	if x.Shell {
		kind = "shell"
	}
	h.metrics.executed(x.PoolID, kind, done.Sub(x.Started))
	if err != nil {
		h.log.WarnContext(ctx, "execution failed in the agent", "pool", x.PoolID, "identifier_hash", hashIdentifier(x.Identifier),
			"sandbox", sess.SandboxID, "execution", x.ID, "err", err)
	}
}

func capRunes(s string, n int64) string {
	if int64(len(s)) <= n {
		return s
	}
	r := []rune(s)
	if int64(len(r)) <= n {
		return s
	}
	return string(r[:n])
}

// getExecution answers GET executions/{id} (and execute/{id}).
func (h *Handler) getExecution(w http.ResponseWriter, req *request, execID string, flat bool) error {
	id, err := req.identifier()
	if err != nil {
		return err
	}
	x := h.execs.get(req.poolID, id, execID)
	if x == nil {
		return &arm.Error{Status: http.StatusNotFound, Code: "ExecutionNotFound",
			Message: "No execution with this id is known for this session; finished executions are kept for a limited time."}
	}
	w.Header().Set("Operation-Id", x.ID)
	if flat {
		writeJSON(w, http.StatusOK, x.flat())
		return nil
	}
	writeJSON(w, http.StatusOK, x.v2())
	return nil
}

// v1Envelope is the v1 and legacy execution answer.
type v1Envelope struct {
	ID         string   `json:"$id"`
	Properties v1Result `json:"properties"`
}

type v1Result struct {
	ID                          string `json:"$id"`
	Status                      string `json:"status"`
	Stdout                      string `json:"stdout"`
	Stderr                      string `json:"stderr"`
	Result                      any    `json:"result"`
	ExecutionResult             any    `json:"executionResult"`
	ExecutionTimeInMilliseconds int64  `json:"executionTimeInMilliseconds"`
}

func (x *execution) v1() v1Envelope {
	o := x.outcome()
	status := "Success"
	if !o.ok {
		status = "Failure"
	}
	return v1Envelope{ID: "1", Properties: v1Result{
		ID: "2", Status: status, Stdout: o.stdout, Stderr: o.stderr,
		Result: o.v1Value, ExecutionResult: o.v1Value, ExecutionTimeInMilliseconds: x.durationMs(),
	}}
}

// flatResult is the 2024-09-01 swagger's execution answer.
type flatResult struct {
	ID                          string `json:"id"`
	Identifier                  string `json:"identifier"`
	ExecutionType               string `json:"executionType"`
	Status                      string `json:"status"`
	Stdout                      string `json:"stdout"`
	Stderr                      string `json:"stderr"`
	Result                      any    `json:"result"`
	ExecutionTimeInMilliseconds int64  `json:"executionTimeInMilliseconds"`
}

func (x *execution) flat() flatResult {
	f := flatResult{ID: x.ID, Identifier: x.Identifier, ExecutionType: x.ExecutionType, Status: "Running", Result: ""}
	if x.done() {
		o := x.outcome()
		f.Status, f.Stdout, f.Stderr, f.Result = "Success", o.stdout, o.stderr, o.v1Value
		if !o.ok {
			f.Status = "Failure"
		}
		f.ExecutionTimeInMilliseconds = x.durationMs()
	}
	return f
}

// v2Execution is SessionCodeExecutionResource.
type v2Execution struct {
	ID            string       `json:"id"`
	Identifier    string       `json:"identifier"`
	ExecutionType string       `json:"executionType"`
	Status        string       `json:"status"`
	Result        *v2Result    `json:"result,omitempty"`
	Error         *v2ErrorInfo `json:"error,omitempty"`
}

type v2Result struct {
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	// ExecutionResult is a JSON string (or null in Jupyter format for
	// None); absent for shell commands.
	ExecutionResult             json.RawMessage `json:"executionResult,omitempty"`
	ExecutionTimeInMilliseconds int64           `json:"executionTimeInMilliseconds"`
	// Images is tidepool's: the figures the code produced, which the v2
	// shape has no place for.
	Images []imageResult `json:"images,omitempty"`
}

type v2ErrorInfo struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (x *execution) v2() v2Execution {
	v := v2Execution{ID: x.ID, Identifier: x.Identifier, ExecutionType: x.ExecutionType, Status: "Running"}
	if !x.done() {
		return v
	}
	o := x.outcome()
	res := &v2Result{Stdout: o.stdout, Stderr: o.stderr, ExecutionTimeInMilliseconds: x.durationMs(), Images: o.images}
	switch {
	case x.ShellResult != nil:
		v.Status = strconv.Itoa(x.ShellResult.ExitCode)
	case o.ok:
		v.Status = "Succeeded"
	default:
		v.Status = "Failed"
	}
	if x.ShellResult == nil && x.Code != nil {
		res.ExecutionResult = o.v2Value
	}
	if x.Code != nil || x.ShellResult != nil {
		v.Result = res
	}
	if o.err != nil {
		v.Error = o.err
		if x.ShellResult == nil {
			v.Status = "Failed"
		}
	}
	return v
}

// imageResult is how an image appears in a result.
type imageResult struct {
	Type       string `json:"type"`
	Format     string `json:"format"`
	Base64Data string `json:"base64_data"`
}

// outcome is a finished execution in family-neutral terms.
type outcome struct {
	ok             bool
	stdout, stderr string
	v1Value        any
	v2Value        json.RawMessage
	images         []imageResult
	err            *v2ErrorInfo
}

func (x *execution) outcome() outcome {
	o := outcome{v1Value: "", v2Value: json.RawMessage(`""`)}
	switch {
	case x.ShellResult != nil:
		s := x.ShellResult
		o.ok = s.ExitCode == 0
		o.stdout, o.stderr = s.Stdout, s.Stderr
		if s.TimedOut {
			o.stderr = appendLine(o.stderr, fmt.Sprintf("The command timed out after %d seconds and was killed.", int(x.Timeout.Seconds())))
		}
	case x.Code != nil:
		c := x.Code
		o.ok = c.Status == wire.StatusSucceeded
		o.stdout, o.stderr = c.Stdout, c.Stderr
		if c.Restarted {
			o.stderr = appendLine(o.stderr, "The interpreter was restarted during this execution: variables, imports and other state from earlier executions are gone.")
		}
		switch c.Status {
		case wire.StatusFailed:
			msg := "the code raised an error"
			if c.Error != nil {
				o.stderr = appendLine(o.stderr, strings.TrimRight(c.Error.Traceback, "\n"))
				if c.Error.Traceback == "" {
					o.stderr = appendLine(o.stderr, c.Error.Name+": "+c.Error.Value)
				}
				msg = strings.TrimSpace(c.Error.Name + ": " + c.Error.Value)
			}
			o.err = &v2ErrorInfo{Code: "ExecutionFailed", Message: msg}
		case wire.StatusTimedOut:
			msg := fmt.Sprintf("The execution timed out after %d seconds and was interrupted.", int(x.Timeout.Seconds()))
			o.stderr = appendLine(o.stderr, msg)
			o.err = &v2ErrorInfo{Code: "ExecutionTimeout", Message: msg}
		}
		for _, img := range c.Images {
			o.images = append(o.images, imageResult{Type: "image", Format: strings.ToLower(img.Format), Base64Data: img.Data})
		}
		o.v1Value = v1Value(c)
		o.v2Value = v2Value(c, x.Jupyter)
	default:
		o.err = &v2ErrorInfo{Code: "SessionUnavailable", Message: "The session did not answer."}
	}
	return o
}

func appendLine(s, line string) string {
	if line == "" {
		return s
	}
	if s != "" && !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return s + line + "\n"
}

// v1Value is the v1 "result": the last figure when the code made one;
// else a scalar as JSON (2, "text", true, null); else a list or dict as
// its repr string, split over lines the way Python's pprint does when
// long (AutoGen parses that); "" when there is no value.
func v1Value(c *wire.ExecuteResult) any {
	if n := len(c.Images); n > 0 {
		img := c.Images[n-1]
		return imageResult{Type: "image", Format: strings.ToLower(img.Format), Base64Data: img.Data}
	}
	if c.Result == nil {
		return ""
	}
	js := strings.TrimSpace(string(c.Result.JSON))
	if js == "" || js == "null" && c.Result.Type != "NoneType" && c.Result.Type != "null" {
		return c.Result.Repr
	}
	switch js[0] {
	case '[', '{':
		return prettyRepr(c.Result.Repr)
	}
	return json.RawMessage(js)
}

// v2Value is the v2 executionResult, always a JSON string: a string value
// itself, anything else its repr; with returnJupyterFormatExecutionResult
// every value's repr, and null for None.
func v2Value(c *wire.ExecuteResult, jupyter bool) json.RawMessage {
	if c.Result == nil {
		return json.RawMessage(`""`)
	}
	s := c.Result.Repr
	if jupyter {
		if c.Result.Type == "NoneType" {
			return json.RawMessage("null")
		}
	} else if js := strings.TrimSpace(string(c.Result.JSON)); strings.HasPrefix(js, `"`) {
		var str string
		if json.Unmarshal([]byte(js), &str) == nil {
			s = str
		}
	}
	b, _ := json.Marshal(s)
	return b
}

// prettyRepr splits a long list or dict repr after each top-level comma,
// as pprint does when the repr exceeds 80 columns:
// "['a',\n 'b']".
func prettyRepr(repr string) string {
	if len(repr) <= 79 || len(repr) < 2 {
		return repr
	}
	open, end := repr[0], repr[len(repr)-1]
	if !(open == '[' && end == ']' || open == '{' && end == '}' || open == '(' && end == ')') {
		return repr
	}
	var b strings.Builder
	b.WriteByte(open)
	depth, quote, escaped := 0, byte(0), false
	inner := repr[1 : len(repr)-1]
	for i := 0; i < len(inner); i++ {
		c := inner[i]
		switch {
		case quote != 0:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == quote:
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '[' || c == '{' || c == '(':
			depth++
		case c == ']' || c == '}' || c == ')':
			depth--
		case c == ',' && depth == 0 && i+1 < len(inner) && inner[i+1] == ' ':
			b.WriteString(",\n")
			continue
		}
		b.WriteByte(c)
	}
	b.WriteByte(end)
	return b.String()
}
