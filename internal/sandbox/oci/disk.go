package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A sandbox's writable storage (/mnt/data, and the upper layer of an
// image's overlay) lives on its own ext4 filesystem: a sparse file of
// DiskBytes, loop-mounted. Filling it fails with ENOSPC inside that sandbox
// and nowhere else. Making a filesystem costs an fsync, so one is made per
// (size, owner) once, as a template, and each sandbox gets a sparse copy
// of it (under a megabyte of data).

// diskTemplates makes and caches filesystem templates.
type diskTemplates struct {
	dir string // <root>/.templates
	mu  sync.Mutex
}

// get returns the template for a filesystem of size bytes whose data/
// directory belongs to uid:gid, making it if needed.
func (d *diskTemplates) get(ctx context.Context, size int64, uid, gid uint32) (string, error) {
	name := filepath.Join(d.dir, fmt.Sprintf("ext4-%d-%d-%d.img", size, uid, gid))
	if _, err := os.Stat(name); err == nil {
		return name, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := os.Stat(name); err == nil {
		return name, nil
	}
	mkfs, err := findTool("mkfs.ext4", "e2fsprogs")
	if err != nil {
		return "", err
	}
	stage, err := os.MkdirTemp(d.dir, "stage-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(stage)
	tree := filepath.Join(stage, "tree")
	data := filepath.Join(tree, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return "", err
	}
	if err := os.Chown(data, int(uid), int(gid)); err != nil {
		return "", err
	}
	img := filepath.Join(stage, "fs.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		return "", err
	}
	if err := os.Truncate(img, size); err != nil {
		return "", err
	}
	// No journal: the filesystem lives as long as its sandbox, and a host
	// crash ends both. The default discard tells mke2fs that the file
	// reads as zeros, so the inode tables need no lazy initialisation at
	// each mount.
	cmd := exec.CommandContext(ctx, mkfs, "-q", "-F", "-t", "ext4", "-O", "^has_journal",
		"-m", "0", "-L", "tidepool", "-E", "root_owner=0:0", "-d", tree, img)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("mkfs.ext4: %w: %s", err, out)
	}
	if err := os.Rename(img, name); err != nil {
		return "", err
	}
	return name, nil
}

// findTool looks a host tool up in PATH and the sbin directories.
func findTool(name, pkg string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found (apt-get install %s)", name, pkg)
}

// copySparse copies src to a new file dst, skipping holes.
func copySparse(src, dst string) (retErr error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err := out.Close(); retErr == nil {
			retErr = err
		}
		if retErr != nil {
			os.Remove(dst)
		}
	}()
	size := st.Size()
	if err := out.Truncate(size); err != nil {
		return err
	}
	inFd, outFd := int(in.Fd()), int(out.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(inFd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		}
		if err != nil {
			return fmt.Errorf("copy %s: %w", src, err)
		}
		hole, err := unix.Seek(inFd, data, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("copy %s: %w", src, err)
		}
		for roff, woff := data, data; roff < hole; {
			n, err := unix.CopyFileRange(inFd, &roff, outFd, &woff, int(hole-roff), 0)
			if err != nil {
				return fmt.Errorf("copy %s: %w", src, err)
			}
			if n == 0 {
				return fmt.Errorf("copy %s: %w", src, io.ErrUnexpectedEOF)
			}
		}
		off = hole
	}
	return nil
}

// mountImage attaches file to a free loop device and mounts its ext4
// filesystem on target. The device is set to clear itself when the
// filesystem is unmounted, so unmounting is all the cleanup it needs.
func mountImage(file, target string) error {
	backing, err := os.OpenFile(file, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer backing.Close()
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loop devices: %w", err)
	}
	defer ctl.Close()
	for attempt := 0; ; attempt++ {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return fmt.Errorf("loop devices: get free: %w", err)
		}
		dev := "/dev/loop" + strconv.Itoa(n)
		loop, err := openLoop(dev, n)
		if err != nil {
			return err
		}
		cfg := unix.LoopConfig{Fd: uint32(backing.Fd())}
		cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
		copy(cfg.Info.File_name[:], file)
		err = unix.IoctlLoopConfigure(int(loop.Fd()), &cfg)
		if errors.Is(err, unix.EBUSY) && attempt < 100 {
			loop.Close() // another attach won the race for this device
			continue
		}
		if err != nil {
			loop.Close()
			return fmt.Errorf("configure %s: %w", dev, err)
		}
		err = unix.Mount(dev, target, "ext4", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOATIME, "")
		// Once mounted the filesystem holds the device; closing our
		// descriptor arms autoclear (and detaches it now if the mount
		// failed).
		loop.Close()
		if err != nil {
			return fmt.Errorf("mount %s on %s: %w", dev, target, err)
		}
		return nil
	}
}

// openLoop opens a loop device, creating its node if the host's /dev is
// not a devtmpfs.
func openLoop(dev string, n int) (*os.File, error) {
	f, err := os.OpenFile(dev, os.O_RDWR|unix.O_CLOEXEC, 0)
	if errors.Is(err, os.ErrNotExist) {
		if err := unix.Mknod(dev, unix.S_IFBLK|0o660, int(unix.Mkdev(7, uint32(n)))); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("mknod %s: %w", dev, err)
		}
		f, err = os.OpenFile(dev, os.O_RDWR|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dev, err)
	}
	return f, nil
}

// unmount unmounts target if something is mounted there. A busy mount is
// detached lazily (the kernel finishes once the last user is gone).
func unmount(target string) error {
	for i := 0; ; i++ {
		err := unix.Unmount(target, unix.UMOUNT_NOFOLLOW)
		switch {
		case err == nil:
			continue // stacked mounts: unmount them all
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil // not a mount point (any more)
		case errors.Is(err, unix.EBUSY) && i < 20:
			time.Sleep(5 * time.Millisecond)
		case errors.Is(err, unix.EBUSY):
			if err := unix.Unmount(target, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil && !errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("unmount %s: %w", target, err)
			}
			return nil
		default:
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
}
