package kernel

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDependencies: the kernel package runs inside sandboxes as part of
// the agent; it imports the standard library, the agent's wire types and
// rawio, nothing of the server (DESIGN §2).
func TestDependencies(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{
		"github.com/tidepool-dev/tidepool/internal/agent/wire":  true,
		"github.com/tidepool-dev/tidepool/internal/agent/rawio": true,
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(path, "/")
			if strings.Contains(first, ".") && !allowed[path] {
				t.Errorf("%s imports %q; the kernel package may import only the standard library, agent/wire and agent/rawio", name, path)
			}
		}
	}
}
