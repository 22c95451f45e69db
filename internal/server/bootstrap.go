package server

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"

	"github.com/tidepool-dev/tidepool/internal/arm"
	"github.com/tidepool-dev/tidepool/internal/auth"
	"github.com/tidepool-dev/tidepool/internal/rbac"
	"github.com/tidepool-dev/tidepool/internal/store"
)

// Settings keys.
const (
	settingTenant       = "tenant_id"
	settingSubscription = "default_subscription_id"
	settingSigningKey   = "signing_key"
	settingAdmin        = "admin_object_id"
)

// CredentialsFile is the name of the admin credentials file in the data dir.
const CredentialsFile = "admin-credentials.json"

// Credentials is the content of the admin credentials file.
type Credentials struct {
	TenantID       string `json:"tenantId"`
	SubscriptionID string `json:"subscriptionId"`
	ClientID       string `json:"clientId"`
	ClientSecret   string `json:"clientSecret"`
	Endpoint       string `json:"endpoint"`
}

// identity is what bootstrap establishes on first start and reads after.
type identity struct {
	tenantID       string
	subscriptionID string
	key            *ecdsa.PrivateKey
	admin          *store.Principal
}

// bootstrap creates, on first start, the tenant, the default subscription,
// the signing key and the admin principal, and returns them. Each value is
// set once (SetSettingIfAbsent), so a crash in the middle leaves nothing
// half made: the next start finishes the job.
func bootstrap(ctx context.Context, st store.Store) (*identity, error) {
	id := &identity{}
	var err error
	if id.tenantID, err = st.SetSettingIfAbsent(ctx, settingTenant, uuid.NewString()); err != nil {
		return nil, fmt.Errorf("bootstrap tenant: %w", err)
	}
	if id.subscriptionID, err = st.SetSettingIfAbsent(ctx, settingSubscription, uuid.NewString()); err != nil {
		return nil, fmt.Errorf("bootstrap subscription: %w", err)
	}
	if err := arm.EnsureSubscription(ctx, st, id.subscriptionID, id.tenantID, "Tidepool"); err != nil {
		return nil, fmt.Errorf("bootstrap subscription: %w", err)
	}
	key, err := auth.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("bootstrap signing key: %w", err)
	}
	pem, err := auth.MarshalKey(key)
	if err != nil {
		return nil, fmt.Errorf("bootstrap signing key: %w", err)
	}
	if pem, err = st.SetSettingIfAbsent(ctx, settingSigningKey, pem); err != nil {
		return nil, fmt.Errorf("bootstrap signing key: %w", err)
	}
	if id.key, err = auth.ParseKey(pem); err != nil {
		return nil, fmt.Errorf("bootstrap signing key: %w", err)
	}
	adminID, err := st.SetSettingIfAbsent(ctx, settingAdmin, uuid.NewString())
	if err != nil {
		return nil, fmt.Errorf("bootstrap admin: %w", err)
	}
	id.admin, err = st.GetPrincipal(ctx, adminID)
	if errors.Is(err, store.ErrNotFound) {
		id.admin = &store.Principal{ObjectID: adminID, ClientID: uuid.NewString(), DisplayName: "tidepool-admin", Kind: "ServicePrincipal"}
	} else if err != nil {
		return nil, fmt.Errorf("bootstrap admin: %w", err)
	}
	// The admin is Owner at the root scope: of every subscription, and of
	// the directory. Its assignment's name is derived from its id, so a
	// restart finds it rather than adding another.
	name := uuid.NewSHA1(uuid.NameSpaceOID, []byte("tidepool-admin-owner:"+adminID)).String()
	err = rbac.Assign(ctx, st, rbac.Assignment{
		ID: rbac.AssignmentID("/", name), Name: name, Scope: "/", RoleID: rbac.OwnerID,
		PrincipalID: adminID, Type: "ServicePrincipal", Description: "The bootstrap administrator", Created: time.Now().UTC(),
	})
	if err != nil && !errors.Is(err, store.ErrExists) {
		return nil, fmt.Errorf("bootstrap admin role: %w", err)
	}
	return id, nil
}

// writeCredentials makes sure the admin credentials file holds a secret that
// works. The secret exists only there (the store keeps its hash), so when the
// file is missing or stale a new secret replaces the admin's secrets.
func writeCredentials(ctx context.Context, st store.Store, dataDir, endpoint string, id *identity) (string, error) {
	path := filepath.Join(dataDir, CredentialsFile)
	creds := Credentials{TenantID: id.tenantID, SubscriptionID: id.subscriptionID, ClientID: id.admin.ClientID, Endpoint: endpoint}
	if data, err := os.ReadFile(path); err == nil {
		var old Credentials
		if json.Unmarshal(data, &old) == nil && old.ClientID == id.admin.ClientID && validSecret(id.admin, old.ClientSecret) {
			creds.ClientSecret = old.ClientSecret
			if old == creds {
				return path, nil
			}
		}
	}
	if creds.ClientSecret == "" {
		creds.ClientSecret = auth.NewSecret()
		id.admin.Secrets = []store.Secret{{ID: uuid.NewString(), Hash: auth.HashSecret(creds.ClientSecret), Hint: creds.ClientSecret[:3]}}
		// The file first: a crash before the store write leaves a file whose
		// secret does not validate, and the next start replaces both.
		if err := writeFileAtomic(path, creds); err != nil {
			return "", err
		}
		if err := st.PutPrincipal(ctx, id.admin); err != nil {
			return "", fmt.Errorf("store admin principal: %w", err)
		}
		return path, nil
	}
	return path, writeFileAtomic(path, creds)
}

func validSecret(p *store.Principal, secret string) bool {
	for _, s := range p.Secrets {
		if secret != "" && auth.CheckSecret(s.Hash, secret) {
			return true
		}
	}
	return false
}

// writeFileAtomic writes v as indented JSON, mode 0600, replacing path in
// one rename so that readers never see half a file.
func writeFileAtomic(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
