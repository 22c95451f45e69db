package oci

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Kinds of host entries.
const (
	entryDir = iota
	entryFile
	entrySymlink
)

// hostEntry is a host path a host-rootfs sandbox sees.
type hostEntry struct {
	path   string
	kind   int
	target string // symlinks
}

// scanHostPaths lstats the host paths; missing ones are dropped.
func scanHostPaths(paths []string) ([]hostEntry, error) {
	var out []hostEntry
	for _, p := range paths {
		st, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		e := hostEntry{path: p}
		switch {
		case st.Mode()&fs.ModeSymlink != 0:
			e.kind = entrySymlink
			if e.target, err = os.Readlink(p); err != nil {
				return nil, err
			}
		case st.IsDir():
			e.kind = entryDir
		case st.Mode().IsRegular():
			e.kind = entryFile
		default:
			continue // devices, sockets: never
		}
		out = append(out, e)
	}
	return out, nil
}

// skeleton are the mount points every root filesystem needs.
var skeletonDirs = []string{"proc", "dev", "sys", "tmp", "mnt/data", ".tidepool/run", "etc"}

// fileMountPoints are the files mounted over (crun needs them to exist).
var fileMountPoints = []string{agentPath, driverPath}

// prepareHostRootFS fills dir (ours: no image in it), the read-only root of a host-rootfs
// sandbox: mount points, the host entries (symlinks as symlinks, mount
// points for the rest) and the generated /etc files.
func prepareHostRootFS(dir string, entries []hostEntry, resolvConf []byte) error {
	if err := makeSkeleton(dir); err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		var err error
		switch e.kind {
		case entrySymlink:
			err = os.Symlink(e.target, p)
		case entryDir:
			err = os.Mkdir(p, 0o755)
		case entryFile:
			err = touch(p, 0o644)
		}
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	files := map[string][]byte{
		"etc/passwd":        []byte("root:x:0:0:root:/tmp:/bin/sh\nsandbox:x:1000:1000:sandbox:/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
		"etc/group":         []byte("root:x:0:\nsandbox:x:1000:\nnogroup:x:65534:\n"),
		"etc/nsswitch.conf": []byte("passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n"),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			return err
		}
	}
	return writeNetFiles(dir, resolvConf)
}

// prepareImageRootFS adds what a sandbox needs to the merged root of an
// image: the mount points, the generated network files, and the working
// directory cwd (if not empty and missing, owned by uid:gid on the host).
// The image's own /etc/passwd and /etc/group stay. The image is untrusted:
// every path is resolved inside dir (os.Root), so that a symlink in the
// image cannot make these writes, done as host root, land on the host.
func prepareImageRootFS(dir string, resolvConf []byte, cwd string, uid, gid int) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	_, err = root.Lstat("tmp")
	madeTmp := errors.Is(err, fs.ErrNotExist)
	for _, d := range skeletonDirs {
		if err := root.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("image rootfs: %w", err)
		}
	}
	if madeTmp {
		// runc gives the tmpfs mounted on /tmp the mode of the directory
		// under it.
		if err := root.Chmod("tmp", 0o777|fs.ModeSticky); err != nil {
			return fmt.Errorf("image rootfs: %w", err)
		}
	}
	for _, p := range fileMountPoints {
		f, err := root.OpenFile(strings.TrimPrefix(p, "/"), os.O_CREATE|os.O_WRONLY, 0o755)
		if err != nil {
			return fmt.Errorf("image rootfs: %w", err)
		}
		f.Close()
	}
	if err := writeNetFilesIn(root, resolvConf); err != nil {
		return fmt.Errorf("image rootfs: %w", err)
	}
	if cwd == "" {
		return nil
	}
	rel := strings.TrimPrefix(cwd, "/")
	if _, err := root.Lstat(rel); errors.Is(err, fs.ErrNotExist) {
		if err := root.MkdirAll(rel, 0o755); err != nil {
			return fmt.Errorf("image working directory: %w", err)
		}
		if err := root.Lchown(rel, uid, gid); err != nil {
			return fmt.Errorf("image working directory: %w", err)
		}
	}
	return nil
}

func makeSkeleton(dir string) error {
	for _, d := range skeletonDirs {
		p := filepath.Join(dir, d)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("rootfs: %w", err)
		}
	}
	// runc gives the tmpfs mounted on /tmp the mode of the directory
	// under it.
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o777|fs.ModeSticky); err != nil {
		return err
	}
	for _, p := range fileMountPoints {
		if err := touch(filepath.Join(dir, p), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// writeNetFiles writes /etc/hosts, /etc/hostname and, when the sandbox has
// egress, /etc/resolv.conf into a root filesystem of ours.
func writeNetFiles(dir string, resolvConf []byte) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	return writeNetFilesIn(root, resolvConf)
}

// writeNetFilesIn writes the network files. Whatever the image had there
// is replaced (an image's /etc/hosts cannot know the sandbox), including
// symlinks (to ../run/...), which are removed, not followed.
func writeNetFilesIn(root *os.Root, resolvConf []byte) error {
	files := map[string][]byte{
		"etc/hosts":    []byte("127.0.0.1\tlocalhost " + hostname + "\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
		"etc/hostname": []byte(hostname + "\n"),
	}
	if resolvConf != nil {
		files["etc/resolv.conf"] = resolvConf
	}
	for name, content := range files {
		if st, err := root.Lstat(name); err == nil && !st.Mode().IsRegular() {
			if err := root.Remove(name); err != nil {
				return err
			}
		}
		if err := root.WriteFile(name, content, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// touch creates an empty file (a mount point) if it does not exist.
func touch(p string, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	return f.Close()
}

// sandboxResolvConf derives an egress sandbox's resolv.conf from the
// host's: loopback nameservers (a local stub resolver such as
// systemd-resolved's 127.0.0.53) cannot be reached from a sandbox and are
// dropped; with none left, public resolvers are used.
func sandboxResolvConf(host []byte) []byte {
	var out bytes.Buffer
	servers := 0
	sc := bufio.NewScanner(bytes.NewReader(host))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			a, err := netip.ParseAddr(f[1])
			if err != nil || a.IsLoopback() {
				continue
			}
			servers++
		}
		out.WriteString(line + "\n")
	}
	if servers == 0 {
		out.WriteString("nameserver 1.1.1.1\nnameserver 8.8.8.8\n")
	}
	return out.Bytes()
}

// mountOverlay mounts an overlay of lower (read-only) and upper at target.
func mountOverlay(lower, upper, work, target string) error {
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work)
	if len(opts) > unix.Getpagesize()-1 {
		return fmt.Errorf("overlay options too long")
	}
	if err := unix.Mount("overlay", target, "overlay", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount overlay on %s: %w", target, err)
	}
	return nil
}
