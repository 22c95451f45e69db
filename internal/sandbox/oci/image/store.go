package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"

	"github.com/tidepool-dev/tidepool/internal/sandbox"
)

// Store pulls images, caches their blobs by digest and unpacks each image
// once into a shared read-only root file system. It is safe for concurrent
// use. One Store owns its root directory: two Stores (or processes) must not
// share one.
type Store struct {
	root      string
	opts      options
	transport http.RoundTripper
	chown     bool // running as root: apply image uid/gid

	// gc is held for reading by every pull that reads or writes the cache,
	// and for writing by Remove, which deletes from it.
	gc sync.RWMutex

	resolves group[*resolved] // by target key
	fills    group[*Image]    // by manifest digest

	// mu guards archives.
	mu       sync.Mutex
	archives map[archiveKey]v1.Hash // docker-archive manifest digests

	unpacks atomic.Int64 // images unpacked, for tests
}

// Image is a pulled, unpacked image.
type Image struct {
	// Digest is the image manifest's digest ("sha256:..."). For a
	// multi-platform reference it is the digest of the chosen platform's
	// manifest, not the index's. A docker-archive has no manifest: it is
	// the digest of the manifest go-containerregistry derives for it
	// (gzip-compressed layers), the same for the same archive.
	Digest string
	// RootFS is the unpacked root file system, shared by every sandbox
	// of the image: mount it read-only (as an overlayfs lower dir) and
	// never modify it. Its path holds no ':' or ','.
	RootFS string
	Config Config
}

// Config is what the image's config says about running it.
type Config struct {
	Entrypoint, Cmd, Env []string
	WorkingDir, User     string
	// ExposedPorts, sorted, as "8080/tcp".
	ExposedPorts []string
}

// NewStore opens the image store in root (created if missing, mode 0700),
// e.g. <data-dir>/images; root may not contain ':' or ','. Temporary files that an interrupted pull or
// removal left in root are deleted.
func NewStore(root string, opts ...Option) (*Store, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	if root == "" {
		return nil, errors.New("image store: empty root")
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	if strings.ContainsAny(root, ":,") {
		// Root file systems are overlayfs lower dirs, named in mount
		// options where ':' and ',' are separators.
		return nil, fmt.Errorf("image store: root %q: ':' and ',' are not allowed", root)
	}
	s := &Store{
		root:     root,
		opts:     o,
		chown:    os.Geteuid() == 0,
		archives: map[archiveKey]v1.Hash{},
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	// Nothing in tmp is ever used again: blobs and root file systems are
	// only used once renamed into place.
	if err := os.RemoveAll(s.tmpDir()); err != nil {
		return nil, fmt.Errorf("image store: remove stale temporary files: %w", err)
	}
	for _, dir := range []string{s.tmpDir(), filepath.Join(root, "blobs", "sha256"), filepath.Join(root, "rootfs")} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	// Images may hold set-user-ID programs: no one but root may reach them
	// through the host's file system.
	for _, dir := range []string{s.tmpDir(), filepath.Join(root, "rootfs")} {
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}

	base := http.DefaultTransport
	if t, ok := remote.DefaultTransport.(*http.Transport); ok {
		base = t.Clone()
	}
	s.transport = &schemeGuard{inner: base, insecure: o.insecure}
	return s, nil
}

func (s *Store) tmpDir() string { return filepath.Join(s.root, "tmp") }

// rootfsPath is where the image with manifest digest h is unpacked. The
// name avoids ':', which overlayfs mount options cannot take unescaped.
// With an id shift, the shift is part of the name.
func (s *Store) rootfsPath(h v1.Hash) string {
	name := h.Algorithm + "-" + h.Hex
	if s.opts.idShift != 0 {
		name += "-ids" + strconv.FormatUint(uint64(s.opts.idShift), 10)
	}
	return filepath.Join(s.root, "rootfs", name)
}

// Pull resolves ref, downloads the blobs not yet cached, unpacks the image
// unless it already is, and returns it.
//
// ref is one of:
//   - a registry reference: "registry.example/repo:tag",
//     "registry.example/repo@sha256:...", "repo" (Docker Hub, :latest);
//   - "oci-layout:<dir>[:tag|@digest]": an OCI image layout on disk; the
//     tag is matched against the org.opencontainers.image.ref.name
//     annotation; without tag or digest the layout must hold one image;
//   - "docker-archive:<file>[:repo:tag]": a `docker save` tarball; without
//     a tag it must hold one image.
//
// A multi-platform image resolves to the Store's platform (WithPlatform).
// For a registry, Pull always asks the registry for the manifest with the
// caller's credentials (auth; nil for anonymous), so that access is checked
// on every pull and tags are followed; blobs already cached are never
// fetched again. Concurrent pulls share the work: one resolution per
// reference and credentials, one download and unpack per image.
//
// Errors wrap sandbox.ErrImage with a message for the pool's owner, except
// when ctx ends first: then the error wraps ctx.Err().
func (s *Store) Pull(ctx context.Context, ref string, auth *sandbox.RegistryAuth) (*Image, error) {
	start := time.Now()
	t, err := s.parse(ref, auth)
	if err != nil {
		return nil, imageErr(err, "invalid image reference %q: %v", ref, err)
	}
	r, err := s.resolves.do(ctx, t.key, t.resolve)
	if err != nil {
		return nil, classify(ctx, ref, t.host, err)
	}
	img, ok := s.cached(r.digest)
	if !ok {
		img, err = s.fills.do(ctx, r.digest.String(), func(ctx context.Context) (*Image, error) {
			return s.fill(ctx, r)
		})
		if err != nil {
			s.opts.logger.DebugContext(ctx, "image pull failed", "ref", ref, "digest", r.digest.String(), "err", err)
			return nil, classify(ctx, ref, t.host, err)
		}
	}
	s.opts.logger.DebugContext(ctx, "image pulled", "ref", ref, "digest", img.Digest, "cached", ok, "duration", time.Since(start))
	return img.clone(), nil
}

// cached returns the image with manifest digest d if it is unpacked.
func (s *Store) cached(d v1.Hash) (*Image, bool) {
	s.gc.RLock()
	defer s.gc.RUnlock()
	return s.cachedLocked(d)
}

// cachedLocked is cached with s.gc held.
func (s *Store) cachedLocked(d v1.Hash) (*Image, bool) {
	fi, err := os.Lstat(s.rootfsPath(d))
	if err != nil || !fi.IsDir() {
		return nil, false
	}
	raw, err := s.readBlob(d, maxManifestSize)
	if err != nil {
		return nil, false
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, false
	}
	cf, err := s.readConfig(m.Config)
	if err != nil {
		return nil, false
	}
	return s.image(d, cf), true
}

func (s *Store) image(d v1.Hash, cf *v1.ConfigFile) *Image {
	c := cf.Config
	ports := make([]string, 0, len(c.ExposedPorts))
	for p := range c.ExposedPorts {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	return &Image{
		Digest: d.String(),
		RootFS: s.rootfsPath(d),
		Config: Config{
			Entrypoint:   c.Entrypoint,
			Cmd:          c.Cmd,
			Env:          c.Env,
			WorkingDir:   c.WorkingDir,
			User:         c.User,
			ExposedPorts: ports,
		},
	}
}

func (img *Image) clone() *Image {
	c := *img
	c.Config.Entrypoint = slices.Clone(img.Config.Entrypoint)
	c.Config.Cmd = slices.Clone(img.Config.Cmd)
	c.Config.Env = slices.Clone(img.Config.Env)
	c.Config.ExposedPorts = slices.Clone(img.Config.ExposedPorts)
	return &c
}

func (s *Store) readConfig(d v1.Descriptor) (*v1.ConfigFile, error) {
	raw, err := s.readBlob(d.Digest, maxConfigSize)
	if err != nil {
		return nil, err
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parse image config: %w", err)
	}
	return cf, nil
}

// fill caches the blobs of r and unpacks it, unless done already.
func (s *Store) fill(ctx context.Context, r *resolved) (*Image, error) {
	s.gc.RLock()
	defer s.gc.RUnlock()
	if img, ok := s.cachedLocked(r.digest); ok {
		return img, nil // a call for the same image just finished
	}
	start := time.Now()

	raw, err := r.src.manifest(ctx)
	if err != nil {
		return nil, err
	}
	if got := digestOf(raw); got != r.digest {
		return nil, fmt.Errorf("manifest has digest %s, want %s: %w", got, r.digest, errUnsafe)
	}
	m, err := s.checkManifest(raw)
	if err != nil {
		return nil, err
	}
	if !s.hasBlob(r.digest, int64(len(raw))) {
		if err := s.writeBlob(bytes.NewReader(raw), r.digest, int64(len(raw))); err != nil {
			return nil, fmt.Errorf("cache manifest: %w", err)
		}
	}

	// The config first: it is small and says whether the image is for us.
	if err := s.fetch(ctx, r.src, m.Config); err != nil {
		return nil, fmt.Errorf("fetch config: %w", err)
	}
	cf, err := s.readConfig(m.Config)
	if err != nil {
		return nil, err
	}
	if want := s.opts.platform; cf.OS != "" && cf.Architecture != "" &&
		(cf.OS != want.OS || cf.Architecture != want.Architecture) {
		return nil, fmt.Errorf("the image is for %s/%s, not %s", cf.OS, cf.Architecture, want.String())
	}
	if len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("the config lists %d layers, the manifest %d: %w", len(cf.RootFS.DiffIDs), len(m.Layers), errUnsafe)
	}
	for _, d := range cf.RootFS.DiffIDs {
		if err := checkDigest(d); err != nil {
			return nil, err
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, l := range m.Layers {
		g.Go(func() error {
			if err := s.fetch(gctx, r.src, l); err != nil {
				return fmt.Errorf("fetch layer %s: %w", l.Digest, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	if _, err := os.Lstat(s.rootfsPath(r.digest)); err != nil {
		if err := s.unpack(ctx, r.digest, m, cf); err != nil {
			return nil, err
		}
		var size int64
		for _, l := range m.Layers {
			size += l.Size
		}
		s.opts.logger.InfoContext(ctx, "image unpacked", "digest", r.digest.String(),
			"layers", len(m.Layers), "compressed_bytes", size, "duration", time.Since(start))
	}
	return s.image(r.digest, cf), nil
}

// checkManifest parses an image manifest and refuses what the Store does
// not handle or what exceeds its limits.
func (s *Store) checkManifest(raw []byte) (*v1.Manifest, error) {
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parse manifest: %w", err)
	}
	if mt := m.Config.MediaType; mt != types.DockerConfigJSON && mt != types.OCIConfigJSON {
		return nil, fmt.Errorf("not a container image: config media type %q", mt)
	}
	if err := checkDigest(m.Config.Digest); err != nil {
		return nil, err
	}
	if m.Config.Size < 0 || m.Config.Size > maxConfigSize {
		return nil, fmt.Errorf("config of %d bytes: %w", m.Config.Size, errUnsafe)
	}
	if len(m.Layers) > maxLayers {
		return nil, fmt.Errorf("%d layers, more than %d: %w", len(m.Layers), maxLayers, errUnsafe)
	}
	var total int64
	for _, l := range m.Layers {
		if !l.MediaType.IsLayer() {
			return nil, fmt.Errorf("not a container image: layer media type %q", l.MediaType)
		}
		if err := checkDigest(l.Digest); err != nil {
			return nil, err
		}
		if l.Size < 0 || l.Size > s.opts.maxSize-total {
			return nil, fmt.Errorf("layers larger than %d bytes: %w", s.opts.maxSize, errUnsafe)
		}
		total += l.Size
	}
	return m, nil
}

// fetch caches blob d from src unless it is cached.
func (s *Store) fetch(ctx context.Context, src source, d v1.Descriptor) error {
	if s.hasBlob(d.Digest, d.Size) {
		return nil
	}
	rc, err := src.open(ctx, d)
	if err != nil {
		return err
	}
	defer rc.Close()
	return s.writeBlob(rc, d.Digest, d.Size)
}

// unpack applies the layers of an image, all cached, to a new directory
// in tmp and renames it into place once complete: a root file system in
// place is always whole.
func (s *Store) unpack(ctx context.Context, d v1.Hash, m *v1.Manifest, cf *v1.ConfigFile) (err error) {
	dir, err := os.MkdirTemp(s.tmpDir(), "unpack-"+d.Hex[:12]+"-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			if rerr := os.RemoveAll(dir); rerr != nil {
				s.opts.logger.Warn("image: cannot remove temporary directory", "dir", dir, "err", rerr)
			}
		}
	}()
	// The root of the image's file system, unless its first layer says
	// otherwise.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	u := newUnpacker(root, limits{maxSize: s.opts.maxSize, maxEntries: s.opts.maxEntries}, s.chown, s.opts.logger)
	u.idShift = int64(s.opts.idShift)
	for i, l := range m.Layers {
		if err := s.applyLayer(ctx, u, l, cf.RootFS.DiffIDs[i]); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &unpackError{layer: i + 1, err: err}
		}
	}
	if err := u.finish(); err != nil {
		return &unpackError{layer: len(m.Layers), err: err}
	}
	if err := root.Close(); err != nil {
		return err
	}
	if err := syncFS(dir); err != nil {
		return err
	}
	final := s.rootfsPath(d)
	if err := os.Rename(dir, final); err != nil {
		if fi, serr := os.Lstat(final); serr == nil && fi.IsDir() {
			// Unpacked meanwhile by another call that had given up
			// waiting; keep that one.
			return os.RemoveAll(dir)
		}
		return err
	}
	s.unpacks.Add(1)
	return syncDir(filepath.Dir(final))
}

func (s *Store) applyLayer(ctx context.Context, u *unpacker, l v1.Descriptor, diffID v1.Hash) error {
	cl, err := partial.CompressedToLayer(&cachedLayer{s: s, desc: l})
	if err != nil {
		return err
	}
	rc, err := cl.Uncompressed()
	if err != nil {
		return fmt.Errorf("decompress: %w", err)
	}
	defer rc.Close()
	return u.applyLayer(ctx, rc, diffID)
}

// cachedLayer is a layer blob in the cache, as a partial.CompressedLayer;
// partial adds decompression (gzip, zstd or none, by content).
var _ partial.CompressedLayer = (*cachedLayer)(nil)

type cachedLayer struct {
	s    *Store
	desc v1.Descriptor
}

func (c *cachedLayer) Digest() (v1.Hash, error)            { return c.desc.Digest, nil }
func (c *cachedLayer) Size() (int64, error)                { return c.desc.Size, nil }
func (c *cachedLayer) MediaType() (types.MediaType, error) { return c.desc.MediaType, nil }
func (c *cachedLayer) Compressed() (io.ReadCloser, error) {
	return os.Open(c.s.blobPath(c.desc.Digest))
}

// Remove deletes the unpacked image with manifest digest digest and every
// cached blob no other unpacked image uses. Removing an image that is not
// there is not an error. The caller must make sure no sandbox uses the
// image. Remove waits for pulls under way to finish.
func (s *Store) Remove(ctx context.Context, digest string) error {
	h, err := v1.NewHash(digest)
	if err != nil {
		return fmt.Errorf("remove image %q: %w", digest, err)
	}
	if err := checkDigest(h); err != nil {
		return fmt.Errorf("remove image %q: %w", digest, err)
	}
	s.gc.Lock()
	defer s.gc.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	final := s.rootfsPath(h)
	if _, err := os.Lstat(final); err == nil {
		// Out of sight first, so that a crash midway leaves no partial
		// root file system in place.
		trash, err := os.MkdirTemp(s.tmpDir(), "remove-")
		if err != nil {
			return fmt.Errorf("remove image %s: %w", digest, err)
		}
		if err := os.Rename(final, filepath.Join(trash, "rootfs")); err != nil {
			return fmt.Errorf("remove image %s: %w", digest, err)
		}
		if err := os.RemoveAll(trash); err != nil {
			return fmt.Errorf("remove image %s: %w", digest, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove image %s: %w", digest, err)
	}
	if err := s.collectLocked(); err != nil {
		return fmt.Errorf("remove image %s: %w", digest, err)
	}
	s.opts.logger.InfoContext(ctx, "image removed", "digest", digest)
	return nil
}

// collectLocked deletes the blobs no unpacked image refers to; s.gc is
// held for writing.
func (s *Store) collectLocked() error {
	entries, err := os.ReadDir(filepath.Join(s.root, "rootfs"))
	if err != nil {
		return err
	}
	live := map[v1.Hash]bool{}
	for _, e := range entries {
		hexPart, ok := strings.CutPrefix(e.Name(), "sha256-")
		if !ok {
			continue
		}
		hexPart, _, _ = strings.Cut(hexPart, "-") // an id shift's suffix
		h := v1.Hash{Algorithm: "sha256", Hex: hexPart}
		if checkDigest(h) != nil {
			continue
		}
		live[h] = true
		raw, err := s.readBlob(h, maxManifestSize)
		if err != nil {
			continue // a later pull fetches it again
		}
		m, err := v1.ParseManifest(bytes.NewReader(raw))
		if err != nil {
			continue
		}
		live[m.Config.Digest] = true
		for _, l := range m.Layers {
			live[l.Digest] = true
		}
	}
	blobs, err := s.listBlobs()
	if err != nil {
		return err
	}
	for _, b := range blobs {
		if !live[b] {
			if err := os.Remove(s.blobPath(b)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// schemeGuard refuses plain-HTTP requests to registries not listed as
// insecure, whatever go-containerregistry would try (it falls back to
// HTTP for loopback and private addresses) and wherever a redirect leads.
var _ http.RoundTripper = (*schemeGuard)(nil)

type schemeGuard struct {
	inner    http.RoundTripper
	insecure map[string]bool
}

func (g *schemeGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" && !g.insecure[req.URL.Host] {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, &schemeError{host: req.URL.Host}
	}
	return g.inner.RoundTrip(req)
}
