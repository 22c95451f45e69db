package kernel

import (
	"bytes"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

// newPipeCapture returns a capture reading a new pipe, with its reader
// running, and the pipe's write end.
func newPipeCapture(t testing.TB, limit int) (*capture, *os.File) {
	c, w, _ := newPipeCaptureDone(t, limit)
	return c, w
}

// newPipeCaptureDone is newPipeCapture, with a channel closed when the
// reader returns.
func newPipeCaptureDone(t testing.TB, limit int) (*capture, *os.File, <-chan struct{}) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	c, err := newCapture(r, limit, new(atomic.Bool))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { c.run(); close(done) }()
	t.Cleanup(func() {
		w.Close()
		<-done
		r.Close()
	})
	return c, w, done
}

// writeChunks writes data to w in pieces of the given size.
func writeChunks(t testing.TB, w *os.File, data []byte, size int) {
	t.Helper()
	size = max(size, 1)
	for len(data) > 0 {
		n := min(size, len(data))
		if _, err := w.Write(data[:n]); err != nil {
			t.Fatal(err)
		}
		data = data[n:]
	}
}

func TestCaptureDrain(t *testing.T) {
	tests := []struct {
		name      string
		stream    string
		limit     int
		want      string
		truncated bool
	}{
		{"plain", "hello\n", 100, "hello\n", false},
		{"empty", "", 100, "", false},
		{"NUL bytes kept", "x\x00y\x00", 100, "x\x00y\x00", false},
		{"truncated", strings.Repeat("x", 50), 10, strings.Repeat("x", 10), true},
		{"truncated at rune boundary", strings.Repeat("é", 10), 5, "éé", true},
		{"exactly the limit", "12345", 5, "12345", false},
		{"more than a pipe holds", strings.Repeat("0123456789", 20000), 1 << 20, strings.Repeat("0123456789", 20000), false},
	}
	for _, tt := range tests {
		for _, size := range []int{1 << 20, 1, 3} {
			if size == 1 && len(tt.stream) > 1000 {
				continue
			}
			c, w := newPipeCapture(t, tt.limit)
			c.arm(tt.limit)
			writeChunks(t, w, []byte(tt.stream), size)
			// What was written before drain is in its answer, whether
			// the reader took it already or not.
			out := c.drain()
			if string(out.data) != tt.want || out.truncated != tt.truncated {
				t.Errorf("%s, chunks of %d: got %d bytes %.40q truncated=%v, want %d bytes %.40q truncated=%v",
					tt.name, size, len(out.data), out.data, out.truncated, len(tt.want), tt.want, tt.truncated)
			}
		}
	}
}

func TestCaptureStartsAfreshAfterDrain(t *testing.T) {
	c, w := newPipeCapture(t, 100)
	c.arm(100)
	writeChunks(t, w, []byte("one"), 10)
	if out := c.drain(); string(out.data) != "one" {
		t.Fatalf("first execution: got %q, want %q", out.data, "one")
	}
	// Output between executions belongs to the next one.
	writeChunks(t, w, []byte("late"), 10)
	c.arm(100)
	writeChunks(t, w, []byte("two"), 10)
	if out := c.drain(); string(out.data) != "latetwo" {
		t.Errorf("second execution: got %q, want %q", out.data, "latetwo")
	}
}

func TestCaptureArmTruncatesBufferedOutput(t *testing.T) {
	c, w := newPipeCapture(t, 100)
	c.mu.Lock() // output of the last execution's background work
	c.appendLocked([]byte(strings.Repeat("y", 50)))
	c.mu.Unlock()
	c.arm(10)
	writeChunks(t, w, []byte("z"), 1)
	out := c.drain()
	if string(out.data) != strings.Repeat("y", 10) || !out.truncated {
		t.Errorf("got %q truncated=%v, want 10 y's, truncated", out.data, out.truncated)
	}
}

func TestCaptureEnds(t *testing.T) {
	c, w, done := newPipeCaptureDone(t, 100)
	writeChunks(t, w, []byte("last words"), 100)
	w.Close()
	<-done // the reader stops at the end of the pipe...
	if out := c.drain(); string(out.data) != "last words" {
		t.Errorf("after the end: got %q, want %q", out.data, "last words") // ...having kept it all
	}
}

// FuzzCapture checks that any output, written in any chunks, is what a
// drain returns, cut at the limit on a rune boundary.
func FuzzCapture(f *testing.F) {
	f.Add([]byte("hello\x00tidepool:"), uint8(3), uint8(20))
	f.Add([]byte("ééé"), uint8(1), uint8(4))
	f.Fuzz(func(t *testing.T, data []byte, chunk, limit uint8) {
		c, w := newPipeCapture(t, int(limit))
		c.arm(int(limit))
		writeChunks(t, w, data, int(chunk))
		out := c.drain()
		want := data
		if len(want) > int(limit) {
			want = trimPartialRune(want[:limit])
		}
		if !bytes.Equal(out.data, want) || out.truncated != (len(data) > int(limit)) {
			t.Fatalf("got %q truncated=%v, want %q", out.data, out.truncated, want)
		}
		if utf8.Valid(data) && !utf8.Valid(out.data) {
			t.Fatalf("valid UTF-8 %q cut into invalid %q", data, out.data)
		}
	})
}

// A stream that never runs dry (a background process writing without
// end) does not keep drain reading: it reads what a pipe can hold, and
// returns. /dev/zero stands for the endless writer.
func TestCaptureDrainIsBounded(t *testing.T) {
	f, err := os.Open("/dev/zero")
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	defer f.Close()
	c, err := newCapture(f, 10, new(atomic.Bool))
	if err != nil {
		t.Fatal(err)
	}
	c.arm(10)
	done := make(chan output, 1)
	go func() { done <- c.drain() }()
	select {
	case out := <-done:
		if len(out.data) != 10 || !out.truncated {
			t.Errorf("drain = %d bytes, truncated %v; want 10, truncated", len(out.data), out.truncated)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("drain kept reading a stream that never runs dry")
	}
}
