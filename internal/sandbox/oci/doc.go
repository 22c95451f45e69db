// Package oci runs sandboxes with a local OCI runtime binary: runc (the
// default), crun, or runsc (gVisor). It implements sandbox.Runtime.
//
// # Layout
//
// Everything lives under the root directory given to New:
//
//	<root>/<id>/state.json   what List and Destroy need (id, labels, creation
//	                         time, runtime binary, parts set up, pid, cgroups)
//	<root>/<id>/config.json  the runtime-spec bundle configuration
//	<root>/<id>/rootfs/      the root: an empty skeleton of mount points and
//	                         generated /etc files for the built-in kinds, or
//	                         the overlay of an image for custom ones
//	<root>/<id>/run/         the agent's socket directory, agent.sock, seen at
//	                         /.tidepool/run in the sandbox
//	<root>/<id>/disk.img     the sandbox's writable storage, an ext4 file
//	<root>/<id>/disk/        ... loop-mounted: data/ (seen at /mnt/data), the
//	                         overlay's upper/ and work/, agent.log
//	<root>/<id>/netns        the network namespace, with egress
//	<root>/.oci/<runtime>/   each runtime binary's own state (--root)
//	<root>/.templates/       empty ext4 images, one per (size, owner)
//	<root>/.cni/ipam/        the address allocator's state
//	<root>/.bin/             the agent binary the sandboxes run
//
// # Lifecycle
//
// Create writes state.json first, then adds the parts (disk, network,
// root, bundle), records each in state.json before making it, starts the
// container detached (its stdio goes to agent.log: it holds nothing of the
// server's and outlives it), and returns once the agent answers /health as
// ready, with the kernel of a python or node sandbox started (agent flags
// --kernel and --pre-import). As soon as the agent's socket exists, its
// directory is taken from the sandbox (lockRunDir), so that nothing in the
// sandbox can plant a symlink where the server dials. A failure undoes every part made so far, under a context that
// outlives the caller's. Destroy (and a failed Create) kills the
// container, deletes it from the runtime, releases the network, unmounts,
// removes the cgroups, and removes the directory only when nothing is
// mounted in it any more; every step tolerates its part being absent, so a
// failed Destroy can be repeated. List reads <root>/*/state.json and the
// runtimes' own lists: a sandbox whose container is gone (it died, the host
// rebooted, a server crashed mid-create) is destroyed on the way and not
// returned. A new Runtime on the same root thus adopts the sandboxes of an
// earlier server process.
//
// # Isolation
//
// A sandbox runs the agent (tidepool agent, bind-mounted read-only at
// /.tidepool/tidepool) as its init, in new pid, ipc, uts, mount, network
// and cgroup namespaces. Under runc and crun it also runs in a user
// namespace: sandbox uid/gid 0..65535 are host ids DefaultIDBase.. (see
// WithIDMap), one range shared by all sandboxes, which their other
// namespaces keep apart; nothing in a sandbox runs as host root. gVisor
// (runsc) is a kernel of its own: its sandbox process runs as an
// unprivileged host user in gVisor's own user namespace, and the spec's
// limits apply inside it.
//
// A custom image is untrusted: the runtime's own writes into its root go
// through os.Root, so that the image's symlinks cannot send them to the
// host.
//
// Built-in kinds get no capabilities at all (the agent needs none: it
// mounts nothing); custom images get a small set for what images expect of
// root, all inside the user namespace (no CAP_NET_RAW, CAP_SYS_ADMIN,
// CAP_SYS_PTRACE or CAP_MKNOD). Every process has no_new_privileges and a
// seccomp allowlist (seccomp.go), the usual masked and read-only /proc and
// /sys paths, and for the built-in kinds a read-only root of host binds
// (/usr, the /lib directories, selected /etc files; symlinks such as
// Debian's /bin → usr/bin are reproduced as symlinks) with generated
// /etc/passwd, /etc/group, /etc/hosts and, with egress, /etc/resolv.conf.
// Only /tmp and /mnt/data are writable. A custom image's root is its own
// writable overlay layer, on the sandbox's disk.
//
// # Limits
//
// cpu (CFS quota), memory (with swap equal to it: no swap), pids (512 by
// default) and writable storage (DiskBytes, 1 GiB by default): /mnt/data
// and an image's layer are on the sandbox's own ext4 filesystem, so a disk
// fill ends in ENOSPC inside the sandbox; /tmp is a tmpfs of a quarter of
// that size, charged to the memory limit too. The cgroups are created by
// the runtime at <parent>/<id> (WithCgroupParent), on cgroup v1 and v2.
// On a v2-only host a server with a relative parent moves itself into a
// "supervisor" leaf of its cgroup and enables the controllers below it
// (prepareCgroupV2), as systemd expects of a service with Delegate=yes.
// The suite runs on v1 hosts; TestCgroupV2Guest runs the limit and leak
// tests for runc and crun on a v2-only kernel in a QEMU guest.
// Under runc and crun a memory bomb is OOM-killed inside the sandbox's
// cgroup and the agent lives on; under runsc the sandbox's kernel is one
// host process, so the OOM killer ends the whole sandbox (List then
// reports it gone).
//
// # Network
//
// Without egress a sandbox has its own network namespace with loopback
// only. With egress it is connected by the standard CNI bridge and
// host-local plugins to a host bridge, NATed to the outside, with its
// bridge port isolated and nftables rules that keep it from the host
// itself and from other sandboxes (network.go).
//
// # Runtimes
//
// The three runtimes are driven through one command-line client (cli.go).
// Two host quirks are worked around there: crun refuses hybrid cgroup
// hosts whose cgroup2 hierarchy owns a controller, and runsc releases
// before 2023 refuse network namespaces on Linux 6.x; both are run in a
// private mount namespace that hides what trips them.
package oci
