package dataplane

import (
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/tidepool-dev/tidepool/internal/arm"
	"github.com/tidepool-dev/tidepool/internal/model"
	"github.com/tidepool-dev/tidepool/internal/pool"
)

// v2Session is the swagger's Session (GET session, listSessions).
type v2Session struct {
	Identifier     string `json:"identifier"`
	ExpireAt       string `json:"expireAt,omitempty"`
	CreatedAt      string `json:"createdAt,omitempty"`
	LastAccessedAt string `json:"lastAccessedAt,omitempty"`
	Etag           string `json:"etag"`
}

// sessionView is the .management routes' SessionView; it carries both
// expiresAt (the docs) and expireAt (the swagger).
type sessionView struct {
	Identifier     string `json:"identifier"`
	Etag           string `json:"etag"`
	ExpiresAt      string `json:"expiresAt"`
	ExpireAt       string `json:"expireAt"`
	CreatedAt      string `json:"createdAt,omitempty"`
	LastAccessedAt string `json:"lastAccessedAt,omitempty"`
}

func toV2Session(s *pool.Session) v2Session {
	return v2Session{Identifier: s.Identifier, ExpireAt: armTime(s.Expires), CreatedAt: armTime(s.Created),
		LastAccessedAt: armTime(s.LastActivity), Etag: s.SandboxID}
}

func toView(s *pool.Session) sessionView {
	return sessionView{Identifier: s.Identifier, Etag: s.SandboxID, ExpiresAt: armTime(s.Expires), ExpireAt: armTime(s.Expires),
		CreatedAt: armTime(s.Created), LastAccessedAt: armTime(s.LastActivity)}
}

// lookup finds the identifier's session without creating one.
func (h *Handler) lookup(req *request) (*pool.Session, error) {
	id, err := req.identifier()
	if err != nil {
		return nil, err
	}
	return h.sessions.Lookup(req.r.Context(), req.poolID, id)
}

// getSession answers GET session.
func (h *Handler) getSession(w http.ResponseWriter, req *request) error {
	s, err := h.lookup(req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toV2Session(s))
	return nil
}

// deleteSession answers DELETE session: 204, also when there was no such
// session (DELETE is idempotent; LangChain deletes on close).
func (h *Handler) deleteSession(w http.ResponseWriter, req *request) error {
	id, err := req.identifier()
	if err != nil {
		return err
	}
	if err := h.sessions.Stop(req.r.Context(), req.poolID, id); err != nil && !errors.Is(err, pool.ErrSessionNotFound) {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// page returns the pool's sessions from skip, ordered by creation, and the
// skip of the next page (0: none).
func (h *Handler) page(req *request) ([]pool.Session, int, error) {
	skip := 0
	if v := queryGet(req.query, "skip"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, 0, badRequest("InvalidSkip", "The 'skip' query parameter must be a non-negative integer.")
		}
		skip = n
	}
	all, err := h.sessions.Sessions(req.r.Context(), req.poolID)
	if err != nil {
		return nil, 0, err
	}
	sort.SliceStable(all, func(i, j int) bool {
		if !all[i].Created.Equal(all[j].Created) {
			return all[i].Created.Before(all[j].Created)
		}
		return all[i].Identifier < all[j].Identifier
	})
	if skip >= len(all) {
		return nil, 0, nil
	}
	all = all[skip:]
	next := 0
	if len(all) > listPageSize {
		all, next = all[:listPageSize], skip+listPageSize
	}
	return all, next, nil
}

// nextLink is the URL of the page at skip.
func (h *Handler) nextLink(req *request, route string, skip int) *string {
	if skip == 0 {
		return nil
	}
	q := url.Values{}
	if req.version != "" {
		q.Set("api-version", req.version)
	}
	q.Set("skip", strconv.Itoa(skip))
	s := h.publicURL + req.base + "/" + route + "?" + q.Encode()
	return &s
}

// listSessions answers GET listSessions: {"sessions":[...],"nextLink"}.
func (h *Handler) listSessions(w http.ResponseWriter, req *request) error {
	list, next, err := h.page(req)
	if err != nil {
		return err
	}
	out := struct {
		Sessions []v2Session `json:"sessions"`
		NextLink *string     `json:"nextLink,omitempty"`
	}{Sessions: make([]v2Session, 0, len(list)), NextLink: h.nextLink(req, "listSessions", next)}
	for i := range list {
		out.Sessions = append(out.Sessions, toV2Session(&list[i]))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// metadata answers GET metadata: the pool's runtime.
func (h *Handler) metadata(w http.ResponseWriter, req *request) error {
	type nameVersion struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	}
	type kernel struct {
		Name        string `json:"name"`
		Version     string `json:"version"`
		ProjectURL  string `json:"projectUrl,omitempty"`
		Description string `json:"description"`
	}
	out := struct {
		Runtimes             []nameVersion `json:"runtimes"`
		PreInstalledPackages []nameVersion `json:"preInstalledPackages"`
		CreatedAt            string        `json:"createdAt,omitempty"`
		LastUpdatedAt        string        `json:"lastUpdatedAt,omitempty"`
		JupyterKernel        *kernel       `json:"jupyterKernel,omitempty"`
	}{Runtimes: []nameVersion{}, PreInstalledPackages: []nameVersion{}}
	switch ct := req.containerType(); {
	case strings.EqualFold(ct, model.ContainerTypeNodeLTS):
		out.Runtimes = append(out.Runtimes, nameVersion{Name: "node", Version: "lts"})
		out.JupyterKernel = &kernel{Name: "tidepool-node", Version: "1", Description: "Persistent Node.js kernel of tidepool's session agent"}
	case strings.EqualFold(ct, model.ContainerTypeShell):
		out.Runtimes = append(out.Runtimes, nameVersion{Name: "bash", Version: ""})
	default:
		out.Runtimes = append(out.Runtimes, nameVersion{Name: "python", Version: "3"})
		out.JupyterKernel = &kernel{Name: "tidepool-python", Version: "1", Description: "Persistent Python kernel of tidepool's session agent"}
	}
	if sd := req.pool.SystemData; sd != nil {
		if sd.CreatedAt != nil {
			out.CreatedAt = armTime(*sd.CreatedAt)
		}
		if sd.LastModifiedAt != nil {
			out.LastUpdatedAt = armTime(*sd.LastModifiedAt)
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// errUnknownSession is the .management routes' answer for an identifier
// with no session (observed on Azure custom-container pools).
var errUnknownSession = &arm.Error{Status: http.StatusBadRequest, Code: "SessionWithIdentifierNotFound",
	Message: "No session with this identifier exists in the session pool."}

// mgmtGetSession answers POST .management/getSession.
func (h *Handler) mgmtGetSession(w http.ResponseWriter, req *request) error {
	s, err := h.lookup(req)
	if errors.Is(err, pool.ErrSessionNotFound) {
		return errUnknownSession
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toView(s))
	return nil
}

// mgmtListSessions answers POST .management/listSessions:
// {"value":[...],"count","nextLink"}.
func (h *Handler) mgmtListSessions(w http.ResponseWriter, req *request) error {
	list, next, err := h.page(req)
	if err != nil {
		return err
	}
	out := struct {
		Value    []sessionView `json:"value"`
		Count    int           `json:"count"`
		NextLink *string       `json:"nextLink"`
	}{Value: make([]sessionView, 0, len(list)), NextLink: h.nextLink(req, ".management/listSessions", next)}
	for i := range list {
		out.Value = append(out.Value, toView(&list[i]))
	}
	out.Count = len(out.Value)
	writeJSON(w, http.StatusOK, out)
	return nil
}

// mgmtStopSession answers POST .management/stopSession with Azure's
// text/plain sentence.
func (h *Handler) mgmtStopSession(w http.ResponseWriter, req *request) error {
	id, err := req.identifier()
	if err != nil {
		return err
	}
	err = h.sessions.Stop(req.r.Context(), req.poolID, id)
	if errors.Is(err, pool.ErrSessionNotFound) {
		return errUnknownSession
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	w.Write([]byte("Session " + id + " in session pool " + req.poolName + " stopped."))
	return nil
}
