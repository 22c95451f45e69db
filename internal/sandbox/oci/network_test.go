package oci

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tidepool-dev/tidepool/internal/sandbox"
	"github.com/tidepool-dev/tidepool/internal/sandbox/sandboxtest"
)

// The network tests send traffic only to loopback and to a network
// namespace they make: "outside" is a namespace holding an HTTP server at
// 198.51.100.2 (TEST-NET-2, never routed on the internet), reached from
// the host through a veth whose host end is 198.51.100.1. The test fails
// early if the host already routes that network.
const (
	outsideHostIP   = "198.51.100.1"
	outsideServerIP = "198.51.100.2"
	outsidePort     = 18080
)

// outside is the test's stand-in for the internet.
type outside struct {
	netns   string // name under /run/netns
	hostIf  string
	srv     *http.Server
	mu      sync.Mutex
	clients []string // remote addresses the server saw
}

func ipCmd(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func newOutside(t *testing.T) *outside {
	t.Helper()
	var b [3]byte
	rand.Read(b[:])
	suffix := hex.EncodeToString(b[:])
	if out, err := exec.Command("ip", "-o", "route", "show", "to", "match", outsideServerIP).Output(); err != nil || strings.Contains(string(out), "/24") {
		t.Fatalf("the host already routes %s/24 (%s %v): the test needs it for its outside namespace", outsideServerIP, out, err)
	}
	o := &outside{netns: "tpt-" + suffix, hostIf: "tpvh" + suffix}
	peer := "tpvs" + suffix
	ipCmd(t, "netns", "add", o.netns)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", o.hostIf).Run()
		exec.Command("ip", "netns", "del", o.netns).Run()
	})
	ipCmd(t, "link", "add", o.hostIf, "type", "veth", "peer", "name", peer)
	ipCmd(t, "link", "set", peer, "netns", o.netns)
	ipCmd(t, "addr", "add", outsideHostIP+"/24", "dev", o.hostIf)
	ipCmd(t, "link", "set", o.hostIf, "up")
	ipCmd(t, "-n", o.netns, "addr", "add", outsideServerIP+"/24", "dev", peer)
	ipCmd(t, "-n", o.netns, "link", "set", peer, "up")
	ipCmd(t, "-n", o.netns, "link", "set", "lo", "up")
	ipCmd(t, "-n", o.netns, "route", "add", "default", "via", outsideHostIP)

	var ln net.Listener
	inNetns(t, "/run/netns/"+o.netns, func() {
		var err error
		ln, err = net.Listen("tcp", fmt.Sprintf("%s:%d", outsideServerIP, outsidePort))
		if err != nil {
			t.Fatal(err)
		}
	})
	o.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.clients = append(o.clients, r.RemoteAddr)
		o.mu.Unlock()
		fmt.Fprint(w, "hello from outside")
	}), ReadHeaderTimeout: 5 * time.Second}
	go o.srv.Serve(ln)
	t.Cleanup(func() { o.srv.Close() })
	return o
}

// inNetns runs fn on a thread that is in the network namespace at path
// (sockets made there stay in it).
func inNetns(t testing.TB, path string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			t.Error(err)
			return
		}
		defer orig.Close()
		target, err := os.Open(path)
		if err != nil {
			t.Error(err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			t.Error(err)
			return
		}
		fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			t.Error(err)
			return // the thread stays locked, and dies with the goroutine
		}
		runtime.UnlockOSThread()
	}()
	<-done
}

// connectScript tries TCP connections and HTTP GETs and reports each.
const connectScript = `
import json, socket, sys, urllib.request
out = {}
for target in sys.argv[1:]:
    kind, _, addr = target.partition("=")
    try:
        if kind == "http":
            with urllib.request.urlopen("http://" + addr + "/", timeout=3) as r:
                out[target] = "ok:" + r.read().decode()
        else:
            host, port = addr.rsplit(":", 1)
            socket.create_connection((host, int(port)), timeout=2).close()
            out[target] = "ok"
    except Exception as e:
        out[target] = "error:" + type(e).__name__ + ":" + str(e)
print(json.dumps(out))
`

func connectFrom(t *testing.T, sb *sandbox.Sandbox, targets ...string) map[string]string {
	t.Helper()
	res := execIn(t, sb, 60*time.Second, append([]string{"python3", "-c", connectScript}, targets...)...)
	var out map[string]string
	if err := json.Unmarshal([]byte(res.Stdout), &out); err != nil {
		t.Fatalf("connect from %s: %v: %+v", sb.ID, err, res)
	}
	return out
}

// TestNetwork: an EgressEnabled sandbox reaches the outside, through NAT,
// but neither the host's own services nor another sandbox; an
// EgressDisabled one reaches nothing.
func TestNetwork(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, flavour string) {
		rt := newTestRuntime(t, flavour)
		out := newOutside(t)

		// Host services: one on every address, one on loopback only.
		anyLn, err := net.Listen("tcp", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		defer anyLn.Close()
		loLn, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer loLn.Close()
		go acceptAll(anyLn)
		go acceptAll(loLn)
		anyPort := anyLn.Addr().(*net.TCPAddr).Port
		loPort := loLn.Addr().(*net.TCPAddr).Port
		gateway := strings.TrimSuffix(testSubnet, "0/16") + "1"

		// The host service is reachable from outside the host: what
		// stops sandboxes below is the sandbox rules.
		inNetns(t, "/run/netns/"+out.netns, func() {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("%s:%d", outsideHostIP, anyPort), 2*time.Second)
			if err != nil {
				t.Errorf("control: the outside namespace cannot reach the host service: %v", err)
				return
			}
			c.Close()
		})

		specA := sandboxtest.BaseSpec(sandboxtest.NewID("net-a"))
		specA.EgressEnabled = true
		specB := sandboxtest.BaseSpec(sandboxtest.NewID("net-b"))
		specB.EgressEnabled = true
		specC := sandboxtest.BaseSpec(sandboxtest.NewID("net-c")) // no egress
		a, b, c := mustCreate(t, rt, specA), mustCreate(t, rt, specB), mustCreate(t, rt, specC)
		defer mustDestroy(t, rt, a.ID)
		defer mustDestroy(t, rt, b.ID)
		defer mustDestroy(t, rt, c.ID)
		ipB := stateOf(t, rt, b.ID).IP
		if ipB == "" || stateOf(t, rt, a.ID).IP == "" {
			t.Fatal("egress sandboxes have no address")
		}

		// B serves on all its addresses while A tries it.
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			execIn(t, b, 30*time.Second, "python3", "-c", `
import socket, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8000))
s.listen()
s.settimeout(1)
end = time.time() + 12
while time.time() < end:
    try:
        s.accept()[0].close()
    except OSError:
        pass
`)
		}()
		defer wg.Wait()
		waitFor(t, func() bool {
			return connectFrom(t, b, "tcp="+ipB+":8000")["tcp="+ipB+":8000"] == "ok"
		})

		outsideURL := fmt.Sprintf("http=%s:%d", outsideServerIP, outsidePort)
		got := connectFrom(t, a, outsideURL,
			fmt.Sprintf("tcp=%s:%d", gateway, anyPort),       // the host, on the bridge
			fmt.Sprintf("tcp=%s:%d", outsideHostIP, anyPort), // the host, on another interface
			fmt.Sprintf("tcp=127.0.0.1:%d", loPort),          // the host's loopback (is the sandbox's own)
			"tcp="+ipB+":8000",                               // another sandbox
		)
		t.Logf("from an egress sandbox: %v", got)
		if got[outsideURL] != "ok:hello from outside" {
			t.Errorf("egress sandbox to the outside: %s", got[outsideURL])
		}
		for target, res := range got {
			if target != outsideURL && !strings.HasPrefix(res, "error:") {
				t.Errorf("egress sandbox reached %s: %s", target, res)
			}
		}
		out.mu.Lock()
		for _, addr := range out.clients {
			if !strings.HasPrefix(addr, outsideHostIP+":") {
				t.Errorf("the outside saw client %s, want the host's address (NAT)", addr)
			}
		}
		out.mu.Unlock()

		got = connectFrom(t, c, outsideURL, fmt.Sprintf("tcp=%s:%d", gateway, anyPort), "tcp="+ipB+":8000")
		t.Logf("from a sandbox without egress: %v", got)
		for target, res := range got {
			if !strings.HasPrefix(res, "error:") {
				t.Errorf("sandbox without egress reached %s: %s", target, res)
			}
		}
	})
}

func acceptAll(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

// TestEgressResolvConf: an egress sandbox gets a resolv.conf without
// loopback resolvers; one without egress gets none.
func TestEgressResolvConf(t *testing.T) {
	got := string(sandboxResolvConf([]byte("# comment\nnameserver 127.0.0.53\nnameserver 10.1.2.3\nsearch example.com\n")))
	if strings.Contains(got, "127.0.0.53") || !strings.Contains(got, "nameserver 10.1.2.3") || !strings.Contains(got, "search example.com") {
		t.Errorf("sandboxResolvConf: %q", got)
	}
	got = string(sandboxResolvConf([]byte("nameserver 127.0.0.53\n")))
	if !strings.Contains(got, "nameserver 1.1.1.1") {
		t.Errorf("sandboxResolvConf with only a stub resolver: %q", got)
	}
}
