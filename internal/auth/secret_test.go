package auth

import (
	"strings"
	"testing"
)

func TestSecrets(t *testing.T) {
	s := NewSecret()
	if len(s) < 40 || strings.ContainsAny(s, "+/=") {
		t.Errorf("NewSecret() = %q, want ≥ 40 URL-safe characters", s)
	}
	if NewSecret() == s {
		t.Error("NewSecret repeated itself")
	}
	h := HashSecret(s)
	if !strings.HasPrefix(h, "sha256$") || strings.Contains(h, s) {
		t.Errorf("HashSecret = %q", h)
	}
	if HashSecret(s) == h {
		t.Error("HashSecret is unsalted")
	}
	tests := []struct {
		name, hash, secret string
		want               bool
	}{
		{"match", h, s, true},
		{"other secret", h, s + "x", false},
		{"empty secret", h, "", false},
		{"empty hash", "", s, false},
		{"unknown algorithm", "md5" + strings.TrimPrefix(h, "sha256"), s, false},
		{"bad base64", "sha256$!!$!!", s, false},
		{"truncated", h[:len(h)-2], s, false},
	}
	for _, tt := range tests {
		if got := CheckSecret(tt.hash, tt.secret); got != tt.want {
			t.Errorf("%s: CheckSecret = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestKeyRoundTrip(t *testing.T) {
	pemText, err := MarshalKey(testKey)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseKey(pemText)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Equal(testKey) {
		t.Error("ParseKey(MarshalKey(k)) != k")
	}
	for _, bad := range []string{"", "not pem", strings.Replace(pemText, "PRIVATE KEY", "PUBLIC KEY", 2)} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%.20q) succeeded", bad)
		}
	}
}

func TestHashPassword(t *testing.T) {
	h := HashPassword("correct horse battery staple")
	if !strings.HasPrefix(h, "pbkdf2-sha256$600000$") {
		t.Fatalf("hash %q is not self-describing PBKDF2", h)
	}
	if !CheckSecret(h, "correct horse battery staple") {
		t.Error("the password does not match its hash")
	}
	for _, wrong := range []string{"", "correct horse battery stapl", "Correct horse battery staple"} {
		if CheckSecret(h, wrong) {
			t.Errorf("%q matches", wrong)
		}
	}
	for _, bad := range []string{"pbkdf2-sha256$x$a$b", "pbkdf2-sha256$0$AAAA$AAAA", "pbkdf2-sha256$99999999999$AAAA$AAAA", "pbkdf2-sha256$1$!!$AAAA"} {
		if CheckSecret(bad, "x") {
			t.Errorf("malformed hash %q matched", bad)
		}
	}
}
