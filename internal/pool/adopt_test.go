package pool

import (
	"testing"

	"github.com/tidepool-dev/tidepool/internal/agent/wire"
)

func TestAdoptable(t *testing.T) {
	for _, tt := range []struct {
		h    wire.Health
		keep bool
	}{
		{wire.Health{Version: wire.Version}, true},
		{wire.Health{Version: wire.Version, Identifier: "s"}, true},
		{wire.Health{Version: "0"}, false},                 // warm, old: replaced
		{wire.Health{Version: "0", Identifier: "s"}, true}, // claimed, old: kept
	} {
		if err := adoptable(&tt.h); (err == nil) != tt.keep {
			t.Errorf("adoptable(%+v) = %v, want keep=%v", tt.h, err, tt.keep)
		}
	}
}
