package oci

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tidepool-dev/tidepool/internal/agent/client"
)

// errAgentExited: the sandbox's init ended before its agent was ready.
var errAgentExited = errors.New("agent exited")

// errKernel: the kernel of a python or node sandbox failed to start.
var errKernel = errors.New("kernel failed")

// errContainerExited: a custom sandbox's process ended before it was
// ready.
var errContainerExited = errors.New("container process exited")

// waitReady waits for the agent: first for its socket to appear, then
// calls onSocket (which locks the socket's directory), checks that the
// socket is still a socket and no symlink, and polls /health until the
// agent answers ready, with the kernel for lang (if not empty) started. It
// fails when the process behind pidfd exits (errAgentExited), the kernel
// dies, or ctx ends. It returns the agent API version the agent reports.
func waitReady(ctx context.Context, socket string, pidfd int, lang string, onSocket func() error) (string, error) {
	var lastErr error
	delay := time.Millisecond
	// sleep waits for delay on the pidfd, which turns readable when the
	// process exits.
	sleep := func(attempt int) error {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("agent not ready: %w (last: %v)", err, lastErr)
		}
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(delay.Milliseconds()))
		if err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("poll pidfd: %w", err)
		}
		if n > 0 {
			return fmt.Errorf("%w (last: %v)", errAgentExited, lastErr)
		}
		if attempt >= 100 {
			// The agent usually answers within tens of milliseconds;
			// past that, back off.
			delay = min(delay*2, 20*time.Millisecond)
		}
		return nil
	}

	for attempt := 0; ; attempt++ {
		st, err := os.Lstat(socket)
		if err == nil && st.Mode().Type() == fs.ModeSocket {
			break
		}
		lastErr = fmt.Errorf("agent socket: %v", err)
		if err == nil {
			lastErr = fmt.Errorf("agent socket %s is a %v", socket, st.Mode().Type())
		}
		if err := sleep(attempt); err != nil {
			return "", err
		}
	}
	if err := onSocket(); err != nil {
		return "", err
	}
	if st, err := os.Lstat(socket); err != nil || st.Mode().Type() != fs.ModeSocket {
		return "", fmt.Errorf("agent socket %s replaced before it was locked", socket)
	}

	c := client.New(socket)
	defer c.Close()
	// Once the agent is up, a kernel takes a while: poll less often (each
	// poll takes CPU from the kernel starting).
	delay = 2 * time.Millisecond
	for attempt := 0; ; attempt++ {
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		h, err := c.Health(hctx)
		cancel()
		switch {
		case err != nil:
			lastErr = err
		case h.ContainerExit != nil:
			return "", fmt.Errorf("%w: exit code %d %s%s", errContainerExited, h.ContainerExit.ExitCode, h.ContainerExit.Signal, h.ContainerExit.Error)
		case lang != "" && h.Kernels[lang] == "dead":
			return "", fmt.Errorf("%w: the %s kernel died", errKernel, lang)
		case lang != "" && h.Kernels[lang] != "ready" && h.Kernels[lang] != "busy":
			lastErr = fmt.Errorf("%s kernel: %q", lang, h.Kernels[lang])
		case h.Ready:
			return h.Version, nil
		default:
			lastErr = errors.New("agent not ready")
		}
		if err := sleep(attempt); err != nil {
			return "", err
		}
	}
}
