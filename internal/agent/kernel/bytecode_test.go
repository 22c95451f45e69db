package kernel

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidepool-dev/tidepool/internal/agent/wire"
)

// TestPythonBytecode: a kernel loads the driver from a bytecode file made
// by the same interpreter from the same source, and compiles the source
// when the file does not fit (another version or source, garbage, none).
func TestPythonBytecode(t *testing.T) {
	ctx := context.Background()
	python := interpreter(t, wire.LangPython)
	dir := t.TempDir()

	// A driver that marks its kernels, so that a test can tell which ran.
	marked := strings.Replace(pythonDriver, `sys.argv = [""]`, `sys.argv = [""]; os.environ["TIDEPOOL_TEST_CACHED"] = "yes"`, 1)
	if marked == pythonDriver {
		t.Fatal("the driver no longer sets sys.argv; update the test's marker")
	}
	good := filepath.Join(dir, "good")
	if err := compileDriver(ctx, python, marked, good); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	header, code, _ := strings.Cut(string(data), "\n")
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tag, _, _ := strings.Cut(header, ":")
	tests := []struct {
		name, file string
		cached     bool
	}{
		{"made by this interpreter from this source", good, true},
		{"another interpreter", write("other-version", "cpython-10:"+driverTag+"\n"+code), false},
		{"another source", write("other-source", tag+":0000000000000000\n"+code), false},
		{"garbage", write("garbage", tag+":"+driverTag+"\nnot marshal data"), false},
		{"missing", filepath.Join(dir, "missing"), false},
	}
	for _, tt := range tests {
		m := newManager(t, Options{PythonBytecode: tt.file})
		res, err := m.Execute(ctx, wire.LangPython, wire.ExecuteRequest{Code: `import os; os.environ.get("TIDEPOOL_TEST_CACHED", "no")`})
		if err != nil || res.Status != wire.StatusSucceeded || res.Result == nil {
			t.Fatalf("%s: Execute = %+v, %v", tt.name, res, err)
		}
		want := "'no'"
		if tt.cached {
			want = "'yes'"
		}
		if res.Result.Repr != want {
			t.Errorf("%s: the kernel's driver came from the bytecode file: %s, want %s", tt.name, res.Result.Repr, want)
		}
		// Errors are reported as always: the driver's frames stay out.
		res, err = m.Execute(ctx, wire.LangPython, wire.ExecuteRequest{Code: "1/0"})
		if err != nil || res.Error == nil || strings.Contains(res.Error.Traceback, "tidepool-driver") {
			t.Errorf("%s: 1/0 = %+v, %v", tt.name, res.Error, err)
		}
		m.Close()
	}
	// The real driver compiles too.
	if err := CompilePythonDriver(ctx, python, filepath.Join(dir, "driver")); err != nil {
		t.Fatal(err)
	}
}
