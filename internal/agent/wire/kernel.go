package wire

import "encoding/json"

// Kernel languages.
const (
	LangPython = "python"
	LangNode   = "node"
)

// ExecuteRequest runs code in the session's persistent kernel:
// POST /kernels/{python|node}/execute.
type ExecuteRequest struct {
	Code string `json:"code"`
	// TimeoutMs bounds the execution; 0 means the agent's default.
	TimeoutMs int64 `json:"timeoutMs,omitempty"`
	// MaxOutputBytes caps stdout and stderr each; 0 means the default.
	MaxOutputBytes int64 `json:"maxOutputBytes,omitempty"`
}

// Execution statuses.
const (
	StatusSucceeded = "Succeeded" // ran to the end
	StatusFailed    = "Failed"    // raised an error (Error is set)
	StatusTimedOut  = "TimedOut"  // interrupted at the deadline; state kept unless Restarted
)

// ExecuteResult is the outcome of an execution.
type ExecuteResult struct {
	Status          string `json:"status"`
	Stdout          string `json:"stdout"`
	Stderr          string `json:"stderr"`
	StdoutTruncated bool   `json:"stdoutTruncated,omitempty"`
	StderrTruncated bool   `json:"stderrTruncated,omitempty"`
	// Result is the value of the last expression, if any.
	Result *Value `json:"result,omitempty"`
	// Error describes the exception (Python) or thrown value (Node).
	Error *ExecError `json:"error,omitempty"`
	// Images are figures the code produced (matplotlib), in order.
	Images []Image `json:"images,omitempty"`
	// Restarted reports that the kernel was restarted during this call
	// (it ignored an interrupt, or it had died): earlier state is gone.
	Restarted  bool  `json:"restarted,omitempty"`
	DurationMs int64 `json:"durationMs"`
}

// Value is a result value: JSON when it has a JSON form, and always its repr.
type Value struct {
	// JSON is the value as JSON, or null when it has none.
	JSON json.RawMessage `json:"json,omitempty"`
	Repr string          `json:"repr"`
	// Type is the language's type name ("int", "DataFrame", "object").
	Type string `json:"type"`
}

// ExecError is an error raised by executed code.
type ExecError struct {
	Name      string `json:"name"`  // "ZeroDivisionError", "TypeError"
	Value     string `json:"value"` // the message
	Traceback string `json:"traceback"`
}

// Image is a figure; Data is base64.
type Image struct {
	Format string `json:"format"` // "png"
	Data   string `json:"data"`
}

// Kernel leases (framed connections only). A client sends a request frame
// with the head "POST " + LeasePath(lang) and an empty body; the agent
// answers 200 with a KernelLease, the frame sent with the kernel's four
// pipes attached (SCM_RIGHTS): the write end of its requests, the read
// ends of its answers, stdout and stderr. The connection then carries the
// lease: the client sends frames whose head is LeaseInterrupt, LeaseKill
// or LeaseRelease (no body, no answer); the agent sends one frame, head
// LeaseExited with a KernelExited, when the kernel ends, and closes the
// connection. Closing the connection releases the lease. A refusal is an
// error answer, after which the agent closes the connection.

// LeasePath is the path of lang's kernel lease.
func LeasePath(lang string) string { return "/kernels/" + lang + "/lease" }

// Heads of the frames on a lease's connection.
const (
	LeaseInterrupt = "interrupt"
	LeaseKill      = "kill"
	LeaseRelease   = "release"
	LeaseExited    = "exited"
	LeaseRevoked   = "revoked"
)

// KernelLease answers a lease.
type KernelLease struct {
	PID int `json:"pid"` // in the agent's view
	// Lost: the kernel was restarted since an execution last ran on it;
	// the first result says Restarted.
	Lost bool `json:"lost,omitempty"`
	// Env is the environment from /init the kernel has not applied yet:
	// the first execute request to the kernel carries it.
	Env map[string]string `json:"env,omitempty"`
	// Output the kernel wrote since its last execution, which belongs to
	// the next.
	Stdout string `json:"stdout,omitempty"`
	Stderr string `json:"stderr,omitempty"`
}

// KernelExited tells a lease's holder that the kernel ended.
type KernelExited struct {
	Reason string `json:"reason"`
}
