package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/tidepool-dev/tidepool/internal/sandbox/oci"
)

// execBody is the body of a v1 code/execute of print(1): the floor posts
// the same bytes.
const execBody = `{"properties":{"codeInputType":"inline","executionType":"synchronous","code":"print(1)"}}`

// loopbackServer is an empty HTTP handler on 127.0.0.1 that reads and
// drops the request body.
func loopbackServer() (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	}), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	return "http://" + ln.Addr().String() + "/x", func() { hs.Close() }, nil
}

// floorLoopback times POSTs of execBody to an empty handler over a
// kept-alive connection, for d.
func floorLoopback(ctx context.Context, d time.Duration) ([]time.Duration, error) {
	u, stop, err := loopbackServer()
	if err != nil {
		return nil, err
	}
	defer stop()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	var out []time.Duration
	err = forDuration(ctx, d, func() error {
		t0 := time.Now()
		resp, err := hc.Post(u, "application/json", strings.NewReader(execBody))
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		out = append(out, time.Since(t0))
		return nil
	})
	return out, err
}

// floorLoopbackUpload times POSTs of size bytes to an empty handler, n
// times.
func floorLoopbackUpload(ctx context.Context, size, n int) ([]time.Duration, error) {
	u, stop, err := loopbackServer()
	if err != nil {
		return nil, err
	}
	defer stop()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	data := make([]byte, size)
	var out []time.Duration
	for range n {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		out = append(out, time.Since(t0))
	}
	return out, nil
}

// pythonDriver executes each line of stdin (a JSON string of code) in one
// interpreter with stdout captured, and answers with a JSON line of the
// output: an in-process exec through a pipe.
const pythonDriver = `
import sys, io, json, contextlib
g = {}
out = sys.stdout
for line in sys.stdin:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        exec(json.loads(line), g)
    out.write(json.dumps(buf.getvalue()) + "\n")
    out.flush()
`

// pythonBinary is the interpreter the sandboxes run (the host's).
func pythonBinary() (string, error) {
	if _, err := os.Stat("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3", nil
	}
	return exec.LookPath("python3")
}

// floorPython times print(1) through a pipe into one python3 process, for
// d.
func floorPython(ctx context.Context, d time.Duration) ([]time.Duration, error) {
	py, err := pythonBinary()
	if err != nil {
		return nil, fmt.Errorf("python3: %w", err)
	}
	cmd := exec.CommandContext(ctx, py, "-u", "-c", pythonDriver)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	r := bufio.NewReader(stdout)
	line := []byte(`"print(1)"` + "\n")
	var out []time.Duration
	err = forDuration(ctx, d, func() error {
		t0 := time.Now()
		if _, err := stdin.Write(line); err != nil {
			return err
		}
		ans, err := r.ReadBytes('\n')
		if err != nil {
			return fmt.Errorf("python driver: %w: %s", err, stderr.String())
		}
		out = append(out, time.Since(t0))
		var s string
		if json.Unmarshal(ans, &s) != nil || s != "1\n" {
			return fmt.Errorf("python driver answered %q", ans)
		}
		return nil
	})
	return out, err
}

// floorShell times a local fork and exec of sh -c 'echo 1', for d.
func floorShell(ctx context.Context, d time.Duration) ([]time.Duration, error) {
	var out []time.Duration
	err := forDuration(ctx, d, func() error {
		t0 := time.Now()
		b, err := exec.CommandContext(ctx, "/bin/sh", "-c", "echo 1").Output()
		if err != nil {
			return err
		}
		out = append(out, time.Since(t0))
		if string(b) != "1\n" {
			return fmt.Errorf("sh answered %q", b)
		}
		return nil
	})
	return out, err
}

// ociFloor runs `<runtime> run` of python3 -c pass in a bundle made as
// the server's sandboxes are, under a scratch root of its own.
type ociFloor struct {
	f    *oci.Floor
	root string
}

// newOCIFloor prepares the bundle (agent is a tidepool binary, mounted as
// the sandboxes' agent and unused here) and runs it once, untimed, to warm
// the page cache.
func newOCIFloor(ctx context.Context, runtime, agent string) (*ociFloor, error) {
	root, err := os.MkdirTemp("", "tpfloor-")
	if err != nil {
		return nil, err
	}
	o := &ociFloor{root: root}
	rt, err := oci.New(root, oci.WithBinary(runtime), oci.WithAgentBinary(agent), oci.WithCgroupParent("tidepool-bench-floor"))
	if err == nil {
		o.f, err = rt.NewFloor()
	}
	if err == nil {
		_, err = o.run(ctx)
	}
	if err != nil {
		o.close()
		return nil, err
	}
	return o, nil
}

func (o *ociFloor) run(ctx context.Context) (time.Duration, error) {
	return o.f.Run(ctx, "/usr/bin/python3", "-c", "pass")
}

func (o *ociFloor) close() {
	if o.f != nil {
		o.f.Close()
	}
	if len(mountsUnder(o.root)) == 0 {
		os.RemoveAll(o.root)
	}
}

// forDuration calls f until d has passed (at least once, at most 1e6
// times), stopping at its first error.
func forDuration(ctx context.Context, d time.Duration, f func() error) error {
	end := time.Now().Add(d)
	for i := 0; i < 1e6; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := f(); err != nil {
			return err
		}
		if time.Now().After(end) {
			return nil
		}
	}
	return nil
}
