package pool

import (
	"errors"
	"time"

	"github.com/tidepool-dev/tidepool/internal/agent/client"
)

// Sentinel errors the data plane maps to HTTP answers.
var (
	// ErrPoolNotFound: no session pool with that id.
	ErrPoolNotFound = errors.New("session pool not found")
	// ErrPoolNotReady: the pool failed to provision or is being deleted.
	ErrPoolNotReady = errors.New("session pool not ready")
	// ErrPoolFull: a new identifier would exceed maxConcurrentSessions
	// (Azure answers 404).
	ErrPoolFull = errors.New("session pool has no more sessions to allocate")
	// ErrSessionNotFound: no live session has that identifier.
	ErrSessionNotFound = errors.New("session not found")
)

// Session is a sandbox bound to a caller's identifier in a pool.
type Session struct {
	PoolID     string
	Identifier string
	SandboxID  string
	// Kind is the sandbox kind (sandbox.KindPython, ...).
	Kind string
	// Agent reaches the session's agent. It is shared; do not close it.
	Agent *client.Client
	// Created is when the identifier was bound; LastActivity the last
	// request; Expires when the reaper will end it if nothing happens.
	Created      time.Time
	LastActivity time.Time
	Expires      time.Time
	// Allocation says how this request got the session: "existing",
	// "claimed" (from the warm set) or "cold" (started for it), and how
	// long that took.
	Allocation         string
	AllocationDuration time.Duration
}
