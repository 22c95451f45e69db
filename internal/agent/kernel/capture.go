package kernel

import (
	"bytes"
	"io"
	"sync"
	"unicode/utf8"
)

// output is what one stream produced for one execution.
type output struct {
	data      []byte
	truncated bool
}

// capture reads one of a kernel's output pipes for the kernel's lifetime
// and splits it into executions at the driver's marks (protocol.go). It
// keeps at most limit bytes per execution.
type capture struct {
	// mu guards the fields that follow.
	mu        sync.Mutex
	buf       []byte // output since the last mark
	truncated bool   // buf lost bytes to the limit
	limit     int
	hold      []byte        // a tail that may be the start of a mark
	want      string        // the id of the mark awaited, or ""
	done      chan output   // receives buf when the mark of want is seen
	eof       chan struct{} // closed when the pipe is at its end
}

func newCapture(limit int) *capture {
	return &capture{limit: limit, eof: make(chan struct{})}
}

// run reads r until it fails (EOF, or the file is closed).
func (c *capture) run(r io.Reader) {
	defer close(c.eof)
	b := make([]byte, 64<<10)
	for {
		n, err := r.Read(b)
		if n > 0 {
			c.mu.Lock()
			c.feedLocked(b[:n])
			c.mu.Unlock()
		}
		if err != nil {
			c.mu.Lock()
			c.appendLocked(c.hold)
			c.hold = nil
			c.mu.Unlock()
			return
		}
	}
}

// arm prepares for an execution with the given mark id and output limit;
// the returned channel receives the execution's output once its mark is
// read. Output already buffered (written between executions) counts.
func (c *capture) arm(id string, limit int) <-chan output {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.want = id
	c.done = make(chan output, 1)
	c.limit = limit
	if len(c.buf) > limit {
		c.buf = trimPartialRune(c.buf[:limit])
		c.truncated = true
	}
	return c.done
}

// take returns what the stream holds now and starts afresh; for when no
// mark will come (the kernel died, or it moved its fd).
func (c *capture) take() output {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := output{data: c.buf, truncated: c.truncated}
	c.buf, c.truncated, c.want, c.done = nil, false, "", nil
	return out
}

func (c *capture) feedLocked(p []byte) {
	if len(c.hold) > 0 {
		p = append(c.hold, p...)
		c.hold = nil
	}
	for len(p) > 0 {
		i := bytes.Index(p, []byte(markPrefix))
		if i < 0 {
			k := partialPrefix(p, markPrefix)
			c.appendLocked(p[:len(p)-k])
			c.holdLocked(p[len(p)-k:])
			return
		}
		c.appendLocked(p[:i])
		p = p[i:]
		if len(p) < markLen {
			c.holdLocked(p)
			return
		}
		if p[markLen-1] != 0 {
			// Not a mark after all: keep its first byte as output.
			c.appendLocked(p[:1])
			p = p[1:]
			continue
		}
		if id := string(p[len(markPrefix) : markLen-1]); id == c.want && c.done != nil {
			c.done <- output{data: c.buf, truncated: c.truncated}
			c.buf, c.truncated, c.want, c.done = nil, false, "", nil
		}
		// A stale mark (of an execution given up on) is dropped.
		p = p[markLen:]
	}
}

func (c *capture) holdLocked(p []byte) {
	c.hold = append(c.hold[:0:0], p...)
}

func (c *capture) appendLocked(p []byte) {
	if len(p) == 0 || c.truncated {
		return
	}
	room := c.limit - len(c.buf)
	if len(p) <= room {
		c.buf = append(c.buf, p...)
		return
	}
	// Cut here, and not inside a character (its first bytes may have
	// come in an earlier piece).
	c.truncated = true
	c.buf = trimPartialRune(append(c.buf, p[:max(room, 0)]...))
}

// partialPrefix returns the length of the longest suffix of p that is a
// proper prefix of s. s[0] must not occur again in s (true of markPrefix),
// so only the last s[0] in p can start such a suffix.
func partialPrefix(p []byte, s string) int {
	tail := p[max(0, len(p)-(len(s)-1)):]
	i := bytes.LastIndexByte(tail, s[0])
	if i < 0 {
		return 0
	}
	if k := len(tail) - i; string(tail[i:]) == s[:k] {
		return k
	}
	return 0
}

// trimPartialRune drops an incomplete UTF-8 sequence from the end of b,
// for output cut at a byte limit.
func trimPartialRune(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			return b
		}
	}
	return b
}
