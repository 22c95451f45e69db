package kernel

// The agent ↔ driver protocol.
//
// Channels. The kernel process gets five descriptors:
//
//	0  /dev/null
//	1  a pipe to the agent: the user's stdout
//	2  a pipe to the agent: the user's stderr
//	3  a pipe from the agent: requests
//	4  a pipe to the agent: responses
//
// Requests and responses are frames: a 4-byte big-endian length, then that
// many bytes of one JSON object. Keeping them off fds 1 and 2 means nothing
// the user's code prints can corrupt the protocol. The Python driver moves
// 3 and 4 to non-inheritable descriptors at once, so subprocesses do not
// hold them; Node has no way to, so the agent watches the process's exit,
// not only the end of the response pipe.
//
// Output. The user's code, its C extensions and its subprocesses all write
// to fds 1 and 2 directly (Python's sys.stdout is line-buffered; the Node
// driver makes process.stdout and process.stderr blocking, where libuv
// would queue in memory what a full pipe does not take), so output keeps
// its order across all of them, and nothing is buffered in the kernel: the
// agent reads both pipes all the time and keeps at most the output limit
// of each execution (the rest is counted as truncated and dropped), so a
// loop that prints forever costs CPU until its deadline, not memory. (The
// price: one write per line printed, about 0.35 s for 100,000 print calls
// in Python, 0.7 s for console.log in Node.) An execution's output ends
// where the pipes stand when its answer arrives: the driver flushes its
// streams (and C stdio) after the code ran and only then answers, so all
// the code wrote, and all its finished subprocesses wrote, is in the pipes
// by then; the agent reads them up to that point before it replies (see
// capture). Output that arrives between executions (a background thread
// or process) is kept, within the limit, for the next execution. This
// costs no extra write or wake-up per execution, where an end-of-output
// mark on each pipe cost two of each.
//
// Messages, agent → driver:
//
//	{"type":"init","id":ID,"preImport":["numpy",...]}
//	{"type":"execute","id":ID,"code":"...","limit":BYTES,"env":{"K":"V"}}
//
// env, when present, is merged into the kernel's environment first (late
// binding at claim time; see Manager.SetEnv). limit bounds the repr and the
// JSON of the result value.
//
// Messages, driver → agent:
//
//	{"type":"ready","id":ID,"pid":N,"version":"3.11.2","preImportErrors":{...}}
//	{"type":"result","id":ID,"value":{"json":"<JSON text>"|null,"repr":"...","type":"int"},
//	 "error":{"name":"...","value":"...","traceback":"..."},"interrupted":false,
//	 "images":["<base64 PNG>",...]}
//
// value is absent when the last statement is not an expression or its
// value is None (Python) or undefined (Node); json is a string holding JSON
// text, or null when the value has no JSON form. interrupted says the error
// is the interrupt (KeyboardInterrupt; Node's interrupted script or awaited
// promise).
//
// Interrupts. The agent sends SIGINT to the kernel's process group. The
// Python driver raises KeyboardInterrupt only while user code (or its
// repr, or figure saving) runs, and remembers one that arrives while it is
// between those steps, so neither the driver nor a request that has not
// started yet can be hit by it. The Node driver keeps Node's SIGINT
// watchdog started for its lifetime (vm's breakOnSigint then costs nothing
// per run; without that it starts and joins a thread for each run, ~60 µs),
// and polls its pending flag while it awaits a promise; it reaches the
// watchdog through process.binding('contextify'), and Node runs with
// --expose-internals for the REPL's top-level-await rewriting
// (internal/repl/await). Without them the driver falls back to a SIGINT
// listener, or to no top-level await; both work on Node 18 and 20.
// User code that installs its own SIGINT listener takes the signal over.

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/tidepool-dev/tidepool/internal/agent/wire"
)

// maxFrame bounds a response frame (results with many figures are the
// large ones).
const maxFrame = 256 << 20

// request is a message to the driver.
type request struct {
	Type      string            `json:"type"`
	ID        string            `json:"id"`
	Code      string            `json:"code,omitempty"`
	Limit     int64             `json:"limit,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	PreImport []string          `json:"preImport,omitempty"`
}

// response is a message from the driver.
type response struct {
	Type        string          `json:"type"`
	ID          string          `json:"id"`
	Value       *value          `json:"value"`
	Error       *wire.ExecError `json:"error"`
	Interrupted bool            `json:"interrupted"`
	Images      []string        `json:"images"`

	// ready
	PID             int               `json:"pid"`
	Version         string            `json:"version"`
	PreImportErrors map[string]string `json:"preImportErrors"`
}

type value struct {
	JSON *string `json:"json"`
	Repr string  `json:"repr"`
	Type string  `json:"type"`
}

// errProtocol marks a driver that broke the protocol.
var errProtocol = errors.New("kernel protocol error")

// encodeFrame returns msg as one frame.
func encodeFrame(msg any) ([]byte, error) {
	body, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	frame := make([]byte, 4, 4+len(body))
	binary.BigEndian.PutUint32(frame, uint32(len(body)))
	return append(frame, body...), nil
}

// readFrame reads one frame's body; buf is reused when large enough.
func readFrame(r io.Reader, buf []byte) ([]byte, error) {
	buf, err := wire.ReadSized(r, buf, maxFrame)
	if errors.Is(err, wire.ErrFrameTooLarge) {
		err = fmt.Errorf("%w: %w", errProtocol, err)
	}
	return buf, err
}
