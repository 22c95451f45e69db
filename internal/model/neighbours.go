package model

import (
	"crypto/sha1"
	"encoding/hex"
	"strings"
)

// ResourceGroupType is the canonical ARM type of a resource group.
const ResourceGroupType = "Microsoft.Resources/resourceGroups"

// ResourceGroup is a Microsoft.Resources/resourceGroups resource.
type ResourceGroup struct {
	ID         string                   `json:"id,omitempty"`
	Name       string                   `json:"name,omitempty"`
	Type       string                   `json:"type,omitempty"`
	Location   string                   `json:"location,omitempty"`
	ManagedBy  string                   `json:"managedBy,omitempty"`
	Tags       map[string]string        `json:"tags,omitempty"`
	Properties *ResourceGroupProperties `json:"properties,omitempty"`
}

// ResourceGroupProperties holds a resource group's provisioning state.
type ResourceGroupProperties struct {
	ProvisioningState string `json:"provisioningState,omitempty"`
}

// DecodeResourceGroup decodes a resource group PUT or PATCH body.
func DecodeResourceGroup(data []byte) (*ResourceGroup, error) {
	var g ResourceGroup
	if err := decodeJSON(data, &g); err != nil {
		return nil, err
	}
	return &g, nil
}

// ManagedEnvironmentType is the canonical ARM type of a managed environment.
const ManagedEnvironmentType = "Microsoft.App/managedEnvironments"

// ManagedEnvironment is a Microsoft.App/managedEnvironments resource. Tidepool
// needs only its existence (CustomContainer pools name one); its other
// properties are kept as given and echoed.
type ManagedEnvironment struct {
	ID         string            `json:"id,omitempty"`
	Name       string            `json:"name,omitempty"`
	Type       string            `json:"type,omitempty"`
	Location   string            `json:"location,omitempty"`
	Tags       map[string]string `json:"tags,omitempty"`
	SystemData *SystemData       `json:"systemData,omitempty"`
	Properties map[string]any    `json:"properties,omitempty"`
}

// DecodeManagedEnvironment decodes a managed environment PUT body.
func DecodeManagedEnvironment(data []byte) (*ManagedEnvironment, error) {
	var e ManagedEnvironment
	if err := decodeJSON(data, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// UserAssignedIdentityType is the canonical ARM type of a user-assigned
// managed identity.
const UserAssignedIdentityType = "Microsoft.ManagedIdentity/userAssignedIdentities"

// ManagedIdentity is a Microsoft.ManagedIdentity/userAssignedIdentities
// resource: a principal that sessions and image pulls act as.
type ManagedIdentity struct {
	ID         string                     `json:"id,omitempty"`
	Name       string                     `json:"name,omitempty"`
	Type       string                     `json:"type,omitempty"`
	Location   string                     `json:"location,omitempty"`
	Tags       map[string]string          `json:"tags,omitempty"`
	SystemData *SystemData                `json:"systemData,omitempty"`
	Properties *ManagedIdentityProperties `json:"properties,omitempty"`
}

// ManagedIdentityProperties are the ids of a managed identity, all set by
// the server.
type ManagedIdentityProperties struct {
	TenantID    string `json:"tenantId,omitempty"`
	PrincipalID string `json:"principalId,omitempty"`
	ClientID    string `json:"clientId,omitempty"`
}

// DecodeManagedIdentity decodes a managed identity PUT or PATCH body.
func DecodeManagedIdentity(data []byte) (*ManagedIdentity, error) {
	var m ManagedIdentity
	if err := decodeJSON(data, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// SystemIdentityClientID derives the client id of a pool's system-assigned
// identity from its principal id: stable, and distinct from any random id.
// (The pool's body holds only the principal id.)
func SystemIdentityClientID(principalID string) string {
	// A name-based (version 5) UUID in the OID namespace, RFC 9562 §5.5.
	ns := [16]byte{0x6b, 0xa7, 0xb8, 0x12, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}
	h := sha1.New()
	h.Write(ns[:])
	h.Write([]byte("tidepool-system-identity:" + strings.ToLower(principalID)))
	b := h.Sum(nil)[:16]
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	x := hex.EncodeToString(b)
	return x[:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:]
}
