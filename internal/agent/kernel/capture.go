package kernel

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unicode/utf8"

	"github.com/tidepool-dev/tidepool/internal/agent/rawio"
)

// output is what one stream produced for one execution.
type output struct {
	data      []byte
	truncated bool
}

// capture reads one of a kernel's output pipes for the kernel's lifetime
// and keeps, per execution, at most limit bytes of it.
//
// An execution's output ends where the pipe stood when the driver sent its
// answer (protocol.go): the driver's own writes, and those of the
// subprocesses it waited for, were complete by then. So the executing
// goroutine, once it has the answer, drains the pipe itself (drain) rather
// than waiting for the reader goroutine. For that to be exact, a read and
// the append of what it returned happen under mu, in both places.
type capture struct {
	f   *os.File
	raw syscall.RawConn
	// pausing makes run return at a read deadline (process.unwatch).
	pausing *atomic.Bool

	// mu guards the fields that follow.
	mu        sync.Mutex
	buf       []byte // output since the last take
	truncated bool   // buf lost bytes to the limit
	limit     int
	ended     bool // the pipe is at its end (or failed)
}

func newCapture(f *os.File, limit int, pausing *atomic.Bool) (*capture, error) {
	c := &capture{pausing: pausing, limit: limit}
	return c, c.setFile(f)
}

// setFile makes c read f; no reader may run.
func (c *capture) setFile(f *os.File) error {
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	c.f, c.raw = f, raw
	return nil
}

// run reads the pipe until it ends or is closed.
func (c *capture) run() {
	for {
		err := c.raw.Read(func(fd uintptr) bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.readLocked(fd, -1)
		})
		c.mu.Lock()
		ended := c.ended
		c.mu.Unlock()
		if errors.Is(err, os.ErrDeadlineExceeded) && c.pausing.Load() {
			return // process.unwatch
		}
		if err != nil || ended {
			return
		}
	}
}

// chunks are read buffers, shared: a server holding many leased kernels
// (lease.go) should not keep one per pipe.
var chunks = sync.Pool{New: func() any { return new([64 << 10]byte) }}

// readLocked reads what the pipe holds now, up to max bytes when max is
// not negative; it returns false when the pipe is empty (or max was read)
// but open, true when it ended or failed.
func (c *capture) readLocked(fd uintptr, max int) bool {
	if c.ended {
		return true
	}
	chunk := chunks.Get().(*[64 << 10]byte)
	defer chunks.Put(chunk)
	for read := 0; max < 0 || read < max; {
		n, errno := rawio.ReadFD(fd, chunk[:])
		if n > 0 {
			c.appendLocked(chunk[:n])
			read += n
			continue
		}
		if errno == syscall.EAGAIN {
			return false
		}
		c.ended = true // n == 0: the end; or a real error
		return true
	}
	return false
}

// arm starts an execution with the given output limit. Output already
// buffered (written between executions) counts.
func (c *capture) arm(limit int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.limit = limit
	if len(c.buf) > limit {
		c.buf = trimPartialRune(c.buf[:limit])
		c.truncated = true
	}
}

// maxPipe bounds what a pipe can hold (fs.pipe-max-size, 1 MiB by default).
const maxPipe = 1 << 20

// drain reads what the pipe holds now and returns the output since the
// last take, starting afresh. It reads no more than a pipe can hold: more
// was written after the answer, by something still running (a background
// process writing without end must not keep drain reading).
func (c *capture) drain() output {
	// Control fails only once the file is closed: then take what is kept.
	_ = c.raw.Control(func(fd uintptr) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.readLocked(fd, maxPipe)
	})
	return c.take()
}

// take returns what the stream holds and starts afresh, without reading.
func (c *capture) take() output {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := output{data: c.buf, truncated: c.truncated}
	c.buf, c.truncated = nil, false
	return out
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
