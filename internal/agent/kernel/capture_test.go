package kernel

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

func mark(id string) string { return markPrefix + id + "\x00" }

const (
	idA = "aaaaaaaaaaaaaaaa"
	idB = "bbbbbbbbbbbbbbbb"
)

// chunked reads its data in pieces of the given sizes, cycling.
type chunked struct {
	data  []byte
	sizes []int
	i     int
}

func (r *chunked) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(r.data), max(1, r.sizes[r.i%len(r.sizes)]))
	r.i++
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

func TestCaptureSplitsAtMarks(t *testing.T) {
	tests := []struct {
		name      string
		stream    string
		limit     int
		want      string
		truncated bool
	}{
		{"plain", "hello\n" + mark(idA), 100, "hello\n", false},
		{"empty", mark(idA), 100, "", false},
		{"stale mark dropped", "a" + mark(idB) + "b" + mark(idA), 100, "ab", false},
		{"NUL bytes kept", "x\x00y\x00" + mark(idA), 100, "x\x00y\x00", false},
		{"prefix without mark", "\x00tidepool:mark:zz\n" + mark(idA), 100, "\x00tidepool:mark:zz\n", false},
		{"truncated", strings.Repeat("x", 50) + mark(idA), 10, strings.Repeat("x", 10), true},
		{"truncated at rune boundary", strings.Repeat("é", 10) + mark(idA), 5, "éé", true},
		{"exactly the limit", "12345" + mark(idA), 5, "12345", false},
	}
	for _, tt := range tests {
		for _, sizes := range [][]int{{1 << 20}, {1}, {2, 3}, {7}, {len(markPrefix)}} {
			c := newCapture(tt.limit)
			done := c.arm(idA, tt.limit)
			c.run(&chunked{data: []byte(tt.stream), sizes: sizes})
			select {
			case out := <-done:
				if string(out.data) != tt.want || out.truncated != tt.truncated {
					t.Errorf("%s, chunks %v: got %q truncated=%v, want %q truncated=%v", tt.name, sizes, out.data, out.truncated, tt.want, tt.truncated)
				}
			default:
				t.Errorf("%s, chunks %v: mark not seen", tt.name, sizes)
			}
		}
	}
}

func TestCaptureKeepsOutputBetweenExecutions(t *testing.T) {
	c := newCapture(100)
	first := c.arm(idA, 100)
	c.run(strings.NewReader("one" + mark(idA) + "late"))
	if out := <-first; string(out.data) != "one" {
		t.Fatalf("first execution: got %q, want %q", out.data, "one")
	}
	// The pipe ended; what came after the mark belongs to the next one.
	if out := c.take(); string(out.data) != "late" {
		t.Errorf("take: got %q, want %q", out.data, "late")
	}
}

func TestCaptureArmTruncatesBufferedOutput(t *testing.T) {
	c := newCapture(100)
	c.mu.Lock()
	c.feedLocked([]byte(strings.Repeat("y", 50)))
	c.mu.Unlock()
	done := c.arm(idA, 10)
	c.mu.Lock()
	c.feedLocked([]byte("z" + mark(idA)))
	c.mu.Unlock()
	out := <-done
	if string(out.data) != strings.Repeat("y", 10) || !out.truncated {
		t.Errorf("got %q truncated=%v, want 10 y's, truncated", out.data, out.truncated)
	}
}

func TestPartialPrefix(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"abc", 0},
		{"abc\x00", 1},
		{"abc\x00tide", 5},
		{"\x00tidepool:mark", len(markPrefix) - 1},
		{"\x00tidepool:mark:", 0}, // the whole prefix is not a proper prefix
		{"\x00tidex", 0},
		{"\x00\x00tid", 4},
	}
	for _, tt := range tests {
		if got := partialPrefix([]byte(tt.in), markPrefix); got != tt.want {
			t.Errorf("partialPrefix(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

// FuzzCapture checks that any chunking of any output followed by a mark
// yields the output, cut at the limit on a rune boundary.
func FuzzCapture(f *testing.F) {
	f.Add([]byte("hello\x00tidepool:"), uint8(3), uint8(20))
	f.Add([]byte("ééé"), uint8(1), uint8(4))
	f.Fuzz(func(t *testing.T, data []byte, chunk, limit uint8) {
		if bytes.Contains(data, []byte(markPrefix)) {
			t.Skip()
		}
		c := newCapture(int(limit))
		done := c.arm(idA, int(limit))
		c.run(&chunked{data: append(bytes.Clone(data), mark(idA)...), sizes: []int{int(chunk)}})
		out := <-done
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
