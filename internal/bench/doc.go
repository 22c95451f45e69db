// Package bench is `tidepool bench`: it measures a tidepool server through
// its public APIs (the management API to make pools, the data plane over
// HTTP with a bearer token, exactly as a client does), side by side with
// the physical floors of each figure and with a peer (Jupyter Server),
// all in the same run, and writes a report (report.md, results.json and
// PNG charts).
//
// Scenarios: claim (first execution on new identifiers with ready
// sandboxes, sequential and 16 concurrent clients), exec (executions on
// an existing session; throughput across 50 sessions), cold (first
// execution on a pool with no ready sandbox, per OCI runtime), refill
// (time for the warm set to come back after a burst of claims), density
// (memory per idle session, from the sandboxes' cgroups), shell
// (shellCommand round trip) and files (64 MiB upload and download).
//
// Floors: a loopback HTTP round trip of an empty handler, an in-process
// Python exec of print(1) through a pipe, `<runtime> run` of a one-shot
// python3 in a bundle made as the server's sandboxes are, a local fork and
// exec of sh, and a 64 MiB POST to an empty handler.
//
// The JSON form of the results (Results) is stable: fields are added, never
// renamed or removed, within one SchemaVersion; docs/performance.md
// documents them. Nothing here asserts a timing.
package bench
