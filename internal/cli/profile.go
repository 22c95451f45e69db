package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// profileFile is the profile's name inside the config directory. It holds
// the login (with its client secret), the subscriptions, the defaults of
// `configure --defaults` and cached tokens, so it is written mode 0600.
const profileFile = "profile.json"

type profile struct {
	dir           string
	Login         *loginInfo             `json:"login,omitempty"`
	Subscriptions []subscriptionEntry    `json:"subscriptions,omitempty"`
	Defaults      map[string]string      `json:"defaults,omitempty"`
	Tokens        map[string]cachedToken `json:"tokens,omitempty"`
}

// loginInfo is a service principal login.
type loginInfo struct {
	Endpoint     string `json:"endpoint"`
	TenantID     string `json:"tenantId"`
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
}

type subscriptionEntry struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	State     string `json:"state"`
	TenantID  string `json:"tenantId"`
	IsDefault bool   `json:"isDefault"`
}

type cachedToken struct {
	AccessToken string    `json:"accessToken"`
	ExpiresOn   time.Time `json:"expiresOn"`
}

func loadProfile(dir string) (*profile, error) {
	p := &profile{dir: dir}
	data, err := os.ReadFile(filepath.Join(dir, profileFile))
	if errors.Is(err, os.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read profile: %w", err)
	}
	if err := json.Unmarshal(data, p); err != nil {
		return nil, fmt.Errorf("read profile %s: %w", filepath.Join(dir, profileFile), err)
	}
	return p, nil
}

// save writes the profile atomically, mode 0600, in a 0700 directory.
func (p *profile) save() error {
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return fmt.Errorf("create config dir: %w", err)
	}
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("encode profile: %w", err)
	}
	tmp, err := os.CreateTemp(p.dir, ".profile-*")
	if err != nil {
		return fmt.Errorf("write profile: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write profile: %w", err)
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write profile: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write profile: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(p.dir, profileFile)); err != nil {
		return fmt.Errorf("write profile: %w", err)
	}
	return nil
}

// subscription returns the subscription named by id or name, or the
// default one when want is empty.
func (p *profile) subscription(want string) (*subscriptionEntry, error) {
	for i := range p.Subscriptions {
		s := &p.Subscriptions[i]
		if want == "" && s.IsDefault || want != "" && (strings.EqualFold(s.ID, want) || strings.EqualFold(s.Name, want)) {
			return s, nil
		}
	}
	if want == "" {
		return nil, &cliError{msg: "No subscription found. Run 'tidepool account set' to select a subscription.", code: 1}
	}
	return nil, &cliError{msg: fmt.Sprintf("Subscription '%s' not found. Check the spelling and casing and try again.", want), code: 1}
}

// defaultValue returns a `configure --defaults` value ("group", "location").
func (p *profile) defaultValue(key string) string {
	return p.Defaults[key]
}
