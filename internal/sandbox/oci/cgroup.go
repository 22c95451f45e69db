package oci

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// cgroupMounts maps each cgroup v1 controller (and "name=systemd") to
// its mount point, and "" to the cgroup2 mount point if there is one.
func cgroupMounts() (map[string]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent maj:min root mountpoint opts [optional...] - fstype source superopts
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 4 || len(fields) <= sep+3 {
			continue
		}
		mnt, fstype := unescapeMountinfo(fields[4]), fields[sep+1]
		switch fstype {
		case "cgroup2":
			if _, ok := out[""]; !ok {
				out[""] = mnt
			}
		case "cgroup":
			for _, opt := range strings.Split(fields[sep+3], ",") {
				switch opt {
				case "rw", "ro", "relatime", "noexec", "nosuid", "nodev", "clone_children", "xattr", "nsdelegate", "memory_recursiveprot":
					continue
				}
				if _, ok := out[opt]; !ok {
					out[opt] = mnt
				}
			}
		}
	}
	return out, sc.Err()
}

func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// processCgroups returns the cgroup directories of a process, keyed by
// controller list ("memory", "cpu,cpuacct", "name=systemd", "" for v2).
func processCgroups(pid int) (map[string]string, error) {
	mounts, err := cgroupMounts()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		ctrls, p := parts[1], parts[2]
		var mnt string
		if ctrls == "" {
			mnt = mounts[""]
		} else {
			mnt = mounts[strings.Split(ctrls, ",")[0]]
		}
		if mnt == "" || p == "/" {
			continue
		}
		out[ctrls] = filepath.Join(mnt, p)
	}
	return out, nil
}

// ownCgroupPaths returns where a relative cgroupsPath lands for this
// process, per controller, as runc and runsc resolve it: below the
// caller's own cgroup of each hierarchy.
func ownCgroupPaths(rel string) (map[string]string, error) {
	return cgroupPathsFrom(rel, false)
}

// runtimeCgroupPaths returns where a runtime puts a cgroupsPath, per
// controller. crun resolves a relative path against each hierarchy's
// root, runc and runsc against their own cgroup.
func runtimeCgroupPaths(flavour, rel string) (map[string]string, error) {
	return cgroupPathsFrom(rel, flavour == flavourCrun)
}

func cgroupPathsFrom(rel string, fromRoot bool) (map[string]string, error) {
	own, err := processCgroupsRaw(os.Getpid())
	if err != nil {
		return nil, err
	}
	mounts, err := cgroupMounts()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for ctrls, p := range own {
		var mnt string
		if ctrls == "" {
			mnt = mounts[""]
		} else {
			mnt = mounts[strings.Split(ctrls, ",")[0]]
		}
		if mnt == "" {
			continue
		}
		if filepath.IsAbs(rel) || fromRoot {
			out[ctrls] = filepath.Join(mnt, rel)
		} else {
			out[ctrls] = filepath.Join(mnt, p, rel)
		}
	}
	return out, nil
}

// processCgroupsRaw returns /proc/<pid>/cgroup as controllers → path.
func processCgroupsRaw(pid int) (map[string]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 {
			out[parts[1]] = parts[2]
		}
	}
	return out, nil
}

// removeCgroup removes a cgroup directory and its children (runc leaves
// none, but a crashed runtime may). Processes still in it (a runtime's
// init orphaned by a crash) are killed first.
func removeCgroup(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeCgroup(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	delay := time.Millisecond
	for i := 0; ; i++ {
		if procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err == nil {
			for _, f := range strings.Fields(string(procs)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
					_ = unix.Kill(pid, unix.SIGKILL)
				}
			}
		}
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || i >= 12 {
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
		time.Sleep(delay)
		delay = min(delay*2, 200*time.Millisecond)
	}
}

// cgroupV2Only reports whether the host runs the unified hierarchy alone.
func cgroupV2Only() bool {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		return false
	}
	return st.Type == unix.CGROUP2_SUPER_MAGIC
}

// prepareCgroupV2 readies the server's cgroup to hold sandboxes below it
// on the unified hierarchy. cgroup v2 forbids processes in a cgroup whose
// children have controllers enabled, so the server moves itself into a
// leaf, "<own>/supervisor" (what systemd's Delegate=yes expects of a
// service that makes cgroups), and enables the controllers for the rest.
// It returns the server's cgroup (without /supervisor), which relative
// cgroup parents are resolved against.
func prepareCgroupV2() (string, error) {
	own, err := processCgroupsRaw(os.Getpid())
	if err != nil {
		return "", err
	}
	p, ok := own[""]
	if !ok || p == "/" {
		return "/", nil
	}
	if filepath.Base(p) == "supervisor" {
		p = filepath.Dir(p) // done by an earlier Runtime in this process
	}
	base := filepath.Join("/sys/fs/cgroup", p)
	leaf := filepath.Join(base, "supervisor")
	if err := os.MkdirAll(leaf, 0o755); err != nil {
		return "", err
	}
	procs, err := os.ReadFile(filepath.Join(base, "cgroup.procs"))
	if err != nil {
		return "", err
	}
	for _, pid := range strings.Fields(string(procs)) {
		// Other processes of the service (a shell wrapper) move too.
		if err := os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte(pid), 0o644); err != nil && !errors.Is(err, unix.ESRCH) {
			return "", fmt.Errorf("move %s into %s: %w", pid, leaf, err)
		}
	}
	avail, err := os.ReadFile(filepath.Join(base, "cgroup.controllers"))
	if err != nil {
		return "", err
	}
	var enable []string
	for _, c := range strings.Fields(string(avail)) {
		switch c {
		case "cpu", "memory", "pids", "io", "cpuset":
			enable = append(enable, "+"+c)
		}
	}
	if len(enable) > 0 {
		if err := os.WriteFile(filepath.Join(base, "cgroup.subtree_control"), []byte(strings.Join(enable, " ")), 0o644); err != nil {
			return "", fmt.Errorf("enable controllers in %s: %w", base, err)
		}
	}
	return p, nil
}

// claimCgroup makes sure no cgroup exists where a new sandbox's will be
// made: runtimes join an existing cgroup silently, and two sandboxes
// sharing one (the same id under two Runtimes with one cgroup parent)
// would share their limits. An empty leftover (a crash) is removed.
func claimCgroup(flavour, rel string) error {
	paths, err := runtimeCgroupPaths(flavour, rel)
	if err != nil {
		return err
	}
	for _, p := range paths {
		if err := unix.Rmdir(p); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("cgroup %s is in use (two runtimes with one cgroup parent?): %w", p, err)
		}
	}
	return nil
}
