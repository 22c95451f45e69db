package bench

import (
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	tests := []struct {
		name string
		in   []time.Duration
		want *Stats
	}{
		{"empty", nil, nil},
		{"one", []time.Duration{1500 * time.Microsecond}, &Stats{P50: 1.5, P90: 1.5, P99: 1.5, Max: 1.5, Mean: 1.5, Min: 1.5}},
		{"hundred", d, &Stats{P50: 50, P90: 90, P99: 99, Max: 100, Mean: 50.5, Min: 1}},
		{"two", []time.Duration{time.Millisecond, 3 * time.Millisecond}, &Stats{P50: 1, P90: 3, P99: 3, Max: 3, Mean: 2, Min: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Summarize(tt.in)
			if (got == nil) != (tt.want == nil) || (got != nil && *got != *tt.want) {
				t.Errorf("Summarize = %+v, want %+v", got, tt.want)
			}
		})
	}
}
