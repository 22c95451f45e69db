package dataplane

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Code input and execution types, canonical spelling.
const (
	inputInline       = "Inline"
	inputInlineBase64 = "InlineBase64"
	inputInlineText   = "InlineText"
	execSynchronous   = "Synchronous"
	execAsynchronous  = "Asynchronous"
)

// executionRequest is an execution request of any family, decoded
// tolerantly.
type executionRequest struct {
	// Identifier is properties.identifier (the legacy family's place).
	Identifier    string
	CodeInputType string
	ExecutionType string
	// Code is the code, already decoded from base64 when
	// codeInputType is InlineBase64.
	Code string
	// Timeout in seconds; 0 when absent.
	TimeoutSeconds int64
	// OutputStreamsMaxLength; 0 when absent.
	OutputStreamsMaxLength int64
	UseEmptyKernel         bool
	JupyterFormat          bool
	// ShellCommand is set when the request names a shell command as a
	// string; Argv when it names argv (shellCommand or command as arrays,
	// execCommandAndArgs).
	ShellCommand string
	Argv         []string
	Stdin        string
	HasShell     bool
}

// decodeExecution decodes an execution body: a JSON object, optionally
// wrapped in "properties"; keys and enum values match case-insensitively;
// unknown keys are ignored. Errors are *arm.Error (400).
func decodeExecution(body []byte) (*executionRequest, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, badRequest("InvalidRequestBody", "The request body is empty; send a JSON object with 'code' (or 'shellCommand').")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		return nil, badRequest("InvalidRequestBody", "The request body is not a JSON object.")
	}
	fields := map[string]json.RawMessage{}
	merge := func(m map[string]json.RawMessage) {
		for k, v := range m {
			fields[strings.ToLower(k)] = v
		}
	}
	merge(top)
	if raw, ok := fields["properties"]; ok {
		var props map[string]json.RawMessage
		if json.Unmarshal(raw, &props) == nil && props != nil {
			merge(props) // properties win over top-level fields
		}
	}
	req := &executionRequest{}
	var err error
	str := func(name string) (string, bool, error) {
		raw, ok := fields[name]
		if !ok || isNull(raw) {
			return "", false, nil
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false, badRequest("InvalidRequestBody", "The field '%s' must be a string.", name)
		}
		return s, true, nil
	}
	if req.Identifier, _, err = str("identifier"); err != nil {
		return nil, err
	}
	inputType, _, err := str("codeinputtype")
	if err != nil {
		return nil, err
	}
	switch strings.ToLower(inputType) {
	case "", "inline":
		req.CodeInputType = inputInline
	case "inlinebase64":
		req.CodeInputType = inputInlineBase64
	case "inlinetext":
		req.CodeInputType = inputInlineText
	default:
		return nil, badRequest("InvalidCodeInputType", "The codeInputType '%s' is invalid; use Inline, InlineBase64 or InlineText.", clip(inputType))
	}
	execType, _, err := str("executiontype")
	if err != nil {
		return nil, err
	}
	switch strings.ToLower(execType) {
	case "", "synchronous", "sync":
		req.ExecutionType = execSynchronous
	case "asynchronous", "async":
		req.ExecutionType = execAsynchronous
	default:
		return nil, badRequest("InvalidExecutionType", "The executionType '%s' is invalid; use Synchronous or Asynchronous.", clip(execType))
	}
	code, ok, err := str("code")
	if err != nil {
		return nil, err
	}
	if !ok {
		if code, _, err = str("pythoncode"); err != nil {
			return nil, err
		}
	}
	if req.CodeInputType == inputInlineBase64 && code != "" {
		b, err := decodeBase64(code)
		if err != nil {
			return nil, badRequest("InvalidCode", "The code is not valid base64, as codeInputType InlineBase64 requires.")
		}
		code = string(b)
	}
	req.Code = code
	if req.TimeoutSeconds, err = integer(fields, "timeoutinseconds"); err != nil {
		return nil, err
	}
	if req.OutputStreamsMaxLength, err = integer(fields, "outputstreamsmaxlength"); err != nil {
		return nil, err
	}
	if req.UseEmptyKernel, err = boolean(fields, "useemptykernel"); err != nil {
		return nil, err
	}
	if req.JupyterFormat, err = boolean(fields, "returnjupyterformatexecutionresult"); err != nil {
		return nil, err
	}
	if !req.JupyterFormat {
		if req.JupyterFormat, err = boolean(fields, "returnjupyterformat"); err != nil {
			return nil, err
		}
	}
	for _, name := range []string{"shellcommand", "command", "execcommandandargs"} {
		raw, ok := fields[name]
		if !ok || isNull(raw) {
			continue
		}
		var s string
		var argv []string
		switch {
		case json.Unmarshal(raw, &s) == nil:
			if req.HasShell {
				continue
			}
			req.ShellCommand, req.HasShell = s, true
		case json.Unmarshal(raw, &argv) == nil:
			if req.HasShell {
				continue
			}
			if len(argv) == 0 {
				return nil, badRequest("InvalidShellCommand", "The field '%s' is an empty array; give the program and its arguments.", name)
			}
			req.Argv, req.HasShell = argv, true
		default:
			return nil, badRequest("InvalidShellCommand", "The field '%s' must be a string or an array of strings.", name)
		}
	}
	if req.Stdin, _, err = str("stdin"); err != nil {
		return nil, err
	}
	return req, nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// integer reads a number, or a string holding one.
func integer(fields map[string]json.RawMessage, name string) (int64, error) {
	raw, ok := fields[name]
	if !ok || isNull(raw) {
		return 0, nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return 0, badRequest("InvalidRequestBody", "The field '%s' must be an integer.", name)
		}
		if f, err = strconv.ParseFloat(strings.TrimSpace(s), 64); err != nil {
			return 0, badRequest("InvalidRequestBody", "The field '%s' must be an integer.", name)
		}
	}
	if math.IsNaN(f) || f < 0 {
		return 0, badRequest("InvalidRequestBody", "The field '%s' must not be negative.", name)
	}
	if f > math.MaxInt32 {
		f = math.MaxInt32
	}
	return int64(f), nil
}

// boolean reads a bool, or a string holding one.
func boolean(fields map[string]json.RawMessage, name string) (bool, error) {
	raw, ok := fields[name]
	if !ok || isNull(raw) {
		return false, nil
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if v, err := strconv.ParseBool(strings.TrimSpace(s)); err == nil {
			return v, nil
		}
	}
	return false, badRequest("InvalidRequestBody", "The field '%s' must be true or false.", name)
}

// decodeBase64 accepts standard and URL alphabets, padded or not.
func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, fmt.Errorf("invalid base64")
}

// clip bounds user input echoed in messages.
func clip(s string) string {
	if r := []rune(s); len(r) > 64 {
		return string(r[:64]) + "…"
	}
	return s
}
