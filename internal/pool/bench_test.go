package pool

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tidepool-dev/tidepool/internal/model"
)

// The benchmarks run real agents (sandboxtest.ProcessRuntime: plain child
// processes, no isolation), so they measure the controller plus the
// agent's process start, not an OCI runtime's.

func benchPool(b *testing.B, containerType string, ready int32, opts ...Option) (*running, string) {
	b.Helper()
	st := newStore(b)
	rt, _ := newRuntime(b)
	c := startController(b, st, rt, opts...)
	id := putPoolSpec(b, st, c, poolSpec{name: "bench", containerType: containerType, max: 1000, ready: ready}, "op")
	if op := waitOp(b, st, "op"); op.Status != "Succeeded" {
		b.Fatalf("pool: %+v", op)
	}
	return c, id
}

// BenchmarkAcquireClaim: Acquire of a new identifier on a pool with ready
// sandboxes (a claim from the warm set plus the agent's /init). Each
// iteration waits for a full, quiescent warm set, claims, and stops the
// session; ns/op therefore includes the refill, and claim-p50-µs /
// claim-p99-µs are the claims alone.
func BenchmarkAcquireClaim(b *testing.B) {
	ctx := context.Background()
	c, id := benchPool(b, model.ContainerTypeShell, 8)
	var durs []time.Duration
	cold := 0
	i := 0
	for b.Loop() {
		// Quiescent: a full warm set and no start competing for the CPU.
		waitFor(b, "a full ready set", func() bool { cn := c.counts(id); return cn.ready == 8 && cn.starting == 0 })
		ident := fmt.Sprintf("bench-%d", i)
		i++
		t0 := time.Now()
		s, err := c.Acquire(ctx, id, ident)
		d := time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		if s.Allocation != AllocationClaimed {
			cold++
		}
		durs = append(durs, d)
		if err := c.Stop(ctx, id, ident); err != nil {
			b.Fatal(err)
		}
	}
	slices.Sort(durs)
	b.ReportMetric(float64(durs[len(durs)/2].Microseconds()), "claim-p50-µs")
	b.ReportMetric(float64(durs[len(durs)*99/100].Microseconds()), "claim-p99-µs")
	b.ReportMetric(float64(cold), "cold-starts")
}

// BenchmarkAcquireExisting: Acquire of an identifier that has a session
// (the per-request cost on the data plane's path).
func BenchmarkAcquireExisting(b *testing.B) {
	ctx := context.Background()
	c, id := benchPool(b, model.ContainerTypeShell, 1)
	if _, err := c.Acquire(ctx, id, "warm"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Acquire(ctx, id, "warm"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRefill: after a burst of claims empties the warm set, how fast
// the controller refills it (sandboxes started per second).
func BenchmarkRefill(b *testing.B) {
	for _, kind := range []string{model.ContainerTypeShell, model.ContainerTypePythonLTS} {
		b.Run(kind, func(b *testing.B) {
			ctx := context.Background()
			const burst = 16
			c, id := benchPool(b, kind, burst)
			var total time.Duration
			n := 0
			for b.Loop() {
				waitFor(b, "a full ready set", func() bool { return c.counts(id).ready == burst })
				idents := make([]string, burst)
				for j := range burst {
					idents[j] = fmt.Sprintf("r-%d-%d", n, j)
					if _, err := c.Acquire(ctx, id, idents[j]); err != nil {
						b.Fatal(err)
					}
				}
				t0 := time.Now()
				waitFor(b, "refill", func() bool { return c.counts(id).ready == burst })
				total += time.Since(t0)
				n++
				b.StopTimer()
				for _, ident := range idents {
					if err := c.Stop(ctx, id, ident); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(burst*n)/total.Seconds(), "sandboxes/s")
		})
	}
}
