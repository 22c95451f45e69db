package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// jupyter is a Jupyter Server the bench started on loopback: the peer.
type jupyter struct {
	cmd   *exec.Cmd
	base  string // http://127.0.0.1:port
	token string
	dir   string
	hc    *http.Client
	log   bytes.Buffer
}

// findJupyter returns the jupyter-server command, or why there is none.
func findJupyter() (string, error) {
	for _, p := range []string{"/usr/bin/jupyter-server", "jupyter-server"} {
		if path, err := exec.LookPath(p); err == nil {
			// Debian's python3-ipykernel provides the python3 kernel.
			if _, err := os.Stat("/usr/share/jupyter/kernels/python3/kernel.json"); err != nil {
				return "", errors.New("Jupyter Server is installed but not the python3 kernel (apt-get install python3-ipykernel)")
			}
			return path, nil
		}
	}
	return "", errors.New("Jupyter Server is not installed (apt-get install jupyter-server python3-ipykernel; make bench does it)")
}

// startJupyter starts Jupyter Server on a free loopback port with a fresh
// token, in a scratch directory, and waits until it answers.
func startJupyter(ctx context.Context, bin string) (*jupyter, error) {
	dir, err := os.MkdirTemp("", "tidepool-bench-jupyter-")
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	tok := make([]byte, 16)
	rand.Read(tok)
	j := &jupyter{base: fmt.Sprintf("http://127.0.0.1:%d", port), token: hex.EncodeToString(tok), dir: dir,
		hc: &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
	args := []string{"--ServerApp.ip=127.0.0.1", fmt.Sprintf("--ServerApp.port=%d", port), "--ServerApp.port_retries=0",
		"--ServerApp.token=" + j.token, "--ServerApp.open_browser=False", "--ServerApp.root_dir=" + dir}
	if os.Geteuid() == 0 {
		args = append(args, "--allow-root")
	}
	j.cmd = exec.Command(bin, args...)
	j.cmd.Dir = dir
	j.cmd.Env = append(os.Environ(),
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"JUPYTER_CONFIG_DIR="+filepath.Join(dir, "config"), "JUPYTER_RUNTIME_DIR="+filepath.Join(dir, "runtime"),
		"JUPYTER_DATA_DIR="+filepath.Join(dir, "data"), "IPYTHONDIR="+filepath.Join(dir, "ipython"),
		"JUPYTER_PLATFORM_DIRS=1", "PYTHONDONTWRITEBYTECODE=1")
	j.cmd.Stdout, j.cmd.Stderr = &j.log, &j.log
	j.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := j.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start jupyter-server: %w", err)
	}
	err = poll(ctx, time.Minute, func() (bool, error) {
		if j.cmd.ProcessState != nil {
			return false, errors.New("exited")
		}
		st, _, err := j.do(ctx, http.MethodGet, "/api/status", nil)
		return err == nil && st == http.StatusOK, nil
	})
	if err != nil {
		j.stop()
		return nil, fmt.Errorf("jupyter-server did not answer: %w: %s", err, clip(j.log.Bytes()))
	}
	return j, nil
}

func (j *jupyter) do(ctx context.Context, method, path string, in any) (int, []byte, error) {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, j.base+path, body)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "token "+j.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := j.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// stop ends the server and its kernels (its process group) and removes
// its directory.
func (j *jupyter) stop() {
	if j.cmd.Process != nil {
		syscall.Kill(-j.cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { j.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-j.cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	j.hc.CloseIdleConnections()
	os.RemoveAll(j.dir)
}

// kernel is a running kernel and its channels' WebSocket.
type kernel struct {
	id      string
	session string
	ws      *websocket.Conn
	n       int
}

// newKernel starts a python3 kernel (REST) and connects to its channels
// (WebSocket).
func (j *jupyter) newKernel(ctx context.Context) (*kernel, error) {
	st, body, err := j.do(ctx, http.MethodPost, "/api/kernels", map[string]string{"name": "python3"})
	if err != nil {
		return nil, fmt.Errorf("POST /api/kernels: %w", err)
	}
	var v struct {
		ID string `json:"id"`
	}
	if st != http.StatusCreated || json.Unmarshal(body, &v) != nil || v.ID == "" {
		return nil, fmt.Errorf("POST /api/kernels: HTTP %d: %s", st, clip(body))
	}
	k := &kernel{id: v.ID, session: randomHex(8)}
	u := "ws" + strings.TrimPrefix(j.base, "http") + "/api/kernels/" + v.ID + "/channels?session_id=" + k.session
	k.ws, _, err = websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"token " + j.token}}})
	if err != nil {
		j.deleteKernel(context.WithoutCancel(ctx), k)
		return nil, fmt.Errorf("kernel channels: %w", err)
	}
	k.ws.SetReadLimit(16 << 20)
	return k, nil
}

func (j *jupyter) deleteKernel(ctx context.Context, k *kernel) error {
	if k.ws != nil {
		k.ws.Close(websocket.StatusNormalClosure, "")
	}
	st, body, err := j.do(ctx, http.MethodDelete, "/api/kernels/"+k.id, nil)
	if err != nil {
		return err
	}
	if st != http.StatusNoContent {
		return fmt.Errorf("DELETE kernel: HTTP %d: %s", st, clip(body))
	}
	return nil
}

// jmsg is a Jupyter message as the WebSocket (JSON) protocol carries it.
type jmsg struct {
	Header       map[string]any `json:"header"`
	ParentHeader map[string]any `json:"parent_header"`
	Metadata     map[string]any `json:"metadata"`
	Content      map[string]any `json:"content"`
	Channel      string         `json:"channel"`
	Buffers      []any          `json:"buffers"`
}

// execute runs code on the kernel and waits for its execute_reply and for
// the kernel to be idle again; it returns the stdout stream.
func (k *kernel) execute(ctx context.Context, code string) (string, error) {
	k.n++
	id := fmt.Sprintf("%s-%d", k.session, k.n)
	msg := jmsg{
		Header: map[string]any{"msg_id": id, "username": "bench", "session": k.session, "msg_type": "execute_request",
			"version": "5.3", "date": time.Now().UTC().Format(time.RFC3339Nano)},
		ParentHeader: map[string]any{}, Metadata: map[string]any{}, Channel: "shell", Buffers: []any{},
		Content: map[string]any{"code": code, "silent": false, "store_history": false, "user_expressions": map[string]any{},
			"allow_stdin": false, "stop_on_error": true},
	}
	data, err := json.Marshal(msg)
	if err != nil {
		return "", err
	}
	if err := k.ws.Write(ctx, websocket.MessageText, data); err != nil {
		return "", fmt.Errorf("execute_request: %w", err)
	}
	var stdout strings.Builder
	replied, idle := false, false
	for !replied || !idle {
		_, data, err := k.ws.Read(ctx)
		if err != nil {
			return "", fmt.Errorf("kernel channels: %w", err)
		}
		var m jmsg
		if err := json.Unmarshal(data, &m); err != nil {
			continue // a binary frame or something else
		}
		if m.ParentHeader["msg_id"] != id {
			continue
		}
		switch m.Header["msg_type"] {
		case "execute_reply":
			replied = true
			if m.Content["status"] != "ok" {
				return "", fmt.Errorf("execute_reply: %v", m.Content)
			}
		case "stream":
			if m.Content["name"] == "stdout" {
				s, _ := m.Content["text"].(string)
				stdout.WriteString(s)
			}
		case "status":
			idle = m.Content["execution_state"] == "idle"
		}
	}
	return stdout.String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// jupyterFigures measures the peer: n times a new kernel and its first
// print(1) (REST + WebSocket, as a client would), then print(1) on a
// running kernel for d, then the memory of n idle kernels.
type jupyterFigures struct {
	newKernel, exec []time.Duration
	memory          *Memory
	memCount        int
}

func (j *jupyter) measure(ctx context.Context, n int, d time.Duration, progress func(string, ...any)) (*jupyterFigures, error) {
	out := &jupyterFigures{}
	for i := range n {
		progress("jupyter: new kernel + first execution %d/%d", i+1, n)
		t0 := time.Now()
		k, err := j.newKernel(ctx)
		if err != nil {
			return nil, err
		}
		s, err := k.execute(ctx, "print(1)")
		dur := time.Since(t0)
		j.deleteKernel(ctx, k)
		if err != nil {
			return nil, err
		}
		if s != "1\n" {
			return nil, fmt.Errorf("print(1) printed %q", s)
		}
		out.newKernel = append(out.newKernel, dur)
	}
	progress("jupyter: executions on a running kernel")
	k, err := j.newKernel(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := k.execute(ctx, "print(1)"); err != nil {
		return nil, err
	}
	err = forDuration(ctx, d, func() error {
		t0 := time.Now()
		s, err := k.execute(ctx, "print(1)")
		if err != nil {
			return err
		}
		out.exec = append(out.exec, time.Since(t0))
		if s != "1\n" {
			return fmt.Errorf("print(1) printed %q", s)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Memory: n idle kernels (this one and n-1 more), each after one
	// print(1), measured as the Pss of the server's child processes.
	kernels := []*kernel{k}
	defer func() {
		for _, k := range kernels {
			j.deleteKernel(context.WithoutCancel(ctx), k)
		}
	}()
	for len(kernels) < max(n, 1) {
		k, err := j.newKernel(ctx)
		if err != nil {
			return nil, err
		}
		kernels = append(kernels, k)
		if _, err := k.execute(ctx, "print(1)"); err != nil {
			return nil, err
		}
	}
	sleep(ctx, 2*time.Second)
	var pss, rss int64
	children := directChildren(j.cmd.Process.Pid)
	for _, c := range children {
		p, r, err := treeMemory(c)
		if err == nil {
			pss, rss = pss+p, rss+r
		}
	}
	if len(children) > 0 {
		m := &Memory{Method: "pss", UsageBytes: pss / int64(len(kernels)), RSSBytes: rss / int64(len(kernels))}
		m.SessionsPerGiB = perGiB(m.UsageBytes)
		out.memory, out.memCount = m, len(kernels)
	}
	return out, nil
}

func perGiB(b int64) float64 {
	if b <= 0 {
		return 0
	}
	return float64(1<<30) / float64(b)
}
