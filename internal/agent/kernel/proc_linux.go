package kernel

import "syscall"

// sysProcAttr puts the kernel in a process group of its own (to signal it
// with its subprocesses) and kills it if the agent dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
