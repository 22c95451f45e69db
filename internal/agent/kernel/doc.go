// Package kernel runs a session's persistent interpreters: one long-lived
// python3 or node process per language, driven by a small embedded driver
// script (driver.py, driver.js; standard library only) that keeps the
// session's state between executions, like a Jupyter kernel without
// Jupyter.
//
// A Manager owns the kernels of one sandbox. Start starts a kernel ahead of
// the first request (warm sandboxes do it before they are claimed);
// Execute starts it on demand, runs code in it and returns stdout, stderr,
// the value of the last expression, an error with its traceback, and the
// matplotlib figures the code left open (Python). Executions on one kernel
// run one at a time, in arrival order of the lock.
//
// Lifecycle of a kernel (Status):
//
//	starting → ready ⇄ busy
//	    ↑        │
//	    └─ dead ←┘  (exit, kill after an ignored interrupt, failed start)
//
// At its deadline (the request's timeout, the default, or ctx) an execution
// is interrupted with SIGINT sent to the kernel's process group, like
// Ctrl-C in a terminal: Python raises KeyboardInterrupt, Node stops
// synchronous code (vm breakOnSigint) or stops awaiting a promise. The
// result is TimedOut (even if the code finished in the meantime; its output
// and value are kept) and the kernel keeps its state. A kernel that does not
// answer within Options.InterruptGrace is killed and restarted: that result
// says Restarted. A kernel that dies (os._exit, a crash, the OOM killer) is
// restarted at once; the execution it died in fails with a KernelDied
// error, and the next Execute says Restarted, since earlier state is gone.
//
// See protocol.go for how the agent and the driver talk, and PREIMPORT.md
// for what pre-importing modules costs and saves.
package kernel
