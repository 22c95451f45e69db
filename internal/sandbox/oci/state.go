package oci

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// sandboxState is <root>/<id>/state.json: what a later server process
// needs to list and destroy the sandbox. It is written before anything is
// set up (so that a crash mid-create leaves something List can clean up)
// and rewritten as parts are added.
type sandboxState struct {
	ID      string            `json:"id"`
	Labels  map[string]string `json:"labels,omitempty"`
	Kind    string            `json:"kind"`
	Created time.Time         `json:"created"`
	// Binary and Flavour are the OCI runtime that runs the sandbox (a
	// later server may default to another).
	Binary  string `json:"binary"`
	Flavour string `json:"flavour"`
	// Parts set up, so far.
	Disk    bool   `json:"disk,omitempty"`    // disk.img mounted on disk/
	Overlay bool   `json:"overlay,omitempty"` // overlay mounted on rootfs/
	Netns   bool   `json:"netns,omitempty"`   // netns bind-mounted (and maybe CNI-added)
	IP      string `json:"ip,omitempty"`
	Started bool   `json:"started,omitempty"` // the OCI runtime was asked to run it
	Ready   bool   `json:"ready,omitempty"`   // the agent answered: Create returned it
	// Pid is the host pid of the sandbox's init.
	Pid int `json:"pid,omitempty"`
	// Cgroups maps controllers to the sandbox's cgroup directories.
	Cgroups      map[string]string `json:"cgroups,omitempty"`
	AgentVersion string            `json:"agentVersion,omitempty"`
}

// writeState replaces dir/state.json atomically.
func writeState(dir string, st *sandboxState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".state.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "state.json"))
}

func readState(dir string) (*sandboxState, error) {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return nil, err
	}
	var st sandboxState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// keyedMutex serialises operations per sandbox id.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedEntry // guarded by mu
}

type keyedEntry struct {
	mu  sync.Mutex
	ref int
}

// lock locks id and returns the unlock function.
func (k *keyedMutex) lock(id string) func() {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedEntry{}
	}
	e := k.locks[id]
	if e == nil {
		e = &keyedEntry{}
		k.locks[id] = e
	}
	e.ref++
	k.mu.Unlock()
	e.mu.Lock()
	return func() { k.release(id, e) }
}

// tryLock locks id if no one holds it.
func (k *keyedMutex) tryLock(id string) (func(), bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.locks == nil {
		k.locks = map[string]*keyedEntry{}
	}
	if e := k.locks[id]; e != nil {
		return nil, false
	}
	e := &keyedEntry{ref: 1}
	e.mu.Lock()
	k.locks[id] = e
	return func() { k.release(id, e) }, true
}

func (k *keyedMutex) release(id string, e *keyedEntry) {
	e.mu.Unlock()
	k.mu.Lock()
	e.ref--
	if e.ref == 0 {
		delete(k.locks, id)
	}
	k.mu.Unlock()
}
