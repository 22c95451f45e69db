// Package agent is the program every sandbox runs: `tidepool agent`, the
// same static binary as the server, bind-mounted read-only. It serves the
// agent API (package wire) as HTTP/1.1 on a unix socket in a host
// directory bind-mounted into the sandbox, so the server reaches it even
// when the sandbox has no network.
//
// # Processes
//
// The agent is two processes. PID 1 is a minimal init (RunInit): it starts
// the agent server as its only child, reaps every orphan the sandbox's
// commands leave behind, forwards SIGTERM and friends to the server, and
// exits with the server's exit code. The server starts every other
// process: commands (/exec), the custom container's process, and the
// kernels; it waits for each of them itself. Keeping the wait4(-1) loop in
// a process of its own means it cannot steal the exit status of a child
// the server is waiting for.
//
// Every command leads its own process group. At its deadline, or when the
// caller disconnects, the whole group gets SIGKILL. A command that ends
// normally leaves its background processes running (they belong to the
// session); its output pipes are read for Config.OutputGrace more, then
// closed. When the agent stops, every group gets SIGTERM, then SIGKILL
// after Config.StopGrace.
//
// # Routes
//
//	GET    /health                    wire.Health
//	POST   /init                      wire.InitRequest → wire.Health; 409 on another identifier
//	POST   /exec                      wire.ExecRequest → wire.ExecResult, or a stream of
//	                                  wire.StreamEvent (Accept: application/x-ndjson or
//	                                  text/event-stream, or ?stream=ndjson|sse)
//	POST   /kernels/{lang}/execute    wire.ExecuteRequest → wire.ExecuteResult (Kernels)
//	GET    /files?path=&recursive=    []wire.FileInfo
//	GET    /files/stat?path=          wire.FileInfo
//	GET    /files/content?path=       the file's bytes (Range supported)
//	PUT    /files/content?path=       body → wire.FileInfo; 201 when new
//	DELETE /files?path=&recursive=    204
//	POST   /files/mkdir?path=         wire.FileInfo; 201 when new
//	*      /proxy/...                 forwarded to http://127.0.0.1:<TargetPort>/...
//
// Errors are {"error":{"code","message"}} (wire.ErrorResponse) with the
// codes listed in package wire.
//
// The same socket also takes framed calls (wire.FramePreface): health,
// /init, /identity, /exec without streaming and the kernel executions, as
// length-prefixed frames on a kept connection, served by the same handlers.
// They exist for speed: a print(1) through the agent costs ~160 µs this way
// against ~230 µs as HTTP requests (BenchmarkKernelExecute). The client
// uses them where it can and falls back to HTTP with an agent that
// predates them.
//
// # Kernel leases
//
// A framed call POST /kernels/{lang}/lease hands the kernel's four pipes
// to the caller (SCM_RIGHTS; wire.LeasePath has the protocol), which then
// writes the kernel's requests and reads its answers and output itself
// (kernel.Remote): the agent leaves an execution's path, and only starts,
// interrupts, kills and restarts the kernel, on the caller's word or when
// it dies. The connection is the lease: when the caller closes it, or
// dies, the agent takes the pipes back, and a second caller revokes it.
// The server's client leases every kernel it runs code on; an agent whose
// pipes are not host descriptors (gVisor) refuses, and is called as
// before.
//
// # Files
//
// The /files routes are confined to Config.FilesRoot (/mnt/data). A path
// is relative to it, or absolute under it; a path whose ".." leaves it is
// refused with InvalidPath, and so is a symbolic link pointing outside it
// or an absolute one (os.Root's rule), even if its target is inside.
package agent
