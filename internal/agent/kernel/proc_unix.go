//go:build unix

package kernel

import (
	"os"
	"syscall"
)

var (
	interruptSignal = syscall.SIGINT
	killSignal      = syscall.SIGKILL
)

// signalGroup sends sig to p's process group (the kernel is its leader),
// so that its subprocesses get it too, as from a terminal's Ctrl-C.
func signalGroup(p *os.Process, sig syscall.Signal) error {
	return syscall.Kill(-p.Pid, sig)
}
