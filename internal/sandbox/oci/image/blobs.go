package image

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Limits on the JSON documents of an image.
const (
	maxManifestSize = 4 << 20 // manifests and indexes
	maxConfigSize   = 8 << 20 // image configs
	maxLayers       = 1000
	maxIndexDepth   = 4 // nested indexes followed when choosing a platform
)

// checkDigest accepts only sha256 digests in canonical form, so that a
// digest is always safe to use as a file name.
func checkDigest(h v1.Hash) error {
	if h.Algorithm != "sha256" || len(h.Hex) != 64 {
		return fmt.Errorf("unsupported digest %q: want sha256: %w", h, errUnsafe)
	}
	if _, err := hex.DecodeString(h.Hex); err != nil {
		return fmt.Errorf("invalid digest %q: %w", h, errUnsafe)
	}
	return nil
}

// blobPath is where a blob is cached; the same place an OCI image layout
// rooted at s.root keeps it.
func (s *Store) blobPath(h v1.Hash) string {
	return filepath.Join(s.root, "blobs", h.Algorithm, h.Hex)
}

func (s *Store) hasBlob(h v1.Hash, size int64) bool {
	fi, err := os.Lstat(s.blobPath(h))
	return err == nil && fi.Mode().IsRegular() && fi.Size() == size
}

// writeBlob copies r into the cache as blob want of the given size. It
// writes to a temporary file, checks size and digest, syncs and renames it
// into place, so a cached blob is always complete and correct. Concurrent
// writers of one blob each write their own file; the last rename wins with
// identical content.
func (s *Store) writeBlob(r io.Reader, want v1.Hash, size int64) (err error) {
	if err := checkDigest(want); err != nil {
		return err
	}
	f, err := os.CreateTemp(s.tmpDir(), "blob-"+want.Hex[:12]+"-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	hasher := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, hasher), io.LimitReader(r, size+1))
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("blob %s: got %d bytes, want %d: %w", want, n, size, errUnsafe)
	}
	if got := hex.EncodeToString(hasher.Sum(nil)); got != want.Hex {
		return fmt.Errorf("blob %s: content has digest sha256:%s: %w", want, got, errUnsafe)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.blobPath(want)), 0o700); err != nil {
		return err
	}
	return os.Rename(f.Name(), s.blobPath(want))
}

// readBlob reads a cached blob of at most limit bytes.
func (s *Store) readBlob(h v1.Hash, limit int64) ([]byte, error) {
	if err := checkDigest(h); err != nil {
		return nil, err
	}
	f, err := os.Open(s.blobPath(h))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readLimited(f, limit)
}

func readLimited(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("document larger than %d bytes: %w", limit, errUnsafe)
	}
	return b, nil
}

func digestOf(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// listBlobs returns the digests of all cached blobs.
func (s *Store) listBlobs() ([]v1.Hash, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, "blobs", "sha256"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []v1.Hash
	for _, e := range entries {
		h := v1.Hash{Algorithm: "sha256", Hex: e.Name()}
		if checkDigest(h) == nil {
			out = append(out, h)
		}
	}
	return out, nil
}
