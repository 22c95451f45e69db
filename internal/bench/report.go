package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// writeReport writes results.json, the charts and report.md to dir.
func writeReport(dir string, res *Results) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	charts, err := writeCharts(dir, res)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "report.md"), []byte(markdown(res, charts)), 0o644)
}

// markdown renders the report.
func markdown(res *Results, charts []chart) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# tidepool bench\n\n%s\n\n", res.Summary)
	w("Run on %s, %.0f s, tidepool %s, scenarios %s, %g s per duration-based figure.\n\n",
		res.Started.Format("2006-01-02 15:04 UTC"), res.Seconds, res.Version, strings.Join(res.Config.Scenarios, ", "), res.Config.DurationSeconds)
	if res.Config.Endpoint != "" {
		w("Server: %s (runtime %s).\n\n", res.Config.Endpoint, res.Config.Runtime)
	}
	w("## Machine\n\n| | |\n|---|---|\n")
	w("| CPUs | %d (%s) |\n| kernel | %s, cgroup %s |\n| memory | %.1f GiB |\n", res.Machine.CPUs, res.Machine.CPUModel,
		res.Machine.Kernel, res.Machine.Cgroup, float64(res.Machine.MemoryBytes)/(1<<30))
	keys := make([]string, 0, len(res.Machine.Software))
	for k := range res.Machine.Software {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		w("| %s | %s |\n", k, res.Machine.Software[k])
	}
	w("\n## Latencies and throughputs\n\nPer operation, wall time seen by the client. \"× floor\" and \"× Jupyter\" are how many times their cost this costs (p50 / p50; for MiB/s, their rate / this rate): below 1 is faster.\n\n")
	w("| figure | system | runtime | n | p50 ms | p90 ms | p99 ms | max ms | rate | × floor | × Jupyter |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, m := range res.Measurements {
		if m.Latency == nil {
			continue
		}
		rate := ""
		if m.Throughput != nil {
			rate = fmt.Sprintf("%.1f %s", m.Throughput.Value, m.Throughput.Unit)
		}
		w("| %s | %s | %s | %d | %.3f | %.3f | %.3f | %.3f | %s | %s | %s |\n", m.Name, m.System, m.Runtime, m.Count,
			m.Latency.P50, m.Latency.P90, m.Latency.P99, m.Latency.Max, rate, ratioCell(m.RatioToFloor, m.Floor), ratioCell(m.RatioToPeer, m.Peer))
	}
	var mem []*Measurement
	for _, m := range res.Measurements {
		if m.Memory != nil {
			mem = append(mem, m)
		}
	}
	if len(mem) > 0 {
		w("\n## Memory per idle session\n\n| figure | system | n | method | MiB/session | rss MiB/session | sessions/GiB | × Jupyter |\n|---|---|---|---|---|---|---|---|\n")
		for _, m := range mem {
			w("| %s | %s | %d | %s | %.1f | %.1f | %.0f | %s |\n", m.Name, m.System, m.Count, m.Memory.Method,
				float64(m.Memory.UsageBytes)/(1<<20), float64(m.Memory.RSSBytes)/(1<<20), m.Memory.SessionsPerGiB, ratioCell(m.RatioToPeer, m.Peer))
		}
	}
	w("\n## What each figure times\n\n")
	for _, m := range res.Measurements {
		w("- `%s`: %s", m.Name, m.What)
		if m.Notes != "" {
			w(" (%s)", m.Notes)
		}
		w("\n")
	}
	if len(res.Skipped) > 0 {
		w("\n## Not measured\n\n")
		for _, s := range res.Skipped {
			w("- `%s`: %s\n", s.Name, s.Reason)
		}
	}
	if len(charts) > 0 {
		w("\n## Charts\n\n")
		for _, c := range charts {
			w("![%s](%s)\n\n", c.Title, c.File)
		}
	}
	return b.String()
}

func ratioCell(v float64, ref string) string {
	if v <= 0 {
		return ""
	}
	return fmt.Sprintf("%s (`%s`)", ratioText(v), ref)
}
