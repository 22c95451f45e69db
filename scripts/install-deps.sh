#!/usr/bin/env bash
# Installs what tidepool needs to build, run and test on Debian or Ubuntu.
# As root it installs missing packages with apt-get; otherwise it names them.
set -euo pipefail

# Build and test tools; the interpreters sandboxes run (Debian's python3 and
# node, seen through the host rootfs); matplotlib for figure results.
# OCI runtimes, CNI plugins and the tools sandboxes' networking and
# storage use.
packages=(ca-certificates curl jq gcc libc6-dev git python3 python3-matplotlib nodejs
	runc crun runsc containernetworking-plugins iproute2 nftables iptables e2fsprogs util-linux)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" -eq 0 ]; then
		echo "installing: ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${missing[@]}"
	elif command -v sudo >/dev/null; then
		echo "installing with sudo: ${missing[*]}"
		sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
		sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
	else
		echo "missing packages: ${missing[*]} (install them as root)" >&2
		exit 1
	fi
fi

# Go: the module needs Go 1.26 or newer. A Go 1.21+ toolchain fetches a
# newer one by itself (GOTOOLCHAIN=auto); older ones cannot.
go=$(command -v go || true)
[ -z "$go" ] && [ -x /usr/local/go/bin/go ] && go=/usr/local/go/bin/go
if [ -z "$go" ]; then
	echo "Go is not installed. Install Go 1.26 or newer (https://go.dev/doc/install) and put it on PATH." >&2
	exit 1
fi
have=$("$go" env GOVERSION | sed 's/^go//')
case "$have" in
	1.2[1-9]*|1.[3-9]*|[2-9].*) ;;
	*) echo "Go $have is too old: Go 1.21 or newer is needed (it fetches the 1.26 toolchain itself)." >&2; exit 1 ;;
esac
