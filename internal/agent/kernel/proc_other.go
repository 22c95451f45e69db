//go:build unix && !linux

package kernel

import "syscall"

// sysProcAttr puts the kernel in a process group of its own, to signal it
// with its subprocesses.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
