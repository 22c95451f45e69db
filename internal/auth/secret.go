package auth

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strconv"
	"strings"
)

// NewSecret returns a new client secret: 32 random bytes as 43 characters of
// URL-safe base64, close to the length of an Entra secret.
func NewSecret() string {
	return base64.RawURLEncoding.EncodeToString(randomBytes(32))
}

// HashSecret returns a salted hash of secret in the self-describing form
// "sha256$<salt>$<hash>", both parts unpadded URL-safe base64.
//
// A single SHA-256 is enough because a client secret is not a password: it
// holds 256 random bits, so no guessing attack, however fast the hash, can
// find it, and a deliberately slow hash (bcrypt, argon2) would only slow every
// token request. The salt keeps equal secrets from having equal hashes.
func HashSecret(secret string) string {
	salt := randomBytes(16)
	enc := base64.RawURLEncoding
	return "sha256$" + enc.EncodeToString(salt) + "$" + enc.EncodeToString(saltedSum(salt, secret))
}

// CheckSecret reports whether secret matches hash, a value from
// [HashSecret]. It compares in constant time and returns false for a hash it
// cannot parse.
func CheckSecret(hash, secret string) bool {
	if strings.HasPrefix(hash, passwordAlg+"$") {
		return checkPassword(hash, secret)
	}
	alg, rest, ok1 := strings.Cut(hash, "$")
	salt64, sum64, ok2 := strings.Cut(rest, "$")
	if !ok1 || !ok2 || alg != "sha256" {
		return false
	}
	enc := base64.RawURLEncoding
	salt, err1 := enc.DecodeString(salt64)
	sum, err2 := enc.DecodeString(sum64)
	if err1 != nil || err2 != nil {
		return false
	}
	return subtle.ConstantTimeCompare(saltedSum(salt, secret), sum) == 1
}

func saltedSum(salt []byte, secret string) []byte {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(secret))
	return h.Sum(nil)
}

// randomBytes returns n bytes from crypto/rand, which never fails.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// Passwords, unlike client secrets, are chosen by people and guessable:
// they get a deliberately slow hash, PBKDF2-HMAC-SHA256 at OWASP's
// recommended work factor.
const (
	passwordAlg        = "pbkdf2-sha256"
	passwordIterations = 600_000
)

// HashPassword returns a salted, slow hash of a user's password in the
// self-describing form "pbkdf2-sha256$<iterations>$<salt>$<hash>";
// CheckSecret verifies it.
func HashPassword(password string) string {
	salt := randomBytes(16)
	sum, _ := pbkdf2.Key(sha256.New, password, salt, passwordIterations, 32) // fails only for FIPS-forbidden parameters
	enc := base64.RawURLEncoding
	return passwordAlg + "$" + strconv.Itoa(passwordIterations) + "$" + enc.EncodeToString(salt) + "$" + enc.EncodeToString(sum)
}

func checkPassword(hash, password string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 4 {
		return false
	}
	iter, err := strconv.Atoi(parts[1])
	if err != nil || iter < 1 || iter > 10_000_000 {
		return false
	}
	enc := base64.RawURLEncoding
	salt, err1 := enc.DecodeString(parts[2])
	want, err2 := enc.DecodeString(parts[3])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got, err := pbkdf2.Key(sha256.New, password, salt, iter, len(want))
	return err == nil && subtle.ConstantTimeCompare(got, want) == 1
}
