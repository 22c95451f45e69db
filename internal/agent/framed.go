package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tidepool-dev/tidepool/internal/agent/rawio"
	"github.com/tidepool-dev/tidepool/internal/agent/wire"
)

// prefaceTimeout bounds how long a new connection may take to send its
// first bytes (the framed preface or an HTTP request line).
const prefaceTimeout = 30 * time.Second

// splitListener hands the HTTP connections of ln to Accept and serves the
// framed ones (wire.FramePreface) itself.
type splitListener struct {
	net.Listener
	s     *Server
	ctx   context.Context
	conns chan net.Conn
	done  chan struct{} // closed when the accept loop ends
	err   error         // why; valid after done

	mu  sync.Mutex
	own map[net.Conn]struct{} // connections being sorted or serving framed calls
	wg  sync.WaitGroup        // their goroutines
}

func (s *Server) splitListener(ctx context.Context, ln net.Listener) *splitListener {
	l := &splitListener{Listener: ln, s: s, ctx: ctx, conns: make(chan net.Conn), done: make(chan struct{}),
		own: map[net.Conn]struct{}{}}
	go l.acceptLoop()
	return l
}

func (l *splitListener) acceptLoop() {
	defer close(l.done)
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			l.err = err
			return
		}
		l.mu.Lock()
		l.own[c] = struct{}{}
		l.mu.Unlock()
		l.wg.Add(1)
		go l.sort(c)
	}
}

// sort reads the start of c and routes it.
func (l *splitListener) sort(c net.Conn) {
	defer l.wg.Done()
	disown := func() {
		l.mu.Lock()
		delete(l.own, c)
		l.mu.Unlock()
	}
	head := make([]byte, len(wire.FramePreface))
	c.SetReadDeadline(time.Now().Add(prefaceTimeout))
	n, err := io.ReadFull(c, head)
	c.SetReadDeadline(time.Time{})
	if err == nil && string(head) == wire.FramePreface {
		l.serveFramed(c)
		disown()
		c.Close()
		return
	}
	disown()
	if n == 0 && err != nil {
		c.Close() // nothing sent: nothing to answer
		return
	}
	// HTTP (or garbage, which the HTTP server answers): give it the
	// bytes read.
	select {
	case l.conns <- &prefixConn{Conn: c, prefix: head[:n]}:
	case <-l.done:
		c.Close()
	}
}

func (l *splitListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, l.err
	}
}

// closeFramed closes every framed connection (cancelling their calls), and
// those not yet sorted, and waits for their goroutines.
func (l *splitListener) closeFramed() {
	l.mu.Lock()
	for c := range l.own {
		c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// prefixConn is a connection whose first bytes were read already.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// serveFramed answers the calls on c, one at a time, until c ends.
func (l *splitListener) serveFramed(c net.Conn) {
	// Raw reads and writes: calls to an idle agent then do not wake its
	// runtime's monitor thread (see rawio).
	rw := rawio.ReadWriter(c)
	if _, err := io.WriteString(rw, wire.FramePreface); err != nil {
		return
	}
	br := bufio.NewReaderSize(rw, 16<<10)
	// One goroutine runs the calls, so that its stack, grown by the
	// first, serves the next ones; this one reads the next frame
	// meanwhile, and cancels the call in progress if the client leaves.
	type call struct {
		ctx  context.Context
		head string
		body []byte
		done chan struct{}
	}
	calls := make(chan call)
	defer close(calls)
	go func() {
		for cl := range calls {
			if !l.s.serveCall(cl.ctx, rw, cl.head, cl.body) {
				c.Close() // the answer could not be sent whole
			}
			close(cl.done)
		}
	}()
	abort, done := context.CancelFunc(func() {}), make(chan struct{})
	close(done)
	for {
		// Each frame gets its own buffer: the call in progress owns the
		// last one.
		head, body, _, err := wire.ReadFrame(br, nil)
		if err != nil {
			// The client closed the connection (or broke the protocol):
			// a call still running is abandoned, as on HTTP.
			abort()
			<-done
			return
		}
		<-done // a client that did not wait for the answer: calls stay in order
		abort()
		if lang := leaseLang(head); lang != "" {
			// The connection carries the lease from now on.
			l.s.serveLease(l.ctx, c, br, rw, lang)
			return
		}
		ctx, cancel := context.WithCancel(l.ctx)
		abort, done = cancel, make(chan struct{})
		calls <- call{ctx: ctx, head: head, body: body, done: done}
	}
}

// serveCall runs one framed call through the HTTP handler and writes its
// answer; it reports whether the answer was sent.
func (s *Server) serveCall(ctx context.Context, c io.Writer, head string, body []byte) (sent bool) {
	w := &frameWriter{header: http.Header{}}
	method, path, ok := strings.Cut(head, " ")
	switch {
	case !ok || !wire.FramedRoute(method, path):
		s.writeFrameError(w, errorf(http.StatusNotFound, wire.CodeNotFound, "no framed route for %q", head))
	default:
		r, err := http.NewRequestWithContext(ctx, method, "http://agent"+path, bytes.NewReader(body))
		if err != nil {
			s.writeFrameError(w, errorf(http.StatusBadRequest, wire.CodeInvalidRequest, "bad call %q: %v", head, err))
			break
		}
		r.RemoteAddr = "framed"
		r.Header.Set("Content-Type", "application/json")
		defer func() {
			// The recoverer re-panics with ErrAbortHandler when an answer
			// had begun; here that ends this connection, not the agent.
			if v := recover(); v != nil {
				if v != http.ErrAbortHandler {
					panic(v)
				}
				sent = false
			}
		}()
		s.handler.ServeHTTP(w, r)
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	frame := wire.AppendFrame(make([]byte, 0, 4+4+w.body.Len()), strconv.Itoa(w.status), w.body.Bytes())
	_, err := c.Write(frame)
	return err == nil
}

func (s *Server) writeFrameError(w *frameWriter, err *apiError) {
	s.log.Debug("framed call refused", "code", err.code, "message", err.msg)
	writeJSON(w, err.status, wire.ErrorResponse{Error: wire.ErrorBody{Code: err.code, Message: err.msg}})
}

// frameWriter keeps a framed call's answer in memory: the framed routes
// answer bounded JSON.
type frameWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *frameWriter) Header() http.Header { return w.header }

func (w *frameWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *frameWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}
