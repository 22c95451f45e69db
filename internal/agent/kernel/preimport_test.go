package kernel

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidepool-dev/tidepool/internal/agent/wire"
)

// TestPreImportCost measures what pre-importing modules costs (kernel
// start time, memory) and saves (the first execution that uses them). It
// produces the table in PREIMPORT.md and runs only when asked:
//
//	TIDEPOOL_MEASURE_PREIMPORT=1 go test -run TestPreImportCost -v ./internal/agent/kernel/
//
// It needs Debian's python3-numpy, python3-pandas and python3-matplotlib.
func TestPreImportCost(t *testing.T) {
	if os.Getenv("TIDEPOOL_MEASURE_PREIMPORT") == "" {
		t.Skip("a measurement, not a test: set TIDEPOOL_MEASURE_PREIMPORT=1 to run it")
	}
	py := interpreter(t, wire.LangPython)
	if out, err := exec.Command(py, "-c", "import numpy, pandas, matplotlib").CombinedOutput(); err != nil {
		t.Skipf("needs numpy, pandas and matplotlib for %s: %v: %s", py, err, out)
	}
	rounds := 7
	if s := os.Getenv("TIDEPOOL_MEASURE_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	// The first use of each module set: import it and do a little work.
	uses := []struct{ name, code string }{
		{"numpy", "import numpy as np\nnp.arange(1000).sum()"},
		{"pandas", "import pandas as pd\npd.DataFrame({'a': range(100)}).describe().shape"},
		{"matplotlib", "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nNone"},
		{"all three", "import numpy as np, pandas as pd, matplotlib.pyplot as plt\npd.Series(np.arange(10)).plot()\nNone"},
	}
	configs := []struct {
		name      string
		preImport []string
	}{
		{"none", nil},
		{"numpy", []string{"numpy"}},
		{"pandas", []string{"pandas"}},
		{"matplotlib.pyplot", []string{"matplotlib.pyplot"}},
		{"numpy, pandas, matplotlib.pyplot", []string{"numpy", "pandas", "matplotlib.pyplot"}},
	}
	type sample struct {
		start           time.Duration
		rss, anon, file int64 // kB, after start
		first           map[string]time.Duration
		rssAfter        map[string]int64 // kB, after the first use
		anonAfter       map[string]int64
	}
	results := map[string][]sample{}
	ctx := context.Background()
	for r := range rounds {
		for _, cfg := range configs {
			s := sample{first: map[string]time.Duration{}, rssAfter: map[string]int64{}, anonAfter: map[string]int64{}}
			for _, use := range uses {
				// A fresh kernel per use: the first use is the point. As in
				// a new sandbox, matplotlib has no font cache yet.
				env := append(os.Environ(), "MPLCONFIGDIR="+t.TempDir())
				m := New(Options{Python: py, Cwd: t.TempDir(), PreImport: cfg.preImport, Env: env})
				t0 := time.Now()
				if err := m.Start(ctx, wire.LangPython); err != nil {
					t.Fatalf("Start: %v", err)
				}
				start := time.Since(t0)
				pid := m.kernels[wire.LangPython].proc.pid
				if use.name == uses[0].name {
					s.start = start
					s.rss, s.anon, s.file = memory(t, pid)
				}
				t1 := time.Now()
				mustExecute(t, m, use.code)
				s.first[use.name] = time.Since(t1)
				rss, anon, _ := memory(t, pid)
				s.rssAfter[use.name], s.anonAfter[use.name] = rss, anon
				m.Close()
			}
			results[cfg.name] = append(results[cfg.name], s)
		}
		t.Logf("round %d of %d done", r+1, rounds)
	}

	med := func(xs []float64) float64 { slices.Sort(xs); return xs[len(xs)/2] }
	var b strings.Builder
	fmt.Fprintf(&b, "Medians of %d rounds, each kernel with an empty MPLCONFIGDIR. Memory in MiB (VmRSS = RssAnon + RssFile); times in ms.\n\n", rounds)
	fmt.Fprintf(&b, "| pre-import | start | VmRSS | RssAnon | RssFile |")
	for _, u := range uses {
		fmt.Fprintf(&b, " first use: %s |", u.name)
	}
	fmt.Fprintf(&b, " after using all three: VmRSS | RssAnon |\n|---|---:|---:|---:|---:|")
	for range uses {
		fmt.Fprintf(&b, "---:|")
	}
	fmt.Fprintf(&b, "---:|---:|\n")
	for _, cfg := range configs {
		ss := results[cfg.name]
		col := func(f func(sample) float64) float64 {
			var xs []float64
			for _, s := range ss {
				xs = append(xs, f(s))
			}
			return med(xs)
		}
		fmt.Fprintf(&b, "| %s | %.0f | %.1f | %.1f | %.1f |", cfg.name,
			col(func(s sample) float64 { return ms(s.start) }),
			col(func(s sample) float64 { return float64(s.rss) / 1024 }),
			col(func(s sample) float64 { return float64(s.anon) / 1024 }),
			col(func(s sample) float64 { return float64(s.file) / 1024 }))
		for _, u := range uses {
			fmt.Fprintf(&b, " %.0f |", col(func(s sample) float64 { return ms(s.first[u.name]) }))
		}
		fmt.Fprintf(&b, " %.1f | %.1f |\n",
			col(func(s sample) float64 { return float64(s.rssAfter["all three"]) / 1024 }),
			col(func(s sample) float64 { return float64(s.anonAfter["all three"]) / 1024 }))
	}
	t.Logf("\n%s", b.String())
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func mustExecute(t *testing.T, m *Manager, code string) *wire.ExecuteResult {
	t.Helper()
	res, err := m.Execute(context.Background(), wire.LangPython, wire.ExecuteRequest{Code: code})
	if err != nil || res.Status != wire.StatusSucceeded {
		t.Fatalf("Execute(%q) = %+v, %v", code, res, err)
	}
	return res
}

// memory returns VmRSS, RssAnon and RssFile of pid, in kB.
func memory(t *testing.T, pid int) (rss, anon, file int64) {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("memory: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = n
		case "RssAnon":
			anon = n
		case "RssFile":
			file = n
		}
	}
	return rss, anon, file
}
