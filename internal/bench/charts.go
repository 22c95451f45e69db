package bench

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// chart is one PNG of the report.
type chart struct {
	File, Title string
}

// writeCharts draws the latency distributions (claim, exec, cold) as
// cumulative distributions on a log scale, one line per system, and the
// memory per session as bars. It returns the charts it drew.
func writeCharts(dir string, res *Results) ([]chart, error) {
	var out []chart
	pick := func(f func(m *Measurement) bool) []*Measurement {
		var ms []*Measurement
		for _, m := range res.Measurements {
			if len(m.durations) > 0 && f(m) {
				ms = append(ms, m)
			}
		}
		return ms
	}
	cdfs := []struct {
		file, title string
		f           func(m *Measurement) bool
	}{
		{"claim.png", "First execution on a new identifier (claim)", func(m *Measurement) bool {
			return strings.HasPrefix(m.Name, "claim/") || m.Name == "jupyter/new-kernel" ||
				m.Name == "floor/loopback-http" || m.Name == "floor/python-pipe"
		}},
		{"exec.png", "Execution of print(1) on an existing session", func(m *Measurement) bool {
			return strings.HasPrefix(m.Name, "exec/") || m.Name == "jupyter/exec" ||
				m.Name == "floor/loopback-http" || m.Name == "floor/python-pipe"
		}},
		{"cold.png", "Cold start: first execution with no ready sandbox", func(m *Measurement) bool {
			return strings.HasPrefix(m.Name, "cold/") || strings.HasPrefix(m.Name, "floor/oci-run/") || m.Name == "jupyter/new-kernel"
		}},
	}
	for _, c := range cdfs {
		ms := pick(c.f)
		if !slices.ContainsFunc(ms, func(m *Measurement) bool { return m.System == SystemTidepool }) {
			continue
		}
		if err := drawCDF(filepath.Join(dir, c.file), c.title, ms); err != nil {
			return out, fmt.Errorf("chart %s: %w", c.file, err)
		}
		out = append(out, chart{c.file, c.title})
	}
	var mem []*Measurement
	for _, m := range res.Measurements {
		if m.Memory != nil {
			mem = append(mem, m)
		}
	}
	if len(mem) > 0 {
		if err := drawMemory(filepath.Join(dir, "density.png"), mem); err != nil {
			return out, fmt.Errorf("chart density.png: %w", err)
		}
		out = append(out, chart{"density.png", "Memory per idle session"})
	}
	return out, nil
}

func label(m *Measurement) string {
	switch m.System {
	case SystemTidepool:
		return "tidepool " + m.Name
	case SystemJupyter:
		return "Jupyter " + strings.TrimPrefix(m.Name, "jupyter/")
	}
	return m.Name
}

func drawCDF(path, title string, ms []*Measurement) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "latency (ms, log scale)"
	p.Y.Label.Text = "fraction of operations at or below"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = 0, 1
	p.Add(plotter.NewGrid())
	for i, m := range ms {
		s := slices.Clone(m.durations)
		slices.Sort(s)
		pts := make(plotter.XYs, len(s))
		for k, d := range s {
			pts[k].X = max(float64(d)/float64(time.Millisecond), 0.001)
			pts[k].Y = float64(k+1) / float64(len(s))
		}
		if len(pts) == 1 { // a step needs two points
			pts = append(plotter.XYs{{X: pts[0].X, Y: 0}}, pts...)
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color = plotutil.Color(i)
		l.Width = vg.Points(2)
		if m.System != SystemTidepool {
			l.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
		}
		p.Add(l)
		st := Summarize(m.durations)
		p.Legend.Add(fmt.Sprintf("%s (p50 %s, n=%d)", label(m), msText(st.P50), len(m.durations)), l)
	}
	// Room at both ends, so that no line sits on the frame.
	p.X.Min, p.X.Max = p.X.Min/1.5, p.X.Max*1.5
	p.Legend.Top, p.Legend.Left = false, false
	p.Legend.YOffs = vg.Points(8)
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	return p.Save(10*vg.Inch, 6*vg.Inch, path)
}

func drawMemory(path string, ms []*Measurement) error {
	p := plot.New()
	p.Title.Text = "Memory per idle Python session (kernel loaded)"
	p.Y.Label.Text = "MiB per session"
	usage, rss := make(plotter.Values, len(ms)), make(plotter.Values, len(ms))
	names := make([]string, len(ms))
	for i, m := range ms {
		usage[i] = float64(m.Memory.UsageBytes) / (1 << 20)
		rss[i] = float64(m.Memory.RSSBytes) / (1 << 20)
		names[i] = fmt.Sprintf("%s\n%.0f per GiB", label(m), m.Memory.SessionsPerGiB)
	}
	w := vg.Points(28)
	b1, err := plotter.NewBarChart(usage, w)
	if err != nil {
		return err
	}
	b1.Color = plotutil.Color(0)
	b1.Offset = -w / 2
	b2, err := plotter.NewBarChart(rss, w)
	if err != nil {
		return err
	}
	b2.Color = plotutil.Color(1)
	b2.Offset = w / 2
	p.Add(plotter.NewGrid(), b1, b2)
	p.Legend.Add("charged (cgroup usage, or Pss)", b1)
	p.Legend.Add("anonymous resident (rss)", b2)
	p.Legend.Top = true
	p.NominalX(names...)
	p.Y.Min = 0
	p.Y.Max *= 1.3 // room for the legend
	return p.Save(vg.Length(3+1.8*float64(len(ms)))*vg.Inch, 5*vg.Inch, path)
}
