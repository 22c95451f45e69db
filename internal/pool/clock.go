package pool

import "time"

// Clock tells the time the session lifecycle runs on: last activity,
// cooldowns, maximum lifetimes, and the reaper's and the flusher's ticks.
// Tests use a fake one and advance it instead of sleeping.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives the time once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
