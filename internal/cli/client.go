package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Token audiences.
const (
	resourceARM       = "https://management.core.windows.net/"
	resourceDataPlane = "https://dynamicsessions.io"
	resourceGraph     = "https://graph.microsoft.com/"
)

// lroTimeout bounds the wait on one long-running operation (az: 1500 s).
const lroTimeout = 25 * time.Minute

// armClient sends authenticated requests to the server of the login.
type armClient struct {
	app     *App
	prof    *profile
	sub     *subscriptionEntry
	log     *slog.Logger
	spinner bool
}

// serviceError is an error answer of the server: az prints "(Code) Message".
type serviceError struct {
	Status  int
	Code    string
	Message string
}

func (e *serviceError) Error() string {
	if e.Code == "" {
		return e.Message
	}
	return fmt.Sprintf("(%s) %s", e.Code, e.Message)
}

// ExitCode is 3 for not found, as az's ResourceNotFoundError, else 1.
func (e *serviceError) ExitCode() int {
	if e.Status == http.StatusNotFound {
		return 3
	}
	return 1
}

func isNotFound(err error) bool {
	var se *serviceError
	return errors.As(err, &se) && se.Status == http.StatusNotFound
}

// requestToken runs the client-credentials grant against the login's
// token endpoint for resource.
func requestToken(ctx context.Context, app *App, l *loginInfo, resource string) (cachedToken, error) {
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {l.ClientID},
		"client_secret": {l.ClientSecret},
		"scope":         {resource + "/.default"},
	}
	u := strings.TrimSuffix(l.Endpoint, "/") + "/" + url.PathEscape(l.TenantID) + "/oauth2/v2.0/token"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return cachedToken{}, fmt.Errorf("token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := app.httpClient().Do(req)
	if err != nil {
		return cachedToken{}, fmt.Errorf("token request: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return cachedToken{}, fmt.Errorf("token request: %w", err)
	}
	var tr struct {
		AccessToken      string `json:"access_token"`
		ExpiresIn        int64  `json:"expires_in"`
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	if err := json.Unmarshal(body, &tr); err != nil {
		return cachedToken{}, fmt.Errorf("token request: HTTP %d: %s", resp.StatusCode, clipBody(body))
	}
	if resp.StatusCode != http.StatusOK || tr.AccessToken == "" {
		return cachedToken{}, &cliError{msg: fmt.Sprintf("(%s) %s", tr.Error, tr.ErrorDescription), code: 1}
	}
	return cachedToken{AccessToken: tr.AccessToken, ExpiresOn: app.now().Add(time.Duration(tr.ExpiresIn) * time.Second)}, nil
}

// token returns a token for resource from the cache, or a new one, which
// it caches in the profile. A cached token is used while it has more than
// five minutes to live.
func (c *armClient) token(ctx context.Context, resource string) (cachedToken, error) {
	if t, ok := c.prof.Tokens[resource]; ok && t.ExpiresOn.After(c.app.now().Add(5*time.Minute)) {
		return t, nil
	}
	t, err := requestToken(ctx, c.app, c.prof.Login, resource)
	if err != nil {
		return cachedToken{}, err
	}
	if c.prof.Tokens == nil {
		c.prof.Tokens = map[string]cachedToken{}
	}
	c.prof.Tokens[resource] = t
	if err := c.prof.save(); err != nil {
		c.log.Warn("cache token", "err", err)
	}
	return t, nil
}

// response is a read HTTP answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// json decodes the body into a generic value (nil when empty).
func (r *response) json() (any, error) {
	if len(bytes.TrimSpace(r.Body)) == 0 {
		return nil, nil
	}
	var v any
	d := json.NewDecoder(bytes.NewReader(r.Body))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	return v, nil
}

// url resolves a path against the endpoint; full URLs pass through.
func (c *armClient) url(pathOrURL string) string {
	if strings.HasPrefix(pathOrURL, "http://") || strings.HasPrefix(pathOrURL, "https://") {
		return pathOrURL
	}
	return strings.TrimSuffix(c.prof.Login.Endpoint, "/") + pathOrURL
}

// withVersion adds api-version to a path or URL.
func withVersion(p, version string) string {
	if version == "" {
		return p
	}
	sep := "?"
	if strings.Contains(p, "?") {
		sep = "&"
	}
	return p + sep + "api-version=" + url.QueryEscape(version)
}

// call sends a JSON request with a token for the management API.
func (c *armClient) call(ctx context.Context, method, path, version string, body any) (*response, error) {
	return c.send(ctx, method, withVersion(path, version), resourceARM, body, "")
}

// send sends a request with a bearer token for resource. body is JSON
// (any value) or, with contentType set, raw bytes. Answers of 400 and
// above become a *serviceError.
func (c *armClient) send(ctx context.Context, method, pathOrURL, resource string, body any, contentType string) (*response, error) {
	tok, err := c.token(ctx, resource)
	if err != nil {
		return nil, err
	}
	var rd io.Reader
	var raw []byte
	if body != nil {
		if contentType != "" {
			raw = body.([]byte)
		} else {
			if raw, err = json.Marshal(body); err != nil {
				return nil, fmt.Errorf("encode request: %w", err)
			}
			contentType = "application/json"
		}
		rd = bytes.NewReader(raw)
	}
	u := c.url(pathOrURL)
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("x-ms-client-request-id", uuid.NewString())
	req.Header.Set("User-Agent", "tidepool-cli")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	c.log.Debug("request", "method", method, "url", u, "body", clipBody(raw))
	resp, err := c.app.httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: read response: %w", method, u, err)
	}
	c.log.Debug("response", "status", resp.StatusCode, "x-ms-request-id", resp.Header.Get("x-ms-request-id"), "body", clipBody(data))
	c.log.Info("request", "method", method, "url", u, "status", resp.StatusCode)
	r := &response{Status: resp.StatusCode, Header: resp.Header, Body: data}
	if resp.StatusCode >= 400 {
		return r, decodeServiceError(resp.StatusCode, data)
	}
	return r, nil
}

func decodeServiceError(status int, body []byte) error {
	var env struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &env) == nil {
		if env.Error != nil {
			return &serviceError{Status: status, Code: env.Error.Code, Message: env.Error.Message}
		}
		if env.Message != "" {
			return &serviceError{Status: status, Code: env.Code, Message: env.Message}
		}
	}
	msg := strings.TrimSpace(string(clipBody(body)))
	if msg == "" {
		msg = http.StatusText(status)
	}
	return &serviceError{Status: status, Message: fmt.Sprintf("Operation returned an invalid status '%s'", msg)}
}

func clipBody(b []byte) []byte {
	if len(b) > 4096 {
		return append(b[:4096:4096], "…"...)
	}
	return b
}

// wait finishes a long-running operation begun with resp. For PUT and
// PATCH the result is a GET of resourceURL once the operation succeeded;
// for DELETE it is nil; otherwise it is the final answer's body.
func (c *armClient) wait(ctx context.Context, method, resourceURL string, resp *response) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, lroTimeout)
	defer cancel()
	stop := c.startSpinner()
	defer stop()
	if op := resp.Header.Get("Azure-AsyncOperation"); op != "" && resp.Status != http.StatusOK || op != "" && method == http.MethodDelete {
		if err := c.pollStatus(ctx, op, resp.Header); err != nil {
			return nil, err
		}
		switch method {
		case http.MethodPut, http.MethodPatch:
			r, err := c.send(ctx, http.MethodGet, resourceURL, resourceARM, nil, "")
			if err != nil {
				return nil, err
			}
			return r.json()
		case http.MethodDelete:
			return nil, nil
		}
		if loc := resp.Header.Get("Location"); loc != "" {
			r, err := c.send(ctx, http.MethodGet, loc, resourceARM, nil, "")
			if err != nil {
				return nil, err
			}
			return r.json()
		}
		return nil, nil
	}
	for resp.Status == http.StatusAccepted {
		loc := resp.Header.Get("Location")
		if loc == "" {
			return nil, &cliError{msg: "Http response lack of necessary header: 'location'", code: 1}
		}
		if err := c.sleep(ctx, resp.Header); err != nil {
			return nil, err
		}
		next, err := c.send(ctx, http.MethodGet, loc, resourceARM, nil, "")
		if err != nil {
			return nil, err
		}
		if next.Header.Get("Location") == "" {
			next.Header.Set("Location", loc)
		}
		resp = next
	}
	if method == http.MethodDelete {
		return nil, nil
	}
	if (method == http.MethodPut || method == http.MethodPatch) && len(bytes.TrimSpace(resp.Body)) == 0 {
		r, err := c.send(ctx, http.MethodGet, resourceURL, resourceARM, nil, "")
		if err != nil {
			return nil, err
		}
		return r.json()
	}
	return resp.json()
}

// pollStatus polls an Azure-AsyncOperation URL until a terminal status.
func (c *armClient) pollStatus(ctx context.Context, opURL string, h http.Header) error {
	for {
		if err := c.sleep(ctx, h); err != nil {
			return err
		}
		r, err := c.send(ctx, http.MethodGet, opURL, resourceARM, nil, "")
		if err != nil {
			return err
		}
		var st struct {
			Status string `json:"status"`
			Error  *struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(r.Body, &st); err != nil || st.Status == "" {
			return &cliError{msg: "Http response body lack of necessary property: status", code: 1}
		}
		switch strings.ToLower(st.Status) {
		case "succeeded":
			return nil
		case "failed", "canceled", "cancelled":
			if st.Error != nil {
				return &serviceError{Code: st.Error.Code, Message: st.Error.Message}
			}
			return &cliError{msg: "Operation " + st.Status, code: 1}
		}
		h = r.Header
	}
}

// sleep waits the answer's Retry-After (or App.PollInterval, or 2 s).
func (c *armClient) sleep(ctx context.Context, h http.Header) error {
	d := 2 * time.Second
	if s, err := strconv.Atoi(h.Get("Retry-After")); err == nil && s >= 0 {
		d = time.Duration(s) * time.Second
	} else if ms, err := strconv.Atoi(h.Get("retry-after-ms")); err == nil && ms >= 0 {
		d = time.Duration(ms) * time.Millisecond
	}
	if c.app.PollInterval > 0 {
		d = c.app.PollInterval
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("wait for the operation: %w", ctx.Err())
	case <-t.C:
		return nil
	}
}

// startSpinner shows az's " | Running .." on a terminal until stop.
func (c *armClient) startSpinner() (stop func()) {
	if !c.spinner {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		frames := `|/-\`
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			fmt.Fprintf(c.app.stderr(), "\r %c Running ..", frames[i%len(frames)])
			select {
			case <-done:
				fmt.Fprint(c.app.stderr(), "\r             \r")
				return
			case <-tick.C:
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// get GETs an ARM path and decodes it.
func (c *armClient) get(ctx context.Context, path, version string) (any, error) {
	r, err := c.call(ctx, http.MethodGet, path, version, nil)
	if err != nil {
		return nil, err
	}
	return r.json()
}

// list GETs a collection and follows nextLink; with firstPage only, it
// returns the first page (az's sessionpool list -g).
func (c *armClient) list(ctx context.Context, path, version string, firstPage bool) ([]any, error) {
	out := []any{}
	next := withVersion(path, version)
	for next != "" {
		r, err := c.send(ctx, http.MethodGet, next, resourceARM, nil, "")
		if err != nil {
			return nil, err
		}
		var page struct {
			Value    []any  `json:"value"`
			NextLink string `json:"nextLink"`
		}
		d := json.NewDecoder(bytes.NewReader(r.Body))
		d.UseNumber()
		if err := d.Decode(&page); err != nil {
			return nil, fmt.Errorf("decode list: %w", err)
		}
		out = append(out, page.Value...)
		if firstPage {
			break
		}
		next = page.NextLink
	}
	return out, nil
}

// put sends PUT (or PATCH) and waits unless noWait.
func (c *armClient) put(ctx context.Context, method, path, version string, body any, noWait bool) (any, error) {
	r, err := c.call(ctx, method, path, version, body)
	if err != nil {
		return nil, err
	}
	if noWait {
		return noOutput{}, nil
	}
	return c.wait(ctx, method, withVersion(path, version), r)
}

// del sends DELETE and waits unless noWait.
func (c *armClient) del(ctx context.Context, path, version string, noWait bool) error {
	r, err := c.call(ctx, http.MethodDelete, path, version, nil)
	if err != nil {
		return err
	}
	if noWait || r.Status == http.StatusNoContent || r.Status == http.StatusOK && r.Header.Get("Azure-AsyncOperation") == "" {
		return nil
	}
	_, err = c.wait(ctx, http.MethodDelete, withVersion(path, version), r)
	return err
}
