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

	mu   sync.Mutex // guards recs and puts
	puts int
	// recs maps a key to its record; records are replaced, never mutated,
	// once visible.
	recs map[execKey]*execution
}

func newExecutions(retention time.Duration, now func() time.Time) *executions {
	return &executions{retention: retention, now: now, recs: map[execKey]*execution{}}
}

func keyOf(x *execution) execKey { return execKey{x.PoolID, x.Identifier, x.ID} }

// put records x (a copy).
func (e *executions) put(x *execution) {
	c := *x
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.puts++; e.puts%256 == 0 || len(e.recs) >= maxExecutionRecords {
		e.expireLocked()
	}
	e.recs[keyOf(x)] = &c
}

// finish stores the outcome in x and in its record, when there is one.
func (e *executions) finish(x *execution, code *wire.ExecuteResult, shell *wire.ExecResult, err error, at time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x.Code, x.ShellResult, x.Err, x.Finished = code, shell, err, at
	if _, ok := e.recs[keyOf(x)]; ok {
		c := *x
		e.recs[keyOf(x)] = &c
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
	var oldest *execKey
	var oldestAt time.Time
	for k, x := range e.recs {
		if x.done() && now.Sub(x.Finished) > e.retention {
			delete(e.recs, k)
			continue
		}
		if x.done() && (oldest == nil || x.Finished.Before(oldestAt)) {
			k := k
			oldest, oldestAt = &k, x.Finished
		}
	}
	if len(e.recs) >= maxExecutionRecords && oldest != nil {
		delete(e.recs, *oldest)
	}
}
