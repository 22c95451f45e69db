#!/bin/sh
# Runs in the cgroup-v2 guest of TestCgroupV2Guest (as PID 1's command):
# the oci package's test binary on a kernel with the unified hierarchy only.
# Usage: guest.sh DIR PKGDIR [test flags...]
#   DIR holds oci.test and tidepool-agent, built on the host; PKGDIR is the
#   package's directory, the tests' working directory.
export PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TMPDIR=/tmp TIDEPOOL_TEST_AGENT="$1/tidepool-agent" TIDEPOOL_V2VM_GUEST=1 CI=true
dir=$1 pkg=$2
shift 2
ip link set lo up
for m in loop overlay ext4 bridge veth br_netfilter nf_tables nft_chain_nat nft_masq nf_nat; do
	modprobe "$m" 2>/dev/null
done
echo "v2vm: kernel $(uname -r); /sys/fs/cgroup is $(stat -f -c %T /sys/fs/cgroup)"
# What systemd does for a service with Delegate=yes: the server runs in a
# cgroup of its own, with the controllers enabled down to it.
echo "+cpu +memory +pids +io +cpuset" > /sys/fs/cgroup/cgroup.subtree_control
mkdir -p /sys/fs/cgroup/system.slice/tidepool.service
echo "+cpu +memory +pids +io +cpuset" > /sys/fs/cgroup/system.slice/cgroup.subtree_control
echo $$ > /sys/fs/cgroup/system.slice/tidepool.service/cgroup.procs
cd "$pkg" || exit 1
"$dir/oci.test" -test.v -test.timeout 30m "$@"
rc=$?
echo "v2vm: cgroups left under the service:"
find /sys/fs/cgroup/system.slice/tidepool.service -mindepth 1 -type d
echo "v2vm: oci.test exit $rc"
