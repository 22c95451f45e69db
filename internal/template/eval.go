package template

import (
	"fmt"
	"sort"
	"strings"
)

// exprError is a failure inside an expression.
type exprError struct {
	msg            string
	notImplemented bool
}

func (e *exprError) Error() string { return e.msg }

func exprErrorf(format string, args ...any) *exprError {
	return &exprError{msg: fmt.Sprintf(format, args...)}
}

// eval evaluates an expression tree.
func (ev *evaluator) eval(n node) (any, error) {
	switch n := n.(type) {
	case *literal:
		return n.value, nil
	case *call:
		return ev.call(n)
	case *property:
		x, err := ev.eval(n.x)
		if err != nil {
			return nil, err
		}
		return member(x, n.name)
	case *index:
		x, err := ev.eval(n.x)
		if err != nil {
			return nil, err
		}
		i, err := ev.eval(n.i)
		if err != nil {
			return nil, err
		}
		switch k := i.(type) {
		case string:
			return member(x, k)
		case int64:
			a, ok := x.([]any)
			if !ok {
				return nil, exprErrorf("The index [%d] applies to arrays; the value is %s.", k, typeName(x))
			}
			if k < 0 || k >= int64(len(a)) {
				return nil, exprErrorf("The index %d is out of range: the array has %d elements.", k, len(a))
			}
			return a[k], nil
		}
		return nil, exprErrorf("An index must be an integer or a property name; it is %s.", typeName(i))
	}
	return nil, exprErrorf("unknown expression node %T", n)
}

// member returns property name of an object.
func member(x any, name string) (any, error) {
	m, ok := x.(map[string]any)
	if !ok {
		return nil, exprErrorf("The property '%s' cannot be read from a value of type %s.", clip(name), typeName(x))
	}
	v, ok := lookup(m, name)
	if !ok {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return nil, exprErrorf("The language expression property '%s' doesn't exist; available properties are %s.", clip(name), quoteList(keys))
	}
	return v, nil
}

func (ev *evaluator) call(c *call) (any, error) {
	name := strings.ToLower(c.name)
	if name == "if" {
		// Only the branch taken is evaluated, so that the other may refer
		// to what does not exist.
		if len(c.args) != 3 {
			return nil, exprErrorf("The template function 'if' takes 3 arguments; it was given %d.", len(c.args))
		}
		cond, err := ev.eval(c.args[0])
		if err != nil {
			return nil, err
		}
		b, ok := cond.(bool)
		if !ok {
			return nil, exprErrorf("The first argument of 'if' must be a Boolean; it is %s.", typeName(cond))
		}
		if b {
			return ev.eval(c.args[1])
		}
		return ev.eval(c.args[2])
	}
	f, ok := functions[name]
	if !ok {
		if why, ok := unimplemented[name]; ok {
			return nil, &exprError{notImplemented: true, msg: fmt.Sprintf("The template function '%s' is not implemented by this server: %s", c.name, why)}
		}
		if strings.HasPrefix(name, "list") {
			return nil, &exprError{notImplemented: true, msg: fmt.Sprintf("The template function '%s' is not implemented by this server: list* functions need the resource provider's actions.", clip(c.name))}
		}
		return nil, exprErrorf("The template function '%s' is not known. See docs/api.md for the functions this server supports.", clip(c.name))
	}
	args := make([]any, len(c.args))
	for i, a := range c.args {
		v, err := ev.eval(a)
		if err != nil {
			return nil, err
		}
		args[i] = v
	}
	if f.min >= 0 && len(args) < f.min || f.max >= 0 && len(args) > f.max {
		return nil, exprErrorf("The template function '%s' takes %s; it was given %d.", c.name, arity(f.min, f.max), len(args))
	}
	v, err := f.fn(ev, args)
	if err != nil {
		if _, ok := err.(*exprError); ok {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
		return nil, err
	}
	return v, nil
}

func arity(min, max int) string {
	switch {
	case min == max && min == 1:
		return "1 argument"
	case min == max:
		return fmt.Sprintf("%d arguments", min)
	case max < 0:
		return fmt.Sprintf("at least %d arguments", min)
	}
	return fmt.Sprintf("%d to %d arguments", min, max)
}
