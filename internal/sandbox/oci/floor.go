package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tidepool-dev/tidepool/internal/sandbox"
)

// Floor runs one-shot commands in a bundle made as Create makes a
// sandbox's (host rootfs, user namespace for runc and crun, seccomp, masked
// paths, cgroup limits) but without the agent, the disk, the network or the
// health check: what the OCI runtime itself costs, the floor a sandbox's
// start is compared with (`tidepool bench`, docs/performance.md). Runs are
// sequential; a Floor is not safe for concurrent use.
type Floor struct {
	rt  *Runtime
	dir string
	n   int
}

// NewFloor prepares a floor bundle under the runtime's root. Close removes
// it.
func (r *Runtime) NewFloor() (*Floor, error) {
	dir := filepath.Join(r.root, fmt.Sprintf("floor-%d", os.Getpid()))
	f := &Floor{rt: r, dir: dir}
	if err := f.prepare(); err != nil {
		f.Close()
		return nil, fmt.Errorf("oci floor bundle: %w", err)
	}
	return f, nil
}

func (f *Floor) prepare() error {
	r := f.rt
	for _, d := range []string{"rootfs", "data", "run"} {
		if err := os.MkdirAll(filepath.Join(f.dir, d), 0o755); err != nil {
			return err
		}
	}
	for _, d := range []string{"data", "run"} {
		if err := os.Chown(filepath.Join(f.dir, d), int(r.uid), int(r.gid)); err != nil {
			return err
		}
	}
	if err := prepareHostRootFS(filepath.Join(f.dir, "rootfs"), r.hostEntries, nil); err != nil {
		return err
	}
	idSize := r.opts.idSize
	if r.cli.flavour == flavourRunsc {
		idSize = 0
	}
	spec := sandbox.Spec{ID: "floor", Kind: sandbox.KindShell, CPU: 1, MemoryBytes: 512 << 20}
	conf, err := ociSpec(&bundleSpec{
		spec: spec, flavour: r.cli.flavour, rootfs: filepath.Join(f.dir, "rootfs"), readonly: true,
		hostBinds: r.hostEntries, agentBinary: r.agentBinary,
		runDir: filepath.Join(f.dir, "run"), dataDir: filepath.Join(f.dir, "data"),
		idBase: r.opts.idBase, idSize: idSize,
		cgroupsPath: f.cgroup(), tmpBytes: 16 << 20, nofile: r.nofile,
	})
	if err != nil {
		return err
	}
	conf.Process.Args = []string{"/bin/true"}
	raw, err := json.Marshal(conf)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(f.dir, "config.json"), raw, 0o600)
}

func (f *Floor) cgroup() string {
	return filepath.Join(f.rt.cgroupParent, filepath.Base(f.dir))
}

// Run runs argv in the floor bundle in the foreground (`<runtime> run`)
// and returns the wall time from the runtime's start to its exit. A
// non-zero exit of argv is an error carrying its output.
func (f *Floor) Run(ctx context.Context, argv ...string) (time.Duration, error) {
	if len(argv) == 0 {
		return 0, errors.New("oci floor: empty command")
	}
	cfgPath := filepath.Join(f.dir, "config.json")
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		return 0, err
	}
	var conf map[string]any
	if err := json.Unmarshal(raw, &conf); err != nil {
		return 0, err
	}
	if p, ok := conf["process"].(map[string]any); ok {
		p["args"] = argv
	}
	if raw, err = json.Marshal(conf); err != nil {
		return 0, err
	}
	if err := os.WriteFile(cfgPath, raw, 0o600); err != nil {
		return 0, err
	}
	if err := claimCgroup(f.rt.cli.flavour, f.cgroup()); err != nil {
		return 0, err
	}
	f.n++
	id := fmt.Sprintf("%s-%d", filepath.Base(f.dir), f.n)
	sub := []string{"run", noNewKeyring, "--bundle", f.dir, id}
	if f.rt.cli.flavour == flavourRunsc {
		sub = append(runscFlags(false), "run", "--bundle", f.dir, id)
	}
	cmd := f.rt.cli.command(ctx, sub...)
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(t0)
	if err != nil {
		return 0, fmt.Errorf("%s run %s: %w: %s", f.rt.cli.flavour, strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return d, nil
}

// Close removes the bundle and the floor's cgroup, and the cgroup parent
// too when nothing else is left in it.
func (f *Floor) Close() error {
	var errs []error
	if paths, err := runtimeCgroupPaths(f.rt.cli.flavour, f.cgroup()); err == nil {
		for _, p := range paths {
			errs = append(errs, removeCgroup(p))
			_ = unix.Rmdir(filepath.Dir(p)) // fails (EBUSY) while it holds other cgroups
		}
	}
	errs = append(errs, os.RemoveAll(f.dir))
	return errors.Join(errs...)
}
