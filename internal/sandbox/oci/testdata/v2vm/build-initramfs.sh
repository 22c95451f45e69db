#!/bin/sh
# Builds the initramfs of TestCgroupV2Guest: busybox-static, the guest kernel's 9p and
# virtio modules, and ./init. Usage: build-initramfs.sh OUT.cpio.gz [KVER]
set -eu
out=$1
kver=${2:-$(ls /lib/modules | sort -V | tail -1)}
here=$(cd "$(dirname "$0")" && pwd)
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
mkdir -p "$d/bin" "$d/lib/mod" "$d/proc" "$d/sys" "$d/dev" "$d/newroot"
cp /bin/busybox "$d/bin/busybox"
cp "$here/init" "$d/init"
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci netfs fscache 9pnet 9pnet_virtio 9p overlay; do
	f=$(modinfo -k "$kver" -n "$m" 2>/dev/null) || continue # built in
	case $f in
	*.ko) cp "$f" "$d/lib/mod/$m.ko" ;;
	*.ko.xz) xz -dc "$f" > "$d/lib/mod/$m.ko" ;;
	*.ko.zst) zstd -dc "$f" > "$d/lib/mod/$m.ko" ;;
	*) ;; # (builtin)
	esac
done
(cd "$d" && find . | cpio -o -H newc --quiet | gzip -1) > "$out"
echo "$out ($kver): $(du -h "$out" | cut -f1)"
