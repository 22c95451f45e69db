package oci

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// v2vmGuestEnv is set in the cgroup v2 guest (testdata/v2vm/guest.sh).
const v2vmGuestEnv = "TIDEPOOL_V2VM_GUEST"

// TestCgroupV2Guest runs this package's limit and leak tests for runc and
// crun on a kernel with the unified cgroup hierarchy only. The hosts the
// suite runs on have the v1 hierarchy, whose controllers cannot move to
// v2 while anything uses them, so the tests run in a QEMU guest: Debian's
// kernel, the host's root shared read-only over 9p, tmpfs where tests
// write, and the test process in a delegated service cgroup, as systemd
// runs a server (testdata/v2vm). The guest runs under QEMU's emulation
// (TCG) unless TIDEPOOL_V2VM_ACCEL says otherwise ("-enable-kvm -cpu host"
// where hardware virtualisation works), so this takes minutes.
//
// Packages: qemu-system-x86 linux-image-amd64 busybox-static cpio (CI
// installs them; elsewhere the test skips without them).
func TestCgroupV2Guest(t *testing.T) {
	if os.Getenv(v2vmGuestEnv) != "" {
		t.Skip("skipping: already in the cgroup v2 guest")
	}
	needRoot(t)
	kver, missing := v2vmKernel()
	for _, tool := range []string{"qemu-system-x86_64", "busybox", "cpio", "modinfo"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("missing %s (apt-get install qemu-system-x86 linux-image-amd64 busybox-static cpio)", strings.Join(missing, ", "))
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip("skipping: " + msg)
	}

	// The guest sees the host's root but for its tmpfs mounts (/tmp,
	// /run, /var/tmp): its files, and a copy of this package's directory
	// (the tests' working directory, and the scripts), go under /var/lib.
	dir, err := os.MkdirTemp("/var/lib", "tidepool-v2vm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	pkg := filepath.Join(dir, "pkg")
	if err := os.CopyFS(pkg, os.DirFS(".")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 25*time.Minute)
	defer cancel()
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	run("go", "test", "-c", "-o", filepath.Join(dir, "oci.test"), ".")
	run("go", "build", "-trimpath", "-o", filepath.Join(dir, "tidepool-agent"), "../../../cmd/tidepool-agent")
	initrd := filepath.Join(dir, "initrd.cpio.gz")
	run(filepath.Join(pkg, "testdata/v2vm/build-initramfs.sh"), initrd, kver)

	// The kernel's command line splits at spaces: the guest's command goes
	// in a file.
	const tests = `^(TestLimits|TestNoLeaks)$/^(runc|crun)$`
	cmdFile := filepath.Join(dir, "cmd")
	guest := fmt.Sprintf("%s %s %s -test.run '%s'", filepath.Join(pkg, "testdata/v2vm/guest.sh"), dir, pkg, tests)
	if err := os.WriteFile(cmdFile, []byte(guest+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	accel := strings.Fields(os.Getenv("TIDEPOOL_V2VM_ACCEL"))
	if len(accel) == 0 {
		accel = []string{"-accel", "tcg,thread=multi", "-cpu", "max"}
	}
	args := append(accel,
		"-m", "4096", "-smp", "2", "-nographic", "-nodefaults", "-no-reboot", "-serial", "stdio", "-monitor", "none",
		"-kernel", "/boot/vmlinuz-"+kver, "-initrd", initrd,
		"-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
		"-append", "console=ttyS0 quiet panic=-1 cgroup_no_v1=all v2vm.cmd="+cmdFile)
	start := time.Now()
	var out bytes.Buffer
	qemu := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	qemu.Stdout, qemu.Stderr = &out, &out
	err = qemu.Run()
	log := strings.ReplaceAll(out.String(), "\r\n", "\n") // a serial console's lines
	t.Logf("guest ran %s", time.Since(start).Round(time.Second))
	if err != nil || ctx.Err() != nil {
		t.Fatalf("qemu: %v (%v)\n%s", err, ctx.Err(), log)
	}
	// The verdict is the guest's: its test binary's exit, each wanted test
	// passed, and no cgroup left behind.
	for _, want := range []string{
		"/sys/fs/cgroup is cgroup2",
		"--- PASS: TestLimits/runc", "--- PASS: TestLimits/crun",
		"--- PASS: TestNoLeaks/runc", "--- PASS: TestNoLeaks/crun",
		"v2vm: oci.test exit 0",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("guest output lacks %q", want)
		}
	}
	m := regexp.MustCompile(`(?s)cgroups left under the service:\n(.*?)v2vm: oci.test exit`).FindStringSubmatch(log)
	if m == nil {
		t.Error("guest output lacks the list of cgroups left")
	} else {
		for _, dir := range strings.Fields(m[1]) {
			if filepath.Base(dir) != "supervisor" { // the test process's own leaf (prepareCgroupV2)
				t.Errorf("cgroup left in the guest: %s", dir)
			}
		}
	}
	t.Logf("guest output:\n%s", log) // shown with -v or on failure
}

// v2vmKernel returns the newest kernel with modules under /lib/modules and
// its image under /boot, or what is missing.
func v2vmKernel() (string, []string) {
	entries, _ := os.ReadDir("/lib/modules")
	var versions []string
	for _, e := range entries {
		if _, err := os.Stat("/boot/vmlinuz-" + e.Name()); err == nil {
			versions = append(versions, e.Name())
		}
	}
	if len(versions) == 0 {
		return "", []string{"a kernel image in /boot with its modules"}
	}
	slices.Sort(versions)
	return versions[len(versions)-1], nil
}
