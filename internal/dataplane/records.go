package dataplane

import (
	"sync"
	"time"

	"github.com/tidepool-dev/tidepool/internal/agent/wire"
)

// maxExecutionRecords bounds the execution records kept in memory; the
// oldest finished ones go first.
const maxExecutionRecords = 10000

// execution is one execution and, once finished, its outcome. The fields
// after Started are written once, by executions.finish, under the
// executions' lock; read them through the copies get returns.
type execution struct {
	ID            string
	PoolID        string
	Identifier    string
	ExecutionType string
	Shell         bool
	Jupyter       bool
	Timeout       time.Duration
	Started       time.Time

	Finished    time.Time
	Code        *wire.ExecuteResult
	ShellResult *wire.ExecResult
	// Err is the agent's failure when there is no result.
	Err error
}

func (x *execution) done() bool { return !x.Finished.IsZero() }

func (x *execution) durationMs() int64 {
	switch {
	case x.Code != nil:
		return x.Code.DurationMs
	case x.ShellResult != nil:
		return x.ShellResult.DurationMs
	case x.done():
		return x.Finished.Sub(x.Started).Milliseconds()
	}
	return 0
}

type execKey struct{ pool, identifier, id string }

// executions keeps execution records for GET executions/{id}.
type executions struct {
	retention time.Duration
	now       func() time.Time

	mu sync.Mutex // guards the fields that follow
	// recs maps a key to its record; records are replaced, never mutated,
	// once visible.
	recs map[execKey]*execution
	// order holds the keys of the finished records from order[head] on,
	// in the order they finished: expiry looks at the front only, so a
	// put costs O(1), not a scan. Running records are not in it.
	order []execKey
	head  int
}

func newExecutions(retention time.Duration, now func() time.Time) *executions {
	return &executions{retention: retention, now: now, recs: map[execKey]*execution{}}
}

func keyOf(x *execution) execKey { return execKey{x.PoolID, x.Identifier, x.ID} }

// put records x (a copy).
func (e *executions) put(x *execution) {
	c := *x
	k := keyOf(x)
	e.mu.Lock()
	defer e.mu.Unlock()
	if old, ok := e.recs[k]; c.done() && (!ok || !old.done()) {
		e.order = append(e.order, k)
	}
	e.recs[k] = &c
	e.expireLocked()
}

// finish stores the outcome in x and in its record, when there is one.
func (e *executions) finish(x *execution, code *wire.ExecuteResult, shell *wire.ExecResult, err error, at time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x.Code, x.ShellResult, x.Err, x.Finished = code, shell, err, at
	k := keyOf(x)
	if _, ok := e.recs[k]; ok {
		c := *x
		e.recs[k] = &c
		e.order = append(e.order, k)
	}
}

// get returns a copy of the record, or nil.
func (e *executions) get(poolID, identifier, id string) *execution {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := e.recs[execKey{poolID, identifier, id}]
	if x == nil {
		return nil
	}
	c := *x
	return &c
}

// expireLocked drops finished records past retention, and the oldest
// finished ones beyond the bound.
func (e *executions) expireLocked() {
	now := e.now()
	for ; e.head < len(e.order); e.head++ {
		k := e.order[e.head]
		if x := e.recs[k]; x != nil {
			if len(e.recs) <= maxExecutionRecords && now.Sub(x.Finished) <= e.retention {
				break
			}
			delete(e.recs, k)
		}
		e.order[e.head] = execKey{}
	}
	if e.head > 1024 && e.head > len(e.order)/2 {
		e.order = append(e.order[:0:0], e.order[e.head:]...)
		e.head = 0
	}
}
