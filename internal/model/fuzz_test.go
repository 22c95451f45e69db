package model

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzDecodeSessionPool runs a body through everything a PUT and a PATCH do:
// decode, normalise, validate, render at every version, read the rendering
// back, and patch with a second input. Nothing may panic, and:
//   - decoding fails only with an InvalidRequestContent FieldError;
//   - Normalize is idempotent, and Validate fails only with Errors;
//   - no rendering shows a secret value, and every rendering decodes;
//   - a valid pool survives GET+PUT at every version (KeepUnversioned);
//   - an empty patch changes nothing, and Patch leaves the stored pool alone.
//
// Each execution is a few milliseconds, so Go's minimisation of new inputs
// (which pauses the exec counter) can take most of a short run; pass
// -fuzzminimizetime=5s for long runs.
func FuzzDecodeSessionPool(f *testing.F) {
	full, err := os.ReadFile(filepath.Join("testdata", "full_pool.json"))
	if err != nil {
		f.Fatal(err)
	}
	bodies := []string{specTimedCustom, specOnContainerExit, specMcpShell, specCLICreate, specCLICustom, specShellTutorial, specLegacy, validCustomBody, string(full), `{}`, `{"properties":null}`}
	patches := []string{
		specPatch, `{}`, `{"tags":{"a":"b"},"location":"East US"}`,
		`{"properties":{"dynamicPoolConfiguration":{"lifecycleConfiguration":{"lifecycleType":"OnContainerExit"}}}}`,
		`{"properties":{"dynamicPoolConfiguration":{"executionType":"Timed","cooldownPeriodInSeconds":"900"}}}`,
		`{"identity":{"type":"SystemAssigned, UserAssigned","userAssignedIdentities":{"` + uami + `":{}}}}`,
		`{"properties":{"containerType":"pythonlts","customContainerTemplate":{"registryCredentials":{"registryServer":"r.io"}}}}`,
		`{"properties":{"secrets":null,"scaleConfiguration":{"maxConcurrentSessions":null}}}`,
	}
	for i, b := range bodies {
		for j, p := range patches {
			if (i+j)%3 == 0 {
				f.Add([]byte(b), []byte(p))
			}
		}
	}
	f.Fuzz(func(t *testing.T, body, patch []byte) {
		p, err := DecodeSessionPool(body)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Code != CodeInvalidRequestContent {
				t.Fatalf("DecodeSessionPool error = %T %v, want an InvalidRequestContent FieldError", err, err)
			}
			return
		}
		// Before Normalize: no panics.
		_ = p.Clone().Validate()
		for _, v := range SessionPoolVersions {
			_ = p.ForVersion(v)
		}
		q := p.Clone()
		q.KeepUnversioned(p, V20240202Preview)
		q.Normalize()
		_ = q.Validate()

		p.Normalize()
		once := mustJSON(t, p)
		p.Normalize()
		if twice := mustJSON(t, p); twice != once {
			t.Fatalf("Normalize is not idempotent: %q", jsonDiff(once, twice))
		}
		verr := p.Validate()
		if verr != nil {
			var es Errors
			if !errors.As(verr, &es) || len(es) == 0 {
				t.Fatalf("Validate() = %T %v, want Errors", verr, verr)
			}
			for _, fe := range es {
				if fe.Code != CodeInvalidParameter || fe.Target == "" {
					t.Fatalf("Validate() error %+v, want code InvalidParameter and a target", fe)
				}
			}
		}

		for _, v := range SessionPoolVersions {
			r := p.ForVersion(v)
			if r.Properties != nil {
				for _, s := range r.Properties.Secrets {
					if s.Value != "" {
						t.Fatalf("ForVersion(%s) shows secret %q's value", v, s.Name)
					}
				}
			}
			rendered := mustJSON(t, r)
			q, err := DecodeSessionPool([]byte(rendered))
			if err != nil {
				t.Fatalf("DecodeSessionPool(ForVersion(%s)) = %v; the rendering must be valid input", v, err)
			}
			q.KeepUnversioned(p, v)
			q.Normalize()
			qerr := q.Validate()
			if verr != nil {
				continue
			}
			if qerr != nil {
				t.Fatalf("a valid pool read at %s and PUT back is invalid: %v\nbody: %s", v, qerr, rendered)
			}
			q.Properties.TemplateUpdateStatus = p.Properties.TemplateUpdateStatus // read-only, the server's
			for i := range q.Properties.Secrets {
				if i < len(p.Properties.Secrets) {
					q.Properties.Secrets[i].Value = p.Properties.Secrets[i].Value
				}
			}
			if got, want := mustJSON(t, q), mustJSON(t, p); got != want {
				t.Fatalf("GET+PUT at %s changed the pool: %q\nbody: %s", v, jsonDiff(got, want), rendered)
			}
		}

		stored := mustJSON(t, p)
		same, err := p.Patch([]byte(`{}`))
		if err != nil {
			t.Fatalf("Patch({}) = %v", err)
		}
		if got := mustJSON(t, same); got != stored {
			t.Fatalf("Patch({}) changed the pool: %q", jsonDiff(got, stored))
		}

		out, err := p.Patch(patch)
		if after := mustJSON(t, p); after != stored {
			t.Fatalf("Patch changed the stored pool: %q", jsonDiff(after, stored))
		}
		if err != nil {
			for _, fe := range fieldErrors(err) {
				if fe.Code != CodeInvalidParameter && fe.Code != CodeInvalidRequestContent {
					t.Fatalf("Patch error %+v, want a model error code", fe)
				}
			}
			return
		}
		_ = out.Validate()
		for _, v := range SessionPoolVersions {
			_ = out.ForVersion(v)
		}
		again := mustJSON(t, out)
		out.Normalize()
		if got := mustJSON(t, out); got != again {
			t.Fatalf("Patch returned a pool Normalize changes: %q", jsonDiff(got, again))
		}
	})
}

// FuzzParseResourceID: ParseResourceID never panics, its errors wrap
// ErrInvalidResourceID, and String reparses to an equal id.
func FuzzParseResourceID(f *testing.F) {
	for _, s := range []string{
		"/subscriptions/s",
		"/subscriptions/s/resourceGroups/rg",
		"/subscriptions/s/resourceGroups/rg/providers/Microsoft.App/sessionPools/p",
		"/subscriptions/s/resourceGroups/rg/providers/Microsoft.App/sessionPools",
		"/subscriptions/s/providers/Microsoft.App/locations/eastus/operationResults/x",
		"/subscriptions/s/resourceGroups/rg/providers/Microsoft.App/sessionPools/p/providers/Microsoft.Authorization/roleAssignments/g",
		"//SUBSCRIPTIONS//s/resourcegroups/rg/PROVIDERS/ns/t/",
		"/subscriptions/resourceGroups/resourceGroups/providers/providers/providers",
		"", "/", "subscriptions", "/subscriptions/s/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseResourceID(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidResourceID) {
				t.Fatalf("ParseResourceID(%q) error %v does not wrap ErrInvalidResourceID", s, err)
			}
			return
		}
		_, _, _, _ = id.ResourceType(), id.Name(), id.IsCollection(), id.ResourceGroupID()
		str := id.String()
		again, err := ParseResourceID(str)
		if err != nil {
			t.Fatalf("ParseResourceID(%q).String() = %q does not parse: %v", s, str, err)
		}
		if !reflect.DeepEqual(again, id) {
			t.Fatalf("ParseResourceID(%q) = %+v, but its String %q parses to %+v", s, id, str, again)
		}
		if again.String() != str {
			t.Fatalf("String is not stable: %q then %q", str, again.String())
		}
		if strings.Contains(str, "//") || strings.HasSuffix(str, "/") {
			t.Fatalf("ParseResourceID(%q).String() = %q has an empty segment", s, str)
		}
	})
}
