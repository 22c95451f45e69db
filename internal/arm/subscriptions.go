package arm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/tidepool-dev/tidepool/internal/model"
	"github.com/tidepool-dev/tidepool/internal/store"
)

// Subscription is a Microsoft.Resources/subscriptions entry.
type Subscription struct {
	ID                   string            `json:"id"`
	SubscriptionID       string            `json:"subscriptionId"`
	TenantID             string            `json:"tenantId"`
	DisplayName          string            `json:"displayName"`
	State                string            `json:"state"`
	AuthorizationSource  string            `json:"authorizationSource"`
	SubscriptionPolicies map[string]string `json:"subscriptionPolicies"`
}

// EnsureSubscription creates the subscription if it does not exist.
func EnsureSubscription(ctx context.Context, st store.Store, subID, tenantID, displayName string) error {
	id := "/subscriptions/" + subID
	if _, err := st.GetResource(ctx, id); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("get subscription %s: %w", subID, err)
	}
	body, err := json.Marshal(Subscription{
		ID: id, SubscriptionID: subID, TenantID: tenantID, DisplayName: displayName,
		State: "Enabled", AuthorizationSource: "RoleBased",
		SubscriptionPolicies: map[string]string{"locationPlacementId": "Public_2014-09-01", "quotaId": "Tidepool", "spendingLimit": "Off"},
	})
	if err != nil {
		return fmt.Errorf("encode subscription: %w", err)
	}
	err = st.PutResource(ctx, &store.Resource{ID: id, Type: SubscriptionType, Body: body})
	if err != nil && !errors.Is(err, store.ErrExists) {
		return fmt.Errorf("create subscription %s: %w", subID, err)
	}
	return nil
}

func (s *Server) listSubscriptions(w http.ResponseWriter, r *http.Request) error {
	if _, err := apiVersion(r, nil); err != nil {
		return err
	}
	return s.listPage(w, r, store.ListOptions{Type: SubscriptionType}, func(res store.Resource) (any, error) {
		if ok, err := s.related(r.Context(), res.ID); err != nil || !ok {
			return nil, err
		}
		return json.RawMessage(res.Body), nil
	})
}

func (s *Server) getSubscription(w http.ResponseWriter, r *http.Request) error {
	if _, err := apiVersion(r, nil); err != nil {
		return err
	}
	sub := splitPath(r.URL.Path)[1]
	if err := s.requireRelated(r.Context(), sub); err != nil {
		return err
	}
	res, err := s.st.GetResource(r.Context(), "/subscriptions/"+sub)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, "SubscriptionNotFound", "The subscription '%s' could not be found.", clip(sub))
	}
	if err != nil {
		return fmt.Errorf("get subscription %s: %w", sub, err)
	}
	writeJSON(w, http.StatusOK, json.RawMessage(res.Body))
	return nil
}

// Locations are the regions pools may name: Azure's session pool regions.
// Tidepool runs everything locally whatever the location says; the list is
// what the CLI's location check reads from the provider metadata.
var Locations = []string{
	"Australia East", "Australia Southeast", "Brazil South", "Canada Central", "Canada East",
	"Central India", "Central US", "East Asia", "East US", "East US 2", "France Central",
	"France South", "Germany West Central", "Italy North", "Japan East", "Japan West",
	"Korea Central", "North Central US", "North Europe", "Norway East", "Poland Central",
	"South Africa North", "South India", "Southeast Asia", "Spain Central", "Sweden Central",
	"Switzerland North", "Switzerland West", "UAE North", "UK South", "UK West",
	"West Central US", "West Europe", "West US", "West US 2", "West US 3",
}

type resourceTypeInfo struct {
	ResourceType string   `json:"resourceType"`
	Locations    []string `json:"locations"`
	APIVersions  []string `json:"apiVersions"`
}

type provider struct {
	ID                 string             `json:"id"`
	Namespace          string             `json:"namespace"`
	RegistrationState  string             `json:"registrationState"`
	RegistrationPolicy string             `json:"registrationPolicy"`
	ResourceTypes      []resourceTypeInfo `json:"resourceTypes"`
}

// providers returns the metadata of the providers this server serves.
func providers(sub string) []provider {
	pools := make([]string, len(model.SessionPoolVersions))
	for i, v := range model.SessionPoolVersions {
		pools[len(pools)-1-i] = string(v) // newest first, as ARM lists them
	}
	appVersions := []string{"2026-01-01", "2025-07-01", "2025-01-01", "2024-03-01", "2023-05-01"}
	return []provider{
		{
			ID: "/subscriptions/" + sub + "/providers/Microsoft.App", Namespace: "Microsoft.App",
			RegistrationState: "Registered", RegistrationPolicy: "RegistrationRequired",
			ResourceTypes: []resourceTypeInfo{
				{ResourceType: "sessionPools", Locations: Locations, APIVersions: pools},
				{ResourceType: "managedEnvironments", Locations: Locations, APIVersions: appVersions},
				{ResourceType: "locations/operationStatuses", Locations: Locations, APIVersions: pools},
				{ResourceType: "locations/operationResults", Locations: Locations, APIVersions: pools},
				{ResourceType: "operations", Locations: []string{}, APIVersions: pools},
			},
		},
		{
			ID: "/subscriptions/" + sub + "/providers/Microsoft.Resources", Namespace: "Microsoft.Resources",
			RegistrationState: "Registered", RegistrationPolicy: "RegistrationFree",
			ResourceTypes: []resourceTypeInfo{
				{ResourceType: "resourceGroups", Locations: Locations, APIVersions: []string{"2025-04-01", "2024-03-01", "2022-09-01", "2021-04-01"}},
				{ResourceType: "subscriptions", Locations: []string{}, APIVersions: []string{"2022-12-01", "2021-01-01", "2020-01-01"}},
			},
		},
		{
			ID: "/subscriptions/" + sub + "/providers/Microsoft.ManagedIdentity", Namespace: "Microsoft.ManagedIdentity",
			RegistrationState: "Registered", RegistrationPolicy: "RegistrationRequired",
			ResourceTypes: []resourceTypeInfo{
				{ResourceType: "userAssignedIdentities", Locations: Locations, APIVersions: []string{"2024-11-30", "2023-01-31", "2018-11-30"}},
			},
		},
		{
			ID: "/subscriptions/" + sub + "/providers/Microsoft.Authorization", Namespace: "Microsoft.Authorization",
			RegistrationState: "Registered", RegistrationPolicy: "RegistrationFree",
			ResourceTypes: []resourceTypeInfo{
				{ResourceType: "roleAssignments", Locations: []string{}, APIVersions: []string{"2022-04-01", "2020-04-01-preview"}},
				{ResourceType: "roleDefinitions", Locations: []string{}, APIVersions: []string{"2022-04-01", "2018-01-01-preview"}},
			},
		},
	}
}

func (s *Server) listProviders(w http.ResponseWriter, r *http.Request) error {
	if _, err := apiVersion(r, nil); err != nil {
		return err
	}
	sub := splitPath(r.URL.Path)[1]
	if err := s.requireRelated(r.Context(), sub); err != nil {
		return err
	}
	if err := s.requireSubscription(r.Context(), sub); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"value": providers(sub)})
	return nil
}

// getProvider answers GET .../providers/{ns} and POST .../providers/{ns}/register:
// every provider is always registered.
func (s *Server) getProvider(w http.ResponseWriter, r *http.Request) error {
	if _, err := apiVersion(r, nil); err != nil {
		return err
	}
	id, err := model.ParseResourceID(r.URL.Path)
	if err != nil {
		return unknownRoute(r)
	}
	if err := s.requireRelated(r.Context(), id.Subscription); err != nil {
		return err
	}
	if err := s.requireSubscription(r.Context(), id.Subscription); err != nil {
		return err
	}
	for _, p := range providers(id.Subscription) {
		if strings.EqualFold(p.Namespace, id.Namespace) {
			writeJSON(w, http.StatusOK, p)
			return nil
		}
	}
	return errorf(http.StatusNotFound, "InvalidResourceNamespace", "The resource namespace '%s' is invalid or not served by this server.", clip(id.Namespace))
}

type operationInfo struct {
	Name         string            `json:"name"`
	IsDataAction bool              `json:"isDataAction"`
	Display      map[string]string `json:"display"`
	Origin       string            `json:"origin"`
}

func (s *Server) listOperations(w http.ResponseWriter, r *http.Request) error {
	if _, err := apiVersion(r, nil); err != nil {
		return err
	}
	op := func(name, resource, operation string, data bool) operationInfo {
		return operationInfo{Name: name, IsDataAction: data, Origin: "user,system",
			Display: map[string]string{"provider": "Microsoft.App", "resource": resource, "operation": operation, "description": operation}}
	}
	writeJSON(w, http.StatusOK, map[string]any{"nextLink": nil, "value": []operationInfo{
		op("Microsoft.App/register/action", "Microsoft.App", "Register the Microsoft.App resource provider", false),
		op("Microsoft.App/sessionPools/read", "Session pools", "Get a session pool", false),
		op("Microsoft.App/sessionPools/write", "Session pools", "Create or update a session pool", false),
		op("Microsoft.App/sessionPools/delete", "Session pools", "Delete a session pool", false),
		op("Microsoft.App/sessionPools/fetchMcpServerCredentials/action", "Session pools", "Fetch the MCP server credentials of a session pool", false),
		op("Microsoft.App/sessionPools/rotateMcpServerCredentials/action", "Session pools", "Rotate the MCP server credentials of a session pool", false),
		op("Microsoft.App/sessionPools/interpreters/execute/action", "Sessions", "Execute code in a session", true),
		op("Microsoft.App/managedEnvironments/read", "Managed environments", "Get a managed environment", false),
		op("Microsoft.App/managedEnvironments/write", "Managed environments", "Create or update a managed environment", false),
		op("Microsoft.App/managedEnvironments/delete", "Managed environments", "Delete a managed environment", false),
		op("Microsoft.App/locations/operationStatuses/read", "Operation statuses", "Get the status of an operation", false),
	}})
	return nil
}

// requireRelated admits a caller to a subscription's metadata (the
// subscription, its providers) when it holds any role in the subscription,
// as ARM shows a subscription to anyone with access somewhere inside it.
func (s *Server) requireRelated(ctx context.Context, sub string) error {
	scope := "/subscriptions/" + sub
	ok, err := s.related(ctx, scope)
	if err != nil {
		return err
	}
	if !ok {
		return Forbidden(claimsFrom(ctx), "Microsoft.Resources/subscriptions/read", scope)
	}
	return nil
}
