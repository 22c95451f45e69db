package kernel

import (
	"os"
	"strings"
	"syscall"
	"testing"
)

// TestAttachTakesOnlyPipes: descriptors from a sandbox that are not four
// pipes are refused, and closed.
func TestAttachTakesOnlyPipes(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "not-a-pipe")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pipeFDs := func() []int {
		var fds []int
		for range 2 {
			var p [2]int
			if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
				t.Fatal(err)
			}
			fds = append(fds, p[0], p[1])
		}
		return fds
	}
	for _, tc := range []struct {
		name string
		fds  func() []int
		want string
	}{
		{"three", func() []int { return pipeFDs()[:3] }, "got 3 descriptors"},
		{"a file", func() []int {
			fds := pipeFDs()
			d, err := syscall.Dup(int(f.Fd()))
			if err != nil {
				t.Fatal(err)
			}
			syscall.Close(fds[2])
			fds[2] = d
			return fds
		}, "not a pipe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fds := tc.fds()
			_, err := Attach(RemoteKernel{Lang: "python", FDs: fds, Signal: func(bool) error { return nil }}, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Attach = %v, want %q", err, tc.want)
			}
			for _, fd := range fds {
				var st syscall.Stat_t
				if err := syscall.Fstat(fd, &st); err == nil {
					t.Errorf("descriptor %d left open", fd)
				}
			}
		})
	}
}
