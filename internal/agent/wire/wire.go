package wire

import "time"

// Version is the version of the agent API. The agent reports it in
// Health.Version; a server that finds a different value is talking to an
// agent from another release and should replace the sandbox rather than
// guess at its behaviour. Bump it on any incompatible change to this
// package or to the routes.
const Version = "1"

// DefaultSocket is where the agent listens inside the sandbox.
const DefaultSocket = "/.tidepool/run/agent.sock"

// DefaultRoot is the directory the /files routes are confined to and the
// default working directory of /exec.
const DefaultRoot = "/mnt/data"

// Health is the answer to GET /health.
type Health struct {
	// Version is the agent API version (wire.Version of the agent's build).
	Version string `json:"version"`
	// Build is the version of the binary the agent runs ("dev" when
	// unset), for diagnostics.
	Build string `json:"build,omitempty"`
	// Ready is true when the agent can serve the sandbox's purpose: always
	// for built-in kinds once it answers; for a custom container, when its
	// process runs and its target port accepts connections.
	Ready bool `json:"ready"`
	// Identifier is the session identifier bound by POST /init, or "".
	Identifier string `json:"identifier"`
	// Kernels maps a language to its kernel's state, as the kernel
	// manager reports it; absent when the agent runs no kernels.
	Kernels map[string]string `json:"kernels,omitempty"`
	// TargetPortReady reports whether 127.0.0.1:targetPort accepts TCP
	// connections; nil when the agent has no target port.
	TargetPortReady *bool `json:"targetPortReady,omitempty"`
	// ContainerExit is set once the custom container's process has exited.
	ContainerExit *ExitStatus `json:"containerExit,omitempty"`
}

// ExitStatus describes how a process ended.
type ExitStatus struct {
	// ExitCode is the exit code, or 128+n when killed by signal n (the
	// shell convention), or -1 when the process could not be started.
	ExitCode int `json:"exitCode"`
	// Signal names the signal that killed the process ("SIGKILL").
	Signal string `json:"signal,omitempty"`
	// Error says why the process could not be started.
	Error string    `json:"error,omitempty"`
	At    time.Time `json:"at"`
}

// InitRequest binds a warm sandbox to a session at claim time:
// POST /init. Env and Secrets are added to the environment of every later
// /exec and passed to the kernels. A second /init with the same Identifier
// replaces Env, Secrets and the identity settings (a retry); one with a
// different Identifier is refused with 409.
type InitRequest struct {
	Identifier string            `json:"identifier"`
	Env        map[string]string `json:"env,omitempty"`
	// Secrets are environment variables too, kept apart so that they are
	// never logged.
	Secrets map[string]string `json:"secrets,omitempty"`
	// IdentityEndpoint and IdentityHeader, when set, are exported as
	// IDENTITY_ENDPOINT and IDENTITY_HEADER, the variables the Azure SDKs
	// read for a managed identity in Container Apps.
	IdentityEndpoint string `json:"identityEndpoint,omitempty"`
	IdentityHeader   string `json:"identityHeader,omitempty"`
}

// ExecRequest runs a command: POST /exec. Exactly one of ShellCommand and
// Argv is set.
type ExecRequest struct {
	// ShellCommand runs with "bash -c" ("sh -c" where bash is absent).
	ShellCommand string `json:"shellCommand,omitempty"`
	// Argv runs directly; Argv[0] is looked up in the PATH of the
	// command's environment.
	Argv []string `json:"argv,omitempty"`
	// Stdin is written to the command's standard input, which is then
	// closed; empty means /dev/null.
	Stdin string `json:"stdin,omitempty"`
	// Env is added to (and overrides) the agent's environment and the
	// environment given at /init.
	Env map[string]string `json:"env,omitempty"`
	// Cwd is the working directory; empty means the agent's default
	// (/mnt/data, created if missing). A relative Cwd is relative to the
	// default; it must exist.
	Cwd string `json:"cwd,omitempty"`
	// TimeoutMs bounds the run; 0 means the agent's default (60 s), and
	// values above the agent's maximum are lowered to it.
	TimeoutMs int64 `json:"timeoutMs,omitempty"`
	// MaxOutputBytes caps what is kept (or streamed) of stdout and of
	// stderr, each; 0 means the default (1 MiB), and values above the
	// agent's maximum are lowered to it. Output past the cap is read and
	// discarded, and counted in StdoutBytes and StderrBytes.
	MaxOutputBytes int64 `json:"maxOutputBytes,omitempty"`
}

// ExitCodeTimedOut is the exit code of a command killed at its deadline,
// as with timeout(1).
const ExitCodeTimedOut = 124

// ExecResult is the outcome of an /exec. In a stream's final event Stdout
// and Stderr are empty: the text went out in the stream events.
type ExecResult struct {
	// ExitCode is the command's exit code; 128+n when it was killed by
	// signal n; ExitCodeTimedOut (124) when the agent killed it at its
	// deadline; 127 when the program was not found and 126 when it could
	// not be executed (as a shell reports them).
	ExitCode int `json:"exitCode"`
	// Signal names the signal that ended the command, if one did.
	Signal          string `json:"signal,omitempty"`
	Stdout          string `json:"stdout"`
	Stderr          string `json:"stderr"`
	StdoutTruncated bool   `json:"stdoutTruncated,omitempty"`
	StderrTruncated bool   `json:"stderrTruncated,omitempty"`
	// StdoutBytes and StderrBytes count everything the command wrote,
	// kept or not.
	StdoutBytes int64 `json:"stdoutBytes"`
	StderrBytes int64 `json:"stderrBytes"`
	// TimedOut reports that the deadline passed and the command's process
	// group was killed.
	TimedOut   bool  `json:"timedOut,omitempty"`
	DurationMs int64 `json:"durationMs"`
}

// Stream formats of POST /exec, chosen with the Accept header or the
// stream query parameter (?stream=ndjson, ?stream=sse).
const (
	ContentTypeNDJSON = "application/x-ndjson"
	ContentTypeSSE    = "text/event-stream"
)

// Stream names in StreamEvent.
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
)

// StreamEvent is one line of a streamed /exec (NDJSON), or the data of one
// server-sent event whose event name is the stream or "exit". Output
// events carry Stream and Data (whole UTF-8 characters; invalid bytes
// become U+FFFD); the last event carries Exit. A stream that ends without
// it was cut short.
type StreamEvent struct {
	Stream string      `json:"stream,omitempty"`
	Data   string      `json:"data,omitempty"`
	Exit   *ExecResult `json:"exit,omitempty"`
}

// File types in FileInfo.
const (
	TypeFile      = "file"
	TypeDirectory = "directory"
)

// FileInfo describes a file or directory under the file root.
type FileInfo struct {
	// Name is the last element of Path ("." for the root).
	Name string `json:"name"`
	// Path is relative to the file root, with slashes ("." for the root).
	Path string `json:"path"`
	// Type is TypeFile or TypeDirectory.
	Type string `json:"type"`
	// Size is the size in bytes of a file; 0 for a directory.
	Size int64 `json:"size"`
	// ContentType is guessed from the file name's extension
	// ("application/octet-stream" when unknown); empty for a directory.
	ContentType string    `json:"contentType,omitempty"`
	ModTime     time.Time `json:"modTime"`
}

// ErrorResponse is the body of every error answer:
// {"error":{"code","message"}}.
type ErrorResponse struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody is an error's code and message.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error codes, with the HTTP status they come with.
const (
	CodeInvalidRequest      = "InvalidRequest"      // 400: malformed or invalid body or query
	CodeInvalidPath         = "InvalidPath"         // 400: a path outside the file root
	CodeInvalidCwd          = "InvalidCwd"          // 400: the working directory does not exist
	CodeNotADirectory       = "NotADirectory"       // 400: a directory operation on a file
	CodeIsADirectory        = "IsADirectory"        // 400: a file operation on a directory
	CodeNotFound            = "NotFound"            // 404: no such route
	CodeFileNotFound        = "FileNotFound"        // 404
	CodeUnknownLanguage     = "UnknownLanguage"     // 404: no kernel for that language
	CodeMethodNotAllowed    = "MethodNotAllowed"    // 405
	CodeIdentifierBound     = "IdentifierBound"     // 409: /init with another identifier
	CodeAlreadyExists       = "AlreadyExists"       // 409: mkdir over a file
	CodeDirectoryNotEmpty   = "DirectoryNotEmpty"   // 409: delete without recursive
	CodePayloadTooLarge     = "PayloadTooLarge"     // 413
	CodeInternal            = "InternalError"       // 500
	CodeNotImplemented      = "NotImplemented"      // 501: no kernels, no target port
	CodeTargetUnreachable   = "TargetUnreachable"   // 502: the target port refused
	CodeKernelUnavailable   = "KernelUnavailable"   // 503: the kernel failed
	CodeShuttingDown        = "ShuttingDown"        // 503: the agent is stopping
	CodeInsufficientStorage = "InsufficientStorage" // 507: the disk is full
)

// IdentityRequest gives a bound sandbox the tokens of the pool's managed
// identities: PUT /identity. A later request replaces the tokens (the
// server refreshes them before they expire).
type IdentityRequest struct {
	Identities []Identity `json:"identities"`
}

// Identity is one managed identity and its current tokens.
type Identity struct {
	ClientID    string `json:"clientId"`
	PrincipalID string `json:"principalId"`
	// ResourceID is the user-assigned identity's resource id; empty for
	// the system-assigned identity.
	ResourceID string `json:"resourceId,omitempty"`
	// Default marks the identity a token request gets when it names none.
	Default bool    `json:"default,omitempty"`
	Tokens  []Token `json:"tokens"`
}

// Token is an access token for one resource (audience).
type Token struct {
	Resource    string `json:"resource"`
	AccessToken string `json:"accessToken"`
	ExpiresOn   int64  `json:"expiresOn"` // Unix seconds
}

// IdentityResponse says where code in the sandbox asks for tokens: the
// values of IDENTITY_ENDPOINT and IDENTITY_HEADER.
type IdentityResponse struct {
	Endpoint string `json:"endpoint"`
	Header   string `json:"header"`
}
