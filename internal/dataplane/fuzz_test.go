package dataplane

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/tidepool-dev/tidepool/internal/arm"
)

func TestDecodeExecution(t *testing.T) {
	tests := []struct {
		name, body string
		check      func(*executionRequest) bool
	}{
		{"v1", `{"properties":{"codeInputType":"inline","executionType":"synchronous","code":"x"}}`,
			func(r *executionRequest) bool { return r.Code == "x" && r.ExecutionType == execSynchronous }},
		{"legacy", `{"properties":{"identifier":"id1","pythonCode":"y"}}`,
			func(r *executionRequest) bool { return r.Code == "y" && r.Identifier == "id1" }},
		{"v2 async", `{"CodeInputType":"Inline","ExecutionType":"ASYNCHRONOUS","Code":"z","TimeoutInSeconds":"30"}`,
			func(r *executionRequest) bool {
				return r.Code == "z" && r.ExecutionType == execAsynchronous && r.TimeoutSeconds == 30
			}},
		{"base64", `{"codeInputType":"InlineBase64","code":"cHJpbnQoMSk"}`,
			func(r *executionRequest) bool { return r.Code == "print(1)" }},
		{"shell string", `{"shellCommand":"ls"}`, func(r *executionRequest) bool { return r.HasShell && r.ShellCommand == "ls" }},
		{"shell array", `{"command":["/bin/bash","-c","ls"],"timeoutInSeconds":600}`,
			func(r *executionRequest) bool { return r.HasShell && len(r.Argv) == 3 && r.TimeoutSeconds == 600 }},
		{"exec", `{"execCommandAndArgs":["ls","-a"],"stdin":"in"}`,
			func(r *executionRequest) bool { return len(r.Argv) == 2 && r.Stdin == "in" }},
		{"unknown fields", `{"code":"1","networkStatus":"EgressDisabled","sanitizeInput":true,"extra":{"a":[1]}}`,
			func(r *executionRequest) bool { return r.Code == "1" }},
		{"properties win", `{"code":"top","properties":{"code":"inner"}}`,
			func(r *executionRequest) bool { return r.Code == "inner" }},
		{"keys in any case", `{"CODE":"x","TIMEOUTINSECONDS":5,"ExecutionType":"async"}`,
			func(r *executionRequest) bool {
				return r.Code == "x" && r.TimeoutSeconds == 5 && r.ExecutionType == execAsynchronous
			}},
		{"properties not an object", `{"properties":"p","code":"x"}`,
			func(r *executionRequest) bool { return r.Code == "x" }},
		{"properties an array, keys after it", `{"properties":[{"code":"no"}],"code":"x","timeoutInSeconds":7}`,
			func(r *executionRequest) bool { return r.Code == "x" && r.TimeoutSeconds == 7 }},
		{"properties keep the top-level keys they lack", `{"timeoutInSeconds":9,"properties":{"code":"x"}}`,
			func(r *executionRequest) bool { return r.Code == "x" && r.TimeoutSeconds == 9 }},
		{"escapes", `{"code":"print(\"\u00e9\")\n"}`,
			func(r *executionRequest) bool { return r.Code == "print(\"é\")\n" }},
		{"jupyter alias", `{"code":"1","returnJupyterFormat":true,"outputStreamsMaxLength":10}`,
			func(r *executionRequest) bool { return r.JupyterFormat && r.OutputStreamsMaxLength == 10 }},
	}
	for _, tt := range tests {
		r, err := decodeExecution([]byte(tt.body))
		if err != nil || !tt.check(r) {
			t.Errorf("%s: %+v, %v", tt.name, r, err)
		}
	}
	for _, bad := range []string{``, `null`, `[]`, `"x"`, `{"code":"x"`, `{"stdin":true}`, `{"code":1}`, `{"codeInputType":"Pdf","code":"x"}`, `{"timeoutInSeconds":-1,"code":"x"}`,
		`{"shellCommand":[]}`, `{"shellCommand":{"a":1}}`, `{"codeInputType":"InlineBase64","code":"!!"}`} {
		_, err := decodeExecution([]byte(bad))
		var ae *arm.Error
		if !errors.As(err, &ae) || ae.Status != 400 {
			t.Errorf("decode %q: %v, want a 400", bad, err)
		}
	}
}

// FuzzDecodeExecution: the decoder never panics, answers a 400 or a
// request, and a request it accepts re-encodes.
func FuzzDecodeExecution(f *testing.F) {
	for _, s := range []string{
		`{"properties":{"codeInputType":"inline","executionType":"synchronous","code":"print(1)"}}`,
		`{"properties":{"identifier":"x","pythonCode":"1"}}`,
		`{"codeInputType":"InlineBase64","code":"cHJpbnQoMSk=","timeoutInSeconds":"10"}`,
		`{"shellCommand":["a","b"],"stdin":"x","command":"y"}`,
		`{"execCommandAndArgs":[],"outputStreamsMaxLength":1e99}`,
		`{"properties":null,"code":null,"useEmptyKernel":"true"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := decodeExecution(body)
		if err != nil {
			var ae *arm.Error
			if !errors.As(err, &ae) || ae.Status != 400 || ae.Message == "" {
				t.Fatalf("error %v is not a 400 with a message", err)
			}
			return
		}
		if r.ExecutionType != execSynchronous && r.ExecutionType != execAsynchronous {
			t.Fatalf("execution type %q", r.ExecutionType)
		}
		if r.TimeoutSeconds < 0 || r.OutputStreamsMaxLength < 0 {
			t.Fatalf("negative numbers %+v", r)
		}
		if r.HasShell == (r.ShellCommand == "" && len(r.Argv) == 0) && r.ShellCommand != "" {
			t.Fatalf("shell fields inconsistent %+v", r)
		}
		if _, err := json.Marshal(r); err != nil {
			t.Fatal(err)
		}
	})
}
