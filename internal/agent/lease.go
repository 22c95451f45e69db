package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tidepool-dev/tidepool/internal/agent/wire"
)

// KernelLeaser hands kernels over to the server, which then runs
// executions without the agent in their path (wire.LeasePath);
// kernel.Manager implements it through agentcmd.
type KernelLeaser interface {
	Lease(ctx context.Context, lang string) (KernelLease, error)
}

// KernelLease is a kernel handed over; see kernel.Lease.
type KernelLease interface {
	WithFDs(fn func(fds []int) error) error
	PID() int
	Lost() bool
	Env() map[string]string
	Pending() (stdout, stderr string)
	Exited() <-chan struct{}
	Revoked() <-chan struct{}
	ExitReason() string
	Interrupt() error
	Kill()
	Release()
}

// revokeWait bounds the wait for the holder of a revoked lease to let go.
const revokeWait = time.Second

// leaseLang returns the language of a lease call's head, or "".
func leaseLang(head string) string {
	path, ok := strings.CutPrefix(head, "POST ")
	if !ok {
		return ""
	}
	lang, ok := strings.CutPrefix(path, "/kernels/")
	lang, ok2 := strings.CutSuffix(lang, "/lease")
	if !ok || !ok2 || lang == "" || strings.Contains(lang, "/") {
		return ""
	}
	return lang
}

// serveLease serves a lease of lang's kernel on c until the holder
// releases it, leaves, or the kernel ends.
func (s *Server) serveLease(ctx context.Context, c net.Conn, br *bufio.Reader, w io.Writer, lang string) {
	uc, isUnix := c.(*net.UnixConn)
	leaser, canLease := s.cfg.Kernels.(KernelLeaser)
	refuse := func(err *apiError) {
		s.log.Debug("kernel lease refused", "code", err.code, "message", err.msg)
		body, _ := json.Marshal(wire.ErrorResponse{Error: wire.ErrorBody{Code: err.code, Message: err.msg}})
		w.Write(wire.AppendFrame(nil, strconv.Itoa(err.status), body))
	}
	switch {
	case !isUnix || !canLease:
		refuse(errorf(http.StatusNotImplemented, wire.CodeNotImplemented, "this agent does not lease kernels"))
		return
	case lang != wire.LangPython && lang != wire.LangNode:
		refuse(errorf(http.StatusNotFound, wire.CodeUnknownLanguage, "no kernel for language %q", lang))
		return
	}
	lease, err := leaser.Lease(ctx, lang)
	if err != nil {
		refuse(errorf(http.StatusServiceUnavailable, wire.CodeKernelUnavailable, "%s kernel: %v", lang, err))
		return
	}
	defer lease.Release()
	stdout, stderr := lease.Pending()
	body, _ := json.Marshal(wire.KernelLease{PID: lease.PID(), Lost: lease.Lost(), Env: lease.Env(), Stdout: stdout, Stderr: stderr})
	frame := wire.AppendFrame(nil, strconv.Itoa(http.StatusOK), body)
	err = lease.WithFDs(func(fds []int) error {
		_, _, err := uc.WriteMsgUnix(frame, syscall.UnixRights(fds...), nil)
		return err
	})
	if err != nil {
		// Nothing was sent: descriptors that are not the host's (gVisor)
		// cannot be passed. The client calls the agent instead.
		s.log.Warn("kernel lease not sent", "lang", lang, "error", err)
		refuse(errorf(http.StatusNotImplemented, wire.CodeNotImplemented, "the kernel's pipes cannot be passed: %v", err))
		return
	}
	s.log.Debug("kernel leased", "lang", lang, "pid", lease.PID())

	// Tell the holder when the kernel ends, then end the lease: closing c
	// ends the read below. A revoked lease ends without a word.
	watched := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-lease.Exited():
		case <-lease.Revoked():
			// The holder stops reading the pipes before it closes c; one
			// that does not answer (hung) is not waited for long.
			s.log.Info("kernel lease revoked: another caller wants the kernel", "lang", lang)
			w.Write(wire.AppendFrame(nil, wire.LeaseRevoked, nil))
			select {
			case <-stop:
			case <-time.After(revokeWait):
				c.Close()
			}
			return
		case <-stop:
			return
		}
		body, _ := json.Marshal(wire.KernelExited{Reason: lease.ExitReason()})
		w.Write(wire.AppendFrame(nil, wire.LeaseExited, body))
		c.Close()
	}()
	defer func() { close(stop); <-watched }()
	for {
		head, _, _, err := wire.ReadFrame(br, nil)
		if err != nil {
			return // the holder left (or the kernel ended): the lease ends
		}
		switch head {
		case wire.LeaseInterrupt:
			if err := lease.Interrupt(); err != nil {
				s.log.Warn("kernel interrupt failed", "lang", lang, "error", err)
			}
		case wire.LeaseKill:
			lease.Kill()
		case wire.LeaseRelease:
			return
		default:
			s.log.Warn("kernel lease: unknown frame", "head", head)
			return
		}
	}
}
