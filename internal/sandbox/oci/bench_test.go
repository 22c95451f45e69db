package oci

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tidepool-dev/tidepool/internal/sandbox"
	"github.com/tidepool-dev/tidepool/internal/sandbox/sandboxtest"
)

// The benchmarks measure sandbox creation against its floor: `runc run`
// of `python3 -c pass` in the same kind of bundle (host rootfs, user
// namespace, seccomp, cgroup limits), without the agent, the disk, or the
// health check. DESIGN §7 targets a create p50 within 1.5x of the floor
// for runc. Each reports p50s in ms besides ns/op (which includes Destroy).

func benchRuntime(b *testing.B, flavour string) *Runtime {
	needRoot(b)
	if _, _, err := resolveBinary(flavour); err != nil {
		b.Skipf("skipping: %v", err)
	}
	return newTestRuntime(b, flavour)
}

// BenchmarkCreate: create (until the agent is ready, with the kernel of
// a python sandbox started) then destroy, per runtime, for a shell and a
// python sandbox, and a python one with egress.
func BenchmarkCreate(b *testing.B) {
	cases := []struct {
		name   string
		kind   string
		egress bool
	}{
		{"shell", sandbox.KindShell, false},
		{"python", sandbox.KindPython, false},
		{"python-egress", sandbox.KindPython, true},
	}
	for _, flavour := range flavours {
		for _, tc := range cases {
			b.Run(flavour+"/"+tc.name, func(b *testing.B) {
				rt := benchRuntime(b, flavour)
				var creates, destroys []time.Duration
				for b.Loop() {
					spec := sandboxtest.BaseSpec(sandboxtest.NewID("bench"))
					spec.Kind = tc.kind
					spec.MemoryBytes = 512 << 20
					spec.EgressEnabled = tc.egress
					t0 := time.Now()
					if _, err := rt.Create(context.Background(), spec); err != nil {
						b.Fatal(err)
					}
					t1 := time.Now()
					if err := rt.Destroy(context.Background(), spec.ID); err != nil {
						b.Fatal(err)
					}
					creates, destroys = append(creates, t1.Sub(t0)), append(destroys, time.Since(t1))
				}
				b.ReportMetric(p50ms(creates), "create-p50-ms")
				b.ReportMetric(p50ms(destroys), "destroy-p50-ms")
			})
		}
	}
}

// BenchmarkFloorRuncPython is the floor: runc run of python3 -c pass.
func BenchmarkFloorRuncPython(b *testing.B) {
	rt := benchRuntime(b, flavourRunc)
	floor := newFloorBundle(b, rt)
	var runs []time.Duration
	for b.Loop() {
		runs = append(runs, floor.run(b))
	}
	b.ReportMetric(p50ms(runs), "p50-ms")
}

// BenchmarkCreateVsFloor alternates the floor and creates of a shell
// sandbox (ready when its agent answers) and of a python one (ready when
// its python kernel has started too), so that all see the same machine,
// and reports the ratios of their p50s to the floor's.
func BenchmarkCreateVsFloor(b *testing.B) {
	rt := benchRuntime(b, flavourRunc)
	floor := newFloorBundle(b, rt)
	var runs []time.Duration
	creates := map[string][]time.Duration{}
	kinds := []string{sandbox.KindShell, sandbox.KindPython}
	for b.Loop() {
		runs = append(runs, floor.run(b))
		for _, kind := range kinds {
			spec := sandboxtest.BaseSpec(sandboxtest.NewID("bench"))
			spec.Kind = kind
			spec.MemoryBytes = 512 << 20
			t0 := time.Now()
			if _, err := rt.Create(context.Background(), spec); err != nil {
				b.Fatal(err)
			}
			creates[kind] = append(creates[kind], time.Since(t0))
			if err := rt.Destroy(context.Background(), spec.ID); err != nil {
				b.Fatal(err)
			}
		}
	}
	f := p50ms(runs)
	b.ReportMetric(f, "floor-p50-ms")
	for _, kind := range kinds {
		b.ReportMetric(p50ms(creates[kind]), kind+"-p50-ms")
		b.ReportMetric(p50ms(creates[kind])/f, kind+"-ratio")
	}
}

type floorBundle struct {
	rt  *Runtime
	dir string
	n   int
}

// newFloorBundle makes a bundle as Create would, whose process is
// python3 -c pass.
func newFloorBundle(b *testing.B, rt *Runtime) *floorBundle {
	dir := filepath.Join(rt.root, "floor")
	for _, d := range []string{"rootfs", "data", "run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	for _, d := range []string{"data", "run"} {
		if err := os.Chown(filepath.Join(dir, d), int(rt.uid), int(rt.gid)); err != nil {
			b.Fatal(err)
		}
	}
	if err := prepareHostRootFS(filepath.Join(dir, "rootfs"), rt.hostEntries, nil); err != nil {
		b.Fatal(err)
	}
	spec := sandboxtest.BaseSpec("floor")
	conf, err := ociSpec(&bundleSpec{
		spec: spec, flavour: flavourRunc, rootfs: filepath.Join(dir, "rootfs"), readonly: true,
		hostBinds: rt.hostEntries, agentBinary: rt.agentBinary,
		runDir: filepath.Join(dir, "run"), dataDir: filepath.Join(dir, "data"),
		idBase: rt.opts.idBase, idSize: rt.opts.idSize, cgroupsPath: filepath.Join(rt.cgroupParent, "floor"),
		tmpBytes: 16 << 20, nofile: rt.nofile,
	})
	if err != nil {
		b.Fatal(err)
	}
	conf.Process.Args = []string{"/usr/bin/python3", "-c", "pass"}
	raw, err := json.Marshal(conf)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o600); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return &floorBundle{rt: rt, dir: dir}
}

func (f *floorBundle) run(b *testing.B) time.Duration {
	f.n++
	id := fmt.Sprintf("floor-%d-%d", os.Getpid(), f.n)
	cmd := exec.Command(f.rt.cli.path, "--root", f.rt.cli.stateRoot, "run", "--bundle", f.dir, id)
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(t0)
	if err != nil {
		b.Fatalf("runc run: %v: %s", err, out)
	}
	return d
}

func p50ms(d []time.Duration) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[len(s)/2]) / float64(time.Millisecond)
}
