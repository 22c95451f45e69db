package main

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/tidepool-dev/tidepool/internal/sandbox"
	"github.com/tidepool-dev/tidepool/internal/sandbox/oci"
	"github.com/tidepool-dev/tidepool/internal/sandbox/oci/image"
)

// newRuntime builds the sandbox runtime --runtime names. "auto" is runc
// when the server runs as root and runc is installed, and no runtime
// otherwise (pools are stored but start no sandboxes, and the data plane
// answers 501); naming a runtime makes its absence an error.
func newRuntime(name, agentBin, dataDir string, log *slog.Logger) (sandbox.Runtime, error) {
	switch name {
	case "none":
		return nil, nil
	case "auto":
		if os.Geteuid() != 0 {
			log.Warn("no sandbox runtime: sandboxes need root; pools will start no sessions", "hint", "run as root, or --runtime none to silence this")
			return nil, nil
		}
		if _, err := exec.LookPath("runc"); err != nil {
			log.Warn("no sandbox runtime: runc is not installed; pools will start no sessions", "hint", "apt-get install runc")
			return nil, nil
		}
		name = "runc"
	case "runc", "crun", "runsc":
	default:
		return nil, usageError{fmt.Errorf("--runtime %q: want auto, runc, crun, runsc or none", name)}
	}
	if err := makeSearchable(dataDir); err != nil {
		return nil, err
	}
	imageOpts := []image.Option{image.WithLogger(log)}
	if name != "runsc" {
		// runc and crun run sandboxes in a user namespace whose ids start
		// at oci.DefaultIDBase on the host; gVisor maps ids itself.
		imageOpts = append(imageOpts, image.WithIDShift(oci.DefaultIDBase))
	}
	images, err := image.NewStore(filepath.Join(dataDir, "images"), imageOpts...)
	if err != nil {
		return nil, fmt.Errorf("open image store: %w", err)
	}
	if agentBin == "" {
		if agentBin, err = defaultAgentBinary(); err != nil {
			return nil, err
		}
	}
	log.Info("sandbox agent", "binary", agentBin)
	warnIfDynamic(log, agentBin)
	rt, err := oci.New(filepath.Join(dataDir, "sandboxes"), oci.WithBinary(name), oci.WithAgentBinary(agentBin),
		oci.WithImageStore(imageStore{images}), oci.WithLogger(log))
	if errors.Is(err, sandbox.ErrRuntimeMissing) {
		return nil, usageError{err}
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox runtime %s: %w", name, err)
	}
	return rt, nil
}

// imageStore adapts the image cache to what the OCI runtime consumes.
type imageStore struct{ s *image.Store }

func (a imageStore) Pull(ctx context.Context, ref string, auth *sandbox.RegistryAuth) (*oci.Image, error) {
	img, err := a.s.Pull(ctx, ref, auth)
	if err != nil {
		return nil, err
	}
	c := img.Config
	return &oci.Image{RootFS: img.RootFS, Config: oci.ImageConfig{
		Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, WorkingDir: c.WorkingDir, User: c.User,
	}}, nil
}

// makeSearchable gives the data dir o+x (never o+r): sandboxes run as
// unprivileged ids in user namespaces and must traverse it to reach their
// bundles. Its files stay 0600 and its names unlisted.
func makeSearchable(dir string) error {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if mode := fi.Mode().Perm(); mode&0o011 != 0o011 {
		if err := os.Chmod(dir, mode|0o011); err != nil {
			return fmt.Errorf("data dir %s: make it searchable for sandboxes: %w", dir, err)
		}
	}
	return nil
}

// warnIfDynamic warns when exe, which every sandbox runs as its agent,
// needs a dynamic loader: images without the host's libc cannot run it.
// `make build` links statically (CGO_ENABLED=0).
func warnIfDynamic(log *slog.Logger, exe string) {
	f, err := elf.Open(exe)
	if err != nil {
		return
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			log.Warn("the agent binary is dynamically linked: CustomContainer images without a matching libc cannot run it", "binary", exe, "hint", "build with CGO_ENABLED=0 (make build)")
			return
		}
	}
}

// defaultAgentBinary is tidepool-agent next to this binary when there is
// one (make build puts it there: it starts in a third of the time, which
// counts twice in every cold start), this binary otherwise (its `agent`
// command is the same).
func defaultAgentBinary() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find the agent binary: %w", err)
	}
	small := filepath.Join(filepath.Dir(self), "tidepool-agent")
	if fi, err := os.Stat(small); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
		return small, nil
	}
	return self, nil
}
