package template

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Error codes of *Error.
const (
	// CodeInvalidTemplate: the template or its parameters are wrong.
	CodeInvalidTemplate = "InvalidTemplate"
	// CodeNotImplemented: the template uses a feature this package does
	// not implement.
	CodeNotImplemented = "NotImplemented"
)

// Error is a template failure: a code, the path of the offending member
// (for example "resources[0].properties.x" or "parameters.size") and a
// message for the person who wrote the template.
type Error struct {
	Code    string
	Target  string
	Message string
}

func (e *Error) Error() string {
	if e.Target == "" {
		return e.Message
	}
	return e.Target + ": " + e.Message
}

func invalid(target, format string, args ...any) *Error {
	return &Error{Code: CodeInvalidTemplate, Target: target, Message: fmt.Sprintf(format, args...)}
}

func notImplemented(target, format string, args ...any) *Error {
	return &Error{Code: CodeNotImplemented, Target: target, Message: fmt.Sprintf(format, args...)}
}

// Env is what a deployment knows about where it runs.
type Env struct {
	Subscription   Subscription
	ResourceGroup  ResourceGroup
	DeploymentName string
}

// Subscription is what subscription() returns.
type Subscription struct {
	SubscriptionID string
	TenantID       string
	DisplayName    string
}

// ResourceGroup is what resourceGroup() returns.
type ResourceGroup struct {
	Name      string
	Location  string
	ManagedBy string
	Tags      map[string]string
}

func (s Subscription) id() string { return "/subscriptions/" + s.SubscriptionID }

// Resource is one resource of an evaluated template.
type Resource struct {
	// Path is the resource's place in the template: "resources[2]".
	Path string
	// Type, APIVersion and Name are as evaluated ("Microsoft.App/sessionpools").
	Type       string
	APIVersion string
	Name       string
	// ID is the resource's id in the deployment's resource group.
	ID string
	// Body is what a PUT of the resource sends: every member of the
	// template's resource except type, apiVersion, name, dependsOn,
	// condition and comments.
	Body map[string]any
	// DependsOn holds the ids of the resources this one waits for.
	DependsOn []string
}

// Output is one evaluated output, as a deployment reports it.
type Output struct {
	Type  string `json:"type"`
	Value any    `json:"value"`
}

// Parameter is one parameter's type and value. Secure parameters keep
// their value here; callers must not echo it.
type Parameter struct {
	Type   string
	Value  any
	Secure bool
}

// Result is an evaluated template.
type Result struct {
	// Resources are in deployment order: each after everything it depends on.
	Resources []Resource
	// Outputs by name.
	Outputs map[string]Output
	// Parameters by declared name, with their final values.
	Parameters map[string]Parameter
}

// Limits on what a template may build.
const (
	maxValueSize = 1 << 20
	maxResources = 800 // ARM's limit per template
)

// Evaluate evaluates a template (JSON) with the deployment's parameters
// (JSON: {"name": {"value": ...}}, or empty) in env. A failure is an *Error.
func Evaluate(templateJSON, parametersJSON []byte, env Env) (*Result, error) {
	tv, err := decodeJSON(templateJSON)
	if err != nil {
		return nil, invalid("properties.template", "The template is not valid JSON: %v.", err)
	}
	t, ok := tv.(map[string]any)
	if !ok {
		return nil, invalid("properties.template", "The template must be a JSON object; it is %s.", typeName(tv))
	}
	var given map[string]any
	if len(strings.TrimSpace(string(parametersJSON))) > 0 {
		pv, err := decodeJSON(parametersJSON)
		if err != nil {
			return nil, invalid("properties.parameters", "The parameters are not valid JSON: %v.", err)
		}
		switch p := pv.(type) {
		case nil:
		case map[string]any:
			given = p
		default:
			return nil, invalid("properties.parameters", "The parameters must be a JSON object; they are %s.", typeName(pv))
		}
	}
	ev := &evaluator{env: env}
	if err := ev.declare(t, given); err != nil {
		return nil, err
	}
	res := &Result{Parameters: map[string]Parameter{}, Outputs: map[string]Output{}}
	for _, name := range ev.paramOrder {
		p := ev.params[strings.ToLower(name)]
		v, err := ev.parameter(name)
		if err != nil {
			return nil, err
		}
		res.Parameters[name] = Parameter{Type: p.typ.canonical, Value: v, Secure: p.typ.secure}
	}
	// Variables are evaluated even when unused, so that a broken one fails
	// the deployment at validation, as ARM does.
	for _, name := range ev.varOrder {
		if _, err := ev.variable(name); err != nil {
			return nil, err
		}
	}
	if res.Resources, err = ev.resources(t); err != nil {
		return nil, err
	}
	if res.Outputs, err = ev.outputs(t); err != nil {
		return nil, err
	}
	return res, nil
}

// paramType is a declared parameter type.
type paramType struct {
	canonical string // as ARM reports it: String, Int, Bool, Object, Array, SecureString, SecureObject
	base      string // string, int, bool, object, array
	secure    bool
}

var paramTypes = map[string]paramType{
	"string":       {"String", "string", false},
	"securestring": {"SecureString", "string", true},
	"int":          {"Int", "int", false},
	"bool":         {"Bool", "bool", false},
	"object":       {"Object", "object", false},
	"secureobject": {"SecureObject", "object", true},
	"array":        {"Array", "array", false},
}

type paramDecl struct {
	name string
	path string // "parameters.name"
	typ  paramType
	decl map[string]any
	// given is the deployment's value, if it gave one.
	given    any
	hasGiven bool
}

// evaluator holds one template's declarations and what has been
// evaluated so far. Parameters and variables evaluate on first use, so
// they may refer to each other in any order; a cycle is an error.
type evaluator struct {
	env Env

	params     map[string]*paramDecl // by lower-case name
	paramOrder []string
	paramVals  map[string]any
	vars       map[string]any // declarations, by lower-case name
	varNames   map[string]string
	varOrder   []string
	varVals    map[string]any
	// busy marks "p:name" and "v:name" while they evaluate.
	busy map[string]bool
}

// declare reads the template's parameter and variable declarations and
// checks the deployment's parameters against them.
func (ev *evaluator) declare(t map[string]any, given map[string]any) error {
	ev.params, ev.paramVals = map[string]*paramDecl{}, map[string]any{}
	ev.vars, ev.varNames, ev.varVals = map[string]any{}, map[string]string{}, map[string]any{}
	ev.busy = map[string]bool{}
	if f, ok := lookup(t, "functions"); ok && f != nil {
		if a, ok := f.([]any); !ok || len(a) > 0 {
			return notImplemented("functions", "User-defined functions are not implemented by this server.")
		}
	}
	if pv, ok := lookup(t, "parameters"); ok && pv != nil {
		decls, ok := pv.(map[string]any)
		if !ok {
			return invalid("parameters", "The template's parameters must be an object; they are %s.", typeName(pv))
		}
		names := sortedKeys(decls)
		for _, name := range names {
			path := memberPath("parameters", name)
			d, ok := decls[name].(map[string]any)
			if !ok {
				return invalid(path, "The declaration of parameter '%s' must be an object.", clip(name))
			}
			tv, _ := lookup(d, "type")
			ts, _ := tv.(string)
			typ, ok := paramTypes[strings.ToLower(ts)]
			if !ok {
				return invalid(path+".type", "The type of parameter '%s' must be one of string, securestring, int, bool, object, secureObject or array; it is '%s'.", clip(name), clip(text(tv)))
			}
			if _, dup := ev.params[strings.ToLower(name)]; dup {
				return invalid(path, "The parameter '%s' is declared twice (names are case-insensitive).", clip(name))
			}
			ev.params[strings.ToLower(name)] = &paramDecl{name: name, path: path, typ: typ, decl: d}
			ev.paramOrder = append(ev.paramOrder, name)
		}
	}
	for _, name := range sortedKeys(given) {
		path := memberPath("properties.parameters", name)
		p, ok := ev.params[strings.ToLower(name)]
		if !ok {
			return invalid(path, "The template parameter '%s' is not declared in the template; the template declares %s.", clip(name), quoteList(ev.paramOrder))
		}
		g, ok := given[name].(map[string]any)
		if !ok {
			return invalid(path, "The parameter '%s' must be given as an object {\"value\": ...}.", clip(name))
		}
		if _, ok := lookup(g, "reference"); ok {
			return notImplemented(path+".reference", "Key Vault references in parameters are not implemented by this server; pass the value.")
		}
		v, ok := lookup(g, "value")
		if !ok {
			return invalid(path, "The parameter '%s' has no 'value'.", clip(name))
		}
		p.given, p.hasGiven = v, true
	}
	if vv, ok := lookup(t, "variables"); ok && vv != nil {
		decls, ok := vv.(map[string]any)
		if !ok {
			return invalid("variables", "The template's variables must be an object; they are %s.", typeName(vv))
		}
		for _, name := range sortedKeys(decls) {
			if strings.EqualFold(name, "copy") {
				return notImplemented("variables.copy", "Variable copy loops are not implemented by this server.")
			}
			ev.vars[strings.ToLower(name)] = decls[name]
			ev.varNames[strings.ToLower(name)] = name
			ev.varOrder = append(ev.varOrder, name)
		}
	}
	return nil
}

// parameter returns a parameter's value: the one given, else its default.
func (ev *evaluator) parameter(name string) (any, error) {
	key := strings.ToLower(name)
	if v, ok := ev.paramVals[key]; ok {
		return v, nil
	}
	p, ok := ev.params[key]
	if !ok {
		return nil, &exprError{msg: fmt.Sprintf("The parameter '%s' is not declared in the template; it declares %s.", clip(name), quoteList(ev.paramOrder))}
	}
	if ev.busy["p:"+key] {
		return nil, invalid(p.path+".defaultValue", "The default value of parameter '%s' refers to itself.", p.name)
	}
	ev.busy["p:"+key] = true
	defer delete(ev.busy, "p:"+key)
	var v any
	switch {
	case p.hasGiven:
		v = deepCopy(p.given)
	default:
		dv, ok := lookup(p.decl, "defaultValue")
		if !ok {
			return nil, invalid(p.path, "The value for the template parameter '%s' is not provided, and it has no defaultValue.", p.name)
		}
		var err error
		if v, err = ev.value(dv, p.path+".defaultValue"); err != nil {
			return nil, err
		}
	}
	v, err := p.check(v)
	if err != nil {
		return nil, err
	}
	ev.paramVals[key] = v
	return v, nil
}

// check converts v to the parameter's type where ARM would (strings that
// spell an int or a bool) and applies the declared constraints.
func (p *paramDecl) check(v any) (any, error) {
	bad := func() (any, error) {
		return nil, invalid(p.path, "The template parameter '%s' was given a value of type %s; it must be %s.", p.name, typeName(v), p.typ.canonical)
	}
	switch p.typ.base {
	case "string":
		if _, ok := v.(string); !ok {
			return bad()
		}
	case "int":
		switch x := v.(type) {
		case int64:
		case string:
			n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
			if err != nil {
				return bad()
			}
			v = n
		default:
			return bad()
		}
	case "bool":
		switch x := v.(type) {
		case bool:
		case string:
			b, err := strconv.ParseBool(strings.TrimSpace(x))
			if err != nil {
				return bad()
			}
			v = b
		default:
			return bad()
		}
	case "object":
		if _, ok := v.(map[string]any); !ok {
			return bad()
		}
	case "array":
		if _, ok := v.([]any); !ok {
			return bad()
		}
	}
	if av, ok := lookup(p.decl, "allowedValues"); ok && av != nil {
		allowed, ok := av.([]any)
		if !ok {
			return nil, invalid(p.path+".allowedValues", "allowedValues must be an array.")
		}
		in := func(x any) bool {
			return slices.ContainsFunc(allowed, func(a any) bool { return deepEqual(a, x) })
		}
		values := []any{v}
		if arr, ok := v.([]any); ok {
			values = arr // each element of an array must be allowed
		}
		for _, x := range values {
			if !in(x) {
				shown := text(x)
				if p.typ.secure {
					shown = "(secure value)"
				}
				return nil, invalid(p.path, "The provided value '%s' for the template parameter '%s' is not valid. The parameter's allowed values are: '%s'.", clip(shown), p.name, clip(textList(allowed)))
			}
		}
	}
	for _, c := range []struct {
		key string
		min bool
		of  func(any) (int64, bool)
	}{
		{"minValue", true, asInt}, {"maxValue", false, asInt},
		{"minLength", true, length}, {"maxLength", false, length},
	} {
		lim, ok := lookup(p.decl, c.key)
		if !ok || lim == nil {
			continue
		}
		l, ok := lim.(int64)
		if !ok {
			return nil, invalid(p.path+"."+c.key, "%s must be an integer.", c.key)
		}
		n, ok := c.of(v)
		if !ok {
			continue
		}
		if (c.min && n < l) || (!c.min && n > l) {
			return nil, invalid(p.path, "The value of the template parameter '%s' is not valid: %s is %d.", p.name, c.key, l)
		}
	}
	return v, nil
}

func asInt(v any) (int64, bool) { n, ok := v.(int64); return n, ok }

func length(v any) (int64, bool) {
	switch x := v.(type) {
	case string:
		return int64(len([]rune(x))), true
	case []any:
		return int64(len(x)), true
	case map[string]any:
		return int64(len(x)), true
	}
	return 0, false
}

// variable returns a variable's value.
func (ev *evaluator) variable(name string) (any, error) {
	key := strings.ToLower(name)
	if v, ok := ev.varVals[key]; ok {
		return v, nil
	}
	decl, ok := ev.vars[key]
	if !ok {
		return nil, &exprError{msg: fmt.Sprintf("The variable '%s' is not declared in the template; it declares %s.", clip(name), quoteList(ev.varOrder))}
	}
	path := memberPath("variables", ev.varNames[key])
	if ev.busy["v:"+key] {
		return nil, invalid(path, "The variable '%s' refers to itself.", ev.varNames[key])
	}
	ev.busy["v:"+key] = true
	defer delete(ev.busy, "v:"+key)
	if m, ok := decl.(map[string]any); ok {
		if _, ok := lookup(m, "copy"); ok {
			return nil, notImplemented(path+".copy", "Variable copy loops are not implemented by this server.")
		}
	}
	v, err := ev.value(decl, path)
	if err != nil {
		return nil, err
	}
	ev.varVals[key] = v
	return v, nil
}

// The members of a template resource that are not part of its PUT body.
var templateOnly = map[string]bool{"type": true, "apiversion": true, "name": true, "dependson": true, "condition": true, "comments": true}

// resources evaluates the resources and orders them by dependsOn.
func (ev *evaluator) resources(t map[string]any) ([]Resource, error) {
	rv, ok := lookup(t, "resources")
	if !ok || rv == nil {
		return nil, nil
	}
	list, ok := rv.([]any)
	if !ok {
		if _, isObj := rv.(map[string]any); isObj {
			return nil, notImplemented("resources", "Symbolic-name resources (languageVersion 2.0) are not implemented by this server; use a resources array.")
		}
		return nil, invalid("resources", "The template's resources must be an array; they are %s.", typeName(rv))
	}
	if len(list) > maxResources {
		return nil, invalid("resources", "The template has %d resources; the limit is %d.", len(list), maxResources)
	}
	var out []Resource
	var skipped []Resource
	for i, raw := range list {
		path := fmt.Sprintf("resources[%d]", i)
		obj, ok := raw.(map[string]any)
		if !ok {
			return nil, invalid(path, "A resource must be an object; it is %s.", typeName(raw))
		}
		for _, k := range []string{"copy", "resources", "scope", "subscriptionId", "resourceGroup"} {
			if v, ok := lookup(obj, k); ok && v != nil {
				what := map[string]string{
					"copy": "Resource copy loops are", "resources": "Nested child resources are",
					"scope": "Extension and cross-scope resources are", "subscriptionId": "Cross-subscription resources are",
					"resourceGroup": "Cross-resource-group resources are",
				}[k]
				return nil, notImplemented(path+"."+k, "%s not implemented by this server.", what)
			}
		}
		deploy := true
		if cv, ok := lookup(obj, "condition"); ok {
			c, err := ev.value(cv, path+".condition")
			if err != nil {
				return nil, err
			}
			b, ok := c.(bool)
			if !ok {
				return nil, invalid(path+".condition", "The condition must be a Boolean; it is %s.", typeName(c))
			}
			deploy = b
		}
		r := Resource{Path: path, Body: map[string]any{}}
		for _, k := range sortedKeys(obj) {
			if strings.EqualFold(k, "condition") {
				continue
			}
			v, err := ev.value(obj[k], memberPath(path, k))
			if err != nil {
				if !deploy {
					// A resource that is not deployed may name things that
					// do not exist; ARM skips it without evaluating it.
					continue
				}
				return nil, err
			}
			if !templateOnly[strings.ToLower(k)] {
				r.Body[k] = v
			}
			switch strings.ToLower(k) {
			case "type":
				r.Type, _ = v.(string)
			case "apiversion":
				r.APIVersion, _ = v.(string)
			case "name":
				r.Name, _ = v.(string)
			case "dependson":
				deps, ok := v.([]any)
				if !ok && v != nil {
					return nil, invalid(memberPath(path, k), "dependsOn must be an array of resource names or ids.")
				}
				for j, d := range deps {
					s, ok := d.(string)
					if !ok || s == "" {
						return nil, invalid(fmt.Sprintf("%s[%d]", memberPath(path, k), j), "A dependsOn entry must be a resource name or id.")
					}
					r.DependsOn = append(r.DependsOn, s)
				}
			}
		}
		if !deploy {
			if id, err := ev.childID(r.Type, strings.Split(r.Name, "/")); err == nil {
				r.ID = id
				skipped = append(skipped, r)
			}
			continue
		}
		if r.Type == "" {
			return nil, invalid(path+".type", "The resource has no type.")
		}
		if r.APIVersion == "" {
			return nil, invalid(path+".apiVersion", "The resource '%s' has no apiVersion.", clip(r.Name))
		}
		if r.Name == "" {
			return nil, invalid(path+".name", "The resource has no name.")
		}
		id, err := ev.childID(r.Type, strings.Split(r.Name, "/"))
		if err != nil {
			return nil, invalid(path+".name", "%s", err.Error())
		}
		r.ID = id
		out = append(out, r)
	}
	for i := range out {
		var deps []string
		for j, d := range out[i].DependsOn {
			k, err := findResource(out, d)
			if err != nil {
				if _, err2 := findResource(skipped, d); err2 == nil {
					continue // a dependency on a resource whose condition is false is ignored
				}
				return nil, invalid(fmt.Sprintf("%s.dependsOn[%d]", out[i].Path, j), "%s", err.Error())
			}
			if k == i {
				return nil, invalid(fmt.Sprintf("%s.dependsOn[%d]", out[i].Path, j), "The resource '%s' depends on itself.", out[i].Name)
			}
			deps = append(deps, out[k].ID)
		}
		out[i].DependsOn = deps
		for _, other := range out[:i] {
			if strings.EqualFold(other.ID, out[i].ID) {
				return nil, invalid(out[i].Path, "The resource '%s' is defined more than once in the template.", out[i].ID)
			}
		}
	}
	return order(out)
}

// findResource finds the resource a dependsOn entry names: by id, by
// "type/name", or by name.
func findResource(rs []Resource, ref string) (int, error) {
	found := -1
	for i, r := range rs {
		if strings.EqualFold(r.ID, ref) || strings.EqualFold(r.Type+"/"+r.Name, ref) || strings.EqualFold(r.Name, ref) {
			if found >= 0 && !strings.EqualFold(rs[found].ID, r.ID) {
				return 0, fmt.Errorf("The dependsOn entry '%s' matches more than one resource; use a resourceId().", clip(ref))
			}
			found = i
		}
	}
	if found < 0 {
		return 0, fmt.Errorf("The resource '%s' is not defined in the template.", clip(ref))
	}
	return found, nil
}

// order sorts resources so that each follows its dependencies, keeping
// template order otherwise.
func order(rs []Resource) ([]Resource, error) {
	done := make([]bool, len(rs))
	var out []Resource
	index := func(id string) int {
		return slices.IndexFunc(rs, func(r Resource) bool { return strings.EqualFold(r.ID, id) })
	}
	for len(out) < len(rs) {
		progress := false
		for i, r := range rs {
			if done[i] {
				continue
			}
			ready := true
			for _, d := range r.DependsOn {
				if !done[index(d)] {
					ready = false
					break
				}
			}
			if ready {
				done[i], progress = true, true
				out = append(out, r)
				break
			}
		}
		if !progress {
			var cycle []string
			for i, r := range rs {
				if !done[i] {
					cycle = append(cycle, r.Name)
				}
			}
			return nil, invalid("resources", "Circular dependency detected between the resources %s.", quoteList(cycle))
		}
	}
	return out, nil
}

var outputTypes = map[string]string{
	"string": "String", "securestring": "SecureString", "int": "Int", "bool": "Bool",
	"object": "Object", "secureobject": "SecureObject", "array": "Array",
}

func (ev *evaluator) outputs(t map[string]any) (map[string]Output, error) {
	out := map[string]Output{}
	ov, ok := lookup(t, "outputs")
	if !ok || ov == nil {
		return out, nil
	}
	decls, ok := ov.(map[string]any)
	if !ok {
		return nil, invalid("outputs", "The template's outputs must be an object.")
	}
	for _, name := range sortedKeys(decls) {
		path := memberPath("outputs", name)
		d, ok := decls[name].(map[string]any)
		if !ok {
			return nil, invalid(path, "The output '%s' must be an object with a type and a value.", clip(name))
		}
		if _, ok := lookup(d, "copy"); ok {
			return nil, notImplemented(path+".copy", "Output copy loops are not implemented by this server.")
		}
		tv, _ := lookup(d, "type")
		ts, _ := tv.(string)
		typ, ok := outputTypes[strings.ToLower(ts)]
		if !ok {
			return nil, invalid(path+".type", "The type of output '%s' must be one of string, securestring, int, bool, object, secureObject or array.", clip(name))
		}
		if c, ok := lookup(d, "condition"); ok {
			cv, err := ev.value(c, path+".condition")
			if err != nil {
				return nil, err
			}
			if b, ok := cv.(bool); ok && !b {
				continue
			}
		}
		raw, ok := lookup(d, "value")
		if !ok {
			return nil, invalid(path, "The output '%s' has no value.", clip(name))
		}
		v, err := ev.value(raw, path+".value")
		if err != nil {
			return nil, err
		}
		p := paramDecl{name: name, path: path + ".value", typ: paramTypes[strings.ToLower(ts)], decl: map[string]any{}}
		if v, err = p.check(v); err != nil {
			return nil, err
		}
		out[name] = Output{Type: typ, Value: v}
	}
	return out, nil
}

// value evaluates every expression in v; path names v in messages.
func (ev *evaluator) value(v any, path string) (any, error) {
	switch x := v.(type) {
	case string:
		return ev.str(x, path)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			var err error
			if out[i], err = ev.value(e, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return nil, err
			}
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for _, k := range sortedKeys(x) {
			var err error
			if out[k], err = ev.value(x[k], memberPath(path, k)); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	return v, nil
}

// IsExpression reports whether a template string is an expression: it
// starts with "[" (but not "[[") and ends with "]".
func IsExpression(s string) bool {
	return len(s) >= 2 && s[0] == '[' && s[1] != '[' && s[len(s)-1] == ']'
}

// str evaluates one template string.
func (ev *evaluator) str(s, path string) (any, error) {
	if strings.HasPrefix(s, "[[") && strings.HasSuffix(s, "]") {
		return s[1:], nil // "[[x]" is the literal "[x]"
	}
	if !IsExpression(s) {
		return s, nil
	}
	src := s[1 : len(s)-1]
	n, err := parseExpression(src)
	if err != nil {
		return nil, invalid(path, "The template language expression '%s' is not valid: %v.", clip(s), err)
	}
	v, err := ev.eval(n)
	if err != nil {
		var te *Error
		if errors.As(err, &te) {
			return nil, te // from a parameter or variable evaluated on the way; it has its own path
		}
		code := CodeInvalidTemplate
		var xe *exprError
		if errors.As(err, &xe) && xe.notImplemented {
			code = CodeNotImplemented
		}
		return nil, &Error{Code: code, Target: path, Message: fmt.Sprintf("Unable to evaluate the template language expression '%s': %v", clip(s), err)}
	}
	if size(v) > maxValueSize {
		return nil, invalid(path, "The expression '%s' produces a value larger than %d bytes.", clip(s), maxValueSize)
	}
	return v, nil
}

var identRE = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]*$`)

// memberPath appends a member name to a path: "a.b", or "a['x y']".
func memberPath(path, name string) string {
	if identRE.MatchString(name) {
		if path == "" {
			return name
		}
		return path + "." + name
	}
	return path + "['" + strings.ReplaceAll(name, "'", "''") + "']"
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func quoteList(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = "'" + clip(n) + "'"
	}
	return strings.Join(q, ", ")
}

func textList(vs []any) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = text(v)
	}
	return strings.Join(parts, ", ")
}
