package oci

import (
	"context"

	"github.com/tidepool-dev/tidepool/internal/sandbox"
)

// ImageStore pulls and unpacks OCI images. It is implemented by the image
// cache (internal/sandbox/oci/image) and consumed here.
type ImageStore interface {
	// Pull returns the unpacked image for ref (a registry reference,
	// "oci-layout:<dir>[@digest]" or "docker-archive:<file>"), pulling it
	// with auth if it is not cached. Errors that come from the image (bad
	// reference, credentials, registry, layers) wrap sandbox.ErrImage.
	Pull(ctx context.Context, ref string, auth *sandbox.RegistryAuth) (*Image, error)
}

// Image is an unpacked image.
type Image struct {
	// RootFS is the unpacked root filesystem: a directory the store keeps
	// unchanged while any sandbox uses it (sandboxes mount it read-only as
	// the lower layer of an overlay). Under runc and crun its files must
	// be owned by the shifted ids (image uid u → host uid idBase+u, see
	// WithIDMap) or the sandbox sees them as nobody's.
	RootFS string
	// Config is the image's runtime configuration.
	Config ImageConfig
}

// ImageConfig is the part of an image's config a sandbox uses.
type ImageConfig struct {
	Entrypoint, Cmd []string
	// Env is KEY=value pairs.
	Env        []string
	WorkingDir string
	// User is "uid", "uid:gid", "name" or "name:group" (names are looked
	// up in the image's /etc/passwd and /etc/group).
	User string
}
