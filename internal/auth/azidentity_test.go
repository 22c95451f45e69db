package auth

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/tidepool-dev/tidepool/internal/store"
)

// TestAzureSDK obtains tokens with the Azure SDK's ClientSecretCredential,
// which runs MSAL's discovery against the OpenID metadata and then the
// client-credentials grant.
func TestAzureSDK(t *testing.T) {
	// MSAL insists on an HTTPS authority whose host matches the issuer's,
	// so the issuer needs the server's address before the server starts.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	i, _ := newTestIssuer(t, func(c *Config) {
		c.PublicURL = "https://" + ln.Addr().String()
		c.Now = time.Now
	})
	const secret = "sdk-secret"
	p := &store.Principal{ObjectID: "oid-sdk", ClientID: "client-sdk", Secrets: []store.Secret{{Hash: HashSecret(secret)}}}
	mux := http.NewServeMux()
	mux.Handle("/{tenantId}/oauth2/v2.0/token", i.TokenHandler(principals{p.ClientID: p}))
	mux.Handle("GET /{tenantId}/v2.0/.well-known/openid-configuration", i.OpenIDConfigHandler())
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: mux}}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	cred, err := azidentity.NewClientSecretCredential(testTenant, p.ClientID, secret, &azidentity.ClientSecretCredentialOptions{
		ClientOptions: azcore.ClientOptions{
			Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: srv.URL + "/"},
			Transport: srv.Client(),
		},
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ scope, aud string }{
		{"https://management.azure.com//.default", AudienceManagement},
		{"https://dynamicsessions.io/.default", AudienceDataPlane},
	} {
		tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{tt.scope}})
		if err != nil {
			t.Fatalf("GetToken(%s): %v", tt.scope, err)
		}
		claims, err := i.Verify(tok.Token, tt.aud)
		if err != nil {
			t.Fatalf("Verify(token for %s): %v", tt.scope, err)
		}
		if claims.ObjectID != p.ObjectID {
			t.Errorf("claims = %+v", claims)
		}
		if d := time.Until(tok.ExpiresOn); d < 59*time.Minute || d > time.Hour {
			t.Errorf("ExpiresOn in %v, want about an hour", d)
		}
	}

	bad, err := azidentity.NewClientSecretCredential(testTenant, p.ClientID, "wrong", &azidentity.ClientSecretCredentialOptions{
		ClientOptions: azcore.ClientOptions{
			Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: srv.URL + "/"},
			Transport: srv.Client(),
		},
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{"https://dynamicsessions.io/.default"}})
	if err == nil || !strings.Contains(err.Error(), "AADSTS7000215") {
		t.Errorf("GetToken with a wrong secret: %v, want AADSTS7000215", err)
	}
}
