package kernel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Precompiled driver. Python compiles the driver's source at every kernel
// start, 4–7 ms of the ~40 ms a kernel takes. The server, which is
// trusted, compiles it once per host interpreter (CompilePythonDriver)
// into a file sandboxes get read-only; a kernel started with
// Options.PythonBytecode loads that file instead when an interpreter of
// the same version (sys.implementation.cache_tag) made it from the same
// source (driverTag), and compiles the source otherwise: an image's other
// Python, a stale or damaged file.

// driverTag identifies the driver's source in a bytecode file's header.
var driverTag = func() string {
	sum := sha256.Sum256([]byte(pythonDriver))
	return hex.EncodeToString(sum[:8])
}()

// pythonCachedBootstrap is pythonBootstrap with a bytecode file to try
// first; its arguments are the source, the file and driverTag.
const pythonCachedBootstrap = `import sys
s,p,t=sys.argv[1:4];del sys.argv[1:4]
try:
 import marshal
 with open(p,"rb") as f:h,_,b=f.read().partition(b"\n")
 if h.decode()!=sys.implementation.cache_tag+":"+t:raise ValueError("stale")
 c=marshal.loads(b)
except Exception:
 c=compile(s,"<tidepool-driver>","exec")
exec(c)`

// compileScript writes the bytecode file of the source on stdin: a header
// line (cache tag, ":", the tag in argv[1]), then the marshalled code.
const compileScript = `import sys,marshal
c=compile(sys.stdin.read(),"<tidepool-driver>","exec")
sys.stdout.buffer.write((sys.implementation.cache_tag+":"+sys.argv[1]+"\n").encode()+marshal.dumps(c))`

// CompilePythonDriver has python compile the driver into the file dst,
// for Options.PythonBytecode. It replaces dst atomically.
func CompilePythonDriver(ctx context.Context, python, dst string) error {
	return compileDriver(ctx, python, pythonDriver, dst)
}

func compileDriver(ctx context.Context, python, source, dst string) error {
	cmd := exec.CommandContext(ctx, python, "-I", "-c", compileScript, driverTag)
	cmd.Stdin = strings.NewReader(source)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("compile the python driver with %s: %w: %s", python, err, strings.TrimSpace(stderr.String()))
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".driver-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(out); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}
