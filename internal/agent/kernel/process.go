package kernel

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tidepool-dev/tidepool/internal/agent/rawio"
)

// Bounds on waiting for a dying kernel.
const (
	exitWait  = 5 * time.Second // for the process to exit after SIGKILL
	drainWait = time.Second     // for its output pipes to end after it exited
)

// process is one running kernel: the interpreter, its pipes and the
// goroutines that read them. Its methods, but for kill, are called by the
// one goroutine that holds the kernel's slot.
//
// The agent spawns kernels (spawn); a holder of a lease (lease.go) attaches
// to one through the pipes the agent handed over (Attach), and then signal
// goes through the agent.
type process struct {
	lang    string
	pid     int // in the agent's view
	started time.Time
	// signal sends SIGINT to the kernel's process group, or SIGKILL when
	// kill is set.
	signal func(kill bool) error

	req  *os.File // requests, the driver's fd 3
	resp *os.File // responses, the driver's fd 4
	// Raw reads and writes of req and resp (see rawio): the agent is idle
	// between executions.
	reqW  *rawio.File
	respR *rawio.File
	outR  *os.File // the driver's fd 1
	errR  *os.File // the driver's fd 2

	stdout, stderr *capture
	msgs           chan *response // closed when the response pipe ends
	stop           chan struct{}  // closed by kill: readers stop delivering
	exited         chan struct{}  // closed once the process was reaped
	waitErr        error          // why it exited; valid after exited
	readers        sync.WaitGroup // the pipe readers
	// pausing stops the readers at a read deadline (unwatch).
	pausing atomic.Bool
	// filesMu guards the read ends (resp, respR, outR, errR, the
	// captures' files) and held against kill while unwatch and rewatch
	// replace them.
	filesMu sync.Mutex
	// held are the read ends' descriptors while a lease holds the kernel
	// (unwatch), out of the runtime's poller; nil otherwise.
	held []int

	// envGen is the generation of Manager.env the kernel has; touched only
	// by the slot's holder.
	envGen uint64

	// expected is set before the manager kills the kernel on purpose.
	expected atomic.Bool
	killOnce sync.Once
	exitOnce sync.Once
}

// spawn starts argv with the driver's descriptors; the kernel is not ready
// until the driver answers init (Manager.start does that).
func spawn(lang string, argv []string, dir string, env []string, limit int) (p *process, retErr error) {
	var files []*os.File // every pipe end, closed on failure
	defer func() {
		if retErr != nil {
			for _, f := range files {
				f.Close()
			}
		}
	}()
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err == nil {
			files = append(files, r, w)
		}
		return r, w, err
	}
	reqR, reqW, err := pipe()
	if err != nil {
		return nil, err
	}
	respR, respW, err := pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := pipe()
	if err != nil {
		return nil, err
	}

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout = outW
	cmd.Stderr = errW
	cmd.ExtraFiles = []*os.File{reqR, respW} // fds 3 and 4
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	// The child has its ends; ours would keep the pipes open past its exit.
	for _, f := range []*os.File{reqR, respW, outW, errW} {
		f.Close()
	}
	signal := func(kill bool) error {
		if !kill {
			return signalGroup(cmd.Process, interruptSignal)
		}
		err := signalGroup(cmd.Process, killSignal)
		_ = cmd.Process.Kill()
		return err
	}
	p, err = newProcess(lang, cmd.Process.Pid, signal, reqW, respR, outR, errR, limit)
	if err != nil {
		// Unreachable for pipes from os.Pipe; do not leave the child.
		_ = signal(true)
		_ = cmd.Wait()
		return nil, err
	}
	go func() {
		err := cmd.Wait()
		p.exit(err)
	}()
	p.startReaders()
	return p, nil
}

// newProcess makes a process of a kernel's pipes: req is the write end of
// its requests, the others the read ends of its responses, stdout and
// stderr. Call startReaders next.
func newProcess(lang string, pid int, signal func(bool) error, req, resp, outR, errR *os.File, limit int) (*process, error) {
	reqRaw, err := rawio.New(req)
	if err != nil {
		return nil, err
	}
	respRaw, err := rawio.New(resp)
	if err != nil {
		return nil, err
	}
	p := &process{
		lang:    lang,
		pid:     pid,
		started: time.Now(),
		signal:  signal,
		req:     req,
		resp:    resp,
		reqW:    reqRaw,
		respR:   respRaw,
		outR:    outR,
		errR:    errR,
		msgs:    make(chan *response, 4),
		stop:    make(chan struct{}),
		exited:  make(chan struct{}),
	}
	if p.stdout, err = newCapture(outR, limit, &p.pausing); err != nil {
		return nil, err
	}
	if p.stderr, err = newCapture(errR, limit, &p.pausing); err != nil {
		return nil, err
	}
	return p, nil
}

// startReaders starts the goroutines that read the response and output
// pipes.
func (p *process) startReaders() {
	p.readers.Add(3)
	go func() { defer p.readers.Done(); p.stdout.run() }()
	go func() { defer p.readers.Done(); p.stderr.run() }()
	go func() { defer p.readers.Done(); p.readResponses() }()
}

// exit records that the kernel ended, and why; later calls do nothing.
func (p *process) exit(err error) {
	p.exitOnce.Do(func() {
		p.waitErr = err
		close(p.exited)
	})
}

func (p *process) readResponses() {
	ended := true
	defer func() {
		if ended {
			close(p.msgs)
		}
	}()
	var buf []byte
	br := bufio.NewReaderSize(p.respR, 4<<10)
	for {
		body, err := readFrame(br, buf)
		if errors.Is(err, os.ErrDeadlineExceeded) && p.pausing.Load() {
			// unwatch: between frames, as no execution runs.
			ended = false
			return
		}
		if err != nil {
			return
		}
		buf = body
		msg := new(response)
		if err := json.Unmarshal(body, msg); err != nil {
			return // the kernel is unusable; the holder sees msgs closed
		}
		select {
		case p.msgs <- msg:
		case <-p.stop:
			return
		}
	}
}

// unwatch stops the readers and takes the read ends out of the runtime's
// poller, keeping them open as plain descriptors (held): while a lease
// holds the kernel, its writes must not wake the agent (a poller wakes for
// every write to a pipe it watches, whoever reads it). rewatch undoes it.
func (p *process) unwatch() error {
	p.filesMu.Lock()
	defer p.filesMu.Unlock()
	select {
	case <-p.stop:
		return errors.New("the kernel was killed")
	default:
	}
	files := []*os.File{p.resp, p.outR, p.errR}
	p.pausing.Store(true)
	for _, f := range files {
		f.SetReadDeadline(longAgo)
	}
	p.readers.Wait()
	p.pausing.Store(false)
	var held []int
	err := withFDs(files, func(fds []int) error {
		for _, fd := range fds {
			d, err := dupCloexec(fd)
			if err != nil {
				closeFDs(held)
				return err
			}
			held = append(held, d)
		}
		return nil
	})
	if err != nil {
		p.rewatchLocked(nil)
		return fmt.Errorf("hold the kernel's pipes: %w", err)
	}
	for _, f := range files {
		f.Close() // deregisters it from the poller
	}
	p.held = held
	return nil
}

// withHeld calls fn with the descriptors of the request pipe and the held
// read ends, which stay open until fn returns.
func (p *process) withHeld(fn func(fds []int) error) error {
	p.filesMu.Lock()
	defer p.filesMu.Unlock()
	if p.held == nil {
		return errors.New("the kernel's pipes are closed")
	}
	return withFDs([]*os.File{p.req}, func(req []int) error {
		return fn(append(req, p.held...))
	})
}

// rewatch ends unwatch: the read ends go back to the poller and the
// readers start again. A killed kernel stays as it is.
func (p *process) rewatch() {
	p.filesMu.Lock()
	defer p.filesMu.Unlock()
	select {
	case <-p.stop:
		return
	default:
	}
	p.rewatchLocked(p.held)
	p.held = nil
}

func (p *process) rewatchLocked(held []int) {
	if held != nil {
		files := make([]*os.File, len(held))
		for i, fd := range held {
			syscall.SetNonblock(fd, true) // os.NewFile polls non-blocking descriptors
			files[i] = os.NewFile(uintptr(fd), fmt.Sprintf("%s-kernel-%d", p.lang, i))
		}
		p.resp, p.outR, p.errR = files[0], files[1], files[2]
		p.respR, _ = rawio.New(p.resp) // cannot fail: an *os.File
		p.stdout.setFile(p.outR)
		p.stderr.setFile(p.errR)
	} else {
		for _, f := range []*os.File{p.resp, p.outR, p.errR} {
			f.SetReadDeadline(time.Time{})
		}
	}
	p.startReaders()
}

var longAgo = time.Unix(1, 0)

// withFDs calls fn with the descriptors of files, which stay open (are
// not closed concurrently) until fn returns.
func withFDs(files []*os.File, fn func(fds []int) error) error {
	fds := make([]int, 0, len(files))
	var call func(i int) error
	call = func(i int) error {
		if i == len(files) {
			return fn(fds)
		}
		rc, err := files[i].SyscallConn()
		if err != nil {
			return err
		}
		var ferr error
		if err := rc.Control(func(fd uintptr) {
			fds = append(fds, int(fd))
			ferr = call(i + 1)
		}); err != nil {
			return fmt.Errorf("%s: %w", files[i].Name(), err)
		}
		return ferr
	}
	return call(0)
}

func dupCloexec(fd int) (int, error) {
	d, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
	if errno != 0 {
		return -1, os.NewSyscallError("fcntl", errno)
	}
	return int(d), nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		syscall.Close(fd)
	}
}

// send writes one request frame, giving up at deadline.
func (p *process) send(msg request, deadline time.Time) error {
	frame, err := encodeFrame(msg)
	if err != nil {
		return err
	}
	p.req.SetWriteDeadline(deadline)
	_, err = p.reqW.Write(frame)
	return err
}

// interrupt sends SIGINT to the kernel's process group.
func (p *process) interrupt() error {
	return p.signal(false)
}

// kill ends the kernel and its process group, waits for it, and releases
// its pipes and goroutines. Safe to call more than once, from any
// goroutine, and after the kernel exited by itself.
func (p *process) kill() {
	p.killOnce.Do(func() {
		p.filesMu.Lock()
		close(p.stop)
		held := p.held
		p.held = nil
		p.filesMu.Unlock()
		closeFDs(held) // a leased kernel's: its readers are stopped
		_ = p.signal(true)
		select {
		case <-p.exited:
		case <-time.After(exitWait):
		}
		p.req.Close()
		// Let the readers take what the kernel wrote before it died; a
		// process that left the group may hold the pipes open, so do not
		// wait for their end for long.
		done := make(chan struct{})
		go func() { p.readers.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(drainWait):
		}
		p.resp.Close()
		p.outR.Close()
		p.errR.Close()
		<-done
	})
}

// exitReason describes how the kernel ended, once it has.
func (p *process) exitReason() string {
	select {
	case <-p.exited:
	default:
		return "still running"
	}
	if p.waitErr == nil {
		return "exit status 0"
	}
	return p.waitErr.Error() // an *exec.ExitError says "exit status 1", "signal: killed"
}
