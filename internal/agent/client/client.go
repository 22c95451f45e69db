// Package client talks to a sandbox's agent over its unix socket. One
// Client per sandbox; it keeps connections alive and reuses them, and is
// safe for concurrent use. Answers that are errors come back as *Error.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidepool-dev/tidepool/internal/agent/wire"
)

// base is the URL the client addresses; the host is never resolved, every
// connection goes to the socket.
const base = "http://agent"

// Client is a client of one agent.
type Client struct {
	socket string
	dialer *net.Dialer
	tr     *http.Transport
	hc     *http.Client

	// noFramed is set once the agent turned framed calls down.
	noFramed atomic.Bool
	// noLease is set once the agent turned kernel leases down.
	noLease atomic.Bool
	// mu guards idle, the framed connections not in use, and kernels.
	mu      sync.Mutex
	idle    []*framedConn
	kernels map[string]*leasedKernel // by language, made on first use
}

// New returns a client of the agent listening on the unix socket at
// socket. It dials lazily: New does no I/O.
func New(socket string) *Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", socket)
		},
		// No Proxy: the socket is local.
		MaxIdleConns:        64,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	// No overall timeout: commands and transfers take as long as their
	// contexts allow.
	return &Client{socket: socket, dialer: d, tr: tr, hc: &http.Client{Transport: tr}}
}

// Socket is the path of the agent's socket.
func (c *Client) Socket() string { return c.socket }

// Close closes idle connections and hands the kernels not in use back to
// the agent. The client stays usable.
func (c *Client) Close() {
	c.closeLeases()
	c.tr.CloseIdleConnections()
	c.closeFramed()
}

// Error is an error answer from the agent.
type Error struct {
	Status  int    // HTTP status
	Code    string // wire.Code*
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("agent: %d %s: %s", e.Status, e.Code, e.Message)
}

// IsCode reports whether err is an *Error with the given code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// Health asks GET /health.
func (c *Client) Health(ctx context.Context) (*wire.Health, error) {
	return callJSON[wire.Health](ctx, c, http.MethodGet, "/health", nil)
}

// Init binds the sandbox to a session (POST /init) and returns its health.
func (c *Client) Init(ctx context.Context, req wire.InitRequest) (*wire.Health, error) {
	defer c.envChanged()
	return callJSON[wire.Health](ctx, c, http.MethodPost, "/init", req)
}

// SetIdentity gives the bound sandbox its managed identities' tokens
// (PUT /identity) and returns the endpoint code in it asks them from.
func (c *Client) SetIdentity(ctx context.Context, req wire.IdentityRequest) (*wire.IdentityResponse, error) {
	defer c.envChanged()
	return callJSON[wire.IdentityResponse](ctx, c, http.MethodPut, "/identity", req)
}

// Exec runs a command and waits for its result. Cancelling ctx kills the
// command.
func (c *Client) Exec(ctx context.Context, req wire.ExecRequest) (*wire.ExecResult, error) {
	return callJSON[wire.ExecResult](ctx, c, http.MethodPost, "/exec", req)
}

// ExecStream runs a command, calls fn with each piece of output as it
// arrives (stream is wire.StreamStdout or wire.StreamStderr), and returns
// the final result, whose Stdout and Stderr are empty. An error from fn
// stops the stream, kills the command and is returned.
func (c *Client) ExecStream(ctx context.Context, req wire.ExecRequest, fn func(stream, data string) error) (*wire.ExecResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := c.do(ctx, http.MethodPost, "/exec", jsonBody(req), "application/json", wire.ContentTypeNDJSON)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		var ev wire.StreamEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return nil, fmt.Errorf("agent: exec stream: %w", err)
		}
		switch {
		case ev.Exit != nil:
			return ev.Exit, nil
		case ev.Stream != "":
			if err := fn(ev.Stream, ev.Data); err != nil {
				return nil, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("agent: exec stream: %w", err)
	}
	return nil, fmt.Errorf("agent: exec stream: %w", io.ErrUnexpectedEOF)
}

// Execute runs code in the kernel for lang (wire.LangPython, wire.LangNode):
// on the kernel leased from the agent when it leases them (lease.go).
func (c *Client) Execute(ctx context.Context, lang string, req wire.ExecuteRequest) (*wire.ExecuteResult, error) {
	if !c.noLease.Load() && (lang == wire.LangPython || lang == wire.LangNode) {
		res, err := c.executeLeased(ctx, lang, req)
		if !errors.Is(err, errNoLease) {
			return res, err
		}
	}
	return c.executeByAgent(ctx, lang, req)
}

// executeByAgent has the agent run the execution.
func (c *Client) executeByAgent(ctx context.Context, lang string, req wire.ExecuteRequest) (*wire.ExecuteResult, error) {
	return callJSON[wire.ExecuteResult](ctx, c, http.MethodPost, "/kernels/"+url.PathEscape(lang)+"/execute", req)
}

// ListFiles lists the directory at path ("" for the file root).
func (c *Client) ListFiles(ctx context.Context, path string, recursive bool) ([]wire.FileInfo, error) {
	q := url.Values{"path": {path}}
	if recursive {
		q.Set("recursive", "true")
	}
	list, err := call[[]wire.FileInfo](ctx, c, http.MethodGet, "/files?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	return *list, nil
}

// Stat describes the file or directory at path.
func (c *Client) Stat(ctx context.Context, path string) (*wire.FileInfo, error) {
	return call[wire.FileInfo](ctx, c, http.MethodGet, "/files/stat?"+pathQuery(path), nil)
}

// FileReader is a file being downloaded; the caller closes it.
type FileReader struct {
	io.ReadCloser
	// Size is the file's size (Content-Length).
	Size        int64
	ContentType string
	ModTime     time.Time
}

// ReadFile opens the file at path for reading, streamed from the agent.
func (c *Client) ReadFile(ctx context.Context, path string) (*FileReader, error) {
	resp, err := c.do(ctx, http.MethodGet, "/files/content?"+pathQuery(path), nil, "", "")
	if err != nil {
		return nil, err
	}
	fr := &FileReader{ReadCloser: resp.Body, Size: resp.ContentLength, ContentType: resp.Header.Get("Content-Type")}
	fr.ModTime, _ = http.ParseTime(resp.Header.Get("Last-Modified"))
	return fr, nil
}

// WriteFile stores r at path, creating missing parent directories; size is
// r's length, or -1 when unknown. The file appears whole or not at all.
func (c *Client) WriteFile(ctx context.Context, path string, r io.Reader, size int64) (*wire.FileInfo, error) {
	body := &sizedBody{r: r, size: size}
	resp, err := c.do(ctx, http.MethodPut, "/files/content?"+pathQuery(path), body, "application/octet-stream", "")
	if err != nil {
		return nil, err
	}
	return decode[wire.FileInfo](resp)
}

// DeleteFile removes the file or empty directory at path, or the whole
// tree when recursive.
func (c *Client) DeleteFile(ctx context.Context, path string, recursive bool) error {
	q := pathQuery(path)
	if recursive {
		q += "&recursive=true"
	}
	resp, err := c.do(ctx, http.MethodDelete, "/files?"+q, nil, "", "")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Mkdir creates the directory at path and its missing parents.
func (c *Client) Mkdir(ctx context.Context, path string) (*wire.FileInfo, error) {
	return call[wire.FileInfo](ctx, c, http.MethodPost, "/files/mkdir?"+pathQuery(path), nil)
}

// ProxyTransport returns a RoundTripper that sends each request to the
// agent's /proxy, which forwards it to the sandbox's target port: a request
// for any URL with path /p?q reaches the target as /p?q. The request's Host
// header is kept. Use it as the Transport of an httputil.ReverseProxy;
// protocol upgrades (WebSocket) work through it.
func (c *Client) ProxyTransport() http.RoundTripper {
	return proxyTransport{c.tr}
}

type proxyTransport struct{ tr *http.Transport }

func (p proxyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	out := req.Clone(req.Context())
	u := *req.URL
	u.Scheme, u.Host = "http", "agent"
	u.Path = "/proxy" + ensureSlash(req.URL.Path)
	if req.URL.RawPath != "" {
		u.RawPath = "/proxy" + ensureSlash(req.URL.RawPath)
	}
	out.URL = &u
	if out.Host == "" {
		out.Host = req.URL.Host
	}
	return p.tr.RoundTrip(out)
}

func ensureSlash(p string) string {
	if !strings.HasPrefix(p, "/") {
		return "/" + p
	}
	return p
}

func pathQuery(path string) string {
	return url.Values{"path": {path}}.Encode()
}

// sizedBody lets http send a known length as Content-Length.
type sizedBody struct {
	r    io.Reader
	size int64
}

func (b *sizedBody) Read(p []byte) (int, error) { return b.r.Read(p) }

func jsonBody(v any) io.Reader {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encode %T: %v", v, err)) // wire types always encode
	}
	return bytes.NewReader(b)
}

// call sends in (JSON, when not nil) and decodes the answer.
func call[T any](ctx context.Context, c *Client, method, path string, in any) (*T, error) {
	var body io.Reader
	ctype := ""
	if in != nil {
		body, ctype = jsonBody(in), "application/json"
	}
	resp, err := c.do(ctx, method, path, body, ctype, "")
	if err != nil {
		return nil, err
	}
	return decode[T](resp)
}

func decode[T any](resp *http.Response) (*T, error) {
	defer resp.Body.Close()
	var v T
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return nil, fmt.Errorf("agent: decode answer of %s %s: %w", resp.Request.Method, resp.Request.URL.Path, err)
	}
	return &v, nil
}

// do sends a request and returns the response when its status is 2xx;
// otherwise it returns the agent's *Error.
func (c *Client) do(ctx context.Context, method, path string, body io.Reader, ctype, accept string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		return nil, err
	}
	if sb, ok := body.(*sizedBody); ok {
		req.ContentLength = sb.size
		if sb.size == 0 {
			req.Body = http.NoBody
		}
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("agent %s %s: %w", method, strings.SplitN(path, "?", 2)[0], err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return nil, errorAnswer(resp.StatusCode, b)
}

// maxErrorBody bounds how much of an error answer is kept.
const maxErrorBody = 64 << 10

// errorAnswer is the *Error of an answer with a status that is not 2xx:
// the agent's {"error":{"code","message"}}, or the status and the start
// of the body when it is not that.
func errorAnswer(status int, body []byte) *Error {
	var er wire.ErrorResponse
	if json.Unmarshal(body, &er) == nil && er.Error.Code != "" {
		return &Error{Status: status, Code: er.Error.Code, Message: er.Error.Message}
	}
	return &Error{Status: status, Code: "HTTP" + strconv.Itoa(status), Message: strings.TrimSpace(string(body[:min(len(body), maxErrorBody)]))}
}
