package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
// and reports the ratios of their p50s to the floor's. All have the CPU
// a built-in pool's sandboxes get (1 core): a python sandbox's start takes
// more CPU than python3 -c pass, and with half a core's quota it would be
// measured against the CFS period rather than its own work.
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
			spec.CPU, spec.MemoryBytes = 1, 512<<20
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
	spec.CPU, spec.MemoryBytes = 1, 512<<20
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

// densityCgroupParent keeps BenchmarkDensity's sandboxes apart from the
// tests' (testCgroupParent), which a concurrent test run on the host
// snapshots and removes.
const densityCgroupParent = "tidepool-bench-density"

// BenchmarkDensity measures what an idle warm python sandbox costs in
// memory: it creates TIDEPOOL_BENCH_DENSITY_N (default 10) python
// sandboxes with the pools' default limits, each ready with its kernel
// started, lets them settle for 2 s, and reads each sandbox's memory
// cgroup. Reported per sandbox (means over all sandboxes and iterations):
//
//   - usage-MiB/sb: memory.usage_in_bytes (v2: memory.current), everything
//     charged to the cgroup: anonymous memory, the page cache it faulted
//     in first (shared host files such as libpython are charged to
//     whichever cgroup read them first), tmpfs, and kernel memory;
//   - rss+mapped-MiB/sb: total_rss + total_mapped_file from memory.stat
//     (v2: anon + file_mapped);
//   - cache-MiB/sb: total_cache (v2: file);
//   - kernel-MiB/sb: memory.kmem.usage_in_bytes (v2: kernel from
//     memory.stat), page tables, slab and stacks, part of usage;
//   - pss-MiB/sb: the sum of Pss (smaps_rollup) of the cgroup's
//     processes, shared pages split among their users;
//   - sb/16GiB: how many such sandboxes 16 GiB holds, by usage and by
//     rss+mapped;
//   - host-procs/sb: processes outside the sandboxes' cgroups that belong
//     to them (runtime shims, monitors); with run --detach runc and crun
//     leave none.
//
// ns/op is the time to create the N sandboxes (the settling, the
// measurement and the destruction are not timed). Afterwards it destroys
// them all and fails if the runtime still lists a container or a loop
// device is left on the root.
//
//	TIDEPOOL_BENCH_DENSITY_N=10 go test -run='^$' -bench='Density/(runc|crun)' -benchtime=1x ./internal/sandbox/oci/
func BenchmarkDensity(b *testing.B) {
	n := 10
	if s := os.Getenv("TIDEPOOL_BENCH_DENSITY_N"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			b.Fatalf("TIDEPOOL_BENCH_DENSITY_N=%q: want a positive integer", s)
		}
		n = v
	}
	for _, flavour := range flavours {
		b.Run(flavour, func(b *testing.B) {
			needRoot(b)
			if _, _, err := resolveBinary(flavour); err != nil {
				b.Skipf("skipping: %v", err)
			}
			// Registered first, so that it runs last: after the test
			// runtime's cleanup has destroyed what is left.
			var rt *Runtime
			b.Cleanup(func() {
				parent := densityCgroupParent
				if rt != nil {
					parent = rt.cgroupParent // resolved (cgroup v2)
				}
				paths, err := runtimeCgroupPaths(flavour, parent)
				if err != nil {
					b.Error(err)
				}
				for _, p := range paths {
					if err := removeCgroup(p); err != nil {
						b.Error(err)
					}
				}
			})
			rt = newTestRuntime(b, flavour, WithCgroupParent(densityCgroupParent))
			var samples []densitySample
			hostProcs := 0
			for b.Loop() {
				s, h := densityRound(b, rt, n)
				samples, hostProcs = append(samples, s...), hostProcs+h
			}
			var sum densitySample
			for _, s := range samples {
				sum.usage += s.usage
				sum.rssMapped += s.rssMapped
				sum.cache += s.cache
				sum.kernel += s.kernel
				sum.pss += s.pss
			}
			k := float64(len(samples))
			mib := func(v int64) float64 { return float64(v) / k / (1 << 20) }
			b.ReportMetric(mib(sum.usage), "usage-MiB/sb")
			b.ReportMetric(mib(sum.rssMapped), "rss+mapped-MiB/sb")
			b.ReportMetric(mib(sum.cache), "cache-MiB/sb")
			b.ReportMetric(mib(sum.kernel), "kernel-MiB/sb")
			b.ReportMetric(mib(sum.pss), "pss-MiB/sb")
			b.ReportMetric(16<<10/mib(sum.usage), "sb/16GiB-usage")
			b.ReportMetric(16<<10/mib(sum.rssMapped), "sb/16GiB-rss+mapped")
			b.ReportMetric(float64(hostProcs)/k, "host-procs/sb")
			for i, s := range samples[:min(len(samples), n)] {
				b.Logf("sandbox %d: usage %.1f MiB, rss+mapped %.1f MiB, cache %.1f MiB, kernel %.1f MiB, pss %.1f MiB, %d processes: %s",
					i, float64(s.usage)/(1<<20), float64(s.rssMapped)/(1<<20), float64(s.cache)/(1<<20),
					float64(s.kernel)/(1<<20), float64(s.pss)/(1<<20), s.procs, s.detail)
			}
		})
	}
}

type densitySample struct {
	usage, rssMapped, cache, kernel, pss int64
	procs                                int
	detail                               string // memory.stat's parts and the processes'
}

// densityRound creates n idle python sandboxes, measures them, destroys
// them, and returns the samples and the count of host processes found
// outside their cgroups.
func densityRound(b *testing.B, rt *Runtime, n int) ([]densitySample, int) {
	ctx := context.Background()
	b.StopTimer()
	ids := make([]string, 0, n)
	defer func() {
		// On a failure too: nothing may outlive the round.
		for _, id := range ids {
			if err := rt.Destroy(ctx, id); err != nil && !errors.Is(err, sandbox.ErrNotFound) {
				b.Errorf("Destroy(%s): %v", id, err)
			}
		}
		if left, err := rt.cli.list(ctx); err != nil {
			b.Errorf("%s list: %v", rt.cli.flavour, err)
		} else if len(left) > 0 {
			b.Errorf("%s list: %d containers left after Destroy: %v", rt.cli.flavour, len(left), slices.Collect(maps.Keys(left)))
		}
		backing, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
		for _, p := range backing {
			if f, err := os.ReadFile(p); err == nil && strings.HasPrefix(string(f), rt.root+"/") {
				b.Errorf("loop device left: %s → %s", p, strings.TrimSpace(string(f)))
			}
		}
	}()
	b.StartTimer()
	for range n {
		// The pools' defaults for a built-in kind (internal/pool); the
		// disk and pids limits are the runtime's.
		spec := sandbox.Spec{
			ID:          sandboxtest.NewID("density"),
			Kind:        sandbox.KindPython,
			Labels:      map[string]string{"suite": "density"},
			CPU:         1,
			MemoryBytes: 2 << 30,
		}
		if _, err := rt.Create(ctx, spec); err != nil {
			b.Fatalf("Create %d of %d: %v", len(ids)+1, n, err)
		}
		ids = append(ids, spec.ID)
	}
	b.StopTimer()
	time.Sleep(2 * time.Second)
	dirs := make([]string, len(ids))
	for i, id := range ids {
		dir, err := memoryCgroupOf(rt, id)
		if err != nil {
			b.Fatal(err)
		}
		dirs[i] = dir
	}
	samples := make([]densitySample, len(ids))
	for i, dir := range dirs {
		s, err := readDensitySample(dir)
		if err != nil {
			b.Fatal(err)
		}
		samples[i] = s
	}
	host := hostSideProcs(b, rt, ids, dirs)
	b.StartTimer()
	return samples, host
}

// memoryCgroupOf returns the directory of the sandbox's memory cgroup
// (v2: its unified cgroup), as Create recorded it in state.json from
// /proc/<init>/cgroup.
func memoryCgroupOf(rt *Runtime, id string) (string, error) {
	st, err := readState(rt.dir(id))
	if err != nil {
		return "", err
	}
	for ctrls, dir := range st.Cgroups {
		if slices.Contains(strings.Split(ctrls, ","), "memory") {
			return dir, nil
		}
	}
	if dir, ok := st.Cgroups[""]; ok && cgroupV2Only() {
		return dir, nil
	}
	return "", fmt.Errorf("%s: no memory cgroup in state.json: %v", id, st.Cgroups)
}

func readDensitySample(dir string) (densitySample, error) {
	var s densitySample
	stat, err := readKeyedInts(filepath.Join(dir, "memory.stat"))
	if err != nil {
		return s, err
	}
	if b, err := os.ReadFile(filepath.Join(dir, "memory.usage_in_bytes")); err == nil { // v1
		if s.usage, err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err != nil {
			return s, err
		}
		s.rssMapped = stat["total_rss"] + stat["total_mapped_file"]
		s.cache = stat["total_cache"]
		s.detail = fmt.Sprintf("rss %.1f MiB, mapped_file %.1f MiB, shmem %.1f MiB;",
			float64(stat["total_rss"])/(1<<20), float64(stat["total_mapped_file"])/(1<<20), float64(stat["total_shmem"])/(1<<20))
		if b, err := os.ReadFile(filepath.Join(dir, "memory.kmem.usage_in_bytes")); err == nil {
			s.kernel, _ = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		}
	} else { // v2
		b, err := os.ReadFile(filepath.Join(dir, "memory.current"))
		if err != nil {
			return s, err
		}
		if s.usage, err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err != nil {
			return s, err
		}
		s.rssMapped = stat["anon"] + stat["file_mapped"]
		s.cache = stat["file"]
		s.detail = fmt.Sprintf("anon %.1f MiB, file_mapped %.1f MiB, shmem %.1f MiB;",
			float64(stat["anon"])/(1<<20), float64(stat["file_mapped"])/(1<<20), float64(stat["shmem"])/(1<<20))
		s.kernel = stat["kernel"]
	}
	procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return s, err
	}
	for _, f := range strings.Fields(string(procs)) {
		s.procs++
		rollup, err := readKeyedInts("/proc/" + f + "/smaps_rollup")
		if err != nil {
			continue // gone meanwhile, or a kernel thread
		}
		s.pss += rollup["Pss:"] << 10
		comm, _ := os.ReadFile("/proc/" + f + "/comm")
		s.detail += fmt.Sprintf(" %s (rss %.1f MiB: anon %.1f, file %.1f; pss %.1f MiB)", strings.TrimSpace(string(comm)),
			float64(rollup["Rss:"])/(1<<10), float64(rollup["Anonymous:"])/(1<<10),
			float64(rollup["Rss:"]-rollup["Anonymous:"])/(1<<10), float64(rollup["Pss:"])/(1<<10))
	}
	return s, nil
}

// readKeyedInts reads "key value [kB]" lines.
func readKeyedInts(path string) (map[string]int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		if v, err := strconv.ParseInt(f[1], 10, 64); err == nil {
			m[f[0]] = v
		}
	}
	return m, nil
}

// hostSideProcs counts the processes that serve the sandboxes from
// outside their memory cgroups: anything whose command line names the
// runtime's root (which an OCI runtime's --root and --bundle do) or a
// sandbox: conmon-like monitors, shims, a lingering runc.
func hostSideProcs(b *testing.B, rt *Runtime, ids, dirs []string) int {
	inSandbox := map[string]bool{}
	for _, dir := range dirs {
		if procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err == nil {
			for _, f := range strings.Fields(string(procs)) {
				inSandbox[f] = true
			}
		}
	}
	n := 0
	all, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range all {
		pid := filepath.Base(p)
		if inSandbox[pid] || pid == strconv.Itoa(os.Getpid()) {
			continue
		}
		raw, err := os.ReadFile(p + "/cmdline")
		if err != nil || len(raw) == 0 {
			continue
		}
		cmdline := strings.ReplaceAll(string(raw), "\x00", " ")
		exe, _ := os.Readlink(p + "/exe")
		ours := strings.Contains(cmdline, rt.root+"/")
		for _, id := range ids {
			ours = ours || strings.Contains(cmdline, id)
		}
		if ours {
			rss := int64(0)
			if st, err := readKeyedInts(p + "/status"); err == nil {
				rss = st["VmRSS:"] << 10
			}
			b.Logf("host-side process %s (%s, rss %.1f MiB): %s", pid, exe, float64(rss)/(1<<20), cmdline)
			n++
		}
	}
	return n
}
