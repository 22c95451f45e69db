package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	jmespath "github.com/jmespath-community/go-jmespath"
	"github.com/jmespath-community/go-jmespath/pkg/parsing"
	"go.yaml.in/yaml/v3"
)

// query is a compiled --query expression and the key order of the
// multiselect hash it ends with, if any: az keeps that order in tsv and
// table output.
type query struct {
	expr jmespath.JMESPath
	keys []string
}

func compileQuery(q string) (*query, error) {
	expr, err := jmespath.Compile(q)
	if err != nil {
		return nil, err
	}
	ast, err := parsing.NewParser().Parse(q)
	if err != nil {
		return nil, err
	}
	return &query{expr: expr, keys: hashKeys(ast)}, nil
}

// hashKeys returns the keys of the multiselect hash that produces the
// result: the node itself, or the right-hand side of a projection, pipe or
// subexpression.
func hashKeys(n parsing.ASTNode) []string {
	switch n.NodeType {
	case parsing.ASTMultiSelectHash:
		keys := make([]string, 0, len(n.Children))
		for _, c := range n.Children {
			if k, ok := c.Value.(string); ok {
				keys = append(keys, k)
			}
		}
		return keys
	case parsing.ASTProjection, parsing.ASTValueProjection, parsing.ASTFilterProjection, parsing.ASTPipe, parsing.ASTSubexpression:
		if len(n.Children) > 0 {
			return hashKeys(n.Children[len(n.Children)-1])
		}
	}
	return nil
}

// ordered is an object whose keys print in a given order (tsv, table).
type ordered struct {
	keys []string
	m    map[string]any
}

// normalize turns any result into plain JSON values: map[string]any,
// []any, string, float64, bool, nil.
func normalize(v any) (any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode result: %w", err)
	}
	var out any
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("encode result: %w", err)
	}
	return out, nil
}

var groupInID = regexp.MustCompile(`(?i)/resourcegroups/([^/]+)`)

// addResourceGroup adds "resourceGroup", parsed from "id", to every object
// that has an id and no resourceGroup, as azure-cli's result transform does.
func addResourceGroup(v any) {
	switch x := v.(type) {
	case map[string]any:
		if id, ok := x["id"].(string); ok {
			if _, has := x["resourceGroup"]; !has {
				if m := groupInID.FindStringSubmatch(id); m != nil {
					x["resourceGroup"] = m[1]
				}
			}
		}
		for _, c := range x {
			addResourceGroup(c)
		}
	case []any:
		for _, c := range x {
			addResourceGroup(c)
		}
	}
}

// writeOutput transforms, queries and formats a command's result.
// table, if set, is the command's table transformer (used for -o table
// without --query, as az).
func writeOutput(w io.Writer, format string, q *query, res any, table func(any) any) error {
	v, err := normalize(res)
	if err != nil {
		return err
	}
	addResourceGroup(v)
	if q != nil {
		if v, err = q.expr.Search(v); err != nil {
			return &cliError{msg: fmt.Sprintf("argument --query: %v", err), code: 2}
		}
		// An expression reference (&a) evaluates to a function, not JSON.
		if v, err = normalize(v); err != nil {
			return &cliError{msg: "argument --query: the query's result is not a JSON value", code: 2}
		}
	}
	var out []byte
	switch format {
	case "none":
		return nil
	case "json", "jsonc":
		out, err = formatJSON(v)
	case "yaml", "yamlc":
		out, err = formatYAML(v)
	case "tsv":
		out = formatTSV(withOrder(v, q))
	case "table":
		if table != nil && q == nil {
			out, err = formatTable(table(v), false)
			break
		}
		out, err = formatTable(withOrder(v, q), q == nil)
	}
	if err != nil {
		return err
	}
	_, err = w.Write(out)
	return err
}

func formatJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("format json: %w", err)
	}
	return b.Bytes(), nil
}

func formatYAML(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	enc.CompactSeqIndent()
	if err := enc.Encode(yamlValue(v)); err != nil {
		return nil, fmt.Errorf("format yaml: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("format yaml: %w", err)
	}
	return b.Bytes(), nil
}

// yamlValue turns integral floats into ints so that YAML prints 10, not 10.0.
func yamlValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, c := range x {
			m[k] = yamlValue(c)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, c := range x {
			l[i] = yamlValue(c)
		}
		return l
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return int64(x)
		}
	}
	return v
}

// withOrder applies the query's key order to objects that have exactly
// those keys.
func withOrder(v any, q *query) any {
	if q == nil || len(q.keys) == 0 {
		return v
	}
	switch x := v.(type) {
	case map[string]any:
		if len(x) == len(q.keys) {
			for _, k := range q.keys {
				if _, ok := x[k]; !ok {
					return v
				}
			}
			return ordered{keys: q.keys, m: x}
		}
	case []any:
		l := make([]any, len(x))
		for i, c := range x {
			l[i] = withOrder(c, q)
		}
		return l
	}
	return v
}

// keysOf returns an object's keys: in order for an ordered object, sorted
// otherwise.
func keysOf(v any) ([]string, map[string]any, bool) {
	switch x := v.(type) {
	case ordered:
		return x.keys, x.m, true
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return keys, x, true
	}
	return nil, nil, false
}

// scalar prints a value as Python's str() does, with lower-case booleans
// and nothing for null.
func scalar(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return strconv.FormatInt(int64(x), 10)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// formatTSV follows knack's _TsvOutput: a row per list item; an object
// prints its values (nested object → empty, nested list → its length).
func formatTSV(v any) []byte {
	items, ok := v.([]any)
	if !ok {
		items = []any{v}
	}
	var b bytes.Buffer
	cell := func(c any) string {
		switch x := c.(type) {
		case []any:
			return strconv.Itoa(len(x))
		case map[string]any, ordered:
			return ""
		}
		return scalar(c)
	}
	for _, it := range items {
		if keys, m, ok := keysOf(it); ok {
			for i, k := range keys {
				if i > 0 {
					b.WriteByte('\t')
				}
				b.WriteString(cell(m[k]))
			}
		} else if l, ok := it.([]any); ok {
			for i, c := range l {
				if i > 0 {
					b.WriteByte('\t')
				}
				b.WriteString(cell(c))
			}
		} else {
			b.WriteString(cell(it))
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

var errNoTable = &cliError{msg: "Table output unavailable. Use the --query option to specify an appropriate query. Use --debug for more info.", code: 1}

// tableSkip are the keys knack's table output leaves out.
var tableSkip = map[string]bool{"id": true, "type": true, "etag": true}

// formatTable follows knack's _TableOutput and tabulate's "simple" format:
// the non-null scalar top-level values of each object, id/type/etag
// skipped, keys sorted unless a query ordered them, headers capitalised.
func formatTable(v any, sortKeys bool) ([]byte, error) {
	items, isList := v.([]any)
	if !isList {
		items = []any{v}
	}
	var headers []string
	seen := map[string]bool{}
	rows := make([]map[string]string, 0, len(items))
	for _, it := range items {
		row := map[string]string{}
		add := func(h, val string) {
			if !seen[h] {
				seen[h] = true
				headers = append(headers, h)
			}
			row[h] = val
		}
		if keys, m, ok := keysOf(it); ok {
			if !sortKeys {
				if o, ok := it.(ordered); ok {
					keys = o.keys
				}
			}
			for _, k := range keys {
				c := m[k]
				if tableSkip[k] || c == nil {
					continue
				}
				switch c.(type) {
				case []any, map[string]any, ordered:
					continue
				}
				add(capitalize(k), tableCell(c))
			}
		} else if l, ok := it.([]any); ok {
			for i, c := range l {
				add(fmt.Sprintf("Column%d", i+1), tableCell(c))
			}
		} else {
			add("Result", tableCell(it))
		}
		rows = append(rows, row)
	}
	if len(items) == 0 {
		return []byte("\n"), nil
	}
	if len(headers) == 0 {
		return nil, errNoTable
	}
	widths := make([]int, len(headers))
	for i, h := range headers {
		widths[i] = utf8.RuneCountInString(h)
		for _, r := range rows {
			widths[i] = max(widths[i], utf8.RuneCountInString(r[h]))
		}
	}
	var b bytes.Buffer
	line := func(cells func(i int) string) {
		for i := range headers {
			if i > 0 {
				b.WriteString("  ")
			}
			c := cells(i)
			b.WriteString(c)
			b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)))
		}
		b.WriteByte('\n')
	}
	line(func(i int) string { return headers[i] })
	line(func(i int) string { return strings.Repeat("-", widths[i]) })
	for _, r := range rows {
		line(func(i int) string { return r[headers[i]] })
	}
	return b.Bytes(), nil
}

// tableCell prints booleans as Python does in tabulate (True/False).
func tableCell(v any) string {
	if b, ok := v.(bool); ok {
		if b {
			return "True"
		}
		return "False"
	}
	return scalar(v)
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// tableOf returns an az table transformer: one row per item, the columns
// in order, each read by a dotted path.
func tableOf(cols ...[2]string) func(any) any {
	keys := make([]string, len(cols))
	for i, c := range cols {
		keys[i] = c[0]
	}
	return func(v any) any {
		l, ok := v.([]any)
		if !ok {
			l = []any{v}
		}
		rows := []any{}
		for _, it := range l {
			m := map[string]any{}
			for _, c := range cols {
				m[c[0]] = dig(it, c[1])
			}
			rows = append(rows, ordered{keys: keys, m: m})
		}
		return rows
	}
}
