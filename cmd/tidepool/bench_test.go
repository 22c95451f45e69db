package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteAddressFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "address.json")
	want := serveAddress{Endpoint: "http://127.0.0.1:41234", Metrics: "http://127.0.0.1:41235/metrics", Credentials: "/d/admin-credentials.json"}
	if err := writeAddressFile(path, want); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got serveAddress
	if err := json.Unmarshal(data, &got); err != nil || got != want {
		t.Fatalf("address file %s: %+v, %v", data, got, err)
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left: %v", err)
	}
}

func TestBenchUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"endpoint without credentials", []string{"--endpoint", "http://127.0.0.1:1"}},
		{"unreadable credentials", []string{"--endpoint", "http://127.0.0.1:1", "--credentials-file", "/nonexistent/creds.json"}},
		{"unknown flag", []string{"--no-such-flag"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := newRootCommand()
			root.SetArgs(append([]string{"bench", "--out", ""}, tt.args...))
			root.SetOut(new(discard))
			root.SetErr(new(discard))
			err := root.Execute()
			if !errors.As(err, new(usageError)) {
				t.Fatalf("bench %v = %v, want a usage error", tt.args, err)
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
