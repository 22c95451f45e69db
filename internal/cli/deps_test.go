package cli

import (
	"go/build"
	"strings"
	"testing"
)

// TestDeps: the CLI is a client. It speaks to the server only over HTTP
// and imports no tidepool package (its tests start a server in process).
func TestDeps(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range pkg.Imports {
		if strings.HasPrefix(imp, "github.com/tidepool-dev/tidepool/") {
			t.Errorf("internal/cli imports %s", imp)
		}
	}
}
