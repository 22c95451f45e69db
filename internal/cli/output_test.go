package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/output")

// TestOutputGolden formats testdata/output/pools.json (a pool list as the
// server sends it) in each format, with and without queries, and compares
// with the golden files. Run with -update to rewrite them.
func TestOutputGolden(t *testing.T) {
	data, err := os.ReadFile("testdata/output/pools.json")
	if err != nil {
		t.Fatal(err)
	}
	var pools any
	if err := json.Unmarshal(data, &pools); err != nil {
		t.Fatal(err)
	}
	first := pools.([]any)[0]
	tests := []struct {
		name   string
		input  any
		format string
		query  string
	}{
		{"list.json", pools, "json", ""},
		{"list.table", pools, "table", ""},
		{"list.tsv", pools, "tsv", ""},
		{"list.yaml", pools, "yaml", ""},
		{"show.table", first, "table", ""},
		{"show.tsv", first, "tsv", ""},
		{"show.yaml", first, "yaml", ""},
		{"query-endpoint.tsv", first, "tsv", "properties.poolManagementEndpoint"},
		{"query-endpoint.json", first, "json", "properties.poolManagementEndpoint"},
		{"query-hash.json", first, "json", "{name:name, location:location, provisioningState:properties.provisioningState}"},
		{"query-hash.tsv", first, "tsv", "{name:name, location:location, provisioningState:properties.provisioningState}"},
		{"query-hash.table", pools, "table", "[].{name:name, location:location, state:properties.provisioningState, max:properties.scaleConfiguration.maxConcurrentSessions}"},
		{"query-filter.json", pools, "json", "[?properties.containerType=='CustomContainer'].name"},
		{"query-filter.tsv", pools, "tsv", "[?properties.scaleConfiguration.maxConcurrentSessions > `10`].[name, location]"},
		{"query-list.table", pools, "table", "[].[name, properties.nodeCount]"},
		{"query-scalar.table", first, "table", "name"},
		{"none", pools, "none", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var q *query
			if tt.query != "" {
				var err error
				if q, err = compileQuery(tt.query); err != nil {
					t.Fatalf("compileQuery(%q): %v", tt.query, err)
				}
			}
			var b bytes.Buffer
			if err := writeOutput(&b, tt.format, q, tt.input, nil); err != nil {
				t.Fatalf("writeOutput(%s, %q): %v", tt.format, tt.query, err)
			}
			golden := filepath.Join("testdata", "output", tt.name+".golden")
			if *update {
				if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got := b.String(); got != string(want) {
				t.Errorf("writeOutput(%s, %q) =\n%s\nwant\n%s", tt.format, tt.query, got, want)
			}
		})
	}
}

func TestOutputErrors(t *testing.T) {
	var b bytes.Buffer
	err := writeOutput(&b, "table", nil, map[string]any{"properties": map[string]any{"a": 1}}, nil)
	if err == nil || !strings.Contains(err.Error(), "Table output unavailable") {
		t.Errorf("table of an object with no scalars: err = %v", err)
	}
	if _, err := compileQuery("[?"); err == nil {
		t.Error("compileQuery([?) succeeded")
	}
	// resourceGroup is added from the id, and an existing one is kept.
	b.Reset()
	in := []any{
		map[string]any{"id": "/subscriptions/s/resourceGroups/RG1/providers/X/y/z"},
		map[string]any{"id": "/subscriptions/s/resourcegroups/rg2", "resourceGroup": "kept"},
	}
	if err := writeOutput(&b, "tsv", mustQuery(t, "[].resourceGroup"), in, nil); err != nil {
		t.Fatal(err)
	}
	if b.String() != "RG1\nkept\n" {
		t.Errorf("resourceGroup injection: %q", b.String())
	}
}

func mustQuery(t *testing.T, s string) *query {
	t.Helper()
	q, err := compileQuery(s)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// FuzzWriteOutput formats arbitrary JSON with arbitrary queries in every
// format: errors are fine, panics are not.
func FuzzWriteOutput(f *testing.F) {
	f.Add(`[{"id":"/subscriptions/s/resourceGroups/g/x","a":1,"b":{"c":[1,2]}}]`, "[].{a:a, c:b.c}")
	f.Add(`{"x":null,"y":true,"z":"s"}`, "")
	f.Add(`"scalar"`, "@")
	f.Add(`[[1,2],[3]]`, "[]")
	f.Fuzz(func(t *testing.T, data, q string) {
		var v any
		if json.Unmarshal([]byte(data), &v) != nil {
			return
		}
		var cq *query
		if q != "" {
			var err error
			if cq, err = compileQuery(q); err != nil {
				return
			}
		}
		for _, format := range outputFormats {
			var b bytes.Buffer
			_ = writeOutput(&b, format, cq, v, nil)
		}
	})
}
