package bench

import (
	"strings"
	"testing"
	"time"
)

func TestCompare(t *testing.T) {
	ms := func(v float64) []time.Duration { return []time.Duration{time.Duration(v * float64(time.Millisecond))} }
	r := &runner{byName: map[string]*Measurement{}, res: &Results{Config: RunInfo{Runtime: "runc"}, Machine: Machine{CPUs: 2}}}
	for _, m := range []*Measurement{
		{Name: "floor/loopback-http", System: SystemFloor, durations: ms(0.05)},
		{Name: "floor/python-pipe", System: SystemFloor, durations: ms(0.05)},
		{Name: "floor/oci-run/runc", System: SystemFloor, Runtime: "runc", durations: ms(100)},
		{Name: "floor/loopback-upload", System: SystemFloor, durations: ms(10), Throughput: &Rate{Value: 1000, Unit: "MiB/s"}},
		{Name: "jupyter/new-kernel", System: SystemJupyter, durations: ms(1000)},
		{Name: "jupyter/exec", System: SystemJupyter, durations: ms(10)},
		{Name: "jupyter/memory", System: SystemJupyter, Memory: &Memory{UsageBytes: 40 << 20}, Count: 2},
		{Name: "claim/sequential", System: SystemTidepool, Runtime: "runc", durations: ms(2)},
		{Name: "exec/sequential", System: SystemTidepool, Runtime: "runc", durations: ms(0.5)},
		{Name: "cold/runc", System: SystemTidepool, Runtime: "runc", durations: ms(150)},
		{Name: "cold/crun", System: SystemTidepool, Runtime: "crun", durations: ms(150)}, // no floor measured
		{Name: "files/upload", System: SystemTidepool, Runtime: "runc", durations: ms(40), Throughput: &Rate{Value: 250, Unit: "MiB/s"}},
		{Name: "density/runc", System: SystemTidepool, Runtime: "runc", Memory: &Memory{UsageBytes: 10 << 20}, Count: 2},
	} {
		r.add(m)
	}
	r.compare()
	tests := []struct {
		name       string
		floor      string
		ratioFloor float64
		peer       string
		ratioPeer  float64
	}{
		{"claim/sequential", execFloor, 20, "jupyter/new-kernel", 0.002},
		{"exec/sequential", execFloor, 5, "jupyter/exec", 0.05},
		{"cold/runc", "floor/oci-run/runc", 1.5, "jupyter/new-kernel", 0.15},
		{"cold/crun", "", 0, "jupyter/new-kernel", 0.15},
		{"files/upload", "floor/loopback-upload", 4, "", 0},
		{"density/runc", "", 0, "jupyter/memory", 0.25},
	}
	for _, tt := range tests {
		m := r.byName[tt.name]
		if m.Floor != tt.floor || m.RatioToFloor != tt.ratioFloor || m.Peer != tt.peer || m.RatioToPeer != tt.ratioPeer {
			t.Errorf("%s: floor %q ×%v, peer %q ×%v; want %q ×%v, %q ×%v", tt.name,
				m.Floor, m.RatioToFloor, m.Peer, m.RatioToPeer, tt.floor, tt.ratioFloor, tt.peer, tt.ratioPeer)
		}
	}
	got := summary(r.res)
	for _, want := range []string{"tidepool bench (runc, 2 CPUs): ", "claim p50 2.00 ms (20× floor, 0.002× Jupyter)",
		"exec p50 0.50 ms (5.0× floor, 0.05× Jupyter)", "cold runc p50 150 ms (1.5× floor, 0.15× Jupyter)",
		"cold crun p50 150 ms (0.15× Jupyter)", "10.0 MiB/session (0.25× Jupyter)"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "\n") {
		t.Errorf("summary spans lines: %q", got)
	}
}
