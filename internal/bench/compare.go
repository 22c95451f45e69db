package bench

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
)

const execFloor = "floor/loopback-http+floor/python-pipe"

// compare sets each measurement's floor, peer and ratios.
func (r *runner) compare() {
	for _, m := range r.res.Measurements {
		if m.System != SystemTidepool {
			continue
		}
		var floor, peer string
		switch {
		case strings.HasPrefix(m.Name, "claim/"):
			floor, peer = execFloor, "jupyter/new-kernel"
		case m.Name == "exec/sequential":
			floor, peer = execFloor, "jupyter/exec"
		case strings.HasPrefix(m.Name, "cold/"):
			floor, peer = "floor/oci-run/"+m.Runtime, "jupyter/new-kernel"
		case m.Name == "shell":
			floor = "floor/loopback-http+floor/sh-fork"
		case strings.HasPrefix(m.Name, "files/"):
			floor = "floor/loopback-upload"
		case strings.HasPrefix(m.Name, "density/"):
			peer = "jupyter/memory"
		}
		if v, ok := r.ratio(m, floor); ok {
			m.Floor, m.RatioToFloor = floor, v
		}
		if v, ok := r.ratio(m, peer); ok {
			m.Peer, m.RatioToPeer = peer, v
		}
	}
}

// ratio is how many times the cost of ref (a measurement, or measurements
// joined with +) m costs.
func (r *runner) ratio(m *Measurement, ref string) (float64, bool) {
	if ref == "" {
		return 0, false
	}
	var refs []*Measurement
	for _, name := range strings.Split(ref, "+") {
		o, ok := r.byName[name]
		if !ok {
			return 0, false
		}
		refs = append(refs, o)
	}
	switch {
	case m.Memory != nil && len(refs) == 1 && refs[0].Memory != nil && refs[0].Memory.UsageBytes > 0:
		return round3(float64(m.Memory.UsageBytes) / float64(refs[0].Memory.UsageBytes)), true
	case m.Throughput != nil && m.Throughput.Unit == "MiB/s" && len(refs) == 1 && refs[0].Throughput != nil && m.Throughput.Value > 0:
		return round3(refs[0].Throughput.Value / m.Throughput.Value), true
	case m.Latency != nil:
		sum := 0.0
		for _, o := range refs {
			if o.Latency == nil {
				return 0, false
			}
			sum += o.Latency.P50
		}
		if sum <= 0 {
			return 0, false
		}
		return round3(m.Latency.P50 / sum), true
	}
	return 0, false
}

func round3(v float64) float64 {
	switch {
	case v >= 100:
		return float64(int64(v + 0.5))
	case v >= 1:
		return float64(int64(v*100+0.5)) / 100
	}
	return float64(int64(v*10000+0.5)) / 10000
}

// machineInfo describes this machine.
func machineInfo() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Software: map[string]string{"go": runtime.Version()}}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if kv, err := readKV("/proc/meminfo"); err == nil {
		m.MemoryBytes = kv["MemTotal:"] << 10
	}
	m.Cgroup = "v1"
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		m.Cgroup = "v2"
	}
	for _, c := range [][]string{
		{"runc", "runc", "--version"}, {"crun", "crun", "--version"}, {"runsc", "runsc", "--version"},
		{"python3", "/usr/bin/python3", "--version"}, {"jupyter-server", "jupyter-server", "--version"},
	} {
		if out, err := exec.Command(c[1], c[2:]...).CombinedOutput(); err == nil {
			m.Software[c[0]] = firstLine(string(out))
		}
	}
	return m
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(line)
}

// summary is the one-line summary of the headline figures.
func summary(res *Results) string {
	by := map[string]*Measurement{}
	for _, m := range res.Measurements {
		by[m.Name] = m
	}
	var parts []string
	lat := func(label, name string) {
		m := by[name]
		if m == nil || m.Latency == nil {
			return
		}
		s := fmt.Sprintf("%s p50 %s", label, msText(m.Latency.P50))
		var rel []string
		if m.RatioToFloor > 0 {
			rel = append(rel, fmt.Sprintf("%s× floor", ratioText(m.RatioToFloor)))
		}
		if m.RatioToPeer > 0 {
			rel = append(rel, fmt.Sprintf("%s× Jupyter", ratioText(m.RatioToPeer)))
		}
		if len(rel) > 0 {
			s += " (" + strings.Join(rel, ", ") + ")"
		}
		parts = append(parts, s)
	}
	lat("claim", "claim/sequential")
	lat("exec", "exec/sequential")
	for _, m := range res.Measurements {
		if strings.HasPrefix(m.Name, "exec/throughput-") && m.Throughput != nil {
			parts = append(parts, fmt.Sprintf("%.0f exec/s", m.Throughput.Value))
		}
	}
	for _, m := range res.Measurements {
		if strings.HasPrefix(m.Name, "cold/") {
			lat("cold "+m.Runtime, m.Name)
		}
	}
	for _, m := range res.Measurements {
		if strings.HasPrefix(m.Name, "density/") && m.Memory != nil {
			s := fmt.Sprintf("%.1f MiB/session", float64(m.Memory.UsageBytes)/(1<<20))
			if m.RatioToPeer > 0 {
				s += fmt.Sprintf(" (%s× Jupyter)", ratioText(m.RatioToPeer))
			}
			parts = append(parts, s)
		}
	}
	if len(parts) == 0 {
		return "tidepool bench: no tidepool figure measured (see the skipped list)"
	}
	return fmt.Sprintf("tidepool bench (%s, %d CPUs): %s", res.Config.Runtime, res.Machine.CPUs, strings.Join(parts, " · "))
}

func msText(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.2f ms", v)
}

func ratioText(v float64) string {
	switch {
	case v >= 10:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2g", v)
}
