package template

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
)

type funcDef struct {
	min, max int // argument counts; max -1: any number
	fn       func(ev *evaluator, args []any) (any, error)
}

// functions are the template functions, by lower-case name. "if" is
// evaluated lazily by the evaluator itself.
var functions map[string]funcDef

// unimplemented are the ARM functions this package knows and refuses,
// with the reason.
var unimplemented = map[string]string{
	"reference":                 "it needs the runtime state of deployed resources.",
	"utcnow":                    "deployments here are deterministic; pass the time as a parameter.",
	"newguid":                   "deployments here are deterministic; pass the value as a parameter.",
	"environment":               "there is no Azure cloud environment.",
	"pickzones":                 "there are no availability zones.",
	"providers":                 "provider metadata is not exposed to templates.",
	"tenant":                    "tenant-scope functions are not supported.",
	"managementgroup":           "management groups are not supported.",
	"managementgroupresourceid": "management groups are not supported.",
	"extensionresourceid":       "extension resources are not supported.",
	"copyindex":                 "copy loops are not supported.",
	"deployer":                  "it is not supported.",
	"lambda":                    "lambda functions are not supported.",
	"filter":                    "lambda functions are not supported.",
	"map":                       "lambda functions are not supported.",
	"reduce":                    "lambda functions are not supported.",
	"sort":                      "lambda functions are not supported.",
	"tojson":                    "it is not supported.",
}

func init() {
	functions = map[string]funcDef{
		"parameters": {1, 1, func(ev *evaluator, a []any) (any, error) {
			name, err := str(a, 0, "parameter name")
			if err != nil {
				return nil, err
			}
			return ev.parameter(name)
		}},
		"variables": {1, 1, func(ev *evaluator, a []any) (any, error) {
			name, err := str(a, 0, "variable name")
			if err != nil {
				return nil, err
			}
			return ev.variable(name)
		}},
		"resourcegroup": {0, 0, func(ev *evaluator, _ []any) (any, error) {
			g := ev.env.ResourceGroup
			tags := map[string]any{}
			for k, v := range g.Tags {
				tags[k] = v
			}
			m := map[string]any{
				"id":         ev.env.Subscription.id() + "/resourceGroups/" + g.Name,
				"name":       g.Name,
				"type":       "Microsoft.Resources/resourceGroups",
				"location":   g.Location,
				"tags":       tags,
				"properties": map[string]any{"provisioningState": "Succeeded"},
			}
			if g.ManagedBy != "" {
				m["managedBy"] = g.ManagedBy
			}
			return m, nil
		}},
		"subscription": {0, 0, func(ev *evaluator, _ []any) (any, error) {
			s := ev.env.Subscription
			return map[string]any{"id": s.id(), "subscriptionId": s.SubscriptionID, "tenantId": s.TenantID, "displayName": s.DisplayName}, nil
		}},
		"deployment": {0, 0, func(ev *evaluator, _ []any) (any, error) {
			return map[string]any{"name": ev.env.DeploymentName, "properties": map[string]any{"mode": "Incremental"}}, nil
		}},
		"resourceid":             {2, -1, fnResourceID},
		"subscriptionresourceid": {2, -1, fnSubscriptionResourceID},
		"tenantresourceid": {2, -1, func(_ *evaluator, a []any) (any, error) {
			ss, err := strs(a, "argument")
			if err != nil {
				return nil, err
			}
			tail, err := typedPath(ss[0], ss[1:])
			if err != nil {
				return nil, err
			}
			return "/providers/" + tail, nil
		}},
		"uniquestring": {1, -1, func(_ *evaluator, a []any) (any, error) {
			ss, err := strs(a, "argument")
			if err != nil {
				return nil, err
			}
			return UniqueString(ss...), nil
		}},
		"guid": {1, -1, func(_ *evaluator, a []any) (any, error) {
			ss, err := strs(a, "argument")
			if err != nil {
				return nil, err
			}
			return uuid.NewSHA1(guidNamespace, []byte(strings.Join(ss, "-"))).String(), nil
		}},
		"concat": {0, -1, fnConcat},
		"format": {1, -1, func(_ *evaluator, a []any) (any, error) {
			f, err := str(a, 0, "format string")
			if err != nil {
				return nil, err
			}
			return format(f, a[1:])
		}},
		"string": {1, 1, func(_ *evaluator, a []any) (any, error) { return text(a[0]), nil }},
		"int": {1, 1, func(_ *evaluator, a []any) (any, error) {
			switch x := a[0].(type) {
			case int64:
				return x, nil
			case float64:
				return int64(x), nil
			case string:
				n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
				if err != nil {
					return nil, exprErrorf("'%s' is not an integer.", clip(x))
				}
				return n, nil
			}
			return nil, exprErrorf("the argument must be a string or an integer; it is %s.", typeName(a[0]))
		}},
		"bool": {1, 1, func(_ *evaluator, a []any) (any, error) {
			switch x := a[0].(type) {
			case bool:
				return x, nil
			case int64:
				return x != 0, nil
			case string:
				b, err := strconv.ParseBool(strings.TrimSpace(x))
				if err != nil {
					return nil, exprErrorf("'%s' is not 'true' or 'false'.", clip(x))
				}
				return b, nil
			}
			return nil, exprErrorf("the argument must be a string, an integer or a Boolean; it is %s.", typeName(a[0]))
		}},
		"json": {1, 1, func(_ *evaluator, a []any) (any, error) {
			s, err := str(a, 0, "argument")
			if err != nil {
				return nil, err
			}
			v, err := decodeJSON([]byte(s))
			if err != nil {
				return nil, exprErrorf("the argument is not valid JSON: %v.", err)
			}
			return v, nil
		}},
		"true":   {0, 0, func(*evaluator, []any) (any, error) { return true, nil }},
		"false":  {0, 0, func(*evaluator, []any) (any, error) { return false, nil }},
		"null":   {0, 0, func(*evaluator, []any) (any, error) { return nil, nil }},
		"equals": {2, 2, func(_ *evaluator, a []any) (any, error) { return deepEqual(a[0], a[1]), nil }},
		"not": {1, 1, func(_ *evaluator, a []any) (any, error) {
			b, err := boolean(a, 0)
			return !b, err
		}},
		"and": {2, -1, func(_ *evaluator, a []any) (any, error) {
			for i := range a {
				b, err := boolean(a, i)
				if err != nil || !b {
					return false, err
				}
			}
			return true, nil
		}},
		"or": {2, -1, func(_ *evaluator, a []any) (any, error) {
			for i := range a {
				b, err := boolean(a, i)
				if err != nil || b {
					return b, err
				}
			}
			return false, nil
		}},
		"coalesce": {1, -1, func(_ *evaluator, a []any) (any, error) {
			for _, v := range a {
				if v != nil {
					return v, nil
				}
			}
			return nil, nil
		}},
		"empty": {1, 1, func(_ *evaluator, a []any) (any, error) {
			if a[0] == nil {
				return true, nil
			}
			n, ok := length(a[0])
			if !ok {
				return nil, exprErrorf("the argument must be a string, an array or an object; it is %s.", typeName(a[0]))
			}
			return n == 0, nil
		}},
		"length": {1, 1, func(_ *evaluator, a []any) (any, error) {
			n, ok := length(a[0])
			if !ok {
				return nil, exprErrorf("the argument must be a string, an array or an object; it is %s.", typeName(a[0]))
			}
			return n, nil
		}},
		"contains": {2, 2, func(_ *evaluator, a []any) (any, error) {
			switch c := a[0].(type) {
			case string:
				return strings.Contains(c, text(a[1])), nil
			case []any:
				for _, e := range c {
					if deepEqual(e, a[1]) {
						return true, nil
					}
				}
				return false, nil
			case map[string]any:
				k, ok := a[1].(string)
				if !ok {
					return nil, exprErrorf("an object is searched for a property name (a string); the item is %s.", typeName(a[1]))
				}
				_, found := lookup(c, k)
				return found, nil
			}
			return nil, exprErrorf("the container must be a string, an array or an object; it is %s.", typeName(a[0]))
		}},
		"union":        {1, -1, fnUnion},
		"createobject": {0, -1, fnCreateObject},
		"createarray": {0, -1, func(_ *evaluator, a []any) (any, error) {
			return append([]any{}, a...), nil
		}},
		"array": {1, 1, func(_ *evaluator, a []any) (any, error) {
			if arr, ok := a[0].([]any); ok {
				return arr, nil
			}
			return []any{a[0]}, nil
		}},
		"first": {1, 1, func(_ *evaluator, a []any) (any, error) { return end(a[0], true) }},
		"last":  {1, 1, func(_ *evaluator, a []any) (any, error) { return end(a[0], false) }},
		"tolower": {1, 1, func(_ *evaluator, a []any) (any, error) {
			s, err := str(a, 0, "argument")
			return strings.ToLower(s), err
		}},
		"toupper": {1, 1, func(_ *evaluator, a []any) (any, error) {
			s, err := str(a, 0, "argument")
			return strings.ToUpper(s), err
		}},
		"trim": {1, 1, func(_ *evaluator, a []any) (any, error) {
			s, err := str(a, 0, "argument")
			return strings.TrimSpace(s), err
		}},
		"replace": {3, 3, func(_ *evaluator, a []any) (any, error) {
			ss, err := strs(a, "argument")
			if err != nil {
				return nil, err
			}
			if ss[1] == "" {
				return nil, exprErrorf("the string to replace must not be empty.")
			}
			if n := strings.Count(ss[0], ss[1]); n > 0 && len(ss[0])+n*(len(ss[2])-len(ss[1])) > maxValueSize {
				return nil, exprErrorf("the result would be larger than %d bytes.", maxValueSize)
			}
			return strings.ReplaceAll(ss[0], ss[1], ss[2]), nil
		}},
		"split": {2, 2, func(_ *evaluator, a []any) (any, error) {
			s, err := str(a, 0, "string")
			if err != nil {
				return nil, err
			}
			var delims []string
			switch d := a[1].(type) {
			case string:
				delims = []string{d}
			case []any:
				if delims, err = strs(d, "delimiter"); err != nil {
					return nil, err
				}
			default:
				return nil, exprErrorf("the delimiter must be a string or an array of strings; it is %s.", typeName(a[1]))
			}
			parts := []string{s}
			for _, d := range delims {
				if d == "" {
					continue
				}
				var next []string
				for _, p := range parts {
					next = append(next, strings.Split(p, d)...)
				}
				parts = next
			}
			out := make([]any, len(parts))
			for i, p := range parts {
				out[i] = p
			}
			return out, nil
		}},
		"substring": {2, 3, func(_ *evaluator, a []any) (any, error) {
			s, err := str(a, 0, "string")
			if err != nil {
				return nil, err
			}
			r := []rune(s)
			start, err := integer(a, 1)
			if err != nil {
				return nil, err
			}
			n := int64(len(r)) - start
			if len(a) == 3 {
				if n, err = integer(a, 2); err != nil {
					return nil, err
				}
			}
			if start < 0 || start > int64(len(r)) || n < 0 || start+n > int64(len(r)) {
				return nil, exprErrorf("the start index %d and length %d are out of range for a string of length %d.", start, n, len(r))
			}
			return string(r[start : start+n]), nil
		}},
		"startswith": {2, 2, func(_ *evaluator, a []any) (any, error) {
			ss, err := strs(a, "argument")
			if err != nil {
				return nil, err
			}
			return strings.HasPrefix(strings.ToLower(ss[0]), strings.ToLower(ss[1])), nil
		}},
		"endswith": {2, 2, func(_ *evaluator, a []any) (any, error) {
			ss, err := strs(a, "argument")
			if err != nil {
				return nil, err
			}
			return strings.HasSuffix(strings.ToLower(ss[0]), strings.ToLower(ss[1])), nil
		}},
		"indexof": {2, 2, func(_ *evaluator, a []any) (any, error) {
			ss, err := strs(a, "argument")
			if err != nil {
				return nil, err
			}
			i := strings.Index(strings.ToLower(ss[0]), strings.ToLower(ss[1]))
			if i < 0 {
				return int64(-1), nil
			}
			return int64(utf8.RuneCountInString(strings.ToLower(ss[0])[:i])), nil
		}},
		"padleft": {2, 3, func(_ *evaluator, a []any) (any, error) {
			s := text(a[0])
			n, err := integer(a, 1)
			if err != nil {
				return nil, err
			}
			if n > 16*1024 {
				return nil, exprErrorf("the total length %d is larger than 16384.", n)
			}
			pad := " "
			if len(a) == 3 {
				if pad, err = str(a, 2, "padding character"); err != nil {
					return nil, err
				}
				if utf8.RuneCountInString(pad) != 1 {
					return nil, exprErrorf("the padding must be one character.")
				}
			}
			if k := int(n) - utf8.RuneCountInString(s); k > 0 {
				s = strings.Repeat(pad, k) + s
			}
			return s, nil
		}},
		"base64": {1, 1, func(_ *evaluator, a []any) (any, error) {
			s, err := str(a, 0, "argument")
			return base64.StdEncoding.EncodeToString([]byte(s)), err
		}},
		"base64tostring": {1, 1, func(_ *evaluator, a []any) (any, error) {
			s, err := str(a, 0, "argument")
			if err != nil {
				return nil, err
			}
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return nil, exprErrorf("the argument is not base64: %v.", err)
			}
			return string(b), nil
		}},
		"add": {2, 2, arith(func(x, y int64) (int64, error) { return x + y, nil })},
		"sub": {2, 2, arith(func(x, y int64) (int64, error) { return x - y, nil })},
		"mul": {2, 2, arith(func(x, y int64) (int64, error) { return x * y, nil })},
		"div": {2, 2, arith(func(x, y int64) (int64, error) {
			if y == 0 {
				return 0, exprErrorf("division by zero.")
			}
			return x / y, nil
		})},
		"mod": {2, 2, arith(func(x, y int64) (int64, error) {
			if y == 0 {
				return 0, exprErrorf("division by zero.")
			}
			return x % y, nil
		})},
		"min":             {1, -1, extreme(func(x, y int64) bool { return x < y })},
		"max":             {1, -1, extreme(func(x, y int64) bool { return x > y })},
		"greater":         {2, 2, compare(func(c int) bool { return c > 0 })},
		"greaterorequals": {2, 2, compare(func(c int) bool { return c >= 0 })},
		"less":            {2, 2, compare(func(c int) bool { return c < 0 })},
		"lessorequals":    {2, 2, compare(func(c int) bool { return c <= 0 })},
	}
}

// guidNamespace is the UUID namespace of guid(): ARM's, as documented by
// third parties; values are deterministic but not verified against Azure.
var guidNamespace = uuid.MustParse("11fb06fb-712d-4ddd-98c7-e71bbd588830")

func str(a []any, i int, what string) (string, error) {
	s, ok := a[i].(string)
	if !ok {
		return "", exprErrorf("the %s (argument %d) must be a string; it is %s.", what, i+1, typeName(a[i]))
	}
	return s, nil
}

func strs(a []any, what string) ([]string, error) {
	out := make([]string, len(a))
	for i := range a {
		var err error
		if out[i], err = str(a, i, what); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func integer(a []any, i int) (int64, error) {
	n, ok := a[i].(int64)
	if !ok {
		return 0, exprErrorf("argument %d must be an integer; it is %s.", i+1, typeName(a[i]))
	}
	return n, nil
}

func boolean(a []any, i int) (bool, error) {
	b, ok := a[i].(bool)
	if !ok {
		return false, exprErrorf("argument %d must be a Boolean; it is %s.", i+1, typeName(a[i]))
	}
	return b, nil
}

func arith(op func(x, y int64) (int64, error)) func(*evaluator, []any) (any, error) {
	return func(_ *evaluator, a []any) (any, error) {
		x, err := integer(a, 0)
		if err != nil {
			return nil, err
		}
		y, err := integer(a, 1)
		if err != nil {
			return nil, err
		}
		return op(x, y)
	}
}

func extreme(better func(x, y int64) bool) func(*evaluator, []any) (any, error) {
	return func(_ *evaluator, a []any) (any, error) {
		if len(a) == 1 {
			arr, ok := a[0].([]any)
			if !ok {
				return nil, exprErrorf("a single argument must be an array of integers; it is %s.", typeName(a[0]))
			}
			if len(arr) == 0 {
				return nil, exprErrorf("the array is empty.")
			}
			a = arr
		}
		best, err := integer(a, 0)
		if err != nil {
			return nil, err
		}
		for i := 1; i < len(a); i++ {
			n, err := integer(a, i)
			if err != nil {
				return nil, err
			}
			if better(n, best) {
				best = n
			}
		}
		return best, nil
	}
}

func compare(ok func(int) bool) func(*evaluator, []any) (any, error) {
	return func(_ *evaluator, a []any) (any, error) {
		switch x := a[0].(type) {
		case int64:
			y, err := integer(a, 1)
			if err != nil {
				return nil, err
			}
			switch {
			case x < y:
				return ok(-1), nil
			case x > y:
				return ok(1), nil
			}
			return ok(0), nil
		case string:
			y, err := str(a, 1, "second argument")
			if err != nil {
				return nil, err
			}
			return ok(strings.Compare(x, y)), nil
		}
		return nil, exprErrorf("the arguments must be integers or strings; the first is %s.", typeName(a[0]))
	}
}

func end(v any, first bool) (any, error) {
	switch x := v.(type) {
	case string:
		r := []rune(x)
		if len(r) == 0 {
			return "", nil
		}
		if first {
			return string(r[0]), nil
		}
		return string(r[len(r)-1]), nil
	case []any:
		if len(x) == 0 {
			return nil, nil
		}
		if first {
			return x[0], nil
		}
		return x[len(x)-1], nil
	}
	return nil, exprErrorf("the argument must be a string or an array; it is %s.", typeName(v))
}

// fnConcat joins arrays into an array, or anything else into a string.
func fnConcat(_ *evaluator, a []any) (any, error) {
	if len(a) > 0 {
		if _, ok := a[0].([]any); ok {
			var out []any
			for i, v := range a {
				arr, ok := v.([]any)
				if !ok && v != nil {
					return nil, exprErrorf("argument %d is %s, but the first is an array: arrays concatenate only with arrays.", i+1, typeName(v))
				}
				out = append(out, arr...)
			}
			if out == nil {
				out = []any{}
			}
			return out, nil
		}
	}
	var b strings.Builder
	for i, v := range a {
		switch v.(type) {
		case []any, map[string]any:
			return nil, exprErrorf("argument %d is %s; concat joins strings (and numbers and Booleans) or arrays.", i+1, typeName(v))
		}
		b.WriteString(text(v))
		if b.Len() > maxValueSize {
			return nil, exprErrorf("the result is larger than %d bytes.", maxValueSize)
		}
	}
	return b.String(), nil
}

func fnUnion(_ *evaluator, a []any) (any, error) {
	switch a[0].(type) {
	case []any:
		var out []any
		for i, v := range a {
			arr, ok := v.([]any)
			if !ok {
				return nil, exprErrorf("argument %d is %s; union takes all arrays or all objects.", i+1, typeName(v))
			}
			for _, e := range arr {
				dup := false
				for _, o := range out {
					if deepEqual(o, e) {
						dup = true
						break
					}
				}
				if !dup {
					out = append(out, e)
				}
			}
		}
		if out == nil {
			out = []any{}
		}
		return out, nil
	case map[string]any:
		out := map[string]any{}
		for i, v := range a {
			m, ok := v.(map[string]any)
			if !ok {
				return nil, exprErrorf("argument %d is %s; union takes all arrays or all objects.", i+1, typeName(v))
			}
			mergeInto(out, m)
		}
		return out, nil
	}
	return nil, exprErrorf("union takes arrays or objects; the first argument is %s.", typeName(a[0]))
}

// mergeInto merges src into dst, objects recursively, later values winning.
func mergeInto(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				merged := deepCopy(dm).(map[string]any)
				mergeInto(merged, sm)
				dst[k] = merged
				continue
			}
		}
		dst[k] = deepCopy(v)
	}
}

func fnCreateObject(_ *evaluator, a []any) (any, error) {
	if len(a)%2 != 0 {
		return nil, exprErrorf("the arguments must be pairs of a name and a value; there are %d.", len(a))
	}
	out := map[string]any{}
	for i := 0; i < len(a); i += 2 {
		k, err := str(a, i, "property name")
		if err != nil {
			return nil, err
		}
		out[k] = a[i+1]
	}
	return out, nil
}

// typedPath builds "{ns}/{type1}/{name1}/{type2}/{name2}..." from a
// resource type and its names, checking that they pair up.
func typedPath(resourceType string, names []string) (string, error) {
	segs := strings.Split(strings.Trim(resourceType, "/"), "/")
	if len(segs) < 2 || segs[0] == "" || segs[1] == "" {
		return "", exprErrorf("'%s' is not a resource type: it must be {namespace}/{type}.", clip(resourceType))
	}
	var expanded []string
	for _, n := range names {
		expanded = append(expanded, strings.Split(n, "/")...)
	}
	if len(expanded) != len(segs)-1 {
		return "", exprErrorf("the resource type '%s' needs %d name segments; %d were given.", clip(resourceType), len(segs)-1, len(expanded))
	}
	var b strings.Builder
	b.WriteString(segs[0])
	for i, t := range segs[1:] {
		if expanded[i] == "" {
			return "", exprErrorf("a resource name segment of '%s' is empty.", clip(resourceType))
		}
		b.WriteString("/" + t + "/" + expanded[i])
	}
	return b.String(), nil
}

// childID is the id of a resource of resourceType named names in the
// deployment's resource group.
func (ev *evaluator) childID(resourceType string, names []string) (string, error) {
	tail, err := typedPath(resourceType, names)
	if err != nil {
		return "", err
	}
	return ev.env.Subscription.id() + "/resourceGroups/" + ev.env.ResourceGroup.Name + "/providers/" + tail, nil
}

// fnResourceID is resourceId([subscriptionId], [resourceGroupName],
// resourceType, resourceName1, ...): the arguments before the first one
// containing a '/' are the subscription and group.
func fnResourceID(ev *evaluator, a []any) (any, error) {
	ss, err := strs(a, "argument")
	if err != nil {
		return nil, err
	}
	t := -1
	for i, s := range ss {
		if strings.Contains(s, "/") {
			t = i
			break
		}
	}
	if t < 0 || t > 2 {
		return nil, exprErrorf("no resource type ({namespace}/{type}) among the first three arguments.")
	}
	sub, group := ev.env.Subscription.SubscriptionID, ev.env.ResourceGroup.Name
	switch t {
	case 1:
		group = ss[0]
	case 2:
		sub, group = ss[0], ss[1]
	}
	tail, err := typedPath(ss[t], ss[t+1:])
	if err != nil {
		return nil, err
	}
	return "/subscriptions/" + sub + "/resourceGroups/" + group + "/providers/" + tail, nil
}

func fnSubscriptionResourceID(ev *evaluator, a []any) (any, error) {
	ss, err := strs(a, "argument")
	if err != nil {
		return nil, err
	}
	sub := ev.env.Subscription.SubscriptionID
	if !strings.Contains(ss[0], "/") {
		sub, ss = ss[0], ss[1:]
	}
	if len(ss) < 2 {
		return nil, exprErrorf("a resource type and at least one name are required.")
	}
	tail, err := typedPath(ss[0], ss[1:])
	if err != nil {
		return nil, err
	}
	return "/subscriptions/" + sub + "/providers/" + tail, nil
}

// format implements .NET composite formatting: "{index[,alignment][:format]}",
// with "{{" and "}}" for literal braces. Integers take the D, N, X
// format strings; other format strings are refused.
func format(f string, args []any) (string, error) {
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		c := f[i]
		switch {
		case c == '{' && i+1 < len(f) && f[i+1] == '{':
			b.WriteByte('{')
			i++
		case c == '}' && i+1 < len(f) && f[i+1] == '}':
			b.WriteByte('}')
			i++
		case c == '}':
			return "", exprErrorf("the format string has an unmatched '}' at position %d; write '}}' for a literal brace.", i)
		case c == '{':
			j := strings.IndexByte(f[i:], '}')
			if j < 0 {
				return "", exprErrorf("the format string has an unmatched '{' at position %d; write '{{' for a literal brace.", i)
			}
			item := f[i+1 : i+j]
			i += j
			s, err := formatItem(item, args)
			if err != nil {
				return "", err
			}
			b.WriteString(s)
			if b.Len() > maxValueSize {
				return "", exprErrorf("the result is larger than %d bytes.", maxValueSize)
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func formatItem(item string, args []any) (string, error) {
	spec := ""
	if k := strings.IndexByte(item, ':'); k >= 0 {
		item, spec = item[:k], item[k+1:]
	}
	align := 0
	if k := strings.IndexByte(item, ','); k >= 0 {
		a, err := strconv.Atoi(strings.TrimSpace(item[k+1:]))
		if err != nil || a > 1024 || a < -1024 {
			return "", exprErrorf("the alignment in '{%s}' must be an integer between -1024 and 1024.", clip(item))
		}
		item, align = item[:k], a
	}
	n, err := strconv.Atoi(strings.TrimSpace(item))
	if err != nil || n < 0 {
		return "", exprErrorf("'{%s}' is not a format item: it must start with an argument index.", clip(item))
	}
	if n >= len(args) {
		return "", exprErrorf("the format item {%d} refers to argument %d, but only %d were given after the format string.", n, n, len(args))
	}
	s := text(args[n])
	if spec != "" {
		v, ok := args[n].(int64)
		if !ok {
			return "", exprErrorf("the format string '%s' applies to integers here; argument %d is %s.", clip(spec), n, typeName(args[n]))
		}
		if s, err = formatInt(v, spec); err != nil {
			return "", err
		}
	}
	pad := align
	if pad < 0 {
		pad = -pad
	}
	if k := pad - utf8.RuneCountInString(s); k > 0 {
		if align > 0 {
			s = strings.Repeat(" ", k) + s
		} else {
			s += strings.Repeat(" ", k)
		}
	}
	return s, nil
}

func formatInt(v int64, spec string) (string, error) {
	width := 0
	if len(spec) > 1 {
		w, err := strconv.Atoi(spec[1:])
		if err != nil || w < 0 || w > 99 {
			return "", exprErrorf("the format string '%s' is not valid.", clip(spec))
		}
		width = w
	}
	switch spec[0] {
	case 'D', 'd':
		s := strconv.FormatInt(v, 10)
		neg := strings.HasPrefix(s, "-")
		s = strings.TrimPrefix(s, "-")
		if k := width - len(s); k > 0 {
			s = strings.Repeat("0", k) + s
		}
		if neg {
			s = "-" + s
		}
		return s, nil
	case 'X', 'x':
		s := strconv.FormatUint(uint64(v), 16)
		if spec[0] == 'X' {
			s = strings.ToUpper(s)
		}
		if k := width - len(s); k > 0 {
			s = strings.Repeat("0", k) + s
		}
		return s, nil
	case 'N', 'n':
		if len(spec) == 1 {
			width = 2
		}
		digits := strconv.FormatInt(v, 10)
		neg := strings.HasPrefix(digits, "-")
		digits = strings.TrimPrefix(digits, "-")
		var b strings.Builder
		for i, d := range digits {
			if i > 0 && (len(digits)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(d)
		}
		s := b.String()
		if width > 0 {
			s += "." + strings.Repeat("0", width)
		}
		if neg {
			s = "-" + s
		}
		return s, nil
	}
	return "", &exprError{notImplemented: true, msg: fmt.Sprintf("the format string '%s' is not implemented by this server; D, N and X are.", clip(spec))}
}
