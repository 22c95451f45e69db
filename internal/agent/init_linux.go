package agent

import (
	"bytes"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
)

// forwarded are the signals init passes on to the agent server.
var forwarded = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

// RunInit runs the calling process as the sandbox's init and returns the
// exit code for it. It starts a copy of the running program
// (/proc/self/exe, same arguments) with the environment variable that
// makes IsInitChild true, so that the copy serves the API; then it reaps
// every process that becomes its child (commands' orphans are reparented
// to init), forwards SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2
// to the server, and once the server has exited kills and reaps whatever
// children remain. The exit code is the server's (128+n when signal n
// killed it). When the process is not PID 1 (a test, or a runtime with an
// init of its own) it makes itself a child subreaper, so that orphans still
// come to it.
//
// Init and server are two processes so that the server, and the kernels it
// runs, can wait for their own children with exec.Cmd.Wait: a reaper
// calling wait4(-1) in the same process would race those waits and steal
// their exit statuses.
func RunInit(log *slog.Logger) int {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cmd := &exec.Cmd{
		Path:   "/proc/self/exe",
		Args:   os.Args,
		Env:    append(os.Environ(), ChildEnv+"=1"),
		Stdin:  os.Stdin,
		Stdout: os.Stdout,
		Stderr: os.Stderr,
		// Should init die without a chance to clean up (outside a PID
		// namespace, where the kernel would), take the server with it.
		SysProcAttr: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	}
	return runInit(cmd, log)
}

func runInit(cmd *exec.Cmd, log *slog.Logger) int {
	// Pdeathsig fires when the thread that started the child exits; keep
	// this goroutine on one thread for good.
	runtime.LockOSThread()
	if os.Getpid() != 1 {
		const prSetChildSubreaper = 36
		if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
			log.Warn("cannot become a child subreaper; orphans will not be reaped here", "err", errno)
		}
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, append(forwarded, syscall.SIGCHLD)...)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		log.Error("start the agent server", "err", err)
		return 1
	}
	// This loop owns every wait: cmd.Wait is never called.
	defer cmd.Process.Release()
	server := cmd.Process.Pid
	for {
		if code, done := reapExited(server); done {
			log.Debug("agent server exited", "exit_code", code)
			killChildren(log)
			return code
		}
		if sig := <-sigs; sig != syscall.SIGCHLD {
			syscall.Kill(server, sig.(syscall.Signal))
		}
	}
}

// reapExited waits for every child that has exited, without blocking;
// done reports that server was one of them, and code its exit code.
func reapExited(server int) (code int, done bool) {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return code, done
		}
		if pid == server {
			done = true
			code = ws.ExitStatus()
			if ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
		}
	}
}

// killChildren kills and reaps init's remaining children, and theirs as
// they are reparented, until none is left.
func killChildren(log *slog.Logger) {
	self := os.Getpid()
	for range 100 {
		kids := childrenOf(self)
		if len(kids) == 0 {
			return
		}
		log.Debug("killing leftover processes", "count", len(kids))
		for _, pid := range kids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		for _, pid := range kids {
			for {
				var ws syscall.WaitStatus
				if _, err := syscall.Wait4(pid, &ws, 0, nil); err != syscall.EINTR {
					break
				}
			}
		}
	}
}

// childrenOf lists the processes whose parent is ppid, from /proc.
func childrenOf(ppid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var kids []int
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold anything, so parse
		// after its last parenthesis.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		fields := bytes.Fields(b[i+1:])
		if len(fields) < 2 {
			continue
		}
		if p, _ := strconv.Atoi(string(fields[1])); p == ppid {
			if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(f))); err == nil {
				kids = append(kids, pid)
			}
		}
	}
	return kids
}
