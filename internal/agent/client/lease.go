package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tidepool-dev/tidepool/internal/agent/kernel"
	"github.com/tidepool-dev/tidepool/internal/agent/wire"
)

// Executions on leased kernels (wire.LeasePath, kernel.Remote): the
// client takes each kernel's pipes from its agent once, then writes the
// requests and reads the answers itself, and the agent is out of the
// executions' path. Agents that cannot lease (one in gVisor, whose pipes
// are not the host's; one of an earlier release) are called as before.

// errNoLease says the agent does not lease kernels: call it instead.
var errNoLease = errors.New("agent does not lease kernels")

// leaseTimeout bounds a lease taken in the background: the agent may be
// starting the kernel again.
const leaseTimeout = time.Minute

// leaseAnswerBuffer is the size of the first read of a lease's answer.
const leaseAnswerBuffer = 64 << 10

// leasedKernel is one language's kernel as the client sees it. Whoever
// holds sem may use and replace the fields.
type leasedKernel struct {
	lang   string
	sem    chan struct{} // capacity 1
	remote *kernel.Remote
	conn   net.Conn
	w      io.Writer     // conn's raw writes
	read   chan struct{} // closed when the reader of conn ends
	// called is set once an execution ran on the kernel.
	called bool
	// envChanged says the lease predates a change of the environment.
	envChanged atomic.Bool
}

// leased returns lang's leasedKernel.
func (c *Client) leased(lang string) *leasedKernel {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.kernels == nil {
		c.kernels = map[string]*leasedKernel{}
	}
	k := c.kernels[lang]
	if k == nil {
		k = &leasedKernel{lang: lang, sem: make(chan struct{}, 1)}
		c.kernels[lang] = k
	}
	return k
}

// executeLeased runs req on lang's leased kernel, leasing it first if
// needed; errNoLease says to call the agent instead.
func (c *Client) executeLeased(ctx context.Context, lang string, req wire.ExecuteRequest) (*wire.ExecuteResult, error) {
	k := c.leased(lang)
	select {
	case k.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("agent: wait for the %s kernel: %w", lang, context.Cause(ctx))
	}
	defer func() { <-k.sem }()
	if k.remote != nil {
		select {
		case <-k.remote.Done():
			k.drop() // it ended, or was revoked, since the last call
		default:
			if k.envChanged.Swap(false) {
				k.release()
			}
		}
	}
	if k.remote == nil && !k.called {
		// A kernel's first execution (a claim's) goes through the agent,
		// which costs a round trip less than leasing first; the lease is
		// taken after it, in the background.
		k.called = true
		defer func() { go c.leaseSoon(lang, k) }()
		return c.executeByAgent(ctx, lang, req)
	}
	if k.remote == nil {
		if err := c.lease(ctx, lang, k); err != nil {
			if errors.Is(err, errNoLease) || ctx.Err() != nil {
				return nil, err
			}
			// Not this time; the agent runs it, and the next call leases.
			return c.executeByAgent(ctx, lang, req)
		}
	}
	res, alive := k.remote.Execute(ctx, req)
	if !alive {
		k.drop() // the agent restarts the kernel; the next call leases the new one
	}
	return res, nil
}

// leaseSoon leases k's kernel, after the execution that holds it (its
// first), unless another execution leased it meanwhile.
func (c *Client) leaseSoon(lang string, k *leasedKernel) {
	ctx, cancel := context.WithTimeout(context.Background(), leaseTimeout)
	defer cancel()
	select {
	case k.sem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-k.sem }()
	if k.remote != nil || c.noLease.Load() {
		return
	}
	_ = c.lease(ctx, lang, k) // on failure, the next execution tries again
}

// sendLease sends a lease call for lang on a framed connection, an idle
// one (the claim's /init left one) or a new one.
func (c *Client) sendLease(ctx context.Context, lang string) (*framedConn, error) {
	frame := wire.AppendFrame(nil, http.MethodPost+" "+wire.LeasePath(lang), nil)
	fc, reused, err := c.framedConn(ctx)
	if err == nil {
		if _, err = fc.rw.Write(frame); err != nil && reused {
			fc.conn.Close() // the agent closed it while it was idle
			if fc, err = c.dialFramed(ctx); err == nil {
				_, err = fc.rw.Write(frame)
			}
		}
		if err != nil && fc != nil {
			fc.conn.Close()
		}
	}
	return fc, err
}

// lease takes lang's kernel from the agent into k; the caller holds k.sem.
func (c *Client) lease(ctx context.Context, lang string, k *leasedKernel) (err error) {
	fc, err := c.sendLease(ctx, lang)
	if errors.Is(err, errNoFramed) {
		c.noLease.Store(true)
		return errNoLease
	}
	if err != nil {
		return fmt.Errorf("agent: lease the %s kernel: %w", lang, err)
	}
	uc, isUnix := fc.conn.(*net.UnixConn)
	if !isUnix || fc.br.Buffered() > 0 {
		fc.conn.Close()
		c.noLease.Store(true)
		return errNoLease
	}
	var fds []int // received; closed unless Attach took them
	defer func() {
		if err != nil {
			closeFDs(fds)
			uc.Close()
		}
	}()
	stop := context.AfterFunc(ctx, func() { uc.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	// The descriptors come with the answer's first bytes.
	buf := make([]byte, leaseAnswerBuffer)
	oob := make([]byte, syscall.CmsgSpace(4*4))
	n, oobn, flags, _, err := uc.ReadMsgUnix(buf, oob)
	fds, ferr := parseRights(oob[:oobn])
	if err != nil {
		return fmt.Errorf("agent: lease the %s kernel: %w", lang, err)
	}
	br := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(buf[:n]), fc.rw), 4<<10)
	head, body, _, err := wire.ReadFrame(br, nil)
	if err != nil {
		return fmt.Errorf("agent: lease the %s kernel: read the answer: %w", lang, err)
	}
	status, err := wire.ParseStatus(head)
	if err != nil {
		return fmt.Errorf("agent: lease the %s kernel: read the answer: %w", lang, err)
	}
	if status != http.StatusOK {
		e := errorAnswer(status, body)
		if status == http.StatusNotImplemented || status == http.StatusNotFound && e.Code == wire.CodeNotFound {
			c.noLease.Store(true) // an agent without leases
			return errNoLease
		}
		return fmt.Errorf("agent: lease the %s kernel: %w", lang, e)
	}
	var ans wire.KernelLease
	if err := json.Unmarshal(body, &ans); err != nil {
		return fmt.Errorf("agent: lease the %s kernel: decode the answer: %w", lang, err)
	}
	if ferr != nil || flags&syscall.MSG_CTRUNC != 0 || len(fds) != 4 {
		// An agent whose descriptors are not the host's (gVisor) sends
		// none; say so once, and call it from now on.
		c.noLease.Store(true)
		return errNoLease
	}
	// Only the holder of k.sem writes on the connection.
	w := fc.rw
	signal := func(kill bool) error {
		head := wire.LeaseInterrupt
		if kill {
			head = wire.LeaseKill
		}
		_, err := w.Write(wire.AppendFrame(nil, head, nil))
		return err
	}
	rk := kernel.RemoteKernel{
		Lang: lang, PID: ans.PID, FDs: fds, Lost: ans.Lost, Env: ans.Env, Stdout: ans.Stdout, Stderr: ans.Stderr, Signal: signal,
	}
	fds = nil // Attach's
	r, err := kernel.Attach(rk, kernel.Options{})
	if err != nil {
		c.noLease.Store(true) // descriptors that are not pipes
		return errNoLease
	}
	uc.SetDeadline(time.Time{})
	k.remote, k.conn, k.read = r, uc, make(chan struct{})
	k.w = w
	go readLease(k, uc, br, r, k.read)
	return nil
}

// readLease reads the agent's frames on k's lease connection until it
// ends, tells r, k's kernel, when the kernel (or the lease) ended, and
// closes done, k.read.
func readLease(k *leasedKernel, conn net.Conn, br *bufio.Reader, r *kernel.Remote, done chan struct{}) {
	for {
		head, body, _, err := wire.ReadFrame(br, nil)
		switch {
		case err != nil:
			r.Ended(fmt.Sprintf("the agent ended the lease (%v)", err))
			close(done)
			// Free the pipes now if no execution is under way: the client
			// may not be called again (a sandbox being destroyed).
			select {
			case k.sem <- struct{}{}:
				if k.remote == r {
					k.drop()
				}
				<-k.sem
			default: // the execution sees the end and drops the lease
			}
			return
		case head == wire.LeaseExited:
			var ev wire.KernelExited
			_ = json.Unmarshal(body, &ev)
			r.Ended(ev.Reason)
		case head == wire.LeaseRevoked:
			// Another caller wants the kernel: stop reading its pipes,
			// then let the agent know.
			r.Ended("the agent took the kernel back for another caller")
			r.Close()
			conn.Close()
			close(done)
			return
		}
	}
}

// drop forgets k's lease: its kernel ended, or the agent is being told
// to take it back (release). The caller holds k.sem.
func (k *leasedKernel) drop() {
	if k.remote == nil {
		return
	}
	k.conn.Close()
	<-k.read
	k.remote.Close()
	k.remote, k.conn, k.w, k.read = nil, nil, nil, nil
}

// release hands k's kernel back to the agent; the caller holds k.sem.
func (k *leasedKernel) release() {
	if k.remote != nil {
		k.w.Write(wire.AppendFrame(nil, wire.LeaseRelease, nil))
		k.drop()
	}
}

// envChanged tells the leased kernels that the agent's environment for
// them changed (Init, SetIdentity): the next execution on each takes a
// new lease, which carries it. It does not wait for executions.
func (c *Client) envChanged() {
	for _, k := range c.leasedKernels() {
		k.envChanged.Store(true)
	}
}

// closeLeases releases the leases not in use.
func (c *Client) closeLeases() {
	for _, k := range c.leasedKernels() {
		select {
		case k.sem <- struct{}{}:
			k.release()
			<-k.sem
		default: // in use: the execution keeps it
		}
	}
}

// Leased lists the languages whose kernels the client holds leased,
// sorted: their executions go without the agent. It waits for the
// executions in progress.
func (c *Client) Leased() []string {
	var langs []string
	for _, k := range c.leasedKernels() {
		k.sem <- struct{}{}
		if k.remote != nil {
			langs = append(langs, k.lang)
		}
		<-k.sem
	}
	slices.Sort(langs)
	return langs
}

func (c *Client) leasedKernels() []*leasedKernel {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Collect(maps.Values(c.kernels))
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		got, err := syscall.ParseUnixRights(&m)
		if err != nil {
			closeFDs(fds)
			return nil, err
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		syscall.Close(fd)
	}
}
