package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Credentials are what a tidepool server writes to
// <data-dir>/admin-credentials.json: a service principal and where to use
// it.
type Credentials struct {
	TenantID       string `json:"tenantId"`
	SubscriptionID string `json:"subscriptionId"`
	ClientID       string `json:"clientId"`
	ClientSecret   string `json:"clientSecret"`
	Endpoint       string `json:"endpoint"`
}

// ReadCredentials reads a credentials file.
func ReadCredentials(path string) (Credentials, error) {
	var c Credentials
	data, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("credentials: %w", err)
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("credentials %s: %w", path, err)
	}
	if c.ClientID == "" || c.ClientSecret == "" || c.TenantID == "" || c.SubscriptionID == "" {
		return c, fmt.Errorf("credentials %s: tenantId, subscriptionId, clientId and clientSecret are required", path)
	}
	return c, nil
}

// Client talks to one tidepool server: the token endpoint, the management
// API and the data plane, over one pool of kept-alive connections.
type Client struct {
	hc       *http.Client
	endpoint string
	creds    Credentials
	token    string
	// metrics is the server's Prometheus endpoint (empty: unknown).
	metrics string
}

// NewClient returns a client of the server at endpoint, authenticated with
// creds (a management token, which the data plane accepts too).
func NewClient(ctx context.Context, endpoint, metricsURL string, creds Credentials) (*Client, error) {
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, DisableCompression: true, IdleConnTimeout: time.Minute}
	c := &Client{hc: &http.Client{Transport: tr, Timeout: 5 * time.Minute}, endpoint: strings.TrimSuffix(endpoint, "/"), creds: creds, metrics: metricsURL}
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {creds.ClientID},
		"client_secret": {creds.ClientSecret},
		"scope":         {"https://management.azure.com/.default"},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint+"/"+creds.TenantID+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	status, body, _, err := c.send(req)
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &tok) != nil || tok.AccessToken == "" {
		return nil, fmt.Errorf("token: HTTP %d: %s", status, clip(body))
	}
	c.token = tok.AccessToken
	return c, nil
}

// Close drops the idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

func (c *Client) send(req *http.Request) (int, []byte, http.Header, error) {
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, resp.Header, err
}

func (c *Client) doJSON(ctx context.Context, method, u string, in any) (int, []byte, http.Header, error) {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return 0, nil, nil, err
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return 0, nil, nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.send(req)
}

func clip(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// groupURL is the ARM URL of a resource group.
func (c *Client) groupURL(rg string) string {
	return fmt.Sprintf("%s/subscriptions/%s/resourceGroups/%s", c.endpoint, c.creds.SubscriptionID, rg)
}

// CreateGroup creates (or updates) a resource group.
func (c *Client) CreateGroup(ctx context.Context, rg string) error {
	st, body, _, err := c.doJSON(ctx, http.MethodPut, c.groupURL(rg)+"?api-version=2021-04-01", map[string]string{"location": "eastus"})
	if err != nil {
		return fmt.Errorf("create resource group %s: %w", rg, err)
	}
	if st != http.StatusOK && st != http.StatusCreated {
		return fmt.Errorf("create resource group %s: HTTP %d: %s", rg, st, clip(body))
	}
	return nil
}

// DeleteGroup deletes a resource group and what it holds, and waits until
// it is gone.
func (c *Client) DeleteGroup(ctx context.Context, rg string) error {
	u := c.groupURL(rg) + "?api-version=2021-04-01"
	st, body, _, err := c.doJSON(ctx, http.MethodDelete, u, nil)
	if err != nil {
		return fmt.Errorf("delete resource group %s: %w", rg, err)
	}
	if st >= 300 && st != http.StatusNotFound {
		return fmt.Errorf("delete resource group %s: HTTP %d: %s", rg, st, clip(body))
	}
	return poll(ctx, 5*time.Minute, func() (bool, error) {
		st, _, _, err := c.doJSON(ctx, http.MethodGet, u, nil)
		return st == http.StatusNotFound, err
	})
}

// Pool is a session pool the bench made.
type Pool struct {
	Name string
	// Endpoint is its poolManagementEndpoint (the data plane).
	Endpoint string
	// Key is its ARM id, lower-cased: the pool label of the metrics and
	// of the sandboxes.
	Key   string
	Ready int
	Max   int
}

// PoolSpec says what pool to make.
type PoolSpec struct {
	Name          string
	ContainerType string // PythonLTS or Shell
	Ready, Max    int
}

// CreatePool creates a pool in rg and waits until it is Succeeded (its
// first ready set is up).
func (c *Client) CreatePool(ctx context.Context, rg string, ps PoolSpec) (*Pool, error) {
	id := fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.App/sessionPools/%s", c.creds.SubscriptionID, rg, ps.Name)
	u := c.endpoint + id + "?api-version=2025-02-02-preview"
	st, body, _, err := c.doJSON(ctx, http.MethodPut, u, map[string]any{"location": "eastus", "properties": map[string]any{
		"containerType": ps.ContainerType, "poolManagementType": "Dynamic",
		"scaleConfiguration": map[string]any{"maxConcurrentSessions": ps.Max, "readySessionInstances": ps.Ready},
		"dynamicPoolConfiguration": map[string]any{
			"lifecycleConfiguration": map[string]any{"lifecycleType": "Timed", "cooldownPeriodInSeconds": 3600}},
	}})
	if err != nil {
		return nil, fmt.Errorf("create pool %s: %w", ps.Name, err)
	}
	if st != http.StatusOK && st != http.StatusCreated {
		return nil, fmt.Errorf("create pool %s: HTTP %d: %s", ps.Name, st, clip(body))
	}
	p := &Pool{Name: ps.Name, Key: strings.ToLower(id), Ready: ps.Ready, Max: ps.Max}
	err = poll(ctx, 5*time.Minute, func() (bool, error) {
		st, body, _, err := c.doJSON(ctx, http.MethodGet, u, nil)
		if err != nil {
			return false, err
		}
		if st != http.StatusOK {
			return false, fmt.Errorf("HTTP %d: %s", st, clip(body))
		}
		var v struct {
			Properties struct {
				ProvisioningState      string `json:"provisioningState"`
				PoolManagementEndpoint string `json:"poolManagementEndpoint"`
			} `json:"properties"`
		}
		if err := json.Unmarshal(body, &v); err != nil {
			return false, err
		}
		switch v.Properties.ProvisioningState {
		case "Succeeded":
			p.Endpoint = strings.TrimSuffix(v.Properties.PoolManagementEndpoint, "/")
			return true, nil
		case "Failed", "Canceled":
			return false, fmt.Errorf("provisioningState %s: %s", v.Properties.ProvisioningState, clip(body))
		}
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", ps.Name, err)
	}
	if p.Endpoint == "" {
		p.Endpoint = fmt.Sprintf("%s/subscriptions/%s/resourceGroups/%s/sessionPools/%s", c.endpoint, c.creds.SubscriptionID, rg, ps.Name)
	}
	return p, nil
}

// ExecResult is what the server said about one execution.
type ExecResult struct {
	// Allocation is x-ms-allocation-time (whole milliseconds): large for a
	// cold start.
	AllocationMs int
}

// Execute runs Python code with the v1 code/execute route on the session
// of ident and fails unless it succeeded.
func (c *Client) Execute(ctx context.Context, p *Pool, ident, code string) (ExecResult, error) {
	body := `{"properties":{"codeInputType":"inline","executionType":"synchronous","code":` + strconv.Quote(code) + `}}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		p.Endpoint+"/code/execute?api-version=2024-02-02-preview&identifier="+url.QueryEscape(ident), strings.NewReader(body))
	if err != nil {
		return ExecResult{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	st, data, h, err := c.send(req)
	if err != nil {
		return ExecResult{}, fmt.Errorf("code/execute: %w", err)
	}
	if st != http.StatusOK || !bytes.Contains(data, []byte(`"Success"`)) {
		return ExecResult{}, fmt.Errorf("code/execute: HTTP %d: %s", st, clip(data))
	}
	alloc, _ := strconv.Atoi(h.Get("x-ms-allocation-time"))
	return ExecResult{AllocationMs: alloc}, nil
}

// Shell runs a shell command (v2 executions, shellCommand) on a Shell
// pool's session and fails unless it exited with 0.
func (c *Client) Shell(ctx context.Context, p *Pool, ident, command string) error {
	st, data, _, err := c.doJSON(ctx, http.MethodPost,
		p.Endpoint+"/executions?api-version=2025-10-02-preview&identifier="+url.QueryEscape(ident),
		map[string]string{"shellCommand": command})
	if err != nil {
		return fmt.Errorf("executions: %w", err)
	}
	var v struct {
		Status string `json:"status"`
	}
	if st != http.StatusOK && st != http.StatusCreated && st != http.StatusAccepted || json.Unmarshal(data, &v) != nil || (v.Status != "0" && v.Status != "Succeeded") {
		return fmt.Errorf("executions: HTTP %d: %s", st, clip(data))
	}
	return nil
}

// Upload writes data as name in the session's /mnt/data (v1 files/upload,
// multipart), streaming the body.
func (c *Client) Upload(ctx context.Context, p *Pool, ident, name string, data []byte) error {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		part, err := mw.CreateFormFile("file", name)
		if err == nil {
			_, err = part.Write(data)
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		p.Endpoint+"/files/upload?api-version=2024-02-02-preview&identifier="+url.QueryEscape(ident), pr)
	if err != nil {
		pr.Close()
		return err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	st, body, _, err := c.send(req)
	pr.Close()
	if err != nil {
		return fmt.Errorf("files/upload: %w", err)
	}
	if st != http.StatusOK && st != http.StatusCreated {
		return fmt.Errorf("files/upload: HTTP %d: %s", st, clip(body))
	}
	return nil
}

// Download reads name from the session's /mnt/data and returns its size.
func (c *Client) Download(ctx context.Context, p *Pool, ident, name string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		p.Endpoint+"/files/content/"+url.PathEscape(name)+"?api-version=2024-02-02-preview&identifier="+url.QueryEscape(ident), nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("files/content: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return 0, fmt.Errorf("files/content: HTTP %d: %s", resp.StatusCode, clip(b))
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return n, fmt.Errorf("files/content: %w", err)
	}
	return n, nil
}

// DeleteSession ends the session of ident.
func (c *Client) DeleteSession(ctx context.Context, p *Pool, ident string) error {
	st, body, _, err := c.doJSON(ctx, http.MethodDelete,
		p.Endpoint+"/session?api-version=2025-10-02-preview&identifier="+url.QueryEscape(ident), nil)
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	if st != http.StatusNoContent && st != http.StatusOK && st != http.StatusNotFound {
		return fmt.Errorf("delete session: HTTP %d: %s", st, clip(body))
	}
	return nil
}

// PoolGauges are the pool controller's gauges for one pool.
type PoolGauges struct {
	Ready, Claimed, Starting, Stopping, Target int
}

// errNoMetrics: the server's metrics endpoint is unknown.
var errNoMetrics = errors.New("the server's metrics endpoint is unknown (start it with --metrics-listen and pass --metrics-url)")

// Gauges scrapes the server's metrics for pool p.
func (c *Client) Gauges(ctx context.Context, p *Pool) (PoolGauges, error) {
	var g PoolGauges
	if c.metrics == "" {
		return g, errNoMetrics
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.metrics, nil)
	if err != nil {
		return g, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return g, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return g, fmt.Errorf("metrics: HTTP %d", resp.StatusCode)
	}
	label := `pool="` + p.Key + `"`
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "tidepool_pool_") || !strings.Contains(strings.ToLower(line), label) {
			continue
		}
		name, _, _ := strings.Cut(line, "{")
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			continue
		}
		switch name {
		case "tidepool_pool_ready_sandboxes":
			g.Ready = int(v)
		case "tidepool_pool_claimed_sessions":
			g.Claimed = int(v)
		case "tidepool_pool_starting_sandboxes":
			g.Starting = int(v)
		case "tidepool_pool_stopping_sandboxes":
			g.Stopping = int(v)
		case "tidepool_pool_ready_target":
			g.Target = int(v)
		}
	}
	return g, sc.Err()
}

// WaitQuiet waits until pool p holds its full ready set with nothing
// starting or stopping, unchanged for settle. Without metrics it sleeps
// settle once.
func (c *Client) WaitQuiet(ctx context.Context, p *Pool, settle, timeout time.Duration) error {
	if c.metrics == "" {
		return sleep(ctx, settle)
	}
	var since time.Time
	var last PoolGauges
	err := poll(ctx, timeout, func() (bool, error) {
		g, err := c.Gauges(ctx, p)
		if err != nil {
			return false, err
		}
		last = g
		if g.Ready >= g.Target && g.Starting == 0 && g.Stopping == 0 {
			if since.IsZero() {
				since = time.Now()
			}
			return time.Since(since) >= settle, nil
		}
		since = time.Time{}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("pool %s did not settle: %+v: %w", p.Name, last, err)
	}
	return nil
}

// poll calls f every 10 ms until it returns true or an error, or timeout.
func poll(ctx context.Context, timeout time.Duration, f func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := f()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not done after %s", timeout)
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
