package template

import (
	"fmt"
	"strconv"
	"strings"
)

// The expression grammar, inside the outer brackets of "[...]":
//
//	expr    = primary { "." ident | "[" expr "]" }
//	primary = string | integer | ident "(" [ expr { "," expr } ] ")" | "true" | "false" | "null"
//	string  = "'" { char | "''" } "'"
//	integer = [ "-" ] digit { digit }

type tokenKind int

const (
	tokEOF tokenKind = iota
	tokLBrack
	tokRBrack
	tokLParen
	tokRParen
	tokComma
	tokDot
	tokString
	tokInt
	tokIdent
)

func (k tokenKind) String() string {
	switch k {
	case tokEOF:
		return "end of expression"
	case tokLBrack:
		return "'['"
	case tokRBrack:
		return "']'"
	case tokLParen:
		return "'('"
	case tokRParen:
		return "')'"
	case tokComma:
		return "','"
	case tokDot:
		return "'.'"
	case tokString:
		return "string literal"
	case tokInt:
		return "integer literal"
	case tokIdent:
		return "identifier"
	}
	return "token"
}

type token struct {
	kind tokenKind
	text string // identifier, unescaped string or integer digits
	pos  int    // byte offset in the expression
}

// maxDepth bounds the nesting of calls and accesses.
const maxDepth = 64

// syntaxError is a parse failure at a byte offset of the expression.
type syntaxError struct {
	pos int
	msg string
}

func (e *syntaxError) Error() string { return fmt.Sprintf("at position %d: %s", e.pos, e.msg) }

// lex splits an expression into tokens.
func lex(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '[':
			toks = append(toks, token{tokLBrack, "", i})
			i++
		case c == ']':
			toks = append(toks, token{tokRBrack, "", i})
			i++
		case c == '(':
			toks = append(toks, token{tokLParen, "", i})
			i++
		case c == ')':
			toks = append(toks, token{tokRParen, "", i})
			i++
		case c == ',':
			toks = append(toks, token{tokComma, "", i})
			i++
		case c == '.':
			toks = append(toks, token{tokDot, "", i})
			i++
		case c == '\'':
			start := i
			var b strings.Builder
			i++
			closed := false
			for i < len(s) {
				if s[i] == '\'' {
					if i+1 < len(s) && s[i+1] == '\'' {
						b.WriteByte('\'')
						i += 2
						continue
					}
					i++
					closed = true
					break
				}
				b.WriteByte(s[i])
				i++
			}
			if !closed {
				return nil, &syntaxError{start, "the string literal is not terminated"}
			}
			toks = append(toks, token{tokString, b.String(), start})
		case c == '-' || isDigit(c):
			start := i
			i++
			for i < len(s) && isDigit(s[i]) {
				i++
			}
			if c == '-' && i == start+1 {
				return nil, &syntaxError{start, "'-' must be followed by digits"}
			}
			toks = append(toks, token{tokInt, s[start:i], start})
		case isIdentStart(c):
			start := i
			for i < len(s) && isIdentPart(s[i]) {
				i++
			}
			toks = append(toks, token{tokIdent, s[start:i], start})
		default:
			return nil, &syntaxError{i, fmt.Sprintf("unexpected character %q", rune(c))}
		}
	}
	return append(toks, token{tokEOF, "", len(s)}), nil
}

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool { return c == '_' || c == '$' || (c|0x20) >= 'a' && (c|0x20) <= 'z' }
func isIdentPart(c byte) bool  { return isIdentStart(c) || isDigit(c) }

// node is an expression tree node.
type node interface{ position() int }

type (
	// literal is a string, int64, bool or nil.
	literal struct {
		pos   int
		value any
	}
	call struct {
		pos  int
		name string
		args []node
	}
	// property is x.name.
	property struct {
		pos  int
		x    node
		name string
	}
	// index is x[i], where i evaluates to an integer or a property name.
	index struct {
		pos int
		x   node
		i   node
	}
)

func (n *literal) position() int  { return n.pos }
func (n *call) position() int     { return n.pos }
func (n *property) position() int { return n.pos }
func (n *index) position() int    { return n.pos }

// parseExpression parses the text between the outer brackets of "[...]".
func parseExpression(s string) (node, error) {
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	n, err := p.expr(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, &syntaxError{t.pos, fmt.Sprintf("unexpected %s after the end of the expression", t.kind)}
	}
	return n, nil
}

type parser struct {
	toks []token
	i    int
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

func (p *parser) expect(k tokenKind) (token, error) {
	t := p.next()
	if t.kind != k {
		return t, &syntaxError{t.pos, fmt.Sprintf("expected %s, found %s", k, t.kind)}
	}
	return t, nil
}

func (p *parser) expr(depth int) (node, error) {
	if depth > maxDepth {
		return nil, &syntaxError{p.peek().pos, fmt.Sprintf("the expression nests deeper than %d levels", maxDepth)}
	}
	n, err := p.primary(depth)
	if err != nil {
		return nil, err
	}
	for steps := 0; ; steps++ {
		if steps > maxDepth {
			return nil, &syntaxError{p.peek().pos, fmt.Sprintf("more than %d property accesses in a row", maxDepth)}
		}
		switch t := p.peek(); t.kind {
		case tokDot:
			p.next()
			name, err := p.expect(tokIdent)
			if err != nil {
				return nil, err
			}
			n = &property{pos: t.pos, x: n, name: name.text}
		case tokLBrack:
			p.next()
			i, err := p.expr(depth + 1)
			if err != nil {
				return nil, err
			}
			if _, err := p.expect(tokRBrack); err != nil {
				return nil, err
			}
			n = &index{pos: t.pos, x: n, i: i}
		default:
			return n, nil
		}
	}
}

func (p *parser) primary(depth int) (node, error) {
	t := p.next()
	switch t.kind {
	case tokString:
		return &literal{t.pos, t.text}, nil
	case tokInt:
		v, err := strconv.ParseInt(t.text, 10, 64)
		if err != nil {
			return nil, &syntaxError{t.pos, fmt.Sprintf("the integer %s is out of range", t.text)}
		}
		return &literal{t.pos, v}, nil
	case tokIdent:
		if p.peek().kind != tokLParen {
			switch strings.ToLower(t.text) {
			case "true":
				return &literal{t.pos, true}, nil
			case "false":
				return &literal{t.pos, false}, nil
			case "null":
				return &literal{t.pos, nil}, nil
			}
			return nil, &syntaxError{t.pos, fmt.Sprintf("'%s' must be followed by '(': only function calls, literals and property accesses are expressions", clip(t.text))}
		}
		p.next()
		c := &call{pos: t.pos, name: t.text}
		if p.peek().kind == tokRParen {
			p.next()
			return c, nil
		}
		for {
			a, err := p.expr(depth + 1)
			if err != nil {
				return nil, err
			}
			c.args = append(c.args, a)
			sep := p.next()
			if sep.kind == tokRParen {
				return c, nil
			}
			if sep.kind != tokComma {
				return nil, &syntaxError{sep.pos, fmt.Sprintf("expected ',' or ')' in the arguments of '%s', found %s", clip(c.name), sep.kind)}
			}
		}
	}
	return nil, &syntaxError{t.pos, fmt.Sprintf("expected a literal or a function call, found %s", t.kind)}
}

// clip bounds user text echoed in messages.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
