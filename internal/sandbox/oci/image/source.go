package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tidepool-dev/tidepool/internal/sandbox"
)

// Prefixes of references to local images.
const (
	prefixLayout  = "oci-layout:"
	prefixArchive = "docker-archive:"
)

// target is a parsed image reference.
type target struct {
	ref  string // as given
	host string // registry host, for messages; "" for local images
	// key identifies the resolution: equal keys resolve alike.
	key     string
	resolve func(ctx context.Context) (*resolved, error)
}

// resolved is a reference resolved to one image manifest.
type resolved struct {
	digest v1.Hash // of the image manifest
	src    source
}

// source yields the content of a resolved image. The Store checks the size
// and digest of everything it reads.
type source interface {
	// manifest returns the raw image manifest.
	manifest(ctx context.Context) ([]byte, error)
	// open opens a blob of the manifest (config or layer) as stored
	// (compressed).
	open(ctx context.Context, d v1.Descriptor) (io.ReadCloser, error)
}

func (s *Store) parse(ref string, auth *sandbox.RegistryAuth) (*target, error) {
	switch {
	case strings.HasPrefix(ref, prefixLayout):
		dir, tag, dgst, err := parseLayoutRef(strings.TrimPrefix(ref, prefixLayout))
		if err != nil {
			return nil, err
		}
		return &target{
			ref: ref,
			key: "layout\x00" + ref,
			resolve: func(context.Context) (*resolved, error) {
				return s.resolveLayout(dir, tag, dgst)
			},
		}, nil
	case strings.HasPrefix(ref, prefixArchive):
		file, tag, err := parseArchiveRef(strings.TrimPrefix(ref, prefixArchive))
		if err != nil {
			return nil, err
		}
		return &target{
			ref: ref,
			key: "archive\x00" + ref,
			resolve: func(context.Context) (*resolved, error) {
				return s.resolveArchive(file, tag)
			},
		}, nil
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	host := r.Context().RegistryStr()
	if s.opts.insecure[host] {
		if r, err = name.ParseReference(ref, name.Insecure); err != nil {
			return nil, err
		}
	}
	return &target{
		ref:  ref,
		host: host,
		// Callers with other credentials resolve on their own: the
		// registry checks each caller's access.
		key: "registry\x00" + r.Name() + "\x00" + credKey(auth),
		resolve: func(ctx context.Context) (*resolved, error) {
			return s.resolveRegistry(ctx, r, auth)
		},
	}, nil
}

// credKey identifies credentials in memory without holding them.
func credKey(a *sandbox.RegistryAuth) string {
	if a == nil {
		return ""
	}
	sum := sha256.Sum256([]byte(a.Username + "\x00" + a.Password + "\x00" + a.Token))
	return hex.EncodeToString(sum[:])
}

// authenticator maps pool credentials to go-containerregistry's: a
// username or password means basic auth, else a token is sent as a bearer
// token; nothing means anonymous.
func authenticator(a *sandbox.RegistryAuth) authn.Authenticator {
	switch {
	case a == nil:
		return authn.Anonymous
	case a.Username != "" || a.Password != "":
		return &authn.Basic{Username: a.Username, Password: a.Password}
	case a.Token != "":
		return &authn.Bearer{Token: a.Token}
	default:
		return authn.Anonymous
	}
}

var (
	_ source = (*registrySource)(nil)
	_ source = (*layoutSource)(nil)
	_ source = (*archiveSource)(nil)
)

// ---- registry

func (s *Store) resolveRegistry(ctx context.Context, ref name.Reference, auth *sandbox.RegistryAuth) (*resolved, error) {
	p, err := remote.NewPuller(
		remote.WithAuth(authenticator(auth)),
		remote.WithTransport(s.transport),
		remote.WithPlatform(s.opts.platform),
		remote.WithUserAgent("tidepool"),
	)
	if err != nil {
		return nil, err
	}
	repo := ref.Context()
	desc, err := p.Get(ctx, ref)
	for depth := 0; ; depth++ {
		if err != nil {
			return nil, err
		}
		kind, err := manifestKind(desc.MediaType, desc.Manifest)
		if err != nil {
			return nil, err
		}
		if kind == kindImage {
			return &resolved{digest: desc.Digest, src: &registrySource{p: p, repo: repo, raw: desc.Manifest}}, nil
		}
		if depth >= maxIndexDepth {
			return nil, fmt.Errorf("image indexes nested too deep: %w", errUnsafe)
		}
		child, err := s.pickPlatform(desc.Manifest)
		if err != nil {
			return nil, err
		}
		desc, err = p.Get(ctx, repo.Digest(child.String()))
	}
}

type registrySource struct {
	p    *remote.Puller
	repo name.Repository
	raw  []byte
}

func (r *registrySource) manifest(context.Context) ([]byte, error) { return r.raw, nil }

func (r *registrySource) open(ctx context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	l, err := r.p.Layer(ctx, r.repo.Digest(d.Digest.String()))
	if err != nil {
		return nil, err
	}
	return l.Compressed()
}

// ---- OCI image layout

// parseLayoutRef splits "<dir>[:tag|@digest]".
func parseLayoutRef(s string) (dir, tag string, dgst *v1.Hash, err error) {
	if i := strings.LastIndex(s, "@"); i >= 0 {
		h, err := v1.NewHash(s[i+1:])
		if err == nil {
			if err := checkDigest(h); err != nil {
				return "", "", nil, err
			}
			dir, dgst = s[:i], &h
		}
	}
	if dgst == nil {
		dir = s
		if i := strings.LastIndex(s, ":"); i > strings.LastIndex(s, "/") {
			dir, tag = s[:i], s[i+1:]
			if tag == "" {
				return "", "", nil, errors.New("empty tag")
			}
		}
	}
	if dir == "" {
		return "", "", nil, errors.New("missing layout directory")
	}
	return dir, tag, dgst, nil
}

func (s *Store) resolveLayout(dir, tag string, dgst *v1.Hash) (*resolved, error) {
	p, err := layout.FromPath(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no OCI image layout at %s: %w", dir, errNotFound)
	}
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(dir, "index.json"))
	if err != nil {
		return nil, err
	}
	raw, err := readLimited(f, maxManifestSize)
	f.Close()
	if err != nil {
		return nil, err
	}
	index, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}

	var desc *v1.Descriptor
	switch {
	case dgst != nil:
		for i, d := range index.Manifests {
			if d.Digest == *dgst {
				desc = &index.Manifests[i]
				break
			}
		}
		if desc == nil {
			// Any manifest in the layout's blobs, such as one platform
			// of a multi-platform image.
			desc = &v1.Descriptor{Digest: *dgst}
		}
	case tag != "":
		for i, d := range index.Manifests {
			if refName := d.Annotations["org.opencontainers.image.ref.name"]; refName == tag ||
				strings.HasSuffix(d.Annotations["io.containerd.image.name"], ":"+tag) {
				desc = &index.Manifests[i]
				break
			}
		}
		if desc == nil {
			return nil, fmt.Errorf("no image tagged %q in %s: %w", tag, dir, errNotFound)
		}
	default:
		if len(index.Manifests) != 1 {
			return nil, fmt.Errorf("the layout at %s holds %d images: name one with :tag or @digest", dir, len(index.Manifests))
		}
		desc = &index.Manifests[0]
	}

	h, mt := desc.Digest, desc.MediaType
	for depth := 0; ; depth++ {
		if err := checkDigest(h); err != nil {
			return nil, err
		}
		blob, err := p.Blob(h)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("manifest %s not in %s: %w", h, dir, errNotFound)
		}
		if err != nil {
			return nil, err
		}
		raw, err := readLimited(blob, maxManifestSize)
		blob.Close()
		if err != nil {
			return nil, err
		}
		if got := digestOf(raw); got != h {
			return nil, fmt.Errorf("manifest %s in %s has digest %s: %w", h, dir, got, errUnsafe)
		}
		kind, err := manifestKind(mt, raw)
		if err != nil {
			return nil, err
		}
		if kind == kindImage {
			return &resolved{digest: h, src: &layoutSource{p: p, raw: raw}}, nil
		}
		if depth >= maxIndexDepth {
			return nil, fmt.Errorf("image indexes nested too deep: %w", errUnsafe)
		}
		if h, err = s.pickPlatform(raw); err != nil {
			return nil, err
		}
		mt = ""
	}
}

type layoutSource struct {
	p   layout.Path
	raw []byte
}

func (l *layoutSource) manifest(context.Context) ([]byte, error) { return l.raw, nil }

func (l *layoutSource) open(ctx context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	if err := checkDigest(d.Digest); err != nil {
		return nil, err
	}
	rc, err := l.p.Blob(d.Digest)
	if err != nil {
		return nil, err
	}
	return ctxReadCloser{ctx: ctx, ReadCloser: rc}, nil
}

// ---- docker save archive

// parseArchiveRef splits "<file>[:tag]". The tag may hold colons
// ("registry:5000/repo:tag"), so the file is the shortest prefix that
// names an existing file; if none does, the whole string is the file.
func parseArchiveRef(s string) (file, tag string, err error) {
	file = s
	if fi, err := os.Stat(s); err != nil || fi.IsDir() {
		for i := 0; i < len(s); i++ {
			if s[i] != ':' {
				continue
			}
			if fi, err := os.Stat(s[:i]); err == nil && fi.Mode().IsRegular() {
				file, tag = s[:i], s[i+1:]
				break
			}
		}
	}
	if file == "" {
		return "", "", errors.New("missing archive file")
	}
	if tag != "" {
		if _, err := name.NewTag(tag); err != nil {
			return "", "", fmt.Errorf("tag %q: %w", tag, err)
		}
	}
	return file, tag, nil
}

// archiveKey identifies an archive's content well enough to remember its
// manifest digest, which takes compressing every layer to compute.
type archiveKey struct {
	file, tag   string
	size, mtime int64
	dev, ino    uint64
}

func (s *Store) resolveArchive(file, tagStr string) (*resolved, error) {
	fi, err := os.Stat(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no archive at %s: %w", file, errNotFound)
	}
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a file", file)
	}
	var tag *name.Tag
	if tagStr != "" {
		t, err := name.NewTag(tagStr)
		if err != nil {
			return nil, err
		}
		tag = &t
	}
	img, err := tarball.ImageFromPath(file, tag)
	if err != nil {
		if tag != nil && strings.Contains(err.Error(), "not found in tarball") {
			return nil, fmt.Errorf("%w: %w", errNotFound, err)
		}
		return nil, err
	}
	dev, ino := fileID(fi)
	key := archiveKey{file: file, tag: tagStr, size: fi.Size(), mtime: fi.ModTime().UnixNano(), dev: dev, ino: ino}
	s.mu.Lock()
	d, ok := s.archives[key]
	s.mu.Unlock()
	if !ok {
		if d, err = img.Digest(); err != nil {
			return nil, err
		}
		s.mu.Lock()
		s.archives[key] = d
		s.mu.Unlock()
	}
	return &resolved{digest: d, src: &archiveSource{img: img}}, nil
}

type archiveSource struct{ img v1.Image }

func (a *archiveSource) manifest(context.Context) ([]byte, error) { return a.img.RawManifest() }

func (a *archiveSource) open(ctx context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	cfg, err := a.img.ConfigName()
	if err != nil {
		return nil, err
	}
	if d.Digest == cfg {
		raw, err := a.img.RawConfigFile()
		if err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(raw)), nil
	}
	l, err := a.img.LayerByDigest(d.Digest)
	if err != nil {
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	return ctxReadCloser{ctx: ctx, ReadCloser: rc}, nil
}

// ---- manifests

type manifestType int

const (
	kindImage manifestType = iota + 1
	kindIndex
)

// manifestKind tells an image manifest from an index, by media type or,
// when that is missing or generic, by content.
func manifestKind(mt types.MediaType, raw []byte) (manifestType, error) {
	switch {
	case mt.IsIndex():
		return kindIndex, nil
	case mt.IsImage():
		return kindImage, nil
	case mt.IsSchema1():
		return 0, fmt.Errorf("unsupported Docker schema 1 manifest (%s)", mt)
	}
	var probe struct {
		MediaType types.MediaType  `json:"mediaType"`
		Manifests *json.RawMessage `json:"manifests"`
		Config    *json.RawMessage `json:"config"`
		Layers    *json.RawMessage `json:"layers"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return 0, fmt.Errorf("manifest is not JSON: %w", err)
	}
	switch {
	case probe.MediaType.IsIndex(), probe.MediaType == "" && probe.Manifests != nil:
		return kindIndex, nil
	case probe.MediaType.IsImage(), probe.MediaType == "" && probe.Config != nil && probe.Layers != nil:
		return kindImage, nil
	}
	return 0, fmt.Errorf("unsupported manifest type %q", cmpOr(probe.MediaType, mt))
}

func cmpOr(a, b types.MediaType) types.MediaType {
	if a != "" {
		return a
	}
	return b
}

// pickPlatform returns the digest of the image manifest for the Store's
// platform in an index.
func (s *Store) pickPlatform(raw []byte) (v1.Hash, error) {
	index, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return v1.Hash{}, fmt.Errorf("parse image index: %w", err)
	}
	want := s.opts.platform
	var found []string
	for _, d := range index.Manifests {
		if d.Platform == nil {
			continue
		}
		found = append(found, d.Platform.String())
		if d.Platform.OS == want.OS && d.Platform.Architecture == want.Architecture &&
			(want.Variant == "" || d.Platform.Variant == want.Variant) {
			return d.Digest, nil
		}
	}
	if len(found) == 0 && len(index.Manifests) == 1 {
		return index.Manifests[0].Digest, nil
	}
	return v1.Hash{}, fmt.Errorf("no image for platform %s (the index has %s)", want.String(), strings.Join(found, ", "))
}

// ctxReadCloser stops reading when ctx ends.
type ctxReadCloser struct {
	ctx context.Context
	io.ReadCloser
}

func (c ctxReadCloser) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.ReadCloser.Read(p)
}
