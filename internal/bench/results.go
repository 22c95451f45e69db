package bench

import "time"

// SchemaVersion is the version of the JSON form of Results. Within one
// version fields are only added.
const SchemaVersion = 1

// Systems a measurement belongs to.
const (
	SystemTidepool = "tidepool"
	SystemFloor    = "floor"
	SystemJupyter  = "jupyter"
)

// Results is what one run measured: results.json and `--json`.
type Results struct {
	SchemaVersion int       `json:"schemaVersion"`
	Version       string    `json:"tidepoolVersion"`
	Started       time.Time `json:"started"`
	// Seconds is the wall time of the whole run.
	Seconds float64 `json:"seconds"`
	Machine Machine `json:"machine"`
	Config  RunInfo `json:"config"`
	// Measurements in the order they were taken.
	Measurements []*Measurement `json:"measurements"`
	// Skipped lists what was not measured, and why.
	Skipped []Skip `json:"skipped"`
	// Summary is the one-line summary printed last.
	Summary string `json:"summary"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs        int    `json:"cpus"`
	CPUModel    string `json:"cpuModel,omitempty"`
	Kernel      string `json:"kernel,omitempty"`
	MemoryBytes int64  `json:"memoryBytes,omitempty"`
	// Cgroup is "v1" or "v2".
	Cgroup string `json:"cgroup,omitempty"`
	// Software maps a component (go, python3, runc, crun, runsc,
	// jupyter-server) to its version line.
	Software map[string]string `json:"software,omitempty"`
}

// RunInfo is the configuration the run used.
type RunInfo struct {
	Scenarios []string `json:"scenarios"`
	// DurationSeconds is the length of each duration-based measurement.
	DurationSeconds float64 `json:"durationSeconds"`
	// Endpoint is the server measured; empty when the bench started its
	// own.
	Endpoint string `json:"endpoint,omitempty"`
	// Runtime is the sandbox runtime of the main server (runc, crun,
	// runsc, process, or "unknown" for --endpoint).
	Runtime string `json:"runtime"`
}

// Measurement is one figure. Name is unique in a run and stable across
// runs, e.g. "claim/sequential", "cold/runc", "floor/loopback-http",
// "jupyter/exec". Latency or Memory is set; Throughput comes with a
// Latency (of the operations it counts).
type Measurement struct {
	Name     string `json:"name"`
	Scenario string `json:"scenario"`
	// System is tidepool, floor or jupyter.
	System string `json:"system"`
	// Runtime is the sandbox runtime, when one is involved.
	Runtime string `json:"runtime,omitempty"`
	// What says in words what was timed.
	What string `json:"what"`
	// Count is the number of operations (latency, throughput) or of
	// sessions (memory).
	Count int `json:"count"`
	// Latency of each operation, in milliseconds.
	Latency *Stats `json:"latencyMs,omitempty"`
	// Throughput is a rate over the measurement.
	Throughput *Rate `json:"throughput,omitempty"`
	// Memory is per session.
	Memory *Memory `json:"memory,omitempty"`
	// Floor names the measurement this one is compared with (its floor).
	// RatioToFloor is how many times the floor's cost this costs: this
	// p50 / the floor's p50 for latencies, the floor's rate / this rate
	// for throughputs (above 1: slower than the floor). A floor made of
	// two measurements is named "a+b" (the sum of their p50s).
	Floor        string  `json:"floor,omitempty"`
	RatioToFloor float64 `json:"ratioToFloor,omitempty"`
	// Peer names the Jupyter measurement this one is compared with;
	// RatioToPeer is computed as RatioToFloor is (below 1: tidepool is
	// faster than Jupyter).
	Peer        string  `json:"peer,omitempty"`
	RatioToPeer float64 `json:"ratioToPeer,omitempty"`
	// Errors counts operations that failed (they are not in Latency).
	Errors int `json:"errors,omitempty"`
	// Notes holds observations (cold starts seen during claims, ...).
	Notes string `json:"notes,omitempty"`

	durations []time.Duration // raw samples, for the charts
}

// Rate is a throughput.
type Rate struct {
	Value float64 `json:"value"`
	// Unit: "executions/s", "sandboxes/s" or "MiB/s".
	Unit string `json:"unit"`
}

// Memory is the resident memory of idle sessions, in bytes per session.
type Memory struct {
	// Method: "cgroup" (the sandboxes' memory cgroups: usage and rss) or
	// "pss" (the sum of Pss of each session's processes, where a session
	// has no cgroup of its own).
	Method string `json:"method"`
	// UsageBytes is the mean charged memory per session (cgroup v1
	// memory.usage_in_bytes, v2 memory.current; for "pss", the Pss sum).
	UsageBytes int64 `json:"usageBytes"`
	// RSSBytes is the mean anonymous resident memory per session (v1
	// total_rss, v2 anon; for "pss", the Rss sum).
	RSSBytes int64 `json:"rssBytes"`
	// SessionsPerGiB is 2^30 / UsageBytes.
	SessionsPerGiB float64 `json:"sessionsPerGiB"`
}

// Skip is something not measured.
type Skip struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}
