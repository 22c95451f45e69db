package agent_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidepool-dev/tidepool/internal/agent"
	"github.com/tidepool-dev/tidepool/internal/agent/client"
	"github.com/tidepool-dev/tidepool/internal/agent/kernel"
	"github.com/tidepool-dev/tidepool/internal/agent/wire"
)

// leasingKernels is agentcmd's: a kernel.Manager that leases its kernels,
// counting the executions it runs itself.
type leasingKernels struct {
	*kernel.Manager
	executes atomic.Int64
}

func (k *leasingKernels) Execute(ctx context.Context, lang string, req wire.ExecuteRequest) (*wire.ExecuteResult, error) {
	k.executes.Add(1)
	return k.Manager.Execute(ctx, lang, req)
}

func (k *leasingKernels) Lease(ctx context.Context, lang string) (agent.KernelLease, error) {
	l, err := k.Manager.Lease(ctx, lang)
	if err != nil {
		return nil, err
	}
	return l, nil
}

func startLeasingAgent(t *testing.T) (*testAgent, *leasingKernels) {
	t.Helper()
	k := &leasingKernels{Manager: kernel.New(kernel.Options{Cwd: t.TempDir(), InterruptGrace: 500 * time.Millisecond})}
	t.Cleanup(func() { k.Close() })
	a := startAgent(t, func(c *agent.Config) { c.Kernels = k })
	return a, k
}

func execute(t *testing.T, c *client.Client, code string, timeout time.Duration) *wire.ExecuteResult {
	t.Helper()
	res, err := c.Execute(t.Context(), wire.LangPython, wire.ExecuteRequest{Code: code, TimeoutMs: timeout.Milliseconds()})
	if err != nil {
		t.Fatalf("Execute(%q): %v", code, err)
	}
	return res
}

func wantRepr(t *testing.T, res *wire.ExecuteResult, repr string) {
	t.Helper()
	if res.Status != wire.StatusSucceeded || res.Result == nil || res.Result.Repr != repr {
		t.Fatalf("result = %+v (error %+v), want %s", res, res.Error, repr)
	}
}

// TestLeasedExecutions: the client runs executions on the kernel it
// leased, without the agent's Execute but for the first; the kernel keeps its state across
// them and across the lease's release (Init), and the environment Init
// sets reaches it.
func TestLeasedExecutions(t *testing.T) {
	a, k := startLeasingAgent(t)
	wantRepr(t, execute(t, a.Client, "x = 41\nx", 10*time.Second), "41")
	res := execute(t, a.Client, "print('out'); import sys; print('err', file=sys.stderr); x + 1", 10*time.Second)
	wantRepr(t, res, "42")
	if res.Stdout != "out\n" || res.Stderr != "err\n" || res.Restarted {
		t.Errorf("stdout %q, stderr %q, restarted %v", res.Stdout, res.Stderr, res.Restarted)
	}
	if _, err := a.Init(t.Context(), wire.InitRequest{Identifier: "s1", Env: map[string]string{"LEASE_TEST": "yes"}}); err != nil {
		t.Fatal(err)
	}
	wantRepr(t, execute(t, a.Client, "import os; (x, os.environ.get('LEASE_TEST'))", 10*time.Second), "(41, 'yes')")
	if n := k.executes.Load(); n != 1 {
		t.Errorf("the agent ran %d executions itself, want 1 (the first; client/lease.go)", n)
	}
	// Output written between executions belongs to the next one.
	execute(t, a.Client, "import threading, time\nthreading.Thread(target=lambda: (time.sleep(0.2), print('late'))).start()", 10*time.Second)
	time.Sleep(500 * time.Millisecond)
	if res := execute(t, a.Client, "1", 10*time.Second); res.Stdout != "late\n" {
		t.Errorf("stdout after a background print = %q, want %q", res.Stdout, "late\n")
	}
}

// TestLeasedTimeouts: a timeout interrupts the leased kernel through the
// agent and keeps its state; a kernel that ignores the interrupt is
// killed, and the next execution runs on a new one, leased anew.
func TestLeasedTimeouts(t *testing.T) {
	a, _ := startLeasingAgent(t)
	execute(t, a.Client, "x = 1", 10*time.Second)
	res := execute(t, a.Client, "while True: pass", 300*time.Millisecond)
	if res.Status != wire.StatusTimedOut || res.Restarted {
		t.Fatalf("loop = %+v, want TimedOut and not restarted", res)
	}
	wantRepr(t, execute(t, a.Client, "x", 10*time.Second), "1")

	res = execute(t, a.Client, "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: time.sleep(0.01)", 300*time.Millisecond)
	if res.Status != wire.StatusTimedOut || !res.Restarted {
		t.Fatalf("deaf loop = %+v, want TimedOut and restarted", res)
	}
	res = execute(t, a.Client, "'x' in globals()", 30*time.Second)
	wantRepr(t, res, "False")
}

// TestLeasedKernelDeath: a leased kernel that exits fails its execution;
// the next runs on a new kernel and says so.
func TestLeasedKernelDeath(t *testing.T) {
	a, _ := startLeasingAgent(t)
	execute(t, a.Client, "x = 1", 10*time.Second)
	res := execute(t, a.Client, "import os; os._exit(3)", 10*time.Second)
	if res.Status != wire.StatusFailed || res.Error == nil || res.Error.Name != kernel.ErrorNameKernelDied {
		t.Fatalf("exit = %+v, want KernelDied", res)
	}
	res = execute(t, a.Client, "'x' in globals()", 30*time.Second)
	wantRepr(t, res, "False")
	if !res.Restarted {
		t.Errorf("first execution on the new kernel: Restarted = false")
	}
}

// TestLeaseHolderLeaves: a holder that goes away during an execution (a
// server killed) leaves the kernel to the agent, state and all; the
// answer to the execution in flight is not taken for the next one's.
func TestLeaseHolderLeaves(t *testing.T) {
	a, k := startLeasingAgent(t)
	holder := exec.Command(os.Args[0])
	holder.Env = append(os.Environ(), testRoleEnv+"=holder", "SOCKET="+a.Socket(),
		"CODE=import time; time.sleep(0.5); x = 7; 'orphan'")
	holder.Stderr = os.Stderr
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		holder.Process.Kill()
		holder.Wait()
		t.Fatalf("holder said %q, %v", line, err)
	}
	time.Sleep(100 * time.Millisecond)
	holder.Process.Kill() // no release, no interrupt
	holder.Wait()

	// The agent drives it again; then a new holder leases it.
	res, err := k.Manager.Execute(t.Context(), wire.LangPython, wire.ExecuteRequest{Code: "x"})
	if err != nil {
		t.Fatal(err)
	}
	wantRepr(t, res, "7")
	wantRepr(t, execute(t, a.Client, "x * 6", 10*time.Second), "42")
	if strings.Contains(res.Stdout, "orphan") {
		t.Errorf("stdout = %q", res.Stdout)
	}
}

// TestLeaseRevoked: a second caller of a leased kernel (a restarted
// server, while the old one's connection lingers) revokes the lease and
// gets the kernel, state and all; so does the agent's own Execute.
func TestLeaseRevoked(t *testing.T) {
	a, k := startLeasingAgent(t)
	wantRepr(t, execute(t, a.Client, "x = 1; x", 10*time.Second), "1")
	other := client.New(a.Socket())
	defer other.Close()
	wantRepr(t, execute(t, other, "x += 1; x", 10*time.Second), "2")
	res, err := k.Manager.Execute(t.Context(), wire.LangPython, wire.ExecuteRequest{Code: "x += 1; x"})
	if err != nil {
		t.Fatal(err)
	}
	wantRepr(t, res, "3")
	// The first holder's lease was revoked: its next call leases anew.
	wantRepr(t, execute(t, a.Client, "x += 1; x", 10*time.Second), "4")
}

// TestNoLeaseFallsBack: an agent that does not lease kernels (as under
// gVisor) is called as before.
func TestNoLeaseFallsBack(t *testing.T) {
	km := kernel.New(kernel.Options{Cwd: t.TempDir()})
	t.Cleanup(func() { km.Close() })
	a := startAgent(t, func(c *agent.Config) { c.Kernels = km }) // a Kernels without Lease
	for i := range 3 {
		wantRepr(t, execute(t, a.Client, fmt.Sprintf("%d + 1", i), 10*time.Second), strconv.Itoa(i+1))
	}
	if got := a.Leased(); len(got) != 0 {
		t.Errorf("leased %q from an agent that does not lease", got)
	}
}

// TestInitDuringLeasedExecution: binding the environment (as a claim's
// /init or an identity refresh does) does not wait for an execution on the
// leased kernel, and the next execution sees it.
func TestInitDuringLeasedExecution(t *testing.T) {
	a, _ := startLeasingAgent(t)
	execute(t, a.Client, "1", 10*time.Second)
	execute(t, a.Client, "2", 10*time.Second) // leased by now
	done := make(chan struct{})
	go func() {
		defer close(done)
		execute(t, a.Client, "import time; time.sleep(1.5)", 10*time.Second)
	}()
	time.Sleep(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	if _, err := a.Init(ctx, wire.InitRequest{Identifier: "s1", Env: map[string]string{"LATE": "1"}}); err != nil {
		t.Fatalf("Init during an execution: %v", err)
	}
	<-done
	wantRepr(t, execute(t, a.Client, "import os; os.environ.get('LATE')", 10*time.Second), "'1'")
	if got := a.Leased(); len(got) != 1 {
		t.Errorf("leased %q after the new environment, want python", got)
	}
}
