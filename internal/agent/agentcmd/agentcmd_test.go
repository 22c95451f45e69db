package agentcmd

import "testing"

func TestNewLogger(t *testing.T) {
	for _, tt := range []struct {
		level, format string
		ok            bool
	}{
		{"info", "text", true}, {"debug", "json", true}, {"loud", "text", false}, {"info", "xml", false},
	} {
		_, err := NewLogger(tt.level, tt.format)
		if (err == nil) != tt.ok {
			t.Errorf("NewLogger(%q, %q) error = %v, want ok=%v", tt.level, tt.format, err, tt.ok)
		}
	}
}
