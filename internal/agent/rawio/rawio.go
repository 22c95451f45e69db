// Package rawio reads and writes non-blocking descriptors that the Go
// runtime's network poller watches (sockets, pipes from os.Pipe), making
// the system calls raw.
//
// Why: every ordinary system call tells the scheduler it enters and leaves
// the kernel, and entering wakes the runtime's monitor thread (sysmon) if
// it sleeps because the process was idle. A sandbox's agent is idle
// between executions and busy for a few hundred microseconds in each, so
// each execution woke sysmon twice, and each wake cost two context
// switches: two thirds of the agent's switches under load. A read or write
// on a non-blocking descriptor does not block, which is what a raw call
// requires; when the descriptor is not ready, the goroutine parks in the
// poller as usual.
package rawio

import (
	"io"
	"os"
	"syscall"
)

// File reads and writes one descriptor; make it with New. Its methods
// have the semantics of the descriptor's own Read and Write, deadlines
// included, but for the error of a closed descriptor, which is the
// runtime's own ("use of closed file"), not os.ErrClosed or net.ErrClosed.
type File struct {
	rc syscall.RawConn
}

// New returns a File for c, such as a *net.UnixConn or an *os.File from
// os.Pipe. c stays the owner of the descriptor: close c, not the File.
func New(c syscall.Conn) (*File, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	return &File{rc: rc}, nil
}

// ReadWriter returns a File for rw when rw has a descriptor (a *net.UnixConn,
// a *net.TCPConn, an *os.File), and rw itself otherwise.
func ReadWriter(rw io.ReadWriter) io.ReadWriter {
	if c, ok := rw.(syscall.Conn); ok {
		if f, err := New(c); err == nil {
			return f
		}
	}
	return rw
}

// Read reads up to len(p) bytes, waiting until some are there; at the end
// it returns 0, io.EOF.
func (f *File) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := f.rc.Read(func(fd uintptr) bool {
		n, errno = ReadFD(fd, p)
		return errno != syscall.EAGAIN
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, os.NewSyscallError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// Write writes all of p, waiting for room as needed; on an error it
// returns how much was written.
func (f *File) Write(p []byte) (int, error) {
	var done int
	var errno syscall.Errno
	err := f.rc.Write(func(fd uintptr) bool {
		for done < len(p) {
			n, e := write(fd, p[done:])
			switch e {
			case 0:
				done += n
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false
			default:
				errno = e
				return true
			}
		}
		return true
	})
	switch {
	case err != nil:
		return done, err
	case errno != 0:
		return done, os.NewSyscallError("write", errno)
	}
	return done, nil
}

// ReadFD reads up to len(p) bytes from the non-blocking descriptor fd, for
// callers that hold a syscall.RawConn themselves; it retries on EINTR and
// returns EAGAIN when nothing is there.
func ReadFD(fd uintptr, p []byte) (int, syscall.Errno) {
	if len(p) == 0 {
		return 0, 0
	}
	for {
		n, errno := read(fd, p)
		if errno != syscall.EINTR {
			return max(n, 0), errno
		}
	}
}
