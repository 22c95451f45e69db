package kernel

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
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
// to one through the pipes the agent handed over (attach), and then signal
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
	// gate parks the readers while a lease holds the pipes.
	gate gate

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
	if p.stdout, err = newCapture(outR, limit, &p.gate); err != nil {
		return nil, err
	}
	if p.stderr, err = newCapture(errR, limit, &p.gate); err != nil {
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
	defer close(p.msgs)
	var buf []byte
	br := bufio.NewReaderSize(p.respR, 4<<10)
	for {
		p.gate.rw.RLock()
		body, err := readFrame(br, buf)
		p.gate.rw.RUnlock()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue // paused (gate.pause); between frames, as no execution runs
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

// gate parks a process's readers while a lease holds its pipes, so that
// the agent and the lease's holder never both read them. A reader reads
// holding rw shared; pause breaks the reads in progress with a deadline in
// the past and takes rw whole.
type gate struct {
	rw     sync.RWMutex
	mu     sync.Mutex // guards paused; held while pausing
	paused bool
}

var longAgo = time.Unix(1, 0)

// pause returns once no reader reads files, nor will until resume.
func (g *gate) pause(files ...*os.File) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.paused {
		return
	}
	for _, f := range files {
		f.SetReadDeadline(longAgo)
	}
	g.rw.Lock()
	for _, f := range files {
		f.SetReadDeadline(time.Time{})
	}
	g.paused = true
}

// resume lets the readers read again.
func (g *gate) resume() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.paused {
		g.paused = false
		g.rw.Unlock()
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
		close(p.stop)
		p.gate.resume() // the readers must see the end of the pipes
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
