package main

import (
	"errors"
	"testing"
)

func TestFlagsFromEnv(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantDir  string
		wantPage string
		wantErr  bool
	}{
		{name: "env sets flag", env: map[string]string{"TIDEPOOL_DATA_DIR": "/srv/tp"}, wantDir: "/srv/tp", wantPage: "1000"},
		{name: "dashes become underscores", env: map[string]string{"TIDEPOOL_PAGE_SIZE": "7"}, wantPage: "7"},
		{name: "command line wins", env: map[string]string{"TIDEPOOL_DATA_DIR": "/env"}, args: []string{"--data-dir", "/flag"}, wantDir: "/flag", wantPage: "1000"},
		{name: "bad value is a usage error", env: map[string]string{"TIDEPOOL_PAGE_SIZE": "many"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cmd := newServeCommand()
			if err := cmd.ParseFlags(tt.args); err != nil {
				t.Fatal(err)
			}
			err := flagsFromEnv(cmd.Flags())
			if tt.wantErr {
				var ue usageError
				if !errors.As(err, &ue) {
					t.Fatalf("flagsFromEnv = %v, want a usage error", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("flagsFromEnv = %v", err)
			}
			if tt.wantDir != "" {
				if got := cmd.Flag("data-dir").Value.String(); got != tt.wantDir {
					t.Errorf("data-dir = %q, want %q", got, tt.wantDir)
				}
			}
			if got := cmd.Flag("page-size").Value.String(); got != tt.wantPage {
				t.Errorf("page-size = %q, want %q", got, tt.wantPage)
			}
		})
	}
}
