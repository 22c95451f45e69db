package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Framed calls. Besides HTTP/1.1, the agent's socket carries calls framed
// for speed: the hot routes (a kernel execution, /init) go without header
// parsing and without goroutines handing each call along (print(1)
// through the agent: ~160 µs against ~230 µs as HTTP). A connection that starts with
// FramePreface speaks this; the agent answers with the same preface (an
// agent that predates framed calls answers with an HTTP error instead,
// and the client falls back to HTTP).
//
// Then, one call at a time: the client sends a request frame, the agent
// answers with a response frame. A frame is a 4-byte big-endian length,
// then that many bytes:
//
//	request:  METHOD " " PATH "\n" JSON-BODY     (a route of the HTTP API)
//	response: STATUS "\n" JSON-BODY              (what HTTP would have answered)
//
// Only the routes FramedRoute accepts are served this way: those whose
// answers are bounded JSON. Closing the connection during a call cancels
// it, as a client that goes away does on HTTP.

// FramePreface opens a connection of framed calls, in both directions.
const FramePreface = "TIDEPOOL-RPC/1\n"

// MaxFrame bounds a frame: the largest JSON body a route takes (32 MiB)
// or answers (an execution's capped output, escaped), with room to spare.
const MaxFrame = 256 << 20

// maxHead bounds a frame's head line (a method and a path).
const maxHead = 4096

// ErrFrameTooLarge is returned for a frame longer than MaxFrame.
var ErrFrameTooLarge = errors.New("frame too large")

// FramedRoute reports whether method and path may be called over a framed
// connection.
func FramedRoute(method, path string) bool {
	switch method + " " + path {
	case "GET /health", "POST /init", "PUT /identity", "POST /exec":
		return true
	}
	lang, ok := strings.CutPrefix(path, "/kernels/")
	lang, ok2 := strings.CutSuffix(lang, "/execute")
	return method == "POST" && ok && ok2 && lang != "" && !strings.Contains(lang, "/")
}

// AppendFrame appends a frame of head, a newline and body to dst.
func AppendFrame(dst []byte, head string, body []byte) []byte {
	n := len(head) + 1 + len(body)
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst = append(dst, head...)
	dst = append(dst, '\n')
	return append(dst, body...)
}

// ReadFrame reads one frame into buf (grown as needed) and splits it into
// its head line and body.
func ReadFrame(r io.Reader, buf []byte) (head string, body, newBuf []byte, err error) {
	buf, err = ReadSized(r, buf, MaxFrame)
	if err != nil {
		return "", nil, buf, err
	}
	i := bytes.IndexByte(buf[:min(len(buf), maxHead)], '\n')
	if i < 0 {
		return "", nil, buf, errors.New("frame without a head line")
	}
	return string(buf[:i]), buf[i+1:], buf, nil
}

// ReadSized reads a 4-byte big-endian length, at most limit, then that many
// bytes, into buf when it is large enough. The length comes from the other
// side of a trust boundary: past 1 MiB the memory grows as the bytes
// arrive, not as the length claims.
func ReadSized(r io.Reader, buf []byte, limit uint32) ([]byte, error) {
	var n4 [4]byte
	if _, err := io.ReadFull(r, n4[:]); err != nil {
		return buf, err
	}
	n := binary.BigEndian.Uint32(n4[:])
	if n > limit {
		return buf, fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, n)
	}
	var err error
	if int(n) <= max(cap(buf), 1<<20) {
		if cap(buf) < int(n) {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		_, err = io.ReadFull(r, buf)
	} else {
		b := bytes.NewBuffer(buf[:0])
		_, err = io.CopyN(b, r, int64(n))
		buf = b.Bytes()
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return buf, err
}

// ParseStatus parses a response frame's head.
func ParseStatus(head string) (int, error) {
	status, err := strconv.Atoi(head)
	if err != nil || status < 100 || status > 999 {
		return 0, fmt.Errorf("bad status %q", head)
	}
	return status, nil
}
