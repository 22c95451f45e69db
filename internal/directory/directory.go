// Package directory serves the principals of the tenant in the shape of
// Microsoft Graph (v1.0): service principals with client secrets, the
// managed identities that resources define, and /me.
//
// It is the subset the CLI and scripts need: az role assignment create
// resolves an --assignee by appId, the session pool commands ask for /me,
// and administrators create service principals for their applications
// and rotate their secrets.
package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tidepool-dev/tidepool/internal/arm"
	"github.com/tidepool-dev/tidepool/internal/auth"
	"github.com/tidepool-dev/tidepool/internal/rbac"
	"github.com/tidepool-dev/tidepool/internal/store"
)

// Authenticator verifies a request's bearer token.
type Authenticator interface {
	Authenticate(r *http.Request, audiences ...string) (*auth.Claims, error)
}

// Authorizer answers access checks and hears of changed assignments.
type Authorizer interface {
	Allowed(ctx context.Context, principalID, scope, action string, data bool) (bool, error)
	Invalidate()
}

// Write actions on the directory, checked at the root scope: Owner and
// User Access Administrator there hold them; Contributor does not.
const (
	actionWrite  = "Microsoft.Directory/servicePrincipals/write"
	actionDelete = "Microsoft.Directory/servicePrincipals/delete"
)

// Handler serves /v1.0/... .
type Handler struct {
	st      store.Store
	auth    Authenticator
	authz   Authorizer
	adminID string
	now     func() time.Time
}

// New returns a Handler. adminID is the bootstrap admin, which cannot be
// deleted.
func New(st store.Store, a Authenticator, z Authorizer, adminID string) *Handler {
	return &Handler{st: st, auth: a, authz: z, adminID: adminID, now: time.Now}
}

// servicePrincipal is Graph's servicePrincipal resource, the members
// tidepool fills.
type servicePrincipal struct {
	ODataType            string               `json:"@odata.type"`
	ID                   string               `json:"id"`
	AppID                string               `json:"appId"`
	DisplayName          string               `json:"displayName"`
	ServicePrincipalType string               `json:"servicePrincipalType"`
	AlternativeNames     []string             `json:"alternativeNames"`
	PasswordCredentials  []passwordCredential `json:"passwordCredentials"`
	CreatedDateTime      *time.Time           `json:"createdDateTime,omitempty"`
}

// passwordCredential describes a client secret; SecretText is set only in
// addPassword's answer, the one time the secret is shown.
type passwordCredential struct {
	KeyID         string     `json:"keyId"`
	DisplayName   string     `json:"displayName,omitempty"`
	Hint          string     `json:"hint"`
	EndDateTime   *time.Time `json:"endDateTime"`
	SecretText    string     `json:"secretText,omitempty"`
	StartDateTime *time.Time `json:"startDateTime,omitempty"`
}

func render(p *store.Principal, resourceID string) servicePrincipal {
	sp := servicePrincipal{ODataType: "#microsoft.graph.servicePrincipal", ID: p.ObjectID, AppID: p.ClientID,
		DisplayName: p.DisplayName, ServicePrincipalType: "Application", AlternativeNames: []string{}, PasswordCredentials: []passwordCredential{}}
	if p.Kind == arm.KindManagedIdentity {
		sp.ServicePrincipalType = "ManagedIdentity"
		sp.AlternativeNames = []string{"isExplicit=" + fmt.Sprint(strings.Contains(strings.ToLower(resourceID), "userassignedidentities")), resourceID}
	}
	if !p.Created.IsZero() {
		c := p.Created
		sp.CreatedDateTime = &c
	}
	for _, s := range p.Secrets {
		pc := passwordCredential{KeyID: s.ID, Hint: s.Hint}
		if !s.Expires.IsZero() {
			e := s.Expires
			pc.EndDateTime = &e
		}
		sp.PasswordCredentials = append(sp.PasswordCredentials, pc)
	}
	return sp
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	arm.SetRequestHeaders(w, r)
	claims, err := h.auth.Authenticate(r, auth.AudienceGraph, auth.AudienceManagement)
	if err != nil {
		arm.WriteError(w, arm.AuthError(err))
		return
	}
	if err := h.route(w, r, claims); err != nil {
		var ae *arm.Error
		if !errors.As(err, &ae) {
			ae = &arm.Error{Status: http.StatusInternalServerError, Code: "InternalServerError", Message: "The directory could not answer; see the server log.", Err: err}
		}
		arm.WriteError(w, ae)
	}
}

func errorf(status int, code, format string, args ...any) *arm.Error {
	return &arm.Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func (h *Handler) route(w http.ResponseWriter, r *http.Request, c *auth.Claims) error {
	var segs []string
	for s := range strings.SplitSeq(r.URL.Path, "/") {
		if s != "" {
			segs = append(segs, s)
		}
	}
	is := func(n int, method string) bool { return len(segs) == n && r.Method == method }
	switch {
	case len(segs) < 2 || segs[0] != "v1.0":
	case is(2, http.MethodGet) && strings.EqualFold(segs[1], "me"):
		return h.get(w, r, c.ObjectID)
	case strings.EqualFold(segs[1], "users"):
		return h.routeUsers(w, r, c, segs[2:])
	case !strings.EqualFold(segs[1], "servicePrincipals"):
	case is(2, http.MethodGet):
		return h.list(w, r)
	case is(2, http.MethodPost):
		return h.create(w, r, c)
	case is(3, http.MethodGet):
		return h.get(w, r, segs[2])
	case is(3, http.MethodDelete):
		return h.delete(w, r, c, segs[2])
	case is(4, http.MethodPost) && strings.EqualFold(segs[3], "addPassword"):
		return h.addPassword(w, r, c, segs[2])
	case is(4, http.MethodPost) && strings.EqualFold(segs[3], "removePassword"):
		return h.removePassword(w, r, c, segs[2])
	}
	return errorf(http.StatusNotFound, "Request_ResourceNotFound", "The directory serves /v1.0/me, /v1.0/users and /v1.0/servicePrincipals only; see docs/security.md.")
}

func (h *Handler) require(ctx context.Context, c *auth.Claims, action string) error {
	ok, err := h.authz.Allowed(ctx, c.ObjectID, "/", action, false)
	if err != nil {
		return err
	}
	if !ok {
		return arm.Forbidden(c, action, "/")
	}
	return nil
}

// find returns the principal with object or client id id, and the
// resource of a managed identity.
func (h *Handler) find(ctx context.Context, id string) (*store.Principal, string, error) {
	p, err := arm.FindPrincipal(ctx, h.st, id)
	if err != nil || p == nil {
		return nil, "", err
	}
	return &p.Principal, p.ResourceID, nil
}

func notFound(id string) error {
	return errorf(http.StatusNotFound, "Request_ResourceNotFound", "Resource '%s' does not exist or one of its queried reference-property objects are not present.", clip(id))
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request, id string) error {
	p, res, err := h.find(r.Context(), id)
	if err != nil {
		return err
	}
	if p == nil {
		return notFound(id)
	}
	if p.Kind == auth.KindUser {
		writeJSON(w, http.StatusOK, renderUser(p))
		return nil
	}
	writeJSON(w, http.StatusOK, render(p, res))
	return nil
}

var (
	appIDFilter = regexp.MustCompile(`(?i)^\s*appId\s+eq\s+'([^']*)'\s*$`)
	nameFilter  = regexp.MustCompile(`(?i)^\s*displayName\s+eq\s+'([^']*)'\s*$`)
)

// list answers GET /v1.0/servicePrincipals, with $filter appId eq '…' or
// displayName eq '…'.
func (h *Handler) list(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	keep := func(servicePrincipal) bool { return true }
	if f := r.URL.Query().Get("$filter"); f != "" {
		switch {
		case appIDFilter.MatchString(f):
			v := appIDFilter.FindStringSubmatch(f)[1]
			keep = func(sp servicePrincipal) bool { return strings.EqualFold(sp.AppID, v) }
		case nameFilter.MatchString(f):
			v := nameFilter.FindStringSubmatch(f)[1]
			keep = func(sp servicePrincipal) bool { return sp.DisplayName == v }
		default:
			return errorf(http.StatusBadRequest, "Request_UnsupportedQuery", "The $filter '%s' is not supported: use appId eq '{id}' or displayName eq '{name}'.", clip(f))
		}
	}
	all, err := h.st.ListPrincipals(ctx)
	if err != nil {
		return err
	}
	out := []servicePrincipal{}
	for i := range all {
		if all[i].Kind == auth.KindUser {
			continue
		}
		if sp := render(&all[i], ""); keep(sp) {
			out = append(out, sp)
		}
	}
	ids, err := arm.ManagedIdentities(ctx, h.st)
	if err != nil {
		return err
	}
	for _, mi := range ids {
		if sp := render(&mi.Principal, mi.ResourceID); keep(sp) {
			out = append(out, sp)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#servicePrincipals", "value": out})
	return nil
}

const maxBody = 64 << 10

func decode(r *http.Request, v any) error {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(data) > maxBody {
		return errorf(http.StatusBadRequest, "Request_BadRequest", "The request body could not be read or is larger than %d bytes.", maxBody)
	}
	if len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, v); err != nil {
		return errorf(http.StatusBadRequest, "Request_BadRequest", "The request body is not valid JSON: %v.", err)
	}
	return nil
}

// create answers POST /v1.0/servicePrincipals {"displayName"}: a new
// service principal without secrets (addPassword gives it one).
func (h *Handler) create(w http.ResponseWriter, r *http.Request, c *auth.Claims) error {
	if err := h.require(r.Context(), c, actionWrite); err != nil {
		return err
	}
	var in struct {
		DisplayName string `json:"displayName"`
	}
	if err := decode(r, &in); err != nil {
		return err
	}
	if strings.TrimSpace(in.DisplayName) == "" || len(in.DisplayName) > 256 {
		return errorf(http.StatusBadRequest, "Request_BadRequest", "displayName is required (1 to 256 characters).")
	}
	p := &store.Principal{ObjectID: uuid.NewString(), ClientID: uuid.NewString(), DisplayName: in.DisplayName, Kind: "ServicePrincipal", Created: h.now().UTC()}
	if err := h.st.PutPrincipal(r.Context(), p); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, render(p, ""))
	return nil
}

// delete removes a service principal and its role assignments.
func (h *Handler) delete(w http.ResponseWriter, r *http.Request, c *auth.Claims, id string) error {
	ctx := r.Context()
	if p, err := h.st.GetPrincipal(ctx, id); err == nil && p.Kind == auth.KindUser {
		return notFound(id) // a user, under /v1.0/users
	}
	if err := h.require(ctx, c, actionDelete); err != nil {
		return err
	}
	p, res, err := h.find(ctx, id)
	if err != nil {
		return err
	}
	switch {
	case p == nil:
		return notFound(id)
	case res != "":
		return errorf(http.StatusBadRequest, "Request_BadRequest", "'%s' is a managed identity: delete its resource '%s' instead.", p.ObjectID, res)
	case strings.EqualFold(p.ObjectID, h.adminID):
		return errorf(http.StatusBadRequest, "Request_BadRequest", "The bootstrap administrator cannot be deleted.")
	}
	return h.deletePrincipal(w, ctx, p)
}

// deletePrincipal deletes a stored principal and its role assignments.
func (h *Handler) deletePrincipal(w http.ResponseWriter, ctx context.Context, p *store.Principal) error {
	if err := h.st.DeletePrincipal(ctx, p.ObjectID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	all, err := rbac.ListAssignments(ctx, h.st)
	if err != nil {
		return err
	}
	for _, a := range all {
		if strings.EqualFold(a.PrincipalID, p.ObjectID) {
			if err := h.st.DeleteResource(ctx, a.ID, 0); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
	}
	h.authz.Invalidate()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// servicePrincipalFor returns the stored (not managed) principal id.
func (h *Handler) servicePrincipalFor(ctx context.Context, id string) (*store.Principal, error) {
	p, err := h.st.GetPrincipal(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound(id)
	}
	return p, err
}

// addPassword answers POST .../addPassword: a new client secret, shown
// this once and stored hashed.
func (h *Handler) addPassword(w http.ResponseWriter, r *http.Request, c *auth.Claims, id string) error {
	ctx := r.Context()
	if err := h.require(ctx, c, actionWrite); err != nil {
		return err
	}
	var in struct {
		PasswordCredential struct {
			DisplayName string     `json:"displayName"`
			EndDateTime *time.Time `json:"endDateTime"`
		} `json:"passwordCredential"`
	}
	if err := decode(r, &in); err != nil {
		return err
	}
	p, err := h.servicePrincipalFor(ctx, id)
	if err != nil {
		return err
	}
	now := h.now().UTC()
	end := now.AddDate(2, 0, 0) // Graph's default lifetime
	if e := in.PasswordCredential.EndDateTime; e != nil {
		if !e.After(now) {
			return errorf(http.StatusBadRequest, "Request_BadRequest", "endDateTime must be in the future.")
		}
		end = e.UTC()
	}
	secret := auth.NewSecret()
	s := store.Secret{ID: uuid.NewString(), Hash: auth.HashSecret(secret), Hint: secret[:3], Expires: end}
	p.Secrets = append(p.Secrets, s)
	if err := h.st.PutPrincipal(ctx, p); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, passwordCredential{KeyID: s.ID, DisplayName: in.PasswordCredential.DisplayName, Hint: s.Hint,
		EndDateTime: &end, StartDateTime: &now, SecretText: secret})
	return nil
}

// removePassword answers POST .../removePassword {"keyId"}.
func (h *Handler) removePassword(w http.ResponseWriter, r *http.Request, c *auth.Claims, id string) error {
	ctx := r.Context()
	if err := h.require(ctx, c, actionWrite); err != nil {
		return err
	}
	var in struct {
		KeyID string `json:"keyId"`
	}
	if err := decode(r, &in); err != nil {
		return err
	}
	p, err := h.servicePrincipalFor(ctx, id)
	if err != nil {
		return err
	}
	kept := p.Secrets[:0]
	for _, s := range p.Secrets {
		if !strings.EqualFold(s.ID, in.KeyID) {
			kept = append(kept, s)
		}
	}
	if len(kept) == len(p.Secrets) {
		return errorf(http.StatusNotFound, "Request_ResourceNotFound", "No password credential with keyId '%s'.", clip(in.KeyID))
	}
	p.Secrets = kept
	if err := h.st.PutPrincipal(ctx, p); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, _ := json.Marshal(v) // strings, times and slices only
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(data)
}

// user is Graph's user resource, the members tidepool fills.
type user struct {
	ODataType         string     `json:"@odata.type"`
	ID                string     `json:"id"`
	DisplayName       string     `json:"displayName"`
	UserPrincipalName string     `json:"userPrincipalName"`
	AccountEnabled    bool       `json:"accountEnabled"`
	CreatedDateTime   *time.Time `json:"createdDateTime,omitempty"`
}

func renderUser(p *store.Principal) user {
	u := user{ODataType: "#microsoft.graph.user", ID: p.ObjectID, DisplayName: p.DisplayName, UserPrincipalName: p.ClientID, AccountEnabled: true}
	if !p.Created.IsZero() {
		c := p.Created
		u.CreatedDateTime = &c
	}
	return u
}

const (
	actionUserWrite  = "Microsoft.Directory/users/write"
	actionUserDelete = "Microsoft.Directory/users/delete"
)

var upnRule = regexp.MustCompile(`^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,190}$`)

// routeUsers serves /v1.0/users[/{id}]. Users sign in with their
// userPrincipalName and password (the password grant); the password is
// stored as a slow hash.
func (h *Handler) routeUsers(w http.ResponseWriter, r *http.Request, c *auth.Claims, rest []string) error {
	ctx := r.Context()
	switch {
	case len(rest) == 0 && r.Method == http.MethodGet:
		all, err := h.st.ListPrincipals(ctx)
		if err != nil {
			return err
		}
		name := ""
		if f := r.URL.Query().Get("$filter"); f != "" {
			m := upnFilter.FindStringSubmatch(f)
			if m == nil {
				return errorf(http.StatusBadRequest, "Request_UnsupportedQuery", "The $filter '%s' is not supported: use userPrincipalName eq '{name}'.", clip(f))
			}
			name = m[1]
		}
		out := []user{}
		for i := range all {
			if all[i].Kind == auth.KindUser && (name == "" || strings.EqualFold(all[i].ClientID, name)) {
				out = append(out, renderUser(&all[i]))
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users", "value": out})
		return nil
	case len(rest) == 0 && r.Method == http.MethodPost:
		if err := h.require(ctx, c, actionUserWrite); err != nil {
			return err
		}
		var in struct {
			DisplayName       string `json:"displayName"`
			UserPrincipalName string `json:"userPrincipalName"`
			PasswordProfile   struct {
				Password string `json:"password"`
			} `json:"passwordProfile"`
		}
		if err := decode(r, &in); err != nil {
			return err
		}
		switch {
		case !upnRule.MatchString(in.UserPrincipalName):
			return errorf(http.StatusBadRequest, "Request_BadRequest", "userPrincipalName must look like name@domain.")
		case len(in.PasswordProfile.Password) < 12 || len(in.PasswordProfile.Password) > 256:
			return errorf(http.StatusBadRequest, "Request_BadRequest", "passwordProfile.password must have 12 to 256 characters.")
		}
		if in.DisplayName == "" {
			in.DisplayName = in.UserPrincipalName
		}
		p := &store.Principal{ObjectID: uuid.NewString(), ClientID: strings.ToLower(in.UserPrincipalName), DisplayName: in.DisplayName,
			Kind: auth.KindUser, Created: h.now().UTC(),
			Secrets: []store.Secret{{ID: uuid.NewString(), Hash: auth.HashPassword(in.PasswordProfile.Password)}}}
		if err := h.st.PutPrincipal(ctx, p); errors.Is(err, store.ErrExists) {
			return errorf(http.StatusBadRequest, "Request_BadRequest", "Another object with the same value for property userPrincipalName already exists.")
		} else if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, renderUser(p))
		return nil
	case len(rest) == 1 && (r.Method == http.MethodGet || r.Method == http.MethodDelete):
		if r.Method == http.MethodDelete {
			if err := h.require(ctx, c, actionUserDelete); err != nil {
				return err
			}
		}
		p, err := h.st.GetPrincipal(ctx, rest[0])
		if errors.Is(err, store.ErrNotFound) {
			p, err = h.st.GetPrincipalByClientID(ctx, strings.ToLower(rest[0]))
		}
		if errors.Is(err, store.ErrNotFound) || (err == nil && p.Kind != auth.KindUser) {
			return notFound(rest[0])
		}
		if err != nil {
			return err
		}
		if r.Method == http.MethodGet {
			writeJSON(w, http.StatusOK, renderUser(p))
			return nil
		}
		return h.deletePrincipal(w, ctx, p)
	}
	return errorf(http.StatusNotFound, "Request_ResourceNotFound", "No such route under /v1.0/users.")
}

var upnFilter = regexp.MustCompile(`(?i)^\s*userPrincipalName\s+eq\s+'([^']*)'\s*$`)
