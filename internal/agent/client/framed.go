package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/tidepool-dev/tidepool/internal/agent/rawio"
	"github.com/tidepool-dev/tidepool/internal/agent/wire"
)

// Framed calls (wire.FramePreface) carry the routes wire.FramedRoute
// accepts: one call at a time per connection, connections kept in a pool.

// errNoFramed says the agent does not speak framed calls: use HTTP.
var errNoFramed = errors.New("agent does not take framed calls")

// maxKeptBuffer is the largest frame buffer an idle connection keeps.
const maxKeptBuffer = 64 << 10

// maxIdleFramed bounds the idle framed connections kept per agent.
const maxIdleFramed = 64

// handshakeTimeout bounds the preface exchange on a new connection.
const handshakeTimeout = 10 * time.Second

// framedConn is a connection of framed calls.
type framedConn struct {
	conn net.Conn
	rw   io.ReadWriter // conn's raw reads and writes (see rawio)
	br   *bufio.Reader
	wbuf []byte
	rbuf []byte
}

// writeError is a failure to send a call: the agent never saw it.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// callJSON sends in as JSON (nothing when nil) to method path, framed when
// the agent takes it, and decodes the answer into a new T.
func callJSON[T any](ctx context.Context, c *Client, method, path string, in any) (*T, error) {
	if !c.noFramed.Load() {
		v := new(T)
		err := c.callFramed(ctx, method, path, in, v)
		if !errors.Is(err, errNoFramed) {
			if err != nil {
				return nil, err
			}
			return v, nil
		}
	}
	return call[T](ctx, c, method, path, in)
}

// callFramed makes one framed call; it returns errNoFramed when the agent
// does not take them.
func (c *Client) callFramed(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			panic(fmt.Sprintf("encode %T: %v", in, err)) // wire types always encode
		}
	}
	for attempt := 0; ; attempt++ {
		fc, reused, err := c.framedConn(ctx)
		if err != nil {
			if errors.Is(err, errNoFramed) {
				return err
			}
			return fmt.Errorf("agent %s %s: %w", method, path, err)
		}
		// The call waits for the answer however long it takes; ctx ending
		// breaks the connection (which cancels the call in the agent).
		stop := context.AfterFunc(ctx, func() { fc.conn.SetDeadline(time.Unix(1, 0)) })
		status, resp, err := fc.call(method+" "+path, body)
		if err == nil {
			err = decodeFramed(status, resp, out)
			if stop() {
				c.putFramed(fc)
			} else {
				fc.conn.Close()
			}
			return err
		}
		stop()
		fc.conn.Close()
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("agent %s %s: %w", method, path, context.Cause(ctx))
		}
		var we *writeError
		if reused && attempt == 0 && errors.As(err, &we) {
			continue // an idle connection the agent had closed: it never saw the call
		}
		return fmt.Errorf("agent %s %s: %w", method, path, err)
	}
}

// decodeFramed turns an answer into out or an *Error.
func decodeFramed(status int, body []byte, out any) error {
	if status/100 == 2 {
		if err := json.Unmarshal(body, out); err != nil {
			return fmt.Errorf("agent: decode framed answer: %w", err)
		}
		return nil
	}
	return errorAnswer(status, body)
}

// call sends one request frame and reads the answer; resp is valid until
// the next call.
func (fc *framedConn) call(head string, body []byte) (status int, resp []byte, err error) {
	fc.wbuf = wire.AppendFrame(fc.wbuf[:0], head, body)
	if _, err := fc.rw.Write(fc.wbuf); err != nil {
		return 0, nil, &writeError{err}
	}
	h, resp, buf, err := wire.ReadFrame(fc.br, fc.rbuf)
	fc.rbuf = buf
	if err != nil {
		return 0, nil, fmt.Errorf("read framed answer: %w", err)
	}
	if status, err = wire.ParseStatus(h); err != nil {
		return 0, nil, fmt.Errorf("read framed answer: %w", err)
	}
	return status, resp, nil
}

// framedConn returns an idle connection or a new one; reused says which.
func (c *Client) framedConn(ctx context.Context) (fc *framedConn, reused bool, err error) {
	c.mu.Lock()
	if n := len(c.idle); n > 0 {
		fc = c.idle[n-1]
		c.idle[n-1] = nil
		c.idle = c.idle[:n-1]
	}
	c.mu.Unlock()
	if fc != nil {
		return fc, true, nil
	}
	fc, err = c.dialFramed(ctx)
	return fc, false, err
}

// dialFramed opens a connection of framed calls.
func (c *Client) dialFramed(ctx context.Context) (*framedConn, error) {
	conn, err := c.dialer.DialContext(ctx, "unix", c.socket)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(handshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn.SetDeadline(deadline)
	rw := rawio.ReadWriter(conn)
	fc := &framedConn{conn: conn, rw: rw, br: bufio.NewReaderSize(rw, 16<<10)}
	if _, err := io.WriteString(rw, wire.FramePreface); err != nil {
		conn.Close()
		return nil, fmt.Errorf("framed handshake: %w", err)
	}
	got := make([]byte, len(wire.FramePreface))
	if _, err := io.ReadFull(fc.br, got); err != nil || string(got) != wire.FramePreface {
		conn.Close()
		if strings.HasPrefix(string(got), "HTTP/") {
			// An agent of an earlier release answered as HTTP.
			c.noFramed.Store(true)
			return nil, errNoFramed
		}
		if err == nil {
			err = fmt.Errorf("unexpected answer %q", got)
		}
		return nil, fmt.Errorf("framed handshake: %w", err)
	}
	conn.SetDeadline(time.Time{})
	return fc, nil
}

// putFramed keeps fc for the next call.
func (c *Client) putFramed(fc *framedConn) {
	if cap(fc.wbuf) > maxKeptBuffer {
		fc.wbuf = nil
	}
	if cap(fc.rbuf) > maxKeptBuffer {
		fc.rbuf = nil
	}
	c.mu.Lock()
	if len(c.idle) < maxIdleFramed {
		c.idle = append(c.idle, fc)
		fc = nil
	}
	c.mu.Unlock()
	if fc != nil {
		fc.conn.Close()
	}
}

// closeFramed closes the idle framed connections.
func (c *Client) closeFramed() {
	c.mu.Lock()
	idle := c.idle
	c.idle = nil
	c.mu.Unlock()
	for _, fc := range idle {
		fc.conn.Close()
	}
}
