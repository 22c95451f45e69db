package kernel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"sync"
	"syscall"

	"github.com/tidepool-dev/tidepool/internal/agent/wire"
)

// Leases. An execution through the agent crosses three processes (the
// server, the agent, the kernel) and wakes each twice; on a busy host the
// agent's hop costs about as much as the kernel's own work. A lease takes
// the agent out of that path: the agent hands the kernel's four pipes over
// (over its unix socket, as SCM_RIGHTS), and the holder writes requests
// and reads answers and output itself, with the same code the agent uses.
// The agent keeps the kernel's process: it interrupts and kills it when
// the holder asks, and tells the holder when it ends.
//
// While the lease lasts, the Manager's readers of the pipes are stopped,
// the read ends are out of the agent's poller (process.unwatch), and its
// slot is held, so no execution of the agent's own can interleave. When
// the holder goes away without releasing (a server killed during an
// execution), the agent takes the pipes back as they are: the
// answer to the execution in flight, when it comes, is skipped (its ID is
// not the next execution's), and its output goes to the next execution,
// like output written between executions.

// Lease is a kernel handed over by its Manager (Manager.Lease).
type Lease struct {
	m    *Manager
	s    *slot
	p    *process
	lost bool
	env  map[string]string
	out  [2]output
	done chan struct{} // closed by Release

	revokeOnce sync.Once
	revoked    chan struct{}
}

// Lease hands lang's kernel over, starting it if needed, after the
// executions queued before it; the Manager neither reads its pipes nor
// runs executions on it until Release. The SetEnv overlay the kernel has
// not applied yet is the holder's to send (Env).
//
// A kernel has one holder: the server of its sandbox. A call for the
// kernel while it is leased (a Lease, an Execute) means that holder is
// gone or stale (a server that restarted, while the old one's connection
// lingers), so it revokes the lease (Revoked) and waits for its Release.
func (m *Manager) Lease(ctx context.Context, lang string) (*Lease, error) {
	s, err := m.take(ctx, lang)
	if err != nil {
		return nil, err
	}
	defer m.wg.Done()
	p, restarted, err := m.ensure(ctx, s)
	if err != nil {
		s.release()
		return nil, err
	}
	// The holder sends the SetEnv overlay the kernel lacks with its first
	// execution. Whether it did is unknown here, so the kernel's
	// generation stays: the overlay goes again with the next execution
	// or lease after this one (applying it twice changes nothing).
	m.mu.Lock()
	var env map[string]string
	if p.envGen != m.envGen {
		env = maps.Clone(m.env)
	}
	m.mu.Unlock()
	if err := p.unwatch(); err != nil {
		p.kill()
		m.lose(s, p, fateDied)
		return nil, fmt.Errorf("lease the %s kernel: %w", lang, err)
	}
	l := &Lease{m: m, s: s, p: p, lost: restarted, env: env, done: make(chan struct{}), revoked: make(chan struct{})}
	m.mu.Lock()
	s.lost = false // the holder reports it
	s.lease = l
	if s.waiting > 0 {
		l.revoke() // a caller came while this one waited or started
	}
	m.mu.Unlock()
	l.out[0], l.out[1] = p.stdout.take(), p.stderr.take()
	return l, nil
}

// WithFDs calls fn with the descriptors of the kernel's pipes, in the
// order Attach takes them: the write end of its requests, and the read
// ends of its answers, stdout and stderr. They stay open until fn returns,
// and stay the Manager's: send them, do not close them.
func (l *Lease) WithFDs(fn func(fds []int) error) error { return l.p.withHeld(fn) }

// Env is the SetEnv overlay the kernel has not applied, which the holder's
// first execution carries; nil when there is none.
func (l *Lease) Env() map[string]string { return l.env }

// PID is the kernel's process ID, in the agent's view.
func (l *Lease) PID() int { return l.p.pid }

// Lost reports that the kernel was restarted since an execution last ran
// on it: the holder's first result says Restarted.
func (l *Lease) Lost() bool { return l.lost }

// Pending is the output the kernel wrote since its last execution (a
// background thread's), which belongs to the holder's first.
func (l *Lease) Pending() (stdout, stderr string) {
	return string(l.out[0].data), string(l.out[1].data)
}

// revoke asks the holder to end the lease.
func (l *Lease) revoke() { l.revokeOnce.Do(func() { close(l.revoked) }) }

// Revoked is closed when another caller wants the kernel: end the lease
// and Release it.
func (l *Lease) Revoked() <-chan struct{} { return l.revoked }

// Exited is closed when the kernel has ended.
func (l *Lease) Exited() <-chan struct{} { return l.p.exited }

// ExitReason says how the kernel ended, once Exited is closed.
func (l *Lease) ExitReason() string { return l.p.exitReason() }

// Interrupt sends SIGINT to the kernel's process group.
func (l *Lease) Interrupt() error { return l.p.interrupt() }

// Kill kills the kernel; Exited is closed when it returns, or soon after
// when it would not die.
func (l *Lease) Kill() {
	l.p.expected.Store(true)
	l.p.kill()
}

// Release hands the kernel back: the Manager reads its pipes again, or
// restarts it in the background when it ended. Later calls do nothing.
func (l *Lease) Release() {
	select {
	case <-l.done:
		return
	default:
		close(l.done)
	}
	l.m.mu.Lock()
	if l.s.lease == l {
		l.s.lease = nil
	}
	l.m.mu.Unlock()
	select {
	case <-l.p.exited:
		// Died or killed, the holder may not have run an execution on it
		// since (the holder finishes off a kernel that broke off an
		// answer): the next one says Restarted.
		l.p.kill() // releases the pipes; bounded
		l.m.lose(l.s, l.p, fateDied)
		return
	default:
	}
	l.p.rewatch()
	l.s.release()
}

// Remote drives a kernel leased from its agent, through the pipes the
// agent handed over. One execution at a time: its methods, but for Ended
// and Close, must not be called concurrently.
type Remote struct {
	p    *process
	opts Options
	log  *slog.Logger
	lost bool
	env  map[string]string // for the next execution
}

// RemoteKernel is what Attach needs of a leased kernel besides its pipes.
type RemoteKernel struct {
	Lang string
	PID  int
	// FDs are the descriptors Lease.WithFDs gave, as received; Attach
	// owns them, also when it fails.
	FDs []int
	// Lost, Env and the pending output are the Lease's.
	Lost           bool
	Env            map[string]string
	Stdout, Stderr string
	// Signal asks the agent to send SIGINT to the kernel's process group,
	// or to kill it when kill is set.
	Signal func(kill bool) error
}

// Attach drives the leased kernel k. opts' DefaultTimeout, MaxOutputBytes,
// InterruptGrace and Logger apply; the rest is the agent's business.
func Attach(k RemoteKernel, opts Options) (*Remote, error) {
	fail := func(err error) (*Remote, error) {
		for _, fd := range k.FDs {
			syscall.Close(fd)
		}
		return nil, fmt.Errorf("attach to the leased %s kernel: %w", k.Lang, err)
	}
	if len(k.FDs) != 4 {
		return fail(fmt.Errorf("got %d descriptors, want 4", len(k.FDs)))
	}
	for i, fd := range k.FDs {
		// The descriptors come from a sandbox: take nothing but pipes,
		// and read and write them without blocking a thread (os.NewFile
		// registers a descriptor with the poller when it is non-blocking).
		var st syscall.Stat_t
		if err := syscall.Fstat(fd, &st); err != nil {
			return fail(err)
		}
		if st.Mode&syscall.S_IFMT != syscall.S_IFIFO {
			return fail(fmt.Errorf("descriptor %d is not a pipe (mode %#o)", i, st.Mode))
		}
		if err := syscall.SetNonblock(fd, true); err != nil {
			return fail(err)
		}
	}
	var files [4]*os.File
	for i, name := range []string{"requests", "answers", "stdout", "stderr"} {
		files[i] = os.NewFile(uintptr(k.FDs[i]), k.Lang+"-kernel-"+name)
	}
	opts = opts.withDefaults()
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p, err := newProcess(k.Lang, k.PID, k.Signal, files[0], files[1], files[2], files[3], int(opts.MaxOutputBytes))
	if err != nil {
		for _, f := range files {
			f.Close()
		}
		return nil, fmt.Errorf("attach to the leased %s kernel: %w", k.Lang, err)
	}
	p.stdout.buf, p.stderr.buf = []byte(k.Stdout), []byte(k.Stderr)
	p.startReaders()
	return &Remote{p: p, opts: opts, log: log, lost: k.Lost, env: k.Env}, nil
}

// Execute runs req; alive reports that the kernel is still usable.
// Timeouts, interrupts, output caps and a kernel's death are results, as
// from Manager.Execute.
func (r *Remote) Execute(ctx context.Context, req wire.ExecuteRequest) (res *wire.ExecuteResult, alive bool) {
	res, f := execute(ctx, r.p, req, r.env, &r.opts, r.log)
	r.env = nil
	if r.lost {
		res.Restarted, r.lost = true, false
	}
	return res, f == fateOK
}

// Ended tells r that the kernel has ended (the agent said so, or the lease
// was lost); an execution in progress fails. Later calls do nothing.
func (r *Remote) Ended(reason string) { r.p.exit(errors.New(reason)) }

// Done is closed once Ended was called.
func (r *Remote) Done() <-chan struct{} { return r.p.exited }

// Close stops reading the pipes and closes them; it does not touch the
// kernel. Safe to call more than once.
func (r *Remote) Close() {
	p := r.p
	p.killOnce.Do(func() {
		close(p.stop)
		for _, f := range []*os.File{p.req, p.resp, p.outR, p.errR} {
			f.Close()
		}
		p.readers.Wait()
	})
}
