package image

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Defaults for the limits on an image's unpacked content.
const (
	// DefaultMaxSize is the default limit on the uncompressed size of all
	// layers of an image together (see WithMaxSize).
	DefaultMaxSize int64 = 10 << 30 // 10 GiB
	// DefaultMaxEntries is the default limit on the number of tar entries
	// in all layers of an image together (see WithMaxEntries).
	DefaultMaxEntries = 1_000_000
)

// An Option configures a Store. Options validate their arguments; NewStore
// reports the first invalid one.
type Option func(*options) error

type options struct {
	logger     *slog.Logger
	insecure   map[string]bool
	platform   v1.Platform
	maxSize    int64
	maxEntries int64
	idShift    uint32
}

func defaultOptions() options {
	return options{
		logger:     slog.New(slog.DiscardHandler),
		insecure:   map[string]bool{},
		platform:   v1.Platform{OS: "linux", Architecture: runtime.GOARCH},
		maxSize:    DefaultMaxSize,
		maxEntries: DefaultMaxEntries,
	}
}

// WithLogger sets the logger. The default discards everything. The Store
// logs pulls (reference, digest, size, duration) and skipped tar entries;
// it never logs credentials.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("WithLogger: nil logger")
		}
		o.logger = l
		return nil
	}
}

// WithInsecureRegistries lets the Store talk plain HTTP to the given
// registries, named exactly as in image references ("host" or "host:port";
// "localhost:5000" and "127.0.0.1:5000" are different names). Use it for
// loopback test registries and trusted local mirrors only: credentials and
// images then cross the network unencrypted. By default, and for every
// registry not listed, only HTTPS is used, including for loopback and
// private (RFC 1918) addresses, and a redirect to plain HTTP is refused:
// a plain-HTTP token service or blob store that a registry points to must
// be listed too.
func WithInsecureRegistries(hosts ...string) Option {
	return func(o *options) error {
		for _, h := range hosts {
			if h == "" || strings.ContainsAny(h, "/ \t") {
				return fmt.Errorf("WithInsecureRegistries: invalid registry host %q", h)
			}
			o.insecure[h] = true
		}
		return nil
	}
}

// WithPlatform selects the image to pull from a multi-platform image
// (index), as "os/arch[/variant]", e.g. "linux/arm64". The default is
// linux/runtime.GOARCH. A single-platform image whose config names another
// platform is refused.
func WithPlatform(platform string) Option {
	return func(o *options) error {
		p, err := v1.ParsePlatform(platform)
		if err != nil {
			return fmt.Errorf("WithPlatform: %w", err)
		}
		if p.OS == "" || p.Architecture == "" {
			return fmt.Errorf("WithPlatform: %q: want os/arch[/variant]", platform)
		}
		o.platform = *p
		return nil
	}
}

// WithMaxSize bounds the uncompressed size of an image: the tar streams of
// all its layers together, and the file content written from them, may not
// exceed n bytes; nor may the compressed layers. A larger image fails to
// pull with sandbox.ErrImage. The default is DefaultMaxSize (10 GiB).
func WithMaxSize(n int64) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("WithMaxSize: %d: must be positive", n)
		}
		o.maxSize = n
		return nil
	}
}

// WithMaxEntries bounds the number of tar entries (files, directories,
// links, whiteouts, ...) in all layers of an image together. The default is
// DefaultMaxEntries (1,000,000).
func WithMaxEntries(n int) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("WithMaxEntries: %d: must be positive", n)
		}
		o.maxEntries = int64(n)
		return nil
	}
}

// WithIDShift adds base to every uid and gid an image's files are owned by
// when it is unpacked (as root). Sandboxes in a user namespace whose ids 0..n
// are host ids base..base+n see the files as the image meant them; without
// the shift they look like nobody's. Images unpacked with different shifts
// are kept apart. The default, 0, keeps the image's ids.
func WithIDShift(base uint32) Option {
	return func(o *options) error {
		o.idShift = base
		return nil
	}
}
