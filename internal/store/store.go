// Package store persists what users create: ARM resources, long-running
// operations, principals and server settings.
//
// The Store interface keeps SQL out of the API handlers and lets a
// Kubernetes-backed store take over in cluster mode. The embedded
// implementation is SQLite (see OpenSQLite).
//
// Every write is durable when the call returns: an acknowledged write
// survives a kill -9 of the server.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrNotFound: no record with that key.
	ErrNotFound = errors.New("not found")
	// ErrExists: a create found a record already there.
	ErrExists = errors.New("already exists")
	// ErrConflict: an update or delete named a version that is no longer current.
	ErrConflict = errors.New("version conflict")
)

// Resource is one ARM resource. Keys compare case-insensitively, as ARM
// names do; the stored ID keeps the casing the user gave last.
type Resource struct {
	// ID is the full ARM id, for example
	// /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.App/sessionPools/{n}.
	ID string
	// Type is the canonical resource type, for example "Microsoft.App/sessionPools".
	Type string
	// Scope is the id of the parent a list query names: the resource group id
	// for resources in a group, the subscription id for resource groups.
	Scope string
	// Body is the resource's JSON in the internal (superset) model.
	Body []byte
	// Version is the optimistic-concurrency version. Put with Version 0
	// creates; Put or Delete with Version n succeeds only if the stored
	// version is n. The store sets it to the new version on success.
	Version int64
	// Created and Updated are set by the store.
	Created time.Time
	Updated time.Time
}

// ListOptions selects resources for List.
type ListOptions struct {
	// Type selects one resource type (case-insensitive); "" selects all.
	Type string
	// Scope, when set, selects resources whose Scope equals it, or, with
	// Recursive, whose Scope equals it or lies below it (case-insensitive
	// prefix on a path boundary).
	Scope     string
	Recursive bool
	// After continues a listing after this key (an opaque token returned
	// as ListResult.Next).
	After string
	// Limit caps the page size; 0 means no cap.
	Limit int
}

// ListResult is one page of a listing, ordered by key.
type ListResult struct {
	Items []Resource
	// Next is the token for the following page, or "" when this is the last.
	Next string
}

// OperationStatus values follow ARM's terminal states.
const (
	OperationInProgress = "InProgress"
	OperationSucceeded  = "Succeeded"
	OperationFailed     = "Failed"
	OperationCanceled   = "Canceled"
)

// Operation is a long-running operation that a client polls.
type Operation struct {
	ID         string // opaque, URL-safe
	Kind       string // "put", "patch", "delete"
	ResourceID string // the resource the operation acts on
	Status     string // one of the Operation* constants
	ErrorCode  string // set when Failed or Canceled
	ErrorMsg   string
	Started    time.Time
	Ended      time.Time // zero while in progress
}

// Principal is an identity that can obtain tokens (service principals now;
// users and managed identities later).
type Principal struct {
	ObjectID    string
	ClientID    string // unique
	DisplayName string
	Kind        string // "ServicePrincipal", ...
	// Secrets holds hashes only; secret values are never stored.
	Secrets []Secret
	Created time.Time
}

// Secret is one client secret of a principal, stored hashed.
type Secret struct {
	ID      string
	Hash    string // self-describing hash, e.g. "sha256$<salt>$<hex>"
	Hint    string // first characters of the secret, for display
	Expires time.Time
}

// Store is the persistence interface.
type Store interface {
	GetResource(ctx context.Context, id string) (*Resource, error)
	// PutResource creates (r.Version == 0) or updates (r.Version == current)
	// a resource and sets r.Version, r.Created and r.Updated.
	PutResource(ctx context.Context, r *Resource) error
	// DeleteResource deletes a resource at the given version (0: any).
	DeleteResource(ctx context.Context, id string, version int64) error
	ListResources(ctx context.Context, opts ListOptions) (ListResult, error)

	PutOperation(ctx context.Context, op *Operation) error
	GetOperation(ctx context.Context, id string) (*Operation, error)
	// ListOperations returns operations with the given status, oldest
	// first; with resourceID, only those on that resource (case-insensitive).
	ListOperations(ctx context.Context, status, resourceID string) ([]Operation, error)

	PutPrincipal(ctx context.Context, p *Principal) error
	GetPrincipal(ctx context.Context, objectID string) (*Principal, error)
	GetPrincipalByClientID(ctx context.Context, clientID string) (*Principal, error)
	ListPrincipals(ctx context.Context) ([]Principal, error)
	// DeletePrincipal deletes a principal (ErrNotFound when there is none).
	DeletePrincipal(ctx context.Context, objectID string) error

	// Setting and SetSettingIfAbsent hold server-wide values (tenant id,
	// signing key, ...). SetSettingIfAbsent returns the value that is stored
	// after the call: the given one, or the one that was there first.
	Setting(ctx context.Context, key string) (string, error)
	SetSettingIfAbsent(ctx context.Context, key, value string) (string, error)

	// Ping reports whether the store can serve (for /readyz).
	Ping(ctx context.Context) error
	Close() error
}
