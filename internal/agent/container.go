package agent

import (
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/tidepool-dev/tidepool/internal/agent/wire"
)

// startContainer starts the custom container's process as a child in its
// own process group, with the agent's stdout and stderr (the sandbox's
// log), and records its exit for /health. It is not restarted: a custom
// container's session ends when its process does.
func (s *Server) startContainer(wg *sync.WaitGroup) {
	argv := s.cfg.Container
	env := append(slices.Clip(s.baseEnv), s.cfg.ContainerEnv...)
	dir := s.cfg.ContainerDir
	if dir == "" {
		dir, _ = os.Getwd()
	}
	exited := func(st wire.ExitStatus) {
		st.At = time.Now().UTC()
		s.mu.Lock()
		s.containerExit = &st
		s.mu.Unlock()
		s.log.Info("container exited", "exit_code", st.ExitCode, "signal", st.Signal, "err", st.Error)
	}
	path, err := lookPath(argv[0], env, dir)
	if err != nil {
		exited(wire.ExitStatus{ExitCode: -1, Error: argv[0] + ": command not found"})
		return
	}
	cmd := &exec.Cmd{
		Path:        path,
		Args:        argv,
		Env:         env,
		Dir:         s.cfg.ContainerDir,
		Stdout:      os.Stdout,
		Stderr:      os.Stderr,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	if err := cmd.Start(); err != nil {
		exited(wire.ExitStatus{ExitCode: -1, Error: err.Error()})
		return
	}
	pgid := cmd.Process.Pid
	if !s.procs.add(pgid) {
		syscall.Kill(-pgid, syscall.SIGKILL)
	}
	s.log.Info("container started", "pid", pgid, "argv0", argv[0])
	wg.Go(func() {
		cmd.Wait()
		s.procs.remove(pgid)
		code, sig := exitStatus(cmd.ProcessState)
		exited(wire.ExitStatus{ExitCode: code, Signal: sig})
	})
}
