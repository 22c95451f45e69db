package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
)

// Error codes the API layer sends for model errors.
const (
	CodeInvalidRequestContent = "InvalidRequestContent"
	CodeInvalidParameter      = "InvalidParameter"
)

// FieldError is one invalid part of a request. Target is the JSON path of
// the offending field, as ARM errors carry it.
type FieldError struct {
	Code    string
	Target  string
	Message string
}

func (e *FieldError) Error() string {
	if e.Target == "" {
		return e.Message
	}
	return e.Target + ": " + e.Message
}

// Errors is every problem Validate found, in field order.
type Errors []*FieldError

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// errs collects FieldErrors.
type errs struct{ list Errors }

func (c *errs) add(target, format string, args ...any) {
	c.list = append(c.list, &FieldError{Code: CodeInvalidParameter, Target: target, Message: fmt.Sprintf(format, args...)})
}

func (c *errs) err() error {
	if len(c.list) == 0 {
		return nil
	}
	return c.list
}

// decodeJSON decodes a request body into v and turns decoding failures into
// a FieldError that names the offending field and never echoes the input.
//
// The body must be a JSON object. Numbers may arrive as strings ("360"), as
// the az CLI sends --cooldown-period and --max-alive-period, and integers as
// integral floats (10.0); both are accepted where the field is a number.
func decodeJSON(data []byte, v any) error {
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] != '{' && json.Valid(data) {
		return &FieldError{Code: CodeInvalidRequestContent, Message: fmt.Sprintf("The request content was invalid and could not be deserialized: expected a JSON object, got %s.", jsonValueKind(t[0]))}
	}
	err := json.Unmarshal(data, v)
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) && typ.Field != "" {
		if fixed, ok := coerceNumbers(data, reflect.TypeOf(v)); ok {
			reflect.ValueOf(v).Elem().SetZero() // decode afresh, not over the first attempt
			err = json.Unmarshal(fixed, v)
		}
	}
	if err == nil {
		return nil
	}
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		return &FieldError{Code: CodeInvalidRequestContent, Message: fmt.Sprintf("The request content was invalid and could not be deserialized: malformed JSON at offset %d: %v.", syn.Offset, syn)}
	case errors.As(err, &typ):
		target := typ.Field
		if target == "" {
			return &FieldError{Code: CodeInvalidRequestContent, Message: fmt.Sprintf("The request content was invalid and could not be deserialized: expected a JSON object, got %s.", typ.Value)}
		}
		return &FieldError{Code: CodeInvalidRequestContent, Target: target, Message: fmt.Sprintf("The request content was invalid and could not be deserialized: %s must be %s, got %s.", target, jsonKind(typ.Type.Kind().String()), typ.Value)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &FieldError{Code: CodeInvalidRequestContent, Message: "The request content was invalid and could not be deserialized: unexpected end of JSON input."}
	}
	// Only time.Time brings its own UnmarshalJSON; its errors quote the input.
	return &FieldError{Code: CodeInvalidRequestContent, Message: "The request content was invalid and could not be deserialized: a date-time value is not in RFC 3339 format."}
}

// jsonValueKind names the JSON value that starts with c.
func jsonValueKind(c byte) string {
	switch c {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// coerceNumbers rewrites data, bound for a value of type t, so that strings
// holding a number become that number where t has a number, and integral
// floats become integers where t has an integer. It reports whether it
// changed anything.
func coerceNumbers(data []byte, t reflect.Type) ([]byte, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, false
	}
	doc, changed := coerceValue(doc, t)
	if !changed {
		return nil, false
	}
	fixed, err := json.Marshal(doc)
	if err != nil {
		return nil, false
	}
	return fixed, true
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

func coerceValue(v any, t reflect.Type) (any, bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return v, false
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		var s string
		switch n := v.(type) {
		case string:
			s = strings.TrimSpace(n)
		case json.Number:
			s = string(n)
		default:
			return v, false
		}
		var n json.Number
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			n = json.Number(strconv.FormatInt(i, 10))
		} else if f, err := strconv.ParseFloat(s, 64); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			n = json.Number(strconv.FormatInt(int64(f), 10))
		} else {
			return v, false
		}
		return n, v != any(n)
	case reflect.Float32, reflect.Float64:
		if s, ok := v.(string); ok {
			s = strings.TrimSpace(s)
			if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
				return json.Number(strconv.FormatFloat(f, 'g', -1, 64)), true
			}
		}
	case reflect.Slice, reflect.Array:
		a, ok := v.([]any)
		if !ok {
			return v, false
		}
		changed := false
		for i := range a {
			var c bool
			a[i], c = coerceValue(a[i], t.Elem())
			changed = changed || c
		}
		return a, changed
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return v, false
		}
		changed := false
		for k := range m {
			var c bool
			m[k], c = coerceValue(m[k], t.Elem())
			changed = changed || c
		}
		return m, changed
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return v, false
		}
		changed := false
		for k := range m {
			f, ok := jsonField(t, k)
			if !ok {
				continue
			}
			var c bool
			m[k], c = coerceValue(m[k], f.Type)
			changed = changed || c
		}
		return m, changed
	}
	return v, false
}

// jsonField finds the field of struct type t that encoding/json decodes the
// key into: the exact json name, else one equal ignoring case.
func jsonField(t reflect.Type, key string) (reflect.StructField, bool) {
	var fold reflect.StructField
	found := false
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if name == key {
			return f, true
		}
		if !found && strings.EqualFold(name, key) {
			fold, found = f, true
		}
	}
	return fold, found
}

// jsonKind names a Go kind the way a JSON user thinks of it.
func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "int32", "int64", "int", "float64":
		return "a number"
	case "bool":
		return "a boolean"
	case "slice":
		return "an array"
	case "map", "struct", "ptr":
		return "an object"
	}
	return k
}
