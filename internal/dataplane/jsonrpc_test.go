package dataplane

import (
	"encoding/json"
	"testing"
)

// FuzzParseRPC: whatever the body, parseRPC does not panic, and what it
// returns keeps JSON-RPC's rules: one answer for an unusable body, and per
// message a request with a string or number id (or none), an error answer
// with a valid or null id, or nothing (a response the client sent).
func FuzzParseRPC(f *testing.F) {
	for _, s := range []string{
		`{ "jsonrpc": "2.0", "id": "1", "method": "initialize" }`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"launchShell","arguments":{}}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":1,"result":{}}`,
		`[{"jsonrpc":"2.0","id":1,"method":"ping"},{"bad":1},7]`,
		`[]`, `[`, `{`, `null`, `"x"`, `{"jsonrpc":"2.0","id":null,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":1e400,"method":"ping","params":"p"}`,
		`{"jsonrpc":"2.0","id":-0.5,"method":"x","params":[1]}`,
		"\ufeff{}", ` { "jsonrpc" : "2.0" , "id" : "\u0000" , "method" : "\ud800" } `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, batch, fail := parseRPC(body)
		if fail != nil {
			if msgs != nil || fail.Error == nil || string(fail.ID) != "null" {
				t.Fatalf("parseRPC(%q): fail %+v with %d messages", body, fail, len(msgs))
			}
			mustEncode(t, body, fail)
			return
		}
		if len(msgs) == 0 || !batch && len(msgs) != 1 || len(msgs) > maxRPCBatch {
			t.Fatalf("parseRPC(%q): %d messages, batch %v", body, len(msgs), batch)
		}
		for _, m := range msgs {
			switch {
			case m.Req != nil && m.Invalid != nil:
				t.Fatalf("parseRPC(%q): a message both valid and invalid", body)
			case m.Req != nil:
				if m.Req.ID != nil && !validRPCID(m.Req.ID) {
					t.Fatalf("parseRPC(%q): request id %q", body, m.Req.ID)
				}
				if p := m.Req.Params; p != nil && p[0] != '{' && p[0] != '[' {
					t.Fatalf("parseRPC(%q): params %q", body, p)
				}
				mustEncode(t, body, rpcFail(m.Req.ID, rpcMethodNotFound, m.Req.Method))
			case m.Invalid != nil:
				if m.Invalid.Error == nil || m.Invalid.Error.Code != rpcInvalidRequest {
					t.Fatalf("parseRPC(%q): invalid message answered %+v", body, m.Invalid)
				}
				if id := m.Invalid.ID; string(id) != "null" && !validRPCID(id) {
					t.Fatalf("parseRPC(%q): error answer id %q", body, id)
				}
				mustEncode(t, body, m.Invalid)
			}
		}
	})
}

// mustEncode checks that an answer encodes as one JSON-RPC response.
func mustEncode(t *testing.T, body []byte, r *rpcResponse) {
	t.Helper()
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatalf("parseRPC(%q): answer does not encode: %v", body, err)
	}
	var back map[string]json.RawMessage
	if err := json.Unmarshal(data, &back); err != nil || string(back["jsonrpc"]) != `"2.0"` || back["id"] == nil {
		t.Fatalf("parseRPC(%q): answer %s", body, data)
	}
}

func TestValidRPCID(t *testing.T) {
	for _, tt := range []struct {
		id   string
		want bool
	}{
		{`"a"`, true}, {`1`, true}, {`-2.5e3`, true}, {`""`, true},
		{`null`, false}, {`{}`, false}, {`[]`, false}, {`true`, false}, {``, false}, {`"a`, false}, {`01`, false},
	} {
		if got := validRPCID(json.RawMessage(tt.id)); got != tt.want {
			t.Errorf("validRPCID(%s) = %v, want %v", tt.id, got, tt.want)
		}
	}
}
