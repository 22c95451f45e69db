package sandboxtest

import (
	"os"
	"testing"

	"github.com/tidepool-dev/tidepool/internal/sandbox"
)

func TestFakeConforms(t *testing.T) {
	RuntimeSuite(t, func(t *testing.T) sandbox.Runtime {
		dir, err := os.MkdirTemp("", "fake")
		if err != nil {
			t.Fatal(err)
		}
		f := NewFake(dir)
		t.Cleanup(func() {
			if err := f.Close(); err != nil {
				t.Error(err)
			}
			os.RemoveAll(dir)
		})
		return f
	})
}
