package kernel

import (
	"bufio"
	"encoding/json"
	"fmt"
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
type process struct {
	lang    string
	cmd     *exec.Cmd
	pid     int
	started time.Time

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

	// envGen is the generation of Manager.env the kernel has; touched only
	// by the slot's holder.
	envGen uint64

	// expected is set before the manager kills the kernel on purpose.
	expected atomic.Bool
	killOnce sync.Once
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

	reqRaw, err := rawio.New(reqW)
	if err != nil {
		return nil, err
	}
	respRaw, err := rawio.New(respR)
	if err != nil {
		return nil, err
	}
	stdout, err := newCapture(outR, limit)
	if err != nil {
		return nil, err
	}
	stderr, err := newCapture(errR, limit)
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

	p = &process{
		lang:    lang,
		cmd:     cmd,
		pid:     cmd.Process.Pid,
		started: time.Now(),
		req:     reqW,
		resp:    respR,
		reqW:    reqRaw,
		respR:   respRaw,
		outR:    outR,
		errR:    errR,
		stdout:  stdout,
		stderr:  stderr,
		msgs:    make(chan *response, 4),
		stop:    make(chan struct{}),
		exited:  make(chan struct{}),
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	p.readers.Add(3)
	go func() { defer p.readers.Done(); p.stdout.run() }()
	go func() { defer p.readers.Done(); p.stderr.run() }()
	go func() { defer p.readers.Done(); p.readResponses() }()
	return p, nil
}

func (p *process) readResponses() {
	defer close(p.msgs)
	var buf []byte
	br := bufio.NewReaderSize(p.respR, 16<<10)
	for {
		body, err := readFrame(br, buf)
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
	return signalGroup(p.cmd.Process, interruptSignal)
}

// kill ends the kernel and its process group, waits for it, and releases
// its pipes and goroutines. Safe to call more than once, from any
// goroutine, and after the kernel exited by itself.
func (p *process) kill() {
	p.killOnce.Do(func() {
		close(p.stop)
		_ = signalGroup(p.cmd.Process, killSignal)
		_ = p.cmd.Process.Kill()
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
	if ee, ok := p.waitErr.(*exec.ExitError); ok {
		return ee.ProcessState.String()
	}
	return fmt.Sprint(p.waitErr)
}
