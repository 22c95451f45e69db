package dataplane

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
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

// executionFields is an execution body: its keys top-level, and again in
// "properties"; encoding/json matches them case-insensitively. Each is
// decoded on its own, tolerantly.
type executionFields struct {
	Properties *executionKeys
	executionKeys
}

type executionKeys struct {
	Identifier                         json.RawMessage
	CodeInputType                      json.RawMessage
	ExecutionType                      json.RawMessage
	Code                               json.RawMessage
	PythonCode                         json.RawMessage
	TimeoutInSeconds                   json.RawMessage
	OutputStreamsMaxLength             json.RawMessage
	UseEmptyKernel                     json.RawMessage
	ReturnJupyterFormatExecutionResult json.RawMessage
	ReturnJupyterFormat                json.RawMessage
	ShellCommand                       json.RawMessage
	Command                            json.RawMessage
	ExecCommandAndArgs                 json.RawMessage
	Stdin                              json.RawMessage
}

func (k *executionKeys) fields() []*json.RawMessage {
	return []*json.RawMessage{&k.Identifier, &k.CodeInputType, &k.ExecutionType, &k.Code, &k.PythonCode,
		&k.TimeoutInSeconds, &k.OutputStreamsMaxLength, &k.UseEmptyKernel, &k.ReturnJupyterFormatExecutionResult,
		&k.ReturnJupyterFormat, &k.ShellCommand, &k.Command, &k.ExecCommandAndArgs, &k.Stdin}
}

// decodeExecution decodes an execution body: a JSON object, optionally
// wrapped in "properties"; keys and enum values match case-insensitively;
// unknown keys are ignored. Errors are *arm.Error (400).
func decodeExecution(body []byte) (*executionRequest, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, badRequest("InvalidRequestBody", "The request body is empty; send a JSON object with 'code' (or 'shellCommand').")
	}
	var f executionFields
	if body[0] != '{' {
		return nil, badRequest("InvalidRequestBody", "The request body is not a JSON object.")
	}
	// One pass. Every key but properties is raw JSON, so a type error can
	// only be a properties that is not an object, which is ignored.
	var typeErr *json.UnmarshalTypeError
	if err := json.Unmarshal(body, &f); err != nil && !errors.As(err, &typeErr) {
		return nil, badRequest("InvalidRequestBody", "The request body is not a JSON object.")
	}
	if f.Properties != nil {
		// Over the top-level fields: properties win.
		top := f.executionKeys.fields()
		for i, v := range f.Properties.fields() {
			if *v != nil {
				*top[i] = *v
			}
		}
	}
	req := &executionRequest{}
	var err error
	str := func(raw json.RawMessage, name string) (string, bool, error) {
		if raw == nil || isNull(raw) {
			return "", false, nil
		}
		s, ok := jsonString(raw)
		if !ok {
			return "", false, badRequest("InvalidRequestBody", "The field '%s' must be a string.", name)
		}
		return s, true, nil
	}
	if req.Identifier, _, err = str(f.Identifier, "identifier"); err != nil {
		return nil, err
	}
	inputType, _, err := str(f.CodeInputType, "codeInputType")
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
	execType, _, err := str(f.ExecutionType, "executionType")
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
	code, ok, err := str(f.Code, "code")
	if err != nil {
		return nil, err
	}
	if !ok {
		if code, _, err = str(f.PythonCode, "pythonCode"); err != nil {
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
	if req.TimeoutSeconds, err = integer(f.TimeoutInSeconds, "timeoutInSeconds"); err != nil {
		return nil, err
	}
	if req.OutputStreamsMaxLength, err = integer(f.OutputStreamsMaxLength, "outputStreamsMaxLength"); err != nil {
		return nil, err
	}
	if req.UseEmptyKernel, err = boolean(f.UseEmptyKernel, "useEmptyKernel"); err != nil {
		return nil, err
	}
	if req.JupyterFormat, err = boolean(f.ReturnJupyterFormatExecutionResult, "returnJupyterFormatExecutionResult"); err != nil {
		return nil, err
	}
	if !req.JupyterFormat {
		if req.JupyterFormat, err = boolean(f.ReturnJupyterFormat, "returnJupyterFormat"); err != nil {
			return nil, err
		}
	}
	for _, field := range []struct {
		name string
		raw  json.RawMessage
	}{{"shellCommand", f.ShellCommand}, {"command", f.Command}, {"execCommandAndArgs", f.ExecCommandAndArgs}} {
		if field.raw == nil || isNull(field.raw) || req.HasShell {
			continue
		}
		var argv []string
		if s, ok := jsonString(field.raw); ok {
			req.ShellCommand, req.HasShell = s, true
		} else if json.Unmarshal(field.raw, &argv) == nil {
			if len(argv) == 0 {
				return nil, badRequest("InvalidShellCommand", "The field '%s' is an empty array; give the program and its arguments.", field.name)
			}
			req.Argv, req.HasShell = argv, true
		} else {
			return nil, badRequest("InvalidShellCommand", "The field '%s' must be a string or an array of strings.", field.name)
		}
	}
	if req.Stdin, _, err = str(f.Stdin, "stdin"); err != nil {
		return nil, err
	}
	return req, nil
}

// jsonString decodes raw, a JSON value, when it is a string; a string
// without escapes (the usual case) costs no decoder.
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if inner := raw[1 : len(raw)-1]; bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner), true
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err == nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// integer reads a number, or a string holding one.
func integer(raw json.RawMessage, name string) (int64, error) {
	if raw == nil || isNull(raw) {
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
func boolean(raw json.RawMessage, name string) (bool, error) {
	if raw == nil || isNull(raw) {
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
