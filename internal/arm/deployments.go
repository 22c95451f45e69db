package arm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/tidepool-dev/tidepool/internal/auth"
	"github.com/tidepool-dev/tidepool/internal/model"
	"github.com/tidepool-dev/tidepool/internal/store"
	"github.com/tidepool-dev/tidepool/internal/template"
)

// Template deployments (Microsoft.Resources/deployments in a resource
// group). A PUT validates the template, stores the deployment as Accepted
// and answers 201 with an Azure-AsyncOperation URL under the deployment
// (.../deployments/{name}/operationStatuses/{id}, as ARM does). A goroutine
// owned by the Server then PUTs each resource, in dependency order, through
// this Server's own routes with the caller's claims, and waits for each to
// reach a terminal provisioningState. The deployment ends Succeeded with
// the template's outputs, or Failed with the first resource's error.
//
// Deployment progress is kept on the deployment resource itself, not in a
// store.Operation: the pool controller completes every operation on a
// resource type it does not know as Succeeded, which would end a running
// deployment early after a restart.
//
// A deployment found Accepted or Running that no goroutine of this Server
// runs was interrupted by a restart: reading it marks it Failed, so that
// nothing stays Running forever (RecoverDeployments does it for all at
// startup).

// DeploymentType is the store type of template deployments.
const DeploymentType = "Microsoft.Resources/deployments"

// Deployment states, as ARM reports them.
const (
	deployAccepted = "Accepted"
	deployRunning  = "Running"
)

// interruptedMessage explains a deployment a server stop cut short.
const interruptedMessage = "The server stopped while this deployment was running; the resources it had not finished may be partly deployed. Run the deployment again: deployments are idempotent."

// resourceTimeout bounds the wait for one resource of a deployment.
const resourceTimeout = 30 * time.Minute

var deploymentNameRule = regexp.MustCompile(`^[-\w._()]{1,64}$`)

// deployment is a Microsoft.Resources/deployments resource as stored.
type deployment struct {
	ID         string             `json:"id"`
	Name       string             `json:"name"`
	Type       string             `json:"type"`
	Tags       map[string]string  `json:"tags,omitempty"`
	Properties deploymentProperty `json:"properties"`
	// OperationID names the PUT's Azure-AsyncOperation; not rendered.
	OperationID string `json:"tidepoolOperationId,omitempty"`
}

type deploymentProperty struct {
	TemplateHash       string                     `json:"templateHash,omitempty"`
	Parameters         map[string]deployParameter `json:"parameters,omitempty"`
	Mode               string                     `json:"mode"`
	ProvisioningState  string                     `json:"provisioningState"`
	Timestamp          time.Time                  `json:"timestamp"`
	Duration           string                     `json:"duration"`
	CorrelationID      string                     `json:"correlationId,omitempty"`
	Dependencies       []deployDependency         `json:"dependencies"`
	Outputs            map[string]deployOutput    `json:"outputs,omitempty"`
	OutputResources    []deployResourceRef        `json:"outputResources,omitempty"`
	ValidatedResources []deployResourceRef        `json:"validatedResources,omitempty"`
	Error              *errorBody                 `json:"error,omitempty"`
}

type deployParameter struct {
	Type  string `json:"type"`
	Value any    `json:"value,omitempty"`
}

type deployOutput struct {
	Type  string `json:"type"`
	Value any    `json:"value,omitempty"`
}

type deployResourceRef struct {
	ID string `json:"id"`
}

type deployDependency struct {
	DependsOn    []deployDependencyRef `json:"dependsOn"`
	ID           string                `json:"id"`
	ResourceType string                `json:"resourceType"`
	ResourceName string                `json:"resourceName"`
}

type deployDependencyRef struct {
	ID           string `json:"id"`
	ResourceType string `json:"resourceType"`
	ResourceName string `json:"resourceName"`
}

func terminal(state string) bool {
	return state == model.StateSucceeded || state == model.StateFailed || state == model.StateCanceled
}

// deployRunner runs deployments in goroutines it owns. The zero value is
// ready to use.
type deployRunner struct {
	mu sync.Mutex // guards the fields below
	// running maps lower-case deployment ids to the cancel of their run.
	// A deployment is added before it is stored non-terminal and removed
	// after its terminal state is stored.
	running map[string]context.CancelFunc
	stopped bool
	wg      sync.WaitGroup
}

// add registers a run of id named name; it fails if one is registered or
// the runner stopped.
func (d *deployRunner) add(id, name string, cancel context.CancelFunc) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return errorf(http.StatusServiceUnavailable, "ServerShuttingDown", "The server is shutting down and starts no deployments; retry against the restarted server.")
	}
	if d.running == nil {
		d.running = map[string]context.CancelFunc{}
	}
	key := strings.ToLower(id)
	if _, ok := d.running[key]; ok {
		return errorf(http.StatusConflict, "DeploymentActive", "Unable to edit or replace deployment '%s': the previous deployment is still active. Wait for it to finish or cancel it.", name)
	}
	d.running[key] = cancel
	d.wg.Add(1)
	return nil
}

func (d *deployRunner) isStopped() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stopped
}

func (d *deployRunner) done(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.running, strings.ToLower(id))
	d.wg.Done()
}

func (d *deployRunner) isRunning(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.running[strings.ToLower(id)]
	return ok
}

func (d *deployRunner) cancel(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.running[strings.ToLower(id)]
	if ok {
		c()
	}
	return ok
}

// StopDeployments cancels the deployments in progress and waits until
// their goroutines have recorded them as Failed (or ctx ends). No
// deployment starts afterwards.
func (s *Server) StopDeployments(ctx context.Context) error {
	d := &s.deploys
	d.mu.Lock()
	d.stopped = true
	for _, c := range d.running {
		c()
	}
	d.mu.Unlock()
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// RecoverDeployments marks Failed every stored deployment left Accepted or
// Running by a server that stopped: call it at startup, before serving.
func (s *Server) RecoverDeployments(ctx context.Context) error {
	var after string
	for {
		page, err := s.st.ListResources(ctx, store.ListOptions{Type: DeploymentType, After: after, Limit: 200})
		if err != nil {
			return fmt.Errorf("list deployments: %w", err)
		}
		for _, res := range page.Items {
			if _, err := s.decodeDeployment(ctx, &res); err != nil {
				return err
			}
		}
		if page.Next == "" {
			return nil
		}
		after = page.Next
	}
}

// routeDeployment serves .../resourceGroups/{rg}/providers/Microsoft.Resources/deployments[/...].
func (s *Server) routeDeployment(w http.ResponseWriter, r *http.Request, id *model.ResourceID) error {
	const typ = "Microsoft.Resources/deployments"
	if id.IsCollection() && len(id.Types) == 1 {
		return s.methods(w, r, access{scope: id.ResourceGroupID(), typ: typ, list: true}, handlers{get: s.listDeployments})
	}
	if len(id.Names) == 0 {
		return unknownRoute(r)
	}
	item := access{scope: DeploymentID(id.Subscription, id.ResourceGroup, id.Names[0]), typ: typ}
	switch n := len(id.Types); {
	case n == 1:
		// Each resource the deployment writes is checked again, as the caller.
		return s.methods(w, r, item, handlers{get: s.getDeployment, put: s.putDeployment, del: s.deleteDeployment})
	case n == 2 && len(id.Names) == 2 && eq(id.Types[1], "operationStatuses"):
		return s.methods(w, r, item, handlers{get: s.getDeploymentOperation})
	case n == 2 && len(id.Names) == 1 && eq(id.Types[1], "validate"):
		item.action = typ + "/validate/action"
		return s.methods(w, r, item, handlers{post: s.validateDeployment})
	case n == 2 && len(id.Names) == 1 && eq(id.Types[1], "cancel"):
		item.action = typ + "/cancel/action"
		return s.methods(w, r, item, handlers{post: s.cancelDeployment})
	case n == 2 && len(id.Names) == 1 && (eq(id.Types[1], "whatIf") || eq(id.Types[1], "exportTemplate")):
		return errorf(http.StatusNotImplemented, "NotImplemented", "The deployment action '%s' is not implemented by this server.", clip(id.Types[1]))
	case n == 2 && len(id.Names) == 1 && eq(id.Types[1], "operations"):
		return errorf(http.StatusNotImplemented, "NotImplemented", "Listing deployment operations is not implemented by this server; the deployment's error names the failed resource.")
	}
	return unknownRoute(r)
}

// DeploymentID returns the canonical id of a resource group deployment.
func DeploymentID(sub, group, name string) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/%s/%s", sub, group, DeploymentType, name)
}

// deploymentRequest checks what every deployment route needs.
func (s *Server) deploymentRequest(r *http.Request, forWrite bool) (*model.ResourceID, *model.ResourceGroup, error) {
	if _, err := apiVersion(r, nil); err != nil {
		return nil, nil, err
	}
	id, err := model.ParseResourceID(r.URL.Path)
	if err != nil {
		return nil, nil, unknownRoute(r)
	}
	g, err := s.requireGroup(r.Context(), id, forWrite)
	if err != nil {
		return nil, nil, err
	}
	return id, g, nil
}

// loadDeployment returns the stored deployment, nil if there is none.
func (s *Server) loadDeployment(ctx context.Context, id string) (*deployment, error) {
	res, err := s.st.GetResource(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get deployment %s: %w", id, err)
	}
	return s.decodeDeployment(ctx, res)
}

// decodeDeployment decodes a stored deployment. One left non-terminal
// with no run in this process was interrupted: it is stored Failed.
func (s *Server) decodeDeployment(ctx context.Context, res *store.Resource) (*deployment, error) {
	for attempt := 0; ; attempt++ {
		var d deployment
		if err := json.Unmarshal(res.Body, &d); err != nil {
			return nil, fmt.Errorf("decode deployment %s: %w", res.ID, err)
		}
		if terminal(d.Properties.ProvisioningState) || s.deploys.isRunning(d.ID) {
			return &d, nil
		}
		// A run stores its terminal state before it unregisters: read
		// again, now that no run is registered, to tell a run that just
		// ended from one that a restart interrupted.
		fresh, err := s.st.GetResource(ctx, res.ID)
		if errors.Is(err, store.ErrNotFound) {
			return &d, nil
		}
		if err != nil {
			return nil, fmt.Errorf("get deployment %s: %w", res.ID, err)
		}
		if fresh.Version != res.Version && attempt < conflictRetries {
			res = fresh
			continue
		}
		d.Properties.ProvisioningState = model.StateFailed
		d.Properties.Error = &errorBody{Code: "DeploymentInterrupted",
			Message: interruptedMessage}
		err = s.putResource(ctx, d.ID, DeploymentType, fresh.Scope, fresh.Version, &d)
		if errors.Is(err, store.ErrConflict) && attempt < conflictRetries {
			if res, err = s.st.GetResource(ctx, res.ID); err != nil {
				return nil, fmt.Errorf("get deployment %s: %w", d.ID, err)
			}
			continue
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		return &d, nil
	}
}

// render is the deployment as the API returns it.
func (d *deployment) render() any {
	out := *d
	out.OperationID = ""
	return &out
}

func (s *Server) getDeployment(w http.ResponseWriter, r *http.Request) error {
	id, _, err := s.deploymentRequest(r, false)
	if err != nil {
		return err
	}
	d, err := s.loadDeployment(r.Context(), DeploymentID(id.Subscription, id.ResourceGroup, id.Names[0]))
	if err != nil {
		return err
	}
	if d == nil {
		return errorf(http.StatusNotFound, "DeploymentNotFound", "Deployment '%s' could not be found.", id.Names[0])
	}
	writeJSON(w, http.StatusOK, d.render())
	return nil
}

func (s *Server) listDeployments(w http.ResponseWriter, r *http.Request) error {
	id, _, err := s.deploymentRequest(r, false)
	if err != nil {
		return err
	}
	return s.listPage(w, r, store.ListOptions{Type: DeploymentType, Scope: id.ResourceGroupID()}, func(res store.Resource) (any, error) {
		d, err := s.decodeDeployment(r.Context(), &res)
		if err != nil {
			return nil, err
		}
		return d.render(), nil
	})
}

// deleteDeployment deletes the deployment record only, as ARM does: the
// resources it deployed stay.
func (s *Server) deleteDeployment(w http.ResponseWriter, r *http.Request) error {
	id, _, err := s.deploymentRequest(r, false)
	if err != nil {
		return err
	}
	did := DeploymentID(id.Subscription, id.ResourceGroup, id.Names[0])
	if s.deploys.isRunning(did) {
		return errorf(http.StatusConflict, "DeploymentActive", "The deployment '%s' is still running; cancel it first (POST .../deployments/%s/cancel).", id.Names[0], id.Names[0])
	}
	err = s.st.DeleteResource(r.Context(), did, 0)
	if errors.Is(err, store.ErrNotFound) {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete deployment %s: %w", did, err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) cancelDeployment(w http.ResponseWriter, r *http.Request) error {
	id, _, err := s.deploymentRequest(r, false)
	if err != nil {
		return err
	}
	did := DeploymentID(id.Subscription, id.ResourceGroup, id.Names[0])
	if s.deploys.cancel(did) {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	d, err := s.loadDeployment(r.Context(), did)
	if err != nil {
		return err
	}
	if d == nil {
		return errorf(http.StatusNotFound, "DeploymentNotFound", "Deployment '%s' could not be found.", id.Names[0])
	}
	return errorf(http.StatusConflict, "DeploymentCannotBeCanceled", "The deployment '%s' is %s and cannot be canceled.", id.Names[0], d.Properties.ProvisioningState)
}

// deploymentRequestBody is what az deployment group create sends.
type deploymentRequestBody struct {
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags"`
	Properties *struct {
		Mode           string          `json:"mode"`
		Template       json.RawMessage `json:"template"`
		Parameters     json.RawMessage `json:"parameters"`
		TemplateLink   json.RawMessage `json:"templateLink"`
		ParametersLink json.RawMessage `json:"parametersLink"`
	} `json:"properties"`
}

// prepared is a validated deployment request.
type prepared struct {
	id     *model.ResourceID
	name   string
	did    string
	mode   string
	tags   map[string]string
	result *template.Result
	hash   string
}

// prepareDeployment reads and validates a deployment request body and
// evaluates its template.
func (s *Server) prepareDeployment(w http.ResponseWriter, r *http.Request, forWrite bool) (*prepared, error) {
	id, g, err := s.deploymentRequest(r, forWrite)
	if err != nil {
		return nil, err
	}
	name := id.Names[0]
	if !deploymentNameRule.MatchString(name) {
		return nil, &Error{Status: http.StatusBadRequest, Code: "InvalidDeploymentName", Target: "name",
			Message: fmt.Sprintf("The deployment name '%s' is invalid: use 1 to 64 letters, digits, '-', '_', '.', '(' and ')'.", clip(name))}
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return nil, err
	}
	var req deploymentRequestBody
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, badRequest("InvalidRequestContent", "The request content was invalid and could not be deserialized: %v.", err)
	}
	p := req.Properties
	if p == nil {
		return nil, &Error{Status: http.StatusBadRequest, Code: "InvalidRequestContent", Target: "properties", Message: "The deployment has no properties: send {\"properties\": {\"mode\": \"Incremental\", \"template\": {...}}}."}
	}
	if nonNull(p.TemplateLink) || nonNull(p.ParametersLink) {
		return nil, &Error{Status: http.StatusNotImplemented, Code: "NotImplemented", Target: "properties.templateLink",
			Message: "Linked templates and parameter files (templateLink, parametersLink) are not implemented by this server; send the template inline (--template-file)."}
	}
	mode := "Incremental"
	switch {
	case p.Mode == "" || strings.EqualFold(p.Mode, "Incremental"):
	case strings.EqualFold(p.Mode, "Complete"):
		return nil, &Error{Status: http.StatusNotImplemented, Code: "NotImplemented", Target: "properties.mode",
			Message: "Complete mode (deleting the resources the template does not name) is not implemented by this server; use Incremental."}
	default:
		return nil, &Error{Status: http.StatusBadRequest, Code: "InvalidDeploymentMode", Target: "properties.mode",
			Message: fmt.Sprintf("The deployment mode '%s' is invalid; it must be Incremental.", clip(p.Mode))}
	}
	if !nonNull(p.Template) {
		return nil, &Error{Status: http.StatusBadRequest, Code: "InvalidTemplate", Target: "properties.template", Message: "Deployment template validation failed: the deployment has no template."}
	}
	if err := model.ValidateTags(req.Tags); err != nil {
		return nil, err
	}
	env, err := s.templateEnv(r.Context(), id, g, name)
	if err != nil {
		return nil, err
	}
	res, err := template.Evaluate(p.Template, p.Parameters, env)
	if err != nil {
		var te *template.Error
		if !errors.As(err, &te) {
			return nil, fmt.Errorf("evaluate template: %w", err)
		}
		if te.Code == template.CodeNotImplemented {
			return nil, &Error{Status: http.StatusNotImplemented, Code: "NotImplemented", Target: te.Target, Message: "Deployment template validation failed: " + te.Message}
		}
		return nil, &Error{Status: http.StatusBadRequest, Code: "InvalidTemplate", Target: te.Target, Message: "Deployment template validation failed: " + te.Message}
	}
	sum := sha256.Sum256(p.Template)
	return &prepared{
		id: id, name: name, did: DeploymentID(id.Subscription, id.ResourceGroup, name), mode: mode, tags: req.Tags,
		result: res, hash: strconv.FormatUint(binary.BigEndian.Uint64(sum[:8]), 10),
	}, nil
}

func nonNull(m json.RawMessage) bool {
	s := strings.TrimSpace(string(m))
	return s != "" && s != "null"
}

// templateEnv is what resourceGroup(), subscription() and deployment() return.
func (s *Server) templateEnv(ctx context.Context, id *model.ResourceID, g *model.ResourceGroup, name string) (template.Env, error) {
	env := template.Env{
		Subscription:   template.Subscription{SubscriptionID: id.Subscription},
		ResourceGroup:  template.ResourceGroup{Name: g.Name, Location: g.Location, ManagedBy: g.ManagedBy, Tags: g.Tags},
		DeploymentName: name,
	}
	if env.ResourceGroup.Name == "" {
		env.ResourceGroup.Name = id.ResourceGroup
	}
	res, err := s.st.GetResource(ctx, id.SubscriptionID())
	if err != nil {
		return env, fmt.Errorf("get subscription %s: %w", id.Subscription, err)
	}
	var sub Subscription
	if err := json.Unmarshal(res.Body, &sub); err != nil {
		return env, fmt.Errorf("decode subscription %s: %w", id.Subscription, err)
	}
	env.Subscription.TenantID, env.Subscription.DisplayName = sub.TenantID, sub.DisplayName
	return env, nil
}

// properties fills the parts of a deployment's properties that come from
// the evaluated template.
func (p *prepared) properties(state string, now time.Time) deploymentProperty {
	prop := deploymentProperty{
		TemplateHash: p.hash, Mode: p.mode, ProvisioningState: state, Timestamp: now, Duration: "PT0S",
		Parameters: map[string]deployParameter{}, Dependencies: []deployDependency{},
	}
	for name, v := range p.result.Parameters {
		dp := deployParameter{Type: v.Type}
		if !v.Secure {
			dp.Value = v.Value
		}
		prop.Parameters[name] = dp
	}
	for _, res := range p.result.Resources {
		if len(res.DependsOn) == 0 {
			continue
		}
		dep := deployDependency{ID: res.ID, ResourceType: res.Type, ResourceName: res.Name}
		for _, d := range res.DependsOn {
			ref := deployDependencyRef{ID: d}
			if did, err := model.ParseResourceID(d); err == nil {
				ref.ResourceType, ref.ResourceName = did.ResourceType(), strings.Join(did.Names, "/")
			}
			dep.DependsOn = append(dep.DependsOn, ref)
		}
		prop.Dependencies = append(prop.Dependencies, dep)
	}
	return prop
}

func (s *Server) validateDeployment(w http.ResponseWriter, r *http.Request) error {
	p, err := s.prepareDeployment(w, r, false)
	if err != nil {
		return err
	}
	d := &deployment{ID: p.did, Name: p.name, Type: DeploymentType, Tags: p.tags, Properties: p.properties(model.StateSucceeded, s.now().UTC())}
	for _, res := range p.result.Resources {
		d.Properties.ValidatedResources = append(d.Properties.ValidatedResources, deployResourceRef{ID: res.ID})
	}
	writeJSON(w, http.StatusOK, d.render())
	return nil
}

func (s *Server) putDeployment(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, err := s.prepareDeployment(w, r, true)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	d := &deployment{
		ID: p.did, Name: p.name, Type: DeploymentType, Tags: p.tags,
		Properties: p.properties(deployAccepted, now), OperationID: uuid.NewString(),
	}
	d.Properties.CorrelationID = w.Header().Get("x-ms-correlation-request-id")
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	if err := s.deploys.add(p.did, p.name, cancel); err != nil {
		cancel()
		return err
	}
	old, err := s.st.GetResource(ctx, p.did)
	var version int64
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		s.deploys.done(p.did)
		cancel()
		return fmt.Errorf("get deployment %s: %w", p.did, err)
	default:
		version = old.Version
	}
	if err := s.putResource(ctx, p.did, DeploymentType, p.id.ResourceGroupID(), version, d); err != nil {
		s.deploys.done(p.did)
		cancel()
		return err
	}
	go func() {
		defer s.deploys.done(p.did)
		defer cancel()
		s.runDeployment(runCtx, d, p, claimsFrom(ctx), now)
	}()
	v := r.URL.Query().Get("api-version")
	w.Header().Set("Azure-AsyncOperation", s.deploymentOperationURL(p.did, d.OperationID, v))
	status := http.StatusCreated
	if version != 0 {
		status = http.StatusOK
	}
	writeJSON(w, status, d.render())
	return nil
}

func (s *Server) deploymentOperationURL(did, opID, apiVersion string) string {
	return s.publicURL + did + "/operationStatuses/" + opID + "?api-version=" + url.QueryEscape(apiVersion)
}

// getDeploymentOperation answers the Azure-AsyncOperation URL of a
// deployment PUT: always 200, with the deployment's state as the status.
func (s *Server) getDeploymentOperation(w http.ResponseWriter, r *http.Request) error {
	id, _, err := s.deploymentRequest(r, false)
	if err != nil {
		return err
	}
	did := DeploymentID(id.Subscription, id.ResourceGroup, id.Names[0])
	opID := id.Names[1]
	d, err := s.loadDeployment(r.Context(), did)
	if err != nil {
		return err
	}
	if d == nil || d.OperationID != opID {
		return errorf(http.StatusNotFound, "OperationNotFound", "The operation '%s' was not found.", clip(opID))
	}
	// Give a deployment in progress a short while to finish, as
	// awaitOperation does for other operations.
	deadline := time.Now().Add(s.opWait)
	for delay := time.Millisecond; !terminal(d.Properties.ProvisioningState) && time.Now().Before(deadline); delay = min(2*delay, 20*time.Millisecond) {
		select {
		case <-r.Context().Done():
			return nil
		case <-time.After(delay):
		}
		next, err := s.loadDeployment(r.Context(), did)
		if err != nil {
			return err
		}
		if next == nil {
			return errorf(http.StatusNotFound, "OperationNotFound", "The operation '%s' was not found.", clip(opID))
		}
		d = next
	}
	st := struct {
		ID     string     `json:"id"`
		Name   string     `json:"name"`
		Status string     `json:"status"`
		Error  *errorBody `json:"error,omitempty"`
	}{ID: did + "/operationStatuses/" + opID, Name: opID, Status: d.Properties.ProvisioningState, Error: d.Properties.Error}
	if !terminal(st.Status) {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// runDeployment deploys p's resources in order and records the outcome.
func (s *Server) runDeployment(ctx context.Context, d *deployment, p *prepared, claims *auth.Claims, started time.Time) {
	ctx = context.WithValue(ctx, claimsKey, claims)
	log := s.log.With("deployment", d.ID)
	s.updateDeployment(ctx, d.ID, started, func(prop *deploymentProperty) { prop.ProvisioningState = deployRunning })
	var fail *errorBody
	var done []deployResourceRef
	for _, res := range p.result.Resources {
		if err := s.deployResource(ctx, res); err != nil {
			fail = err
			break
		}
		done = append(done, deployResourceRef{ID: res.ID})
	}
	s.updateDeployment(ctx, d.ID, started, func(prop *deploymentProperty) {
		prop.OutputResources = done
		if fail != nil {
			prop.ProvisioningState = model.StateFailed
			prop.Error = &errorBody{Code: "DeploymentFailed",
				Message: "At least one resource deployment operation failed; the details name the resource and its error.",
				Details: []*errorBody{fail}}
			if ctx.Err() != nil && fail.Code == "DeploymentCanceled" {
				if s.deploys.isStopped() {
					prop.Error = &errorBody{Code: "DeploymentInterrupted",
						Message: interruptedMessage}
				} else {
					prop.ProvisioningState = model.StateCanceled
				}
			}
			return
		}
		prop.ProvisioningState = model.StateSucceeded
		prop.Outputs = map[string]deployOutput{}
		for name, o := range p.result.Outputs {
			out := deployOutput{Type: o.Type}
			if o.Type != "SecureString" && o.Type != "SecureObject" {
				out.Value = o.Value
			}
			prop.Outputs[name] = out
		}
	})
	if fail != nil {
		log.WarnContext(ctx, "deployment failed", "code", fail.Code, "target", fail.Target, "message", fail.Message)
	} else {
		log.InfoContext(ctx, "deployment succeeded", "resources", len(done))
	}
}

// updateDeployment applies change to the stored deployment. A deployment
// deleted meanwhile (with its resource group) stays deleted.
func (s *Server) updateDeployment(ctx context.Context, id string, started time.Time, change func(*deploymentProperty)) {
	ctx = context.WithoutCancel(ctx)
	err := retryConflicts(func() error {
		res, err := s.st.GetResource(ctx, id)
		if err != nil {
			return err
		}
		var d deployment
		if err := json.Unmarshal(res.Body, &d); err != nil {
			return fmt.Errorf("decode deployment %s: %w", id, err)
		}
		change(&d.Properties)
		now := s.now().UTC()
		d.Properties.Timestamp = now
		d.Properties.Duration = isoDuration(now.Sub(started))
		return s.putResource(ctx, id, DeploymentType, res.Scope, res.Version, &d)
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.ErrorContext(ctx, "record deployment state", "deployment", id, "err", err)
	}
}

// isoDuration formats d as ISO 8601, as ARM reports durations: "PT1.5S".
func isoDuration(d time.Duration) string {
	return "PT" + strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "S"
}

// deployResource PUTs one resource through the Server's own routes, as
// the deployment's caller, and waits for a terminal provisioning state.
// It returns the error to report, naming the resource as its target.
func (s *Server) deployResource(ctx context.Context, res template.Resource) *errorBody {
	fail := func(code, format string, args ...any) *errorBody {
		return &errorBody{Code: code, Target: res.ID, Message: fmt.Sprintf(format, args...)}
	}
	ctx, cancel := context.WithTimeout(ctx, resourceTimeout)
	defer cancel()
	body, err := json.Marshal(res.Body)
	if err != nil {
		return fail("InvalidTemplate", "The resource's body could not be encoded: %v.", err)
	}
	status, out, aerr := s.serveInternal(ctx, http.MethodPut, res.ID, res.APIVersion, body)
	if aerr != nil {
		return innerError(res.ID, aerr)
	}
	if status == http.StatusAccepted && len(out) == 0 {
		out = nil // the state comes from the GETs below
	}
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, 250*time.Millisecond) {
		if out != nil {
			state, perr := provisioning(out)
			switch state {
			case "", model.StateSucceeded:
				return nil
			case model.StateFailed, model.StateCanceled:
				if perr == nil {
					return fail("ResourceDeploymentFailure", "The resource operation completed with terminal provisioning state '%s'.", state)
				}
				return &errorBody{Code: perr.Code, Target: res.ID, Message: perr.Message}
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fail("ResourceDeploymentTimeout", "The resource did not reach a terminal provisioning state within %s.", resourceTimeout)
			}
			return fail("DeploymentCanceled", "The deployment was canceled while this resource was being deployed.")
		case <-time.After(delay):
		}
		_, got, aerr := s.serveInternal(ctx, http.MethodGet, res.ID, res.APIVersion, nil)
		if aerr != nil {
			if ctx.Err() != nil {
				continue // reported by the select above
			}
			return innerError(res.ID, aerr)
		}
		out = got
	}
}

// innerError is a resource's error as a deployment reports it: targeted
// at the resource, naming the member the resource's API objected to.
func innerError(id string, e *Error) *errorBody {
	b := e.body()
	if b.Target != "" {
		b.Message += " (target: " + b.Target + ")"
	}
	b.Target = id
	return b
}

// provisioning reads properties.provisioningState and the error a failed
// resource reports (properties.provisioningError, or error).
func provisioning(body []byte) (string, *errorBody) {
	var v struct {
		Properties struct {
			ProvisioningState string     `json:"provisioningState"`
			ProvisioningError *errorBody `json:"provisioningError"`
			Error             *errorBody `json:"error"`
		} `json:"properties"`
	}
	if json.Unmarshal(body, &v) != nil {
		return "", nil
	}
	e := v.Properties.ProvisioningError
	if e == nil {
		e = v.Properties.Error
	}
	if e != nil && e.Code == "" {
		e.Code = "ResourceDeploymentFailure"
	}
	return v.Properties.ProvisioningState, e
}

// serveInternal sends a request to this Server's routes in process, as the
// caller in ctx, and returns the status and body of a success or the
// error.
func (s *Server) serveInternal(ctx context.Context, method, id, apiVersion string, body []byte) (int, []byte, *Error) {
	u := &url.URL{Path: id, RawQuery: "api-version=" + url.QueryEscape(apiVersion)}
	r, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return 0, nil, &Error{Status: http.StatusBadRequest, Code: "InvalidResourceId", Message: fmt.Sprintf("The resource id '%s' is not valid: %v.", clipPath(id), err)}
	}
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	w := &recorder{header: http.Header{}}
	if err := s.route(w, r); err != nil {
		ae := asARM(err)
		if ae.Status >= 500 {
			s.log.ErrorContext(ctx, "deployment request failed", "method", method, "id", id, "err", err)
		}
		return ae.Status, nil, ae
	}
	if w.status >= 300 {
		var e struct {
			Error *Error `json:"error"`
		}
		ae := &Error{Status: w.status, Code: "ResourceDeploymentFailure", Message: fmt.Sprintf("The request %s %s answered %d.", method, clipPath(id), w.status)}
		if json.Unmarshal(w.body.Bytes(), &e) == nil && e.Error != nil && e.Error.Code != "" {
			ae.Code, ae.Message, ae.Target = e.Error.Code, e.Error.Message, e.Error.Target
		}
		return w.status, nil, ae
	}
	return w.status, w.body.Bytes(), nil
}

// recorder is the http.ResponseWriter of in-process requests.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *recorder) Header() http.Header { return w.header }

func (w *recorder) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(p)
}
