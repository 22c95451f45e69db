package arm

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/tidepool-dev/tidepool/internal/model"
	"github.com/tidepool-dev/tidepool/internal/store"
)

var groupNameRule = regexp.MustCompile(`^[-\w._()]+$`)

// GroupID returns the canonical id of a resource group.
func GroupID(sub, group string) string {
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s", sub, group)
}

func validateGroupName(name string) error {
	if len(name) > 90 || !groupNameRule.MatchString(name) || strings.HasSuffix(name, ".") {
		return &Error{Status: http.StatusBadRequest, Code: "InvalidResourceGroup", Target: "resourceGroupName",
			Message: fmt.Sprintf("The provided resource group name '%s' has these invalid characters or length: use 1 to 90 letters, digits, '-', '_', '.', '(' and ')', not ending in '.'.", clip(name))}
	}
	return nil
}

func (s *Server) groupRequest(r *http.Request) (*model.ResourceID, error) {
	if _, err := apiVersion(r, nil); err != nil {
		return nil, err
	}
	id, err := model.ParseResourceID(r.URL.Path)
	if err != nil {
		return nil, unknownRoute(r)
	}
	if err := s.requireSubscription(r.Context(), id.Subscription); err != nil {
		return nil, err
	}
	return id, nil
}

// loadGroup returns the stored group, or nil when there is none.
func (s *Server) loadGroup(r *http.Request, id *model.ResourceID) (*model.ResourceGroup, int64, error) {
	res, err := s.st.GetResource(r.Context(), GroupID(id.Subscription, id.ResourceGroup))
	if errors.Is(err, store.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("get resource group %s: %w", id.ResourceGroup, err)
	}
	var g model.ResourceGroup
	if err := json.Unmarshal(res.Body, &g); err != nil {
		return nil, 0, fmt.Errorf("decode resource group %s: %w", id.ResourceGroup, err)
	}
	return &g, res.Version, nil
}

func (s *Server) getResourceGroup(w http.ResponseWriter, r *http.Request) error {
	id, err := s.groupRequest(r)
	if err != nil {
		return err
	}
	g, _, err := s.loadGroup(r, id)
	if err != nil {
		return err
	}
	if g == nil {
		return groupNotFound(id.ResourceGroup)
	}
	writeJSON(w, http.StatusOK, g)
	return nil
}

// headResourceGroup answers az group exists: 204 or 404, no body.
func (s *Server) headResourceGroup(w http.ResponseWriter, r *http.Request) error {
	id, err := s.groupRequest(r)
	if err != nil {
		return err
	}
	g, _, err := s.loadGroup(r, id)
	if err != nil {
		return err
	}
	if g == nil {
		w.WriteHeader(http.StatusNotFound)
		return nil
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) putResourceGroup(w http.ResponseWriter, r *http.Request) error {
	id, err := s.groupRequest(r)
	if err != nil {
		return err
	}
	if err := validateGroupName(id.ResourceGroup); err != nil {
		return err
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	g, err := model.DecodeResourceGroup(body)
	if err != nil {
		return err
	}
	if err := checkTracked(g.Location, g.Tags); err != nil {
		return err
	}
	old, version, err := s.loadGroup(r, id)
	if err != nil {
		return err
	}
	if old != nil {
		if old.Properties != nil && old.Properties.ProvisioningState == model.StateDeleting {
			return errorf(http.StatusConflict, "ResourceGroupBeingDeleted", "The resource group '%s' is in deprovisioning state and cannot perform this operation.", old.Name)
		}
		if !model.SameLocation(old.Location, g.Location) {
			return &Error{Status: http.StatusConflict, Code: "InvalidResourceGroupLocation", Target: "location",
				Message: fmt.Sprintf("Invalid resource group location '%s'. The Resource group already exists in location '%s'.", clip(g.Location), old.Location)}
		}
	}
	gid := GroupID(id.Subscription, id.ResourceGroup)
	g.ID, g.Name, g.Type = gid, id.ResourceGroup, model.ResourceGroupType
	g.Properties = &model.ResourceGroupProperties{ProvisioningState: model.StateSucceeded}
	if err := s.putResource(r.Context(), gid, model.ResourceGroupType, id.SubscriptionID(), version, g); err != nil {
		return err
	}
	status := http.StatusCreated
	if old != nil {
		status = http.StatusOK
	}
	writeJSON(w, status, g)
	return nil
}

// patchResourceGroup updates tags and managedBy.
func (s *Server) patchResourceGroup(w http.ResponseWriter, r *http.Request) error {
	id, err := s.groupRequest(r)
	if err != nil {
		return err
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	patch, err := model.DecodeResourceGroup(body)
	if err != nil {
		return err
	}
	g, version, err := s.loadGroup(r, id)
	if err != nil {
		return err
	}
	if g == nil {
		return groupNotFound(id.ResourceGroup)
	}
	if patch.Location != "" && !model.SameLocation(patch.Location, g.Location) {
		return &Error{Status: http.StatusBadRequest, Code: "InvalidResourceGroupLocation", Target: "location",
			Message: fmt.Sprintf("The location of resource group '%s' is '%s' and cannot be changed.", g.Name, g.Location)}
	}
	if patch.Tags != nil {
		if err := model.ValidateTags(patch.Tags); err != nil {
			return err
		}
		g.Tags = patch.Tags
	}
	if patch.ManagedBy != "" {
		g.ManagedBy = patch.ManagedBy
	}
	if err := s.putResource(r.Context(), g.ID, model.ResourceGroupType, id.SubscriptionID(), version, g); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, g)
	return nil
}

// deleteResourceGroup marks the group Deleting and lets the reconciler
// delete everything in it, then the group.
func (s *Server) deleteResourceGroup(w http.ResponseWriter, r *http.Request) error {
	id, err := s.groupRequest(r)
	if err != nil {
		return err
	}
	g, version, err := s.loadGroup(r, id)
	if err != nil {
		return err
	}
	if g == nil {
		return groupNotFound(id.ResourceGroup)
	}
	if g.Properties == nil {
		g.Properties = &model.ResourceGroupProperties{}
	}
	if g.Properties.ProvisioningState != model.StateDeleting {
		g.Properties.ProvisioningState = model.StateDeleting
		if err := s.putResource(r.Context(), g.ID, model.ResourceGroupType, id.SubscriptionID(), version, g); err != nil {
			return err
		}
	}
	op, err := s.startOperation(r.Context(), "delete", g.ID)
	if err != nil {
		return err
	}
	s.rec.Enqueue(g.ID)
	v := r.URL.Query().Get("api-version")
	w.Header().Set("Location", s.operationURL(id.Subscription, "Microsoft.Resources", g.Location, "operationResults", op.ID, v))
	w.Header().Set("Retry-After", "1")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func (s *Server) listResourceGroups(w http.ResponseWriter, r *http.Request) error {
	if _, err := apiVersion(r, nil); err != nil {
		return err
	}
	sub := splitPath(r.URL.Path)[1]
	if err := s.requireSubscription(r.Context(), sub); err != nil {
		return err
	}
	return s.listPage(w, r, store.ListOptions{Type: model.ResourceGroupType, Scope: "/subscriptions/" + sub}, func(res store.Resource) (any, error) {
		return json.RawMessage(res.Body), nil
	})
}
