// Package mcpkeys keeps the API keys of session pools' MCP servers.
//
// A pool has at most one key. The management API hands it out
// (fetchMcpServerCredentials, which returns the same key every time, and
// rotateMcpServerCredentials, which replaces it); the data plane checks the
// x-ms-apikey header of MCP requests against it.
//
// A key is stored twice, never in the clear: as a salted SHA-256 hash
// (auth.HashSecret), which is all a check reads, and sealed with AES-256-GCM
// under a server key kept in the store's settings, so that fetch can return
// it again. The record is a private store resource (RecordType) scoped to
// the pool, so a resource group's deletion takes it along; it also names the
// creation time of the pool it belongs to, so a pool deleted and created
// again under the same name never inherits the old key.
package mcpkeys

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tidepool-dev/tidepool/internal/auth"
	"github.com/tidepool-dev/tidepool/internal/model"
	"github.com/tidepool-dev/tidepool/internal/store"
)

// RecordType is the store type of key records: private to tidepool,
// invisible to ARM (whose lists select their own types).
const RecordType = "Tidepool/mcpServerCredentials"

// settingSealingKey names the store setting that holds the AES-256 key
// sealing the pools' MCP keys (32 bytes, unpadded URL-safe base64).
const settingSealingKey = "mcp_key_sealing_key"

// ErrPoolNotFound: the pool the call names does not exist.
var ErrPoolNotFound = errors.New("session pool not found")

// Keys reads and writes MCP keys in a store. The zero value is not usable;
// call New. Keys holds no state of its own, so any number of them may use
// the same store at once.
type Keys struct {
	st store.Store
}

// New returns Keys kept in st.
func New(st store.Store) *Keys { return &Keys{st: st} }

// record is the stored form of a pool's key.
type record struct {
	// Hash is auth.HashSecret of the key.
	Hash string `json:"hash"`
	// Sealed is nonce || AES-GCM ciphertext of the key, unpadded URL-safe
	// base64, with the pool id as additional data.
	Sealed string `json:"sealed"`
	// PoolCreated is the store creation time (Unix nanoseconds) of the
	// pool the key belongs to.
	PoolCreated int64     `json:"poolCreated"`
	Created     time.Time `json:"created"`
}

// RecordID is the store id of pool poolID's key record.
func RecordID(poolID string) string { return poolID + "/mcpServerCredentials/default" }

// maxAttempts bounds the retries of a write that lost a race.
const maxAttempts = 5

// Fetch returns the pool's key, creating one when the pool has none yet.
// It returns the same key until Rotate replaces it.
func (k *Keys) Fetch(ctx context.Context, poolID string) (string, error) {
	for range maxAttempts {
		created, err := k.poolCreated(ctx, poolID)
		if err != nil {
			return "", err
		}
		res, rec, err := k.load(ctx, poolID)
		if err != nil {
			return "", err
		}
		if rec != nil && rec.PoolCreated == created {
			return k.open(ctx, poolID, rec)
		}
		key, err := k.write(ctx, poolID, created, res)
		if isRace(err) {
			continue // someone else wrote first: read theirs
		}
		return key, err
	}
	return "", fmt.Errorf("fetch MCP key of %s: too many concurrent writers", poolID)
}

// Rotate replaces the pool's key with a new one and returns it. The old
// key stops working at once.
func (k *Keys) Rotate(ctx context.Context, poolID string) (string, error) {
	for range maxAttempts {
		created, err := k.poolCreated(ctx, poolID)
		if err != nil {
			return "", err
		}
		res, _, err := k.load(ctx, poolID)
		if err != nil {
			return "", err
		}
		key, err := k.write(ctx, poolID, created, res)
		if isRace(err) {
			continue
		}
		return key, err
	}
	return "", fmt.Errorf("rotate MCP key of %s: too many concurrent writers", poolID)
}

// Delete removes the pool's key, if any.
func (k *Keys) Delete(ctx context.Context, poolID string) error {
	err := k.st.DeleteResource(ctx, RecordID(poolID), 0)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("delete MCP key of %s: %w", poolID, err)
	}
	return nil
}

// Check reports whether key is the current API key of the pool's MCP
// server: the pool exists, is not being deleted, has its MCP server
// enabled and API keys not disabled, and key matches the stored hash
// (compared in constant time). It reads the store on every call, so a
// rotation or a configuration change applies to the next request.
func (k *Keys) Check(ctx context.Context, poolID, key string) (bool, error) {
	if key == "" {
		return false, nil
	}
	res, err := k.st.GetResource(ctx, poolID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check MCP key: %w", err)
	}
	if !strings.EqualFold(res.Type, model.SessionPoolType) {
		return false, nil
	}
	var p model.SessionPool
	if err := json.Unmarshal(res.Body, &p); err != nil {
		return false, fmt.Errorf("check MCP key: decode pool: %w", err)
	}
	if p.Properties == nil || p.Properties.ProvisioningState == model.StateDeleting || !KeysAccepted(p.Properties.McpServerSettings) {
		return false, nil
	}
	_, rec, err := k.load(ctx, poolID)
	if err != nil || rec == nil || rec.PoolCreated != res.Created.UnixNano() {
		return false, err
	}
	return auth.CheckSecret(rec.Hash, key), nil
}

// Enabled reports whether m turns the pool's MCP server on.
func Enabled(m *model.McpServerSettings) bool {
	return m != nil && m.IsMcpServerEnabled != nil && *m.IsMcpServerEnabled
}

// KeysAccepted reports whether the pool's MCP server is on and accepts
// API keys (isMcpServerApiKeyDisabled is not true).
func KeysAccepted(m *model.McpServerSettings) bool {
	return Enabled(m) && (m.IsMcpServerAPIKeyDisabled == nil || !*m.IsMcpServerAPIKeyDisabled)
}

// poolCreated returns the store creation time of the pool.
func (k *Keys) poolCreated(ctx context.Context, poolID string) (int64, error) {
	res, err := k.st.GetResource(ctx, poolID)
	if errors.Is(err, store.ErrNotFound) || err == nil && !strings.EqualFold(res.Type, model.SessionPoolType) {
		return 0, fmt.Errorf("%s: %w", poolID, ErrPoolNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("get pool %s: %w", poolID, err)
	}
	return res.Created.UnixNano(), nil
}

// load returns the stored record and its resource; both nil when there is
// none.
func (k *Keys) load(ctx context.Context, poolID string) (*store.Resource, *record, error) {
	res, err := k.st.GetResource(ctx, RecordID(poolID))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("get MCP key of %s: %w", poolID, err)
	}
	var rec record
	if err := json.Unmarshal(res.Body, &rec); err != nil {
		return nil, nil, fmt.Errorf("decode MCP key of %s: %w", poolID, err)
	}
	return res, &rec, nil
}

// write stores a new key for the pool in place of cur (nil: none) and
// returns it.
func (k *Keys) write(ctx context.Context, poolID string, poolCreated int64, cur *store.Resource) (string, error) {
	aead, err := k.aead(ctx)
	if err != nil {
		return "", err
	}
	key := auth.NewSecret()
	rec := record{
		Hash:        auth.HashSecret(key),
		Sealed:      seal(aead, poolID, key),
		PoolCreated: poolCreated,
		Created:     time.Now().UTC(),
	}
	body, err := json.Marshal(rec)
	if err != nil {
		return "", fmt.Errorf("encode MCP key of %s: %w", poolID, err)
	}
	res := &store.Resource{ID: RecordID(poolID), Type: RecordType, Scope: poolID, Body: body}
	if cur != nil {
		res.Version = cur.Version
	}
	if err := k.st.PutResource(ctx, res); err != nil {
		return "", fmt.Errorf("store MCP key of %s: %w", poolID, err)
	}
	return key, nil
}

// open unseals rec's key.
func (k *Keys) open(ctx context.Context, poolID string, rec *record) (string, error) {
	aead, err := k.aead(ctx)
	if err != nil {
		return "", err
	}
	key, err := unseal(aead, poolID, rec.Sealed)
	if err != nil {
		return "", fmt.Errorf("open MCP key of %s (rotate it to replace it): %w", poolID, err)
	}
	return key, nil
}

func isRace(err error) bool {
	return errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound)
}

// aead returns the cipher sealing keys, creating the server's sealing key
// on first use.
func (k *Keys) aead(ctx context.Context) (cipher.AEAD, error) {
	v, err := k.st.Setting(ctx, settingSealingKey)
	if errors.Is(err, store.ErrNotFound) {
		b := make([]byte, 32)
		rand.Read(b)
		v, err = k.st.SetSettingIfAbsent(ctx, settingSealingKey, base64.RawURLEncoding.EncodeToString(b))
	}
	if err != nil {
		return nil, fmt.Errorf("MCP key sealing key: %w", err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(raw) != 32 {
		return nil, errors.New("MCP key sealing key: the stored setting is not 32 bytes of base64")
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, fmt.Errorf("MCP key sealing key: %w", err)
	}
	return cipher.NewGCM(block)
}

// additionalData binds a sealed key to its pool: a sealed value copied to
// another pool's record does not open.
func additionalData(poolID string) []byte {
	return []byte("tidepool mcp key\x00" + strings.ToLower(poolID))
}

func seal(aead cipher.AEAD, poolID, key string) string {
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	out := aead.Seal(nonce, nonce, []byte(key), additionalData(poolID))
	return base64.RawURLEncoding.EncodeToString(out)
}

func unseal(aead cipher.AEAD, poolID, sealed string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(raw) < aead.NonceSize() {
		return "", errors.New("sealed key is malformed")
	}
	n := aead.NonceSize()
	plain, err := aead.Open(nil, raw[:n], raw[n:], additionalData(poolID))
	if err != nil {
		return "", errors.New("sealed key does not open with the server's sealing key")
	}
	return string(plain), nil
}
