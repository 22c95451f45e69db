package dataplane

import (
	"fmt"
	"testing"
	"time"
)

func TestExecutionsExpiry(t *testing.T) {
	now := time.Unix(1e9, 0)
	e := newExecutions(time.Minute, func() time.Time { return now })
	rec := func(id string, done bool) *execution {
		x := &execution{ID: id, PoolID: "p", Identifier: "i", Started: now}
		if done {
			x.Finished = now
		}
		return x
	}

	// A running (asynchronous) execution outlives the bound; finished
	// ones go oldest first.
	e.put(rec("running", false))
	for i := range maxExecutionRecords + 100 {
		e.put(rec(fmt.Sprint(i), true))
	}
	if n := len(e.recs); n != maxExecutionRecords {
		t.Errorf("%d records kept, want the bound %d", n, maxExecutionRecords)
	}
	if e.get("p", "i", "running") == nil {
		t.Error("the running execution was dropped")
	}
	if e.get("p", "i", "100") != nil || e.get("p", "i", "101") == nil || e.get("p", "i", fmt.Sprint(maxExecutionRecords+99)) == nil {
		t.Error("the bound did not drop the oldest finished records first")
	}
	if len(e.order)-e.head != len(e.recs)-1 {
		t.Errorf("order holds %d keys for %d finished records", len(e.order)-e.head, len(e.recs)-1)
	}

	// Past retention, finished records go at the next put; the running
	// one stays, and once finished it goes too.
	now = now.Add(2 * time.Minute)
	x := rec("running", false)
	e.finish(x, nil, nil, nil, now)
	e.put(rec("new", true))
	if n := len(e.recs); n != 2 {
		t.Errorf("after retention: %d records, want 2 (the one finished now and the new one)", n)
	}
	now = now.Add(2 * time.Minute)
	e.put(rec("newer", true))
	if e.get("p", "i", "running") != nil || e.get("p", "i", "new") != nil || e.get("p", "i", "newer") == nil {
		t.Error("retention kept expired records or dropped a new one")
	}

	// Putting a key again (an async execution's record once finished)
	// keeps one entry.
	e.put(rec("newer", true))
	if len(e.order)-e.head != len(e.recs) {
		t.Errorf("order holds %d keys for %d records after a second put", len(e.order)-e.head, len(e.recs))
	}
}
