package dataplane

import (
	"bytes"
	"encoding/json"
)

// JSON-RPC 2.0 error codes (https://www.jsonrpc.org/specification §5.1).
const (
	rpcParseError     = -32700
	rpcInvalidRequest = -32600
	rpcMethodNotFound = -32601
	rpcInvalidParams  = -32602
	rpcInternalError  = -32603
)

// maxRPCBatch bounds the messages of one batch.
const maxRPCBatch = 100

// rpcRequest is a JSON-RPC request or notification that passed
// validation: jsonrpc is "2.0", method a string, params absent, an object
// or an array.
type rpcRequest struct {
	// ID is the raw id (a string or a number); nil for a notification.
	ID     json.RawMessage
	Method string
	// Params is the raw params; nil when absent or null.
	Params json.RawMessage
}

// rpcResponse is a JSON-RPC response: exactly one of Result and Error is
// set. ID is the request's id, or null when it could not be read.
type rpcResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  any             `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

var rpcNullID = json.RawMessage("null")

func rpcResult(id json.RawMessage, result any) *rpcResponse {
	return &rpcResponse{JSONRPC: "2.0", ID: id, Result: result}
}

func rpcFail(id json.RawMessage, code int, msg string) *rpcResponse {
	if id == nil {
		id = rpcNullID
	}
	return &rpcResponse{JSONRPC: "2.0", ID: id, Error: &rpcError{Code: code, Message: msg}}
}

// rpcMessage is one element of a POST body: a valid request (Req), an
// invalid one (Invalid, the error answer to send), or a JSON-RPC response
// or error the client sent, which needs no answer (both nil).
type rpcMessage struct {
	Req     *rpcRequest
	Invalid *rpcResponse
}

// parseRPC splits a POST body into JSON-RPC messages. batch reports a JSON
// array. When the body as a whole is unusable (not JSON, an empty or
// oversized batch, not an object or array) fail is the one error answer
// and msgs is nil.
func parseRPC(body []byte) (msgs []rpcMessage, batch bool, fail *rpcResponse) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, false, rpcFail(nil, rpcInvalidRequest, "The request body is empty; send a JSON-RPC 2.0 request object.")
	}
	if !json.Valid(body) {
		return nil, false, rpcFail(nil, rpcParseError, "Parse error: the request body is not valid JSON.")
	}
	switch body[0] {
	case '{':
		return []rpcMessage{parseRPCMessage(body)}, false, nil
	case '[':
		var elems []json.RawMessage
		if err := json.Unmarshal(body, &elems); err != nil {
			return nil, true, rpcFail(nil, rpcParseError, "Parse error: the batch is not a JSON array.")
		}
		if len(elems) == 0 {
			return nil, true, rpcFail(nil, rpcInvalidRequest, "The batch is empty.")
		}
		if len(elems) > maxRPCBatch {
			return nil, true, rpcFail(nil, rpcInvalidRequest, "The batch has more than 100 messages.")
		}
		msgs = make([]rpcMessage, len(elems))
		for i, e := range elems {
			msgs[i] = parseRPCMessage(e)
		}
		return msgs, true, nil
	}
	return nil, false, rpcFail(nil, rpcInvalidRequest, "The request is not a JSON-RPC 2.0 request object.")
}

// parseRPCMessage validates one message. Member names are case-sensitive,
// as JSON-RPC defines them.
func parseRPCMessage(raw json.RawMessage) rpcMessage {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return rpcMessage{Invalid: rpcFail(nil, rpcInvalidRequest, "The message is not a JSON object.")}
	}
	id, hasID := m["id"]
	if hasID && !validRPCID(id) {
		return rpcMessage{Invalid: rpcFail(nil, rpcInvalidRequest, "The id must be a string or a number.")}
	}
	var version string
	if v, ok := m["jsonrpc"]; !ok || json.Unmarshal(v, &version) != nil || version != "2.0" {
		return rpcMessage{Invalid: rpcFail(id, rpcInvalidRequest, `The message must have "jsonrpc": "2.0".`)}
	}
	method, hasMethod := m["method"]
	if !hasMethod {
		_, isResult := m["result"]
		_, isError := m["error"]
		if (isResult || isError) && hasID {
			return rpcMessage{} // a response to a request of ours: nothing to answer
		}
		return rpcMessage{Invalid: rpcFail(id, rpcInvalidRequest, `The message has no "method".`)}
	}
	req := &rpcRequest{ID: id}
	if !hasID {
		req.ID = nil
	}
	if json.Unmarshal(method, &req.Method) != nil {
		return rpcMessage{Invalid: rpcFail(id, rpcInvalidRequest, `The "method" must be a string.`)}
	}
	if p, ok := m["params"]; ok && !isNull(p) {
		p = bytes.TrimSpace(p)
		if len(p) == 0 || (p[0] != '{' && p[0] != '[') {
			return rpcMessage{Invalid: rpcFail(id, rpcInvalidRequest, `The "params" must be an object or an array.`)}
		}
		req.Params = p
	}
	return rpcMessage{Req: req}
}

// validRPCID reports whether raw is a string or a number. JSON-RPC also
// allows null, which MCP forbids; null is refused as well.
func validRPCID(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return false
	}
	switch c := raw[0]; {
	case c == '"':
		var s string
		return json.Unmarshal(raw, &s) == nil
	case c == '-' || c >= '0' && c <= '9':
		var n json.Number
		return json.Unmarshal(raw, &n) == nil
	}
	return false
}
