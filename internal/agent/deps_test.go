package agent_test

import (
	"go/build"
	"strings"
	"testing"
)

// TestDeps: the agent shares nothing with the server but its wire types
// (DESIGN §2); the agent, its wire types, rawio and its client import only
// the standard library and each other.
func TestDeps(t *testing.T) {
	const mod = "github.com/tidepool-dev/tidepool/"
	allowed := map[string]bool{mod + "internal/agent/wire": true, mod + "internal/agent/rawio": true}
	clientAllowed := map[string]bool{mod + "internal/agent/kernel": true}
	for _, dir := range []string{".", "wire", "client", "rawio"} {
		pkg, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range pkg.Imports {
			first, _, _ := strings.Cut(imp, "/")
			if strings.Contains(first, ".") && !allowed[imp] && !(dir == "client" && clientAllowed[imp]) {
				t.Errorf("%s imports %s", dir, imp)
			}
		}
	}
}
