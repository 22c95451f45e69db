package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	var stream []byte
	stream = AppendFrame(stream, "POST /init", []byte(`{"identifier":"x"}`))
	stream = AppendFrame(stream, "200", nil)
	r := bytes.NewReader(stream)
	for _, want := range []struct{ head, body string }{{"POST /init", `{"identifier":"x"}`}, {"200", ""}} {
		head, body, _, err := ReadFrame(r, nil)
		if err != nil || head != want.head || string(body) != want.body {
			t.Errorf("ReadFrame = %q %q %v, want %q %q", head, body, err, want.head, want.body)
		}
	}
	if _, _, _, err := ReadFrame(r, nil); err != io.EOF {
		t.Errorf("at the end: %v, want EOF", err)
	}
}

func TestReadFrameRefuses(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"too large", []byte{0xff, 0xff, 0xff, 0xff}, ErrFrameTooLarge},
		{"cut short", []byte{0, 0, 0, 9, 'a'}, io.ErrUnexpectedEOF},
		{"no head line", []byte{0, 0, 0, 2, 'a', 'b'}, nil},
	}
	for _, tt := range tests {
		_, _, _, err := ReadFrame(bytes.NewReader(tt.in), nil)
		if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("%s: err %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestFramedRoute(t *testing.T) {
	for _, tt := range []struct {
		method, path string
		want         bool
	}{
		{"GET", "/health", true},
		{"POST", "/init", true},
		{"PUT", "/identity", true},
		{"POST", "/exec", true},
		{"POST", "/kernels/python/execute", true},
		{"POST", "/kernels/node/execute", true},
		{"GET", "/kernels/python/execute", false},
		{"POST", "/kernels//execute", false},
		{"POST", "/kernels/a/b/execute", false},
		{"POST", "/exec?stream=sse", false},
		{"GET", "/files/content", false},
		{"GET", "/proxy/", false},
	} {
		if got := FramedRoute(tt.method, tt.path); got != tt.want {
			t.Errorf("FramedRoute(%s, %s) = %v, want %v", tt.method, tt.path, got, tt.want)
		}
	}
}

// FuzzReadFrame: frames come from the other side of a trust boundary (the
// agent runs in the sandbox); any input gives a frame or an error.
func FuzzReadFrame(f *testing.F) {
	f.Add(AppendFrame(nil, "200", []byte(`{"ok":true}`)))
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		head, body, _, err := ReadFrame(bytes.NewReader(in), nil)
		if err != nil {
			return
		}
		if back := AppendFrame(nil, head, body); !bytes.HasPrefix(in, back) {
			t.Fatalf("frame %q %q does not encode back to the input's start", head, body)
		}
		ParseStatus(head)
	})
}
