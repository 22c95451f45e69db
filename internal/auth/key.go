package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
)

// GenerateKey returns a new P-256 key for signing tokens.
func GenerateKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// MarshalKey encodes key as a PKCS #8 PEM block, for keeping it in the
// server's settings.
func MarshalKey(key *ecdsa.PrivateKey) (string, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", fmt.Errorf("marshal key: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), nil
}

// ParseKey decodes a key written by [MarshalKey]. It accepts only P-256
// keys, the curve ES256 requires.
func ParseKey(s string) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("parse key: no PEM PRIVATE KEY block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse key: %w", err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		return nil, errors.New("parse key: not an ECDSA P-256 key")
	}
	return key, nil
}

// jwk is the JSON Web Key form of a P-256 public key (RFC 7517, RFC 7518 §6.2).
type jwk struct {
	Kty string `json:"kty"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// publicJWK returns the JWK of pub. The kid is left empty.
func publicJWK(pub *ecdsa.PublicKey) (jwk, error) {
	if pub.Curve != elliptic.P256() {
		return jwk{}, errors.New("key is not on curve P-256")
	}
	// Uncompressed point: 0x04 || X || Y, each coordinate 32 bytes big-endian.
	b, err := pub.Bytes()
	if err != nil {
		return jwk{}, err
	}
	enc := base64.RawURLEncoding
	return jwk{
		Kty: "EC",
		Use: "sig",
		Crv: "P-256",
		Alg: "ES256",
		X:   enc.EncodeToString(b[1:33]),
		Y:   enc.EncodeToString(b[33:]),
	}, nil
}

// thumbprint returns the RFC 7638 JWK thumbprint of k: the SHA-256 of its
// required members in lexicographic order, without whitespace.
func (k jwk) thumbprint() string {
	sum := sha256.Sum256([]byte(`{"crv":"` + k.Crv + `","kty":"` + k.Kty + `","x":"` + k.X + `","y":"` + k.Y + `"}`))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
