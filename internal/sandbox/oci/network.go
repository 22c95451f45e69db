package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	types100 "github.com/containernetworking/cni/pkg/types/100"
	"golang.org/x/sys/unix"
)

// EgressEnabled sandboxes get a network namespace (bind-mounted at
// <root>/<id>/netns, for the teardown) plumbed by the standard CNI
// plugins: bridge (a veth into the host bridge) with host-local IPAM. The
// plugins are run directly through the CNI exec protocol, which is all
// libcni would do for this fixed configuration; libcni itself would bring
// OpenTelemetry modules that go.sum lacks.
//
// Sandboxes cannot reach each other: each sandbox's port on the bridge is
// isolated (the kernel's bridge port flag, as with `bridge link set dev X
// isolated on`), and isolated ports exchange nothing with each other, at
// layer 2, only with the bridge's own interface (the gateway). (nftables'
// bridge family would do too, but matching the bridge by name needs
// nft_meta_bridge, which not every kernel has.)
//
// The bridge plugin does no NAT here (ipMasq true would add iptables
// chains per sandbox); one nftables ruleset per bridge, installed once and
// atomically, does the NAT and the rest of the isolation:
//   - inet input: nothing from the bridge reaches the host itself (any of
//     its addresses: its services on the gateway address or on another
//     interface's; loopback-only ones are out of reach anyway);
//   - inet forward: nothing from the bridge goes back into it (sandbox to
//     sandbox through the host), to link-local addresses (cloud metadata
//     services), over IPv6, or from a source address outside the subnet;
//   - ip nat postrouting: the subnet is masqueraded on the way out.
//
// The bridge plugin turns on IPv4 forwarding on the host, as Docker does.
type network struct {
	bridge     string
	subnet     netip.Prefix
	pluginDirs []string
	ipamDir    string // host-local's dataDir

	mu       sync.Mutex
	rulesSet bool // guarded by mu
}

// nftName is the name of the nftables tables of this network.
func (n *network) nftName() string {
	return "tidepool_" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, n.bridge)
}

// ensureRules installs the nftables ruleset (once per Runtime; replacing
// whatever an earlier process left).
func (n *network) ensureRules(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.rulesSet {
		return nil
	}
	nft, err := findTool("nft", "nftables")
	if err != nil {
		return err
	}
	name, br, sub := n.nftName(), n.bridge, n.subnet.String()
	script := fmt.Sprintf(`add table inet %[1]s
delete table inet %[1]s
table inet %[1]s {
	chain input {
		type filter hook input priority filter - 10; policy accept;
		iifname "%[2]s" counter drop
	}
	chain forward {
		type filter hook forward priority filter - 10; policy accept;
		iifname "%[2]s" oifname "%[2]s" counter drop
		iifname "%[2]s" ip saddr != %[3]s counter drop
		iifname "%[2]s" meta nfproto ipv6 counter drop
		iifname "%[2]s" ip daddr 169.254.0.0/16 counter drop
	}
}
add table ip %[1]s
delete table ip %[1]s
table ip %[1]s {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr %[3]s oifname != "%[2]s" masquerade
	}
}
`, name, br, sub)
	cmd := exec.CommandContext(ctx, nft, "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft: %w: %s", err, bytes.TrimSpace(out))
	}
	n.rulesSet = true
	return nil
}

// removeRules deletes the ruleset (tests; a server leaves it in place).
func (n *network) removeRules(ctx context.Context) error {
	nft, err := findTool("nft", "nftables")
	if err != nil {
		return err
	}
	name := n.nftName()
	for _, fam := range []string{"inet", "ip"} {
		script := fmt.Sprintf("add table %[1]s %[2]s\ndelete table %[1]s %[2]s\n", fam, name)
		cmd := exec.CommandContext(ctx, nft, "-f", "-")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("nft: %w: %s", err, bytes.TrimSpace(out))
		}
	}
	n.mu.Lock()
	n.rulesSet = false
	n.mu.Unlock()
	return nil
}

// cniConfig is the bridge plugin's network configuration.
func (n *network) cniConfig() []byte {
	conf := map[string]any{
		"cniVersion":  "1.0.0",
		"name":        "tidepool-" + n.bridge,
		"type":        "bridge",
		"bridge":      n.bridge,
		"isGateway":   true,
		"ipMasq":      false,
		"hairpinMode": false,
		"ipam": map[string]any{
			"type":    "host-local",
			"ranges":  [][]map[string]string{{{"subnet": n.subnet.String()}}},
			"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
			"dataDir": n.ipamDir,
		},
	}
	b, _ := json.Marshal(conf)
	return b
}

// cniError is the error a CNI plugin prints.
type cniError struct {
	Code    int    `json:"code"`
	Msg     string `json:"msg"`
	Details string `json:"details"`
}

// invoke runs the bridge plugin with command ADD, DEL or CHECK.
func (n *network) invoke(ctx context.Context, command, id, netns string) ([]byte, error) {
	var plugin string
	for _, d := range n.pluginDirs {
		p := filepath.Join(d, "bridge")
		if _, err := os.Stat(p); err == nil {
			plugin = p
			break
		}
	}
	if plugin == "" {
		return nil, fmt.Errorf("CNI bridge plugin not found in %s (apt-get install containernetworking-plugins)", strings.Join(n.pluginDirs, ":"))
	}
	cmd := exec.CommandContext(ctx, plugin)
	cmd.Env = []string{
		"CNI_COMMAND=" + command,
		"CNI_CONTAINERID=" + id,
		"CNI_NETNS=" + netns,
		"CNI_IFNAME=eth0",
		"CNI_PATH=" + strings.Join(n.pluginDirs, ":"),
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	}
	cmd.Stdin = bytes.NewReader(n.cniConfig())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var ce cniError
		if json.Unmarshal(stdout.Bytes(), &ce) == nil && ce.Msg != "" {
			return nil, fmt.Errorf("cni bridge %s: %s (code %d) %s", command, ce.Msg, ce.Code, ce.Details)
		}
		return nil, fmt.Errorf("cni bridge %s: %w: %s%s", command, err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.Bytes(), nil
}

// add connects the namespace to the bridge; it returns the sandbox's
// address.
func (n *network) add(ctx context.Context, id, netns string) (netip.Addr, error) {
	if err := n.ensureRules(ctx); err != nil {
		return netip.Addr{}, err
	}
	out, err := n.invoke(ctx, "ADD", id, netns)
	if err != nil {
		return netip.Addr{}, err
	}
	var res types100.Result
	if err := json.Unmarshal(out, &res); err != nil {
		return netip.Addr{}, fmt.Errorf("cni bridge ADD: result: %w", err)
	}
	isolated := false
	for _, ifc := range res.Interfaces {
		if ifc.Sandbox != "" || ifc.Name == n.bridge {
			continue
		}
		// The host end of the sandbox's veth.
		if err := isolatePort(ifc.Name); err != nil {
			return netip.Addr{}, err
		}
		isolated = true
	}
	if !isolated {
		return netip.Addr{}, errors.New("cni bridge ADD: no host interface in result")
	}
	for _, ipc := range res.IPs {
		if a, ok := netip.AddrFromSlice(ipc.Address.IP); ok {
			return a.Unmap(), nil
		}
	}
	return netip.Addr{}, errors.New("cni bridge ADD: no address in result")
}

// isolatePort sets the isolated flag of a bridge port.
func isolatePort(name string) error {
	if strings.ContainsAny(name, "/.") || name == "" {
		return fmt.Errorf("bad interface name %q", name)
	}
	if err := os.WriteFile("/sys/class/net/"+name+"/brport/isolated", []byte("1"), 0o644); err != nil {
		return fmt.Errorf("isolate bridge port %s: %w", name, err)
	}
	return nil
}

// del disconnects the namespace and releases its address; repeating it is
// harmless. netns may be gone already. When the plugin fails (it may be
// gone too), the address is released by hand: the veth dies with the
// namespace anyway.
func (n *network) del(ctx context.Context, id, netns string) error {
	if _, err := os.Stat(netns); err != nil {
		netns = "" // the plugin then only releases the address
	}
	_, err := n.invoke(ctx, "DEL", id, netns)
	if err == nil {
		return nil
	}
	if rerr := n.releaseByHand(id); rerr != nil {
		return errors.Join(err, rerr)
	}
	return nil
}

// releaseByHand removes id's reservations from host-local's store: one
// file per address, named by it, holding the container id and interface.
func (n *network) releaseByHand(id string) error {
	dir := filepath.Join(n.ipamDir, "tidepool-"+n.bridge)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if _, err := netip.ParseAddr(e.Name()); err != nil {
			continue // lock, last_reserved_ip.0
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if first, _, _ := strings.Cut(string(b), "\n"); strings.TrimSpace(first) == id {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// newNetns creates a network namespace and bind-mounts it at path. Its
// loopback is up; unprivileged low ports and ICMP echo sockets are
// allowed in it.
func newNetns(path string) error {
	if err := os.WriteFile(path, nil, 0o444); err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() {
		// The thread's network namespace is changed for good: the
		// goroutine ends with the thread still locked, so the runtime
		// discards the thread instead of reusing it.
		runtime.LockOSThread()
		errc <- func() error {
			if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("unshare net: %w", err)
			}
			for k, v := range map[string]string{
				"/proc/sys/net/ipv4/ip_unprivileged_port_start": "0",
				"/proc/sys/net/ipv4/ping_group_range":           "0 2147483647",
			} {
				if err := os.WriteFile(k, []byte(v), 0o644); err != nil {
					return err
				}
			}
			if err := linkUp("lo"); err != nil {
				return err
			}
			src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
			if err := unix.Mount(src, path, "", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("bind netns: %w", err)
			}
			return nil
		}()
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// linkUp sets a link of the calling thread's network namespace up.
func linkUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("%s flags: %w", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("%s up: %w", name, err)
	}
	return nil
}

// bindNetns keeps the network namespace at src (/proc/<pid>/ns/net)
// reachable at path.
func bindNetns(src, path string) error {
	if err := os.WriteFile(path, nil, 0o444); err != nil {
		return err
	}
	if err := unix.Mount(src, path, "", unix.MS_BIND, ""); err != nil {
		os.Remove(path)
		return fmt.Errorf("bind netns: %w", err)
	}
	return nil
}

// removeNetns unmounts and removes a namespace made by newNetns.
func removeNetns(path string) error {
	if err := unmount(path); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
