package rawio

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// end is a descriptor's owner: an *os.File or a *net.UnixConn.
type end interface {
	syscall.Conn
	io.Closer
}

func pipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

func socketPair(t *testing.T) (r, w *net.UnixConn) {
	t.Helper()
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return s.(*net.UnixConn), c.(*net.UnixConn)
}

func newFile(t *testing.T, c syscall.Conn) *File {
	t.Helper()
	f, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestRoundTrip writes more than a pipe or a socket buffer holds through
// one File and reads it back through another: writes wait for room, reads
// for data, and the end reads as io.EOF.
func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		open func(t *testing.T) (r, w end)
	}{
		{"pipe", func(t *testing.T) (r, w end) { return pipe(t) }},
		{"unix socket", func(t *testing.T) (r, w end) { return socketPair(t) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, w := tt.open(t)
			fr, fw := newFile(t, r), newFile(t, w)
			want := make([]byte, 4<<20)
			rand.Read(want)
			errc := make(chan error, 1)
			go func() {
				n, err := fw.Write(want)
				if err == nil && n != len(want) {
					err = io.ErrShortWrite
				}
				w.Close()
				errc <- err
			}()
			got, err := io.ReadAll(fr)
			if err != nil {
				t.Fatalf("ReadAll: %v", err)
			}
			if err := <-errc; err != nil {
				t.Fatalf("Write: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("read %d bytes, want the %d written", len(got), len(want))
			}
		})
	}
}

// TestDeadlineAndClose: a read honours the descriptor's deadline, and a
// read waiting for data returns when its owner closes the descriptor.
func TestDeadlineAndClose(t *testing.T) {
	r, _ := pipe(t)
	fr := newFile(t, r)
	r.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := fr.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline: %v, want os.ErrDeadlineExceeded", err)
	}
	r.SetReadDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() {
		_, err := fr.Read(make([]byte, 10))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	r.Close()
	select {
	case err := <-errc:
		if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read of a closed pipe: %v, want the error of a closed file", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read still waits after the pipe was closed")
	}
}

// TestWriteToClosedReader reports the kernel's error (EPIPE), with how
// much was written.
func TestWriteToClosedReader(t *testing.T) {
	r, w := pipe(t)
	r.Close()
	n, err := newFile(t, w).Write([]byte("lost"))
	if n != 0 || !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("Write = %d, %v; want 0, EPIPE", n, err)
	}
}

// TestReadFD returns EAGAIN from an empty pipe and the bytes it holds
// otherwise.
func TestReadFD(t *testing.T) {
	r, w := pipe(t)
	rc, err := r.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	read := func() (int, syscall.Errno) {
		var n int
		var errno syscall.Errno
		rc.Control(func(fd uintptr) { n, errno = ReadFD(fd, make([]byte, 8)) })
		return n, errno
	}
	if n, errno := read(); n != 0 || errno != syscall.EAGAIN {
		t.Fatalf("ReadFD of an empty pipe = %d, %v; want 0, EAGAIN", n, errno)
	}
	w.Write([]byte("abc"))
	if n, errno := read(); n != 3 || errno != 0 {
		t.Fatalf("ReadFD = %d, %v; want 3, 0", n, errno)
	}
}
