package server

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/tidepool-dev/tidepool/internal/arm"
	"github.com/tidepool-dev/tidepool/internal/auth"
	"github.com/tidepool-dev/tidepool/internal/model"
	"github.com/tidepool-dev/tidepool/internal/rbac"
	"github.com/tidepool-dev/tidepool/internal/store"
)

// principals finds the principals the token endpoint issues tokens to:
// service principals from the store, and managed identities from the
// resources that define them.
type principals struct {
	st    store.Store
	authz *rbac.Authorizer
}

func (p principals) GetPrincipalByClientID(ctx context.Context, clientID string) (*store.Principal, error) {
	sp, err := p.st.GetPrincipalByClientID(ctx, clientID)
	if !errors.Is(err, store.ErrNotFound) {
		return sp, err
	}
	mi, err := arm.FindManagedIdentity(ctx, p.st, clientID)
	if err != nil {
		return nil, err
	}
	if mi == nil || mi.ClientID != clientID {
		return nil, fmt.Errorf("client %s: %w", clientID, store.ErrNotFound)
	}
	return &mi.Principal, nil
}

// Federate lets a caller act as a managed identity it could attach to a
// session pool: a user-assigned identity on which it holds
// Microsoft.ManagedIdentity/userAssignedIdentities/assign/action, or the
// system-assigned identity of a pool it may write. Whoever may do that
// can already run code as the identity inside a session.
func (p principals) Federate(ctx context.Context, subject *auth.Claims, target *store.Principal) error {
	if target.Kind != arm.KindManagedIdentity {
		return errors.New("only managed identities accept assertions")
	}
	mi, err := arm.FindManagedIdentity(ctx, p.st, target.ObjectID)
	if err != nil {
		return err
	}
	if mi == nil {
		return errors.New("the managed identity no longer exists")
	}
	action := model.UserAssignedIdentityType + "/assign/action"
	if id, err := model.ParseResourceID(mi.ResourceID); err == nil && strings.EqualFold(id.ResourceType(), model.SessionPoolType) {
		action = model.SessionPoolType + "/write"
	}
	ok, err := p.authz.Allowed(ctx, subject.ObjectID, mi.ResourceID, action, false)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("the subject may not perform '%s' on '%s'", action, mi.ResourceID)
	}
	return nil
}
