package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/appcontainers/armappcontainers/v3"

	"github.com/tidepool-dev/tidepool/internal/server"
)

// pollFast polls LROs often; the server's Retry-After (1 s on in-progress
// polls) still wins when it sends one.
var pollFast = &runtime.PollUntilDoneOptions{Frequency: 250 * time.Millisecond}

var uuidRule = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// secretValue is a pool secret's value: no response may ever contain it.
const secretValue = "s3cr3t-value-never-returned"

// The user-assigned identity of the published example
// (SessionPools_LifecycleTimed_CreateOrUpdate.json), kept verbatim.

// TestAzureSDKRoundTrip drives a real server over HTTPS with the Azure SDK
// for Go, unmodified: azidentity's ClientSecretCredential (MSAL: OpenID
// metadata, then the client-credentials grant) and armappcontainers/v3's
// session pool client (LRO pollers, pagers, error decoding).
func TestAzureSDKRoundTrip(t *testing.T) {
	start := time.Now()
	defer func() { t.Logf("TestAzureSDKRoundTrip took %v", time.Since(start).Round(time.Millisecond)) }()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	dir := t.TempDir()
	certFile, keyFile, httpClient := selfSignedCert(t, dir)
	info := startServer(t, server.Config{DataDir: dir, TLSCert: certFile, TLSKey: keyFile, PageSize: 2})
	// Before the server stops (cleanups run last first): a connection the
	// client dialed but never used is "new" to the server, and a graceful
	// shutdown waits up to 5 s for such connections.
	t.Cleanup(httpClient.CloseIdleConnections)
	creds := readCredentials(t, dir)
	if creds.Endpoint != info.Endpoint || creds.TenantID != info.TenantID || creds.SubscriptionID != info.SubscriptionID {
		t.Fatalf("credentials file %+v disagrees with Info %+v", creds, info)
	}
	if !strings.HasPrefix(creds.Endpoint, "https://127.0.0.1:") {
		t.Fatalf("endpoint = %q, want https://127.0.0.1:<port>", creds.Endpoint)
	}
	endpoint, sub := creds.Endpoint, creds.SubscriptionID

	// The SDK's traffic goes through a recorder, to check which LRO
	// protocol the server offered it.
	rec := &recorder{rt: httpClient.Transport}
	sdkHTTP := &http.Client{Transport: rec, Timeout: httpClient.Timeout}
	armCloud := cloud.Configuration{
		ActiveDirectoryAuthorityHost: endpoint + "/",
		Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
			cloud.ResourceManager: {Endpoint: endpoint, Audience: "https://management.azure.com/"},
		},
	}
	cred, err := azidentity.NewClientSecretCredential(creds.TenantID, creds.ClientID, creds.ClientSecret, &azidentity.ClientSecretCredentialOptions{
		ClientOptions:            azcore.ClientOptions{Cloud: armCloud, Transport: sdkHTTP},
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	client, err := armappcontainers.NewContainerAppsSessionPoolsClient(sub, cred, &arm.ClientOptions{
		ClientOptions: policy.ClientOptions{Cloud: armCloud, Transport: sdkHTTP},
	})
	if err != nil {
		t.Fatal(err)
	}

	// The neighbours, with raw HTTP and a token from the same credential.
	tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://management.azure.com//.default"}})
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	const rg, rg2, envName = "sdk-rg", "sdk-rg2", "demokube"
	for _, g := range []string{rg, rg2} {
		mustDo(t, httpClient, http.MethodPut, fmt.Sprintf("%s/subscriptions/%s/resourcegroups/%s?api-version=2021-04-01", endpoint, sub, g),
			tok.Token, map[string]string{"location": "eastus"}, http.StatusCreated)
	}
	// The example's user-assigned identity, in this subscription: a pool
	// may only name identities that exist.
	poolUAMI := fmt.Sprintf("/subscriptions/%s/resourcegroups/%s/providers/Microsoft.ManagedIdentity/userAssignedIdentities/testSP", sub, rg)
	mustDo(t, httpClient, http.MethodPut, endpoint+poolUAMI+"?api-version=2023-01-31", tok.Token,
		map[string]string{"location": "eastus"}, http.StatusCreated)
	envID := fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.App/managedEnvironments/%s", sub, rg, envName)
	mustDo(t, httpClient, http.MethodPut, endpoint+envID+"?api-version=2025-01-01", tok.Token,
		map[string]string{"location": "eastus"}, http.StatusCreated, http.StatusOK)

	poolEndpoint := func(group, name string) string {
		return fmt.Sprintf("%s/subscriptions/%s/resourceGroups/%s/sessionPools/%s", endpoint, sub, group, name)
	}
	poolID := func(group, name string) string {
		return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.App/sessionPools/%s", sub, group, name)
	}
	get := func(group, name string) armappcontainers.SessionPool {
		t.Helper()
		res, err := client.Get(ctx, group, name, nil)
		if err != nil {
			t.Fatalf("Get %s: %v", name, err)
		}
		return res.SessionPool
	}
	// Each LRO takes about a second (the first poll races the controller
	// and gets Retry-After: 1), so independent ones run together.
	create := func(dst *armappcontainers.SessionPool, group, name string, p armappcontainers.SessionPool) func() error {
		return func() error {
			poller, err := client.BeginCreateOrUpdate(ctx, group, name, p, nil)
			if err != nil {
				return fmt.Errorf("BeginCreateOrUpdate %s: %w", name, err)
			}
			res, err := poller.PollUntilDone(ctx, pollFast)
			if err != nil {
				return fmt.Errorf("PollUntilDone(create %s): %w", name, err)
			}
			*dst = res.SessionPool
			return nil
		}
	}

	// §9.1, "Timed", adapted: the registry identity is a user-assigned
	// identity, so the pool has it too ("SystemAssigned,UserAssigned").
	timed := timedExample(envID)
	timed.Identity = &armappcontainers.ManagedServiceIdentity{
		Type:                   to.Ptr(armappcontainers.ManagedServiceIdentityTypeSystemAssignedUserAssigned),
		UserAssignedIdentities: map[string]*armappcontainers.UserAssignedIdentity{poolUAMI: {}},
	}
	timed.Tags = map[string]*string{"env": to.Ptr("test")}

	// §9.2, "OnContainerExit", with the example's identity verbatim
	// (SystemAssigned; the registry names a user-assigned identity the pool
	// does not hold), plus a secret used by an environment variable.
	exit := timedExample(envID)
	exit.Properties.DynamicPoolConfiguration.LifecycleConfiguration = &armappcontainers.LifecycleConfiguration{
		LifecycleType:           to.Ptr(armappcontainers.LifecycleTypeOnContainerExit),
		MaxAlivePeriodInSeconds: to.Ptr[int32](86400),
	}
	exit.Properties.Secrets = []*armappcontainers.SessionPoolSecret{{Name: to.Ptr("api-key"), Value: to.Ptr(secretValue)}}
	exit.Properties.CustomContainerTemplate.Containers[0].Env = []*armappcontainers.EnvironmentVar{
		{Name: to.Ptr("API_KEY"), SecretRef: to.Ptr("api-key")},
		{Name: to.Ptr("MODE"), Value: to.Ptr("exit")},
	}

	// A code interpreter pool: no environment, no template, no identity.
	python := armappcontainers.SessionPool{
		Location: to.Ptr("eastus"),
		Properties: &armappcontainers.SessionPoolProperties{
			ContainerType:      to.Ptr(armappcontainers.ContainerTypePythonLTS),
			PoolManagementType: to.Ptr(armappcontainers.PoolManagementTypeDynamic),
			ScaleConfiguration: &armappcontainers.ScaleConfiguration{MaxConcurrentSessions: to.Ptr[int32](20), ReadySessionInstances: to.Ptr[int32](2)},
			DynamicPoolConfiguration: &armappcontainers.DynamicPoolConfiguration{LifecycleConfiguration: &armappcontainers.LifecycleConfiguration{
				LifecycleType: to.Ptr(armappcontainers.LifecycleTypeTimed), CooldownPeriodInSeconds: to.Ptr[int32](300),
			}},
			SessionNetworkConfiguration: &armappcontainers.SessionNetworkConfiguration{Status: to.Ptr(armappcontainers.SessionNetworkStatusEgressDisabled)},
		},
	}

	// Phase 1: seven pools, five in rg and two in rg2, for the pagers too.
	var createdTimed, createdExit, createdPython, ignored [4]armappcontainers.SessionPool
	runAll(t,
		create(&createdTimed[0], rg, "timedpool", timed),
		create(&createdExit[0], rg, "exitpool", exit),
		create(&createdPython[0], rg, "pythonpool", python),
		create(&ignored[0], rg, "lista", python),
		create(&ignored[1], rg, "listb", python),
		create(&ignored[2], rg2, "listc", python),
		create(&ignored[3], rg2, "listd", python),
	)
	opBase := endpoint + "/subscriptions/" + sub + "/providers/Microsoft.App/locations/eastus/"
	checkLRO(t, rec, http.MethodPut, "/sessionPools/timedpool", http.StatusCreated, "Azure-AsyncOperation", opBase+"operationStatuses/")
	for _, c := range []struct {
		name         string
		sent         armappcontainers.SessionPool
		pollerResult armappcontainers.SessionPool
	}{
		{"timedpool", timed, createdTimed[0]},
		{"exitpool", exit, createdExit[0]},
		{"pythonpool", python, createdPython[0]},
	} {
		id, ep := poolID(rg, c.name), poolEndpoint(rg, c.name)
		checkPool(t, "create "+c.name+" (PollUntilDone result)", c.pollerResult, c.sent, id, ep, info.TenantID)
		got := get(rg, c.name)
		checkPool(t, "get "+c.name, got, c.sent, id, ep, info.TenantID)
		if c.sent.Identity != nil && *got.Identity.PrincipalID != *c.pollerResult.Identity.PrincipalID {
			t.Errorf("get %s: principalId changed from %s to %s", c.name, *c.pollerResult.Identity.PrincipalID, *got.Identity.PrincipalID)
		}
		if got, want := *got.SystemData.CreatedBy, creds.ClientID; got != want {
			t.Errorf("get %s: systemData.createdBy = %q, want the admin client id %q", c.name, got, want)
		}
	}
	wantRG := []string{"exitpool", "lista", "listb", "pythonpool", "timedpool"}
	wantSub := []string{"exitpool", "lista", "listb", "listc", "listd", "pythonpool", "timedpool"}
	listRG := func() ([][]*armappcontainers.SessionPool, error) {
		var pages [][]*armappcontainers.SessionPool
		pager := client.NewListByResourceGroupPager(rg, nil)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return nil, err
			}
			pages = append(pages, page.Value)
		}
		return pages, nil
	}
	checkList(t, "ListByResourceGroup", wantRG, listRG)
	checkList(t, "ListBySubscription", wantSub, func() ([][]*armappcontainers.SessionPool, error) {
		var pages [][]*armappcontainers.SessionPool
		pager := client.NewListBySubscriptionPager(nil)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return nil, err
			}
			pages = append(pages, page.Value)
		}
		return pages, nil
	})

	// Phase 2: a PUT on an existing pool (200, still an LRO for the SDK); a
	// PATCH that merges scaleConfiguration (readySessionInstances is kept)
	// and replaces the tags; a DELETE.
	python2 := python
	python2.Properties = new(*python.Properties)
	python2.Properties.ScaleConfiguration = &armappcontainers.ScaleConfiguration{MaxConcurrentSessions: to.Ptr[int32](30), ReadySessionInstances: to.Ptr[int32](2)}
	var rePut [1]armappcontainers.SessionPool
	var updated armappcontainers.SessionPool
	runAll(t,
		create(&rePut[0], rg, "pythonpool", python2),
		func() error {
			upd, err := client.BeginUpdate(ctx, rg, "timedpool", armappcontainers.SessionPoolUpdatableProperties{
				Tags: map[string]*string{"env": to.Ptr("prod"), "team": to.Ptr("pool")},
				Properties: &armappcontainers.SessionPoolUpdatablePropertiesProperties{
					ScaleConfiguration: &armappcontainers.ScaleConfiguration{MaxConcurrentSessions: to.Ptr[int32](250)},
				},
			}, nil)
			if err != nil {
				return fmt.Errorf("BeginUpdate: %w", err)
			}
			res, err := upd.PollUntilDone(ctx, pollFast)
			if err != nil {
				return fmt.Errorf("PollUntilDone(update): %w", err)
			}
			updated = res.SessionPool
			return nil
		},
		func() error {
			del, err := client.BeginDelete(ctx, rg, "exitpool", nil)
			if err != nil {
				return fmt.Errorf("BeginDelete: %w", err)
			}
			if _, err := del.PollUntilDone(ctx, pollFast); err != nil {
				return fmt.Errorf("PollUntilDone(delete): %w", err)
			}
			return nil
		},
	)
	if p := rec.find(http.MethodPut, "/sessionPools/pythonpool"); len(p) != 2 || p[1].Status != http.StatusOK {
		t.Errorf("second PUT of pythonpool: %+v, want 200", p)
	}
	checkPool(t, "re-PUT pythonpool (PollUntilDone result)", rePut[0], python2, poolID(rg, "pythonpool"), poolEndpoint(rg, "pythonpool"), info.TenantID)
	checkPool(t, "get pythonpool after re-PUT", get(rg, "pythonpool"), python2, poolID(rg, "pythonpool"), poolEndpoint(rg, "pythonpool"), info.TenantID)

	checkLRO(t, rec, http.MethodPatch, "/sessionPools/timedpool", http.StatusAccepted, "Location", opBase+"operationResults/")
	patched := timed
	patched.Properties = new(*timed.Properties)
	patched.Properties.ScaleConfiguration = &armappcontainers.ScaleConfiguration{MaxConcurrentSessions: to.Ptr[int32](250), ReadySessionInstances: to.Ptr[int32](100)}
	patched.Tags = map[string]*string{"env": to.Ptr("prod"), "team": to.Ptr("pool")}
	checkPool(t, "update timedpool (PollUntilDone result)", updated, patched, poolID(rg, "timedpool"), poolEndpoint(rg, "timedpool"), info.TenantID)
	afterPatch := get(rg, "timedpool")
	checkPool(t, "get timedpool after update", afterPatch, patched, poolID(rg, "timedpool"), poolEndpoint(rg, "timedpool"), info.TenantID)
	if a, b := *afterPatch.Identity.PrincipalID, *createdTimed[0].Identity.PrincipalID; a != b {
		t.Errorf("update changed the system identity's principalId from %s to %s", b, a)
	}
	if a, b := afterPatch.SystemData.CreatedAt, createdTimed[0].SystemData.CreatedAt; a == nil || b == nil || !a.Equal(*b) {
		t.Errorf("update changed systemData.createdAt: %v → %v", b, a)
	}
	if a, b := afterPatch.SystemData.LastModifiedAt, createdTimed[0].SystemData.LastModifiedAt; a == nil || b == nil || !a.After(*b) {
		t.Errorf("update did not advance systemData.lastModifiedAt: %v → %v", b, a)
	}

	checkLRO(t, rec, http.MethodDelete, "/sessionPools/exitpool", http.StatusAccepted, "Location", opBase+"operationResults/")
	_, err = client.Get(ctx, rg, "exitpool", nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusNotFound || re.ErrorCode != "ResourceNotFound" {
		t.Fatalf("Get after delete: %v, want a 404 ResponseError with ErrorCode ResourceNotFound", err)
	}
	// Deleting what does not exist is 204, which the SDK takes as done.
	del, err := client.BeginDelete(ctx, rg, "exitpool", nil)
	if err != nil {
		t.Fatalf("BeginDelete of a deleted pool: %v", err)
	}
	if _, err := del.PollUntilDone(ctx, pollFast); err != nil {
		t.Fatalf("PollUntilDone(delete of a deleted pool): %v", err)
	}
	if d := rec.find(http.MethodDelete, "/sessionPools/exitpool"); len(d) != 2 || d[1].Status != http.StatusNoContent {
		t.Errorf("second DELETE: %+v, want 204", d)
	}
	checkList(t, "ListByResourceGroup after delete", wantRG[1:], listRG)

	// No answer to any request (PUTs, status polls, GETs, lists) carried
	// the secret's value.
	if leaks := rec.containing(secretValue); len(leaks) > 0 {
		t.Errorf("the secret value was returned by %d responses, e.g. %s %s", len(leaks), leaks[0].Method, leaks[0].Path)
	}
}

// runAll runs fns concurrently and fails the test with their errors.
func runAll(t *testing.T, fns ...func() error) {
	t.Helper()
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, f := range fns {
		wg.Go(func() { errs[i] = f() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// checkLRO checks the first answer to an LRO request the SDK sent: its
// status, and a polling header that is an absolute URL under base, which
// the SDK then polled until it answered 200.
func checkLRO(t *testing.T, rec *recorder, method, suffix string, status int, header, base string) {
	t.Helper()
	ex := rec.find(method, suffix)
	if len(ex) == 0 {
		t.Fatalf("no %s ...%s was sent", method, suffix)
	}
	first := ex[0]
	if first.Status != status {
		t.Errorf("%s ...%s answered %d, want %d", method, suffix, first.Status, status)
	}
	u := first.Header.Get(header)
	if !strings.HasPrefix(u, base) || !strings.Contains(u, "api-version=") {
		t.Fatalf("%s ...%s: %s = %q, want an absolute URL under %s with an api-version", method, suffix, header, u, base)
	}
	// The SDK polls Azure-AsyncOperation when there is one, else Location.
	poll := first.Header.Get("Azure-AsyncOperation")
	if poll == "" {
		poll = u
	}
	pu, err := url.Parse(poll)
	if err != nil {
		t.Fatalf("%s ...%s: polling URL %q: %v", method, suffix, poll, err)
	}
	polls := rec.find(http.MethodGet, pu.Path)
	if len(polls) == 0 || (polls[len(polls)-1].Status != http.StatusOK && polls[len(polls)-1].Status != http.StatusNoContent) {
		t.Errorf("%s ...%s: the SDK's polls of %s: %+v, want the last to answer 200 or 204", method, suffix, pu.Path, polls)
	}
}

// timedExample is §9.1's request (SessionPools_LifecycleTimed_CreateOrUpdate)
// as SDK models, with the environment id of this test.
// exampleUAMI is the published example's registry identity: a registry
// identity is not checked when the pool is written.
const exampleUAMI = "/subscriptions/7a497526-bb8d-4816-9795-db1418a1f977/resourcegroups/test/providers/Microsoft.ManagedIdentity/userAssignedIdentities/testSP"

func timedExample(envID string) armappcontainers.SessionPool {
	return armappcontainers.SessionPool{
		Location: to.Ptr("East US"),
		Identity: &armappcontainers.ManagedServiceIdentity{Type: to.Ptr(armappcontainers.ManagedServiceIdentityTypeSystemAssigned)},
		Properties: &armappcontainers.SessionPoolProperties{
			EnvironmentID:      to.Ptr(envID),
			PoolManagementType: to.Ptr(armappcontainers.PoolManagementTypeDynamic),
			ContainerType:      to.Ptr(armappcontainers.ContainerTypeCustomContainer),
			ScaleConfiguration: &armappcontainers.ScaleConfiguration{MaxConcurrentSessions: to.Ptr[int32](500), ReadySessionInstances: to.Ptr[int32](100)},
			DynamicPoolConfiguration: &armappcontainers.DynamicPoolConfiguration{LifecycleConfiguration: &armappcontainers.LifecycleConfiguration{
				LifecycleType: to.Ptr(armappcontainers.LifecycleTypeTimed), CooldownPeriodInSeconds: to.Ptr[int32](600),
			}},
			CustomContainerTemplate: &armappcontainers.CustomContainerTemplate{
				Containers: []*armappcontainers.SessionContainer{{
					Image:     to.Ptr("repo/testcontainer:v4"),
					Name:      to.Ptr("testinitcontainer"),
					Resources: &armappcontainers.SessionContainerResources{CPU: to.Ptr(0.25), Memory: to.Ptr("0.5Gi")},
					Command:   []*string{to.Ptr("/bin/sh")},
					Args:      []*string{to.Ptr("-c"), to.Ptr("while true; do echo hello; sleep 10;done")},
				}},
				Ingress:             &armappcontainers.SessionIngress{TargetPort: to.Ptr[int32](80)},
				RegistryCredentials: &armappcontainers.SessionRegistryCredentials{Server: to.Ptr("test.azurecr.io"), Identity: to.Ptr(exampleUAMI)},
			},
			SessionNetworkConfiguration: &armappcontainers.SessionNetworkConfiguration{Status: to.Ptr(armappcontainers.SessionNetworkStatusEgressEnabled)},
			ManagedIdentitySettings: []*armappcontainers.ManagedIdentitySetting{
				{Identity: to.Ptr("system"), Lifecycle: to.Ptr(armappcontainers.IdentitySettingsLifeCycleMain)},
			},
		},
	}
}

// checkPool compares a pool the server returned with the one sent: every
// field sent comes back as sent (secret values excepted: never returned),
// and the server-owned fields are filled.
func checkPool(t *testing.T, what string, got, sent armappcontainers.SessionPool, id, endpoint, tenant string) {
	t.Helper()
	str := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return *p
	}
	if str(got.ID) != id || str(got.Name) != id[strings.LastIndex(id, "/")+1:] || str(got.Type) != "Microsoft.App/sessionPools" {
		t.Errorf("%s: id/name/type = %s / %s / %s, want %s", what, str(got.ID), str(got.Name), str(got.Type), id)
	}
	if str(got.Location) != str(sent.Location) {
		t.Errorf("%s: location = %s, want %s", what, str(got.Location), str(sent.Location))
	}
	sameJSON(t, what+": tags", sent.Tags, got.Tags)
	if got.SystemData == nil || got.SystemData.CreatedAt == nil || got.SystemData.LastModifiedAt == nil || got.SystemData.CreatedBy == nil {
		t.Errorf("%s: systemData = %s, want createdBy, createdAt and lastModifiedAt", what, jsonString(got.SystemData))
	}
	gp, sp := got.Properties, sent.Properties
	if gp == nil {
		t.Fatalf("%s: no properties", what)
	}
	if gp.ProvisioningState == nil || *gp.ProvisioningState != armappcontainers.SessionPoolProvisioningStateSucceeded {
		t.Errorf("%s: provisioningState = %v, want Succeeded", what, jsonString(gp.ProvisioningState))
	}
	if str(gp.PoolManagementEndpoint) != endpoint {
		t.Errorf("%s: poolManagementEndpoint = %s, want %s", what, str(gp.PoolManagementEndpoint), endpoint)
	}
	sameJSON(t, what+": containerType", sp.ContainerType, gp.ContainerType)
	sameJSON(t, what+": poolManagementType", sp.PoolManagementType, gp.PoolManagementType)
	sameJSON(t, what+": environmentId", sp.EnvironmentID, gp.EnvironmentID)
	sameJSON(t, what+": scaleConfiguration", sp.ScaleConfiguration, gp.ScaleConfiguration)
	sameJSON(t, what+": dynamicPoolConfiguration", sp.DynamicPoolConfiguration, gp.DynamicPoolConfiguration)
	sameJSON(t, what+": sessionNetworkConfiguration", sp.SessionNetworkConfiguration, gp.SessionNetworkConfiguration)
	sameJSON(t, what+": customContainerTemplate", sp.CustomContainerTemplate, gp.CustomContainerTemplate)
	sameJSON(t, what+": managedIdentitySettings", sp.ManagedIdentitySettings, gp.ManagedIdentitySettings)
	var wantSecrets []*armappcontainers.SessionPoolSecret
	for _, s := range sp.Secrets {
		wantSecrets = append(wantSecrets, &armappcontainers.SessionPoolSecret{Name: s.Name})
	}
	sameJSON(t, what+": secrets (names only; values are write-only)", wantSecrets, gp.Secrets)

	if sent.Identity == nil {
		if got.Identity != nil && got.Identity.Type != nil && *got.Identity.Type != armappcontainers.ManagedServiceIdentityTypeNone {
			t.Errorf("%s: identity = %s, want none", what, jsonString(got.Identity))
		}
		return
	}
	gi := got.Identity
	if gi == nil || gi.Type == nil || *gi.Type != *sent.Identity.Type {
		t.Fatalf("%s: identity = %s, want type %s", what, jsonString(gi), *sent.Identity.Type)
	}
	if strings.HasPrefix(string(*gi.Type), "SystemAssigned") {
		if !uuidRule.MatchString(str(gi.PrincipalID)) || str(gi.TenantID) != tenant {
			t.Errorf("%s: system identity principalId/tenantId = %s / %s, want a UUID / %s", what, str(gi.PrincipalID), str(gi.TenantID), tenant)
		}
	}
	var wantUser, gotUser []string
	for k := range sent.Identity.UserAssignedIdentities {
		wantUser = append(wantUser, strings.ToLower(k))
	}
	for k := range gi.UserAssignedIdentities {
		gotUser = append(gotUser, strings.ToLower(k))
	}
	slices.Sort(wantUser)
	slices.Sort(gotUser)
	if !slices.Equal(wantUser, gotUser) {
		t.Errorf("%s: userAssignedIdentities = %v, want %v", what, gotUser, wantUser)
	}
}

// checkList runs a paged listing and checks that it returns each wanted
// pool exactly once, on pages of at most 2 (the server's page size), with
// every pool complete.
func checkList(t *testing.T, what string, want []string, list func() ([][]*armappcontainers.SessionPool, error)) {
	t.Helper()
	pages, err := list()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	var got []string
	for i, page := range pages {
		if len(page) > 2 {
			t.Errorf("%s: page %d has %d pools, want at most 2", what, i, len(page))
		}
		for _, p := range page {
			if p.Name == nil || p.Properties == nil || p.Properties.ProvisioningState == nil {
				t.Errorf("%s: incomplete pool %s", what, jsonString(p))
				continue
			}
			got = append(got, *p.Name)
		}
	}
	if wantPages := (len(want) + 1) / 2; len(pages) < wantPages {
		t.Errorf("%s: %d pages, want at least %d", what, len(pages), wantPages)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("%s: pools %v, want each of %v exactly once", what, got, want)
	}
}

func sameJSON(t *testing.T, what string, want, got any) {
	t.Helper()
	if w, g := jsonString(want), jsonString(got); w != g {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	return string(b)
}
