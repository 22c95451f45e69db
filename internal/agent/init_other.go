//go:build !linux

package agent

import "log/slog"

// RunInit runs the calling process as the sandbox's init; sandboxes are
// Linux only, so elsewhere it logs and fails.
func RunInit(log *slog.Logger) int {
	if log != nil {
		log.Error("the agent's init runs on Linux only; use --init=false")
	}
	return 1
}
