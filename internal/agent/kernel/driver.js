// tidepool Node.js kernel driver: runs in the kernel process as
// `node --expose-internals -e`. Built-in modules only. The protocol is
// described in protocol.go: frames of a 4-byte big-endian length and a JSON
// object, read from fd 3 and written to fd 4; the user's output goes to fds
// 1 and 2 (synchronous pipes on Linux), which the agent reads: an
// execution's output is what they hold when the driver answers.
'use strict';
(() => {
  const fs = require('fs');
  const net = require('net');
  const path = require('path');
  const util = require('util');
  const vm = require('vm');
  const Module = require('module');

  const RFD = 3;
  const WFD = 4;

  // Top-level await: the REPL's own rewriting (declarations become
  // context globals, the last expression is returned as {value}).
  let processTopLevelAwait = null;
  try {
    processTopLevelAwait = require('internal/repl/await').processTopLevelAwait;
  } catch {
    // Without --expose-internals: code with top-level await is a SyntaxError.
  }

  // Interrupts. SIGINT stops synchronous code through vm's breakOnSigint.
  // Node's SIGINT watchdog costs a thread start and join per run unless one
  // is already started, so start one for the driver's lifetime: runs then
  // only register with it. While it is started, a SIGINT outside a run is
  // only recorded (watchdogHasPendingSigint), which the driver polls while
  // it awaits a promise.
  let watchdog = null;
  try {
    const c = process.binding('contextify');
    if (typeof c.startSigintWatchdog === 'function' &&
        typeof c.watchdogHasPendingSigint === 'function') {
      watchdog = c;
      watchdog.startSigintWatchdog();
    }
  } catch {
    watchdog = null;
  }
  let sigintFlag = false;
  if (!watchdog) process.on('SIGINT', () => { sigintFlag = true; });
  function sigintPending() {
    return watchdog ? watchdog.watchdogHasPendingSigint() : sigintFlag;
  }
  function clearSigint() {
    if (watchdog) {
      if (watchdog.watchdogHasPendingSigint()) {
        watchdog.stopSigintWatchdog();
        watchdog.startSigintWatchdog();
      }
    } else {
      sigintFlag = false;
    }
  }

  // libuv makes pipes non-blocking and queues in memory what a full pipe
  // does not take: a synchronous loop that prints would grow that queue
  // without bound, and the answer could overtake it. Blocking writes keep
  // the memory bounded and the output in order.
  for (const stream of [process.stdout, process.stderr]) {
    try {
      if (stream._handle && typeof stream._handle.setBlocking === 'function') {
        stream._handle.setBlocking(true);
      }
    } catch {}
  }

  // Errors nobody awaits must not end the kernel: report them on stderr.
  process.on('uncaughtException', (err) => {
    try { process.stderr.write(`Uncaught ${util.inspect(err)}\n`); } catch {}
  });
  process.on('unhandledRejection', (reason) => {
    try { process.stderr.write(`Unhandled rejection: ${util.inspect(reason)}\n`); } catch {}
  });

  // The user's context: its own built-ins, plus Node's globals and a
  // require that resolves from the working directory.
  const sandbox = {};
  const context = vm.createContext(sandbox, { name: 'tidepool' });
  // V8's own console in a new context prints nowhere without an inspector.
  const own = new Set(vm.runInContext('Object.getOwnPropertyNames(globalThis)', context));
  own.delete('console');
  for (const key of Object.getOwnPropertyNames(globalThis)) {
    if (own.has(key)) continue;
    try {
      Object.defineProperty(sandbox, key, Object.getOwnPropertyDescriptor(globalThis, key));
    } catch {}
  }
  const cellPath = path.join(process.cwd(), '<cell>');
  const userModule = new Module(cellPath, null);
  userModule.filename = cellPath;
  userModule.paths = Module._nodeModulePaths(process.cwd());
  sandbox.global = vm.runInContext('globalThis', context);
  sandbox.require = Module.createRequire(cellPath);
  sandbox.module = userModule;
  sandbox.exports = userModule.exports;
  sandbox.__filename = cellPath;
  sandbox.__dirname = process.cwd();

  // --- framing -------------------------------------------------------------
  function writeAll(fd, buf) {
    let off = 0;
    while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off);
  }
  function send(msg) {
    const body = Buffer.from(JSON.stringify(msg));
    const head = Buffer.alloc(4);
    head.writeUInt32BE(body.length, 0);
    writeAll(WFD, Buffer.concat([head, body]));
  }

  // --- results -------------------------------------------------------------
  function isThenable(v) {
    return v !== null && (typeof v === 'object' || typeof v === 'function') &&
      typeof v.then === 'function';
  }
  function typeName(v) {
    if (v === null) return 'null';
    const t = typeof v;
    if (t !== 'object') return t;
    try {
      const c = v.constructor;
      if (c && typeof c.name === 'string' && c.name) return c.name;
    } catch {}
    return 'object';
  }
  function describe(v, limit) {
    let repr;
    try {
      repr = util.inspect(v, { depth: 6, maxArrayLength: 1000, maxStringLength: limit, breakLength: 100 });
    } catch (e) {
      repr = `<inspect failed: ${e}>`;
    }
    if (repr.length > limit) repr = repr.slice(0, limit);
    let json = null;
    try {
      const s = JSON.stringify(v);
      if (typeof s === 'string' && s.length <= limit) json = s;
    } catch {}
    return { json, repr, type: typeName(v) };
  }
  const driverFrame = /^\s+at .*(node:vm:|\[eval\]|node:internal\/process\/task_queues)/;
  function cleanStack(stack) {
    const lines = String(stack).split('\n');
    const i = lines.findIndex((l) => driverFrame.test(l));
    return (i < 0 ? lines : lines.slice(0, i)).join('\n') + '\n';
  }
  function formatError(e) {
    let errorLike = false;
    try {
      errorLike = e !== null && typeof e === 'object' && typeof e.stack === 'string';
    } catch {}
    if (errorLike) {
      let name = 'Error';
      let message = '';
      try { name = String(e.name); } catch {}
      try { message = String(e.message); } catch {}
      return { name, value: message, traceback: cleanStack(e.stack) };
    }
    let shown;
    try { shown = util.inspect(e); } catch { shown = '<uninspectable>'; }
    return { name: 'Uncaught', value: shown, traceback: `Uncaught ${shown}\n` };
  }

  class Interrupted extends Error {}
  Interrupted.prototype.name = 'Interrupted';

  // awaitInterruptibly settles with p, or rejects with Interrupted once a
  // SIGINT is pending.
  function awaitInterruptibly(p) {
    return new Promise((resolve, reject) => {
      const timer = setInterval(() => {
        if (sigintPending()) {
          clearInterval(timer);
          clearSigint();
          reject(new Interrupted('interrupted while awaiting'));
        }
      }, 20);
      Promise.resolve(p).then(
        (v) => { clearInterval(timer); resolve(v); },
        (e) => { clearInterval(timer); reject(e); });
    });
  }

  let cells = 0;
  async function execute(req) {
    if (req.env) for (const [k, v] of Object.entries(req.env)) process.env[k] = v;
    clearSigint(); // a late interrupt of the previous request
    const limit = req.limit || (1 << 20);
    const filename = `<cell-${++cells}>`;
    const res = { type: 'result', id: req.id };
    try {
      let script;
      let wrapped = false;
      try {
        script = new vm.Script(req.code, { filename });
      } catch (e) {
        let w = null;
        if (e && e.name === 'SyntaxError' && processTopLevelAwait && /\bawait\b/.test(req.code)) {
          try { w = processTopLevelAwait(req.code); } catch {}
        }
        if (w === null) throw e;
        try {
          script = new vm.Script(w, { filename });
        } catch {
          throw e;
        }
        wrapped = true;
      }
      let value = script.runInContext(context, { breakOnSigint: true, displayErrors: false });
      if (wrapped) {
        const box = await awaitInterruptibly(value);
        value = box !== null && typeof box === 'object' && 'value' in box ? box.value : undefined;
      }
      if (isThenable(value)) value = await awaitInterruptibly(value);
      if (value !== undefined) res.value = describe(value, limit);
    } catch (e) {
      res.error = formatError(e);
      res.interrupted = e instanceof Interrupted ||
        (e !== null && typeof e === 'object' && e.code === 'ERR_SCRIPT_EXECUTION_INTERRUPTED');
    }
    return res;
  }

  function init(req) {
    const msg = { type: 'ready', id: req.id, pid: process.pid, version: process.version };
    return msg;
  }

  // Requests arrive one at a time (the agent waits for each answer), but
  // the event loop must keep running while an execution awaits.
  const input = new net.Socket({ fd: RFD, readable: true, writable: false });
  let inbuf = Buffer.alloc(0);
  let queue = Promise.resolve();
  input.on('data', (chunk) => {
    inbuf = inbuf.length ? Buffer.concat([inbuf, chunk]) : chunk;
    while (inbuf.length >= 4) {
      const n = inbuf.readUInt32BE(0);
      if (inbuf.length < 4 + n) break;
      const req = JSON.parse(inbuf.subarray(4, 4 + n).toString('utf8'));
      inbuf = inbuf.subarray(4 + n);
      queue = queue.then(async () => {
        if (req.type === 'execute') send(await execute(req));
        else if (req.type === 'init') send(init(req));
        else send({ type: 'error', id: req.id || '', error: `unknown request ${req.type}` });
      }).catch((e) => {
        try { process.stderr.write(`tidepool driver: ${(e && e.stack) || e}\n`); } catch {}
      });
    }
  });
  input.on('end', () => process.exit(0));
  input.on('error', () => process.exit(0));
})();
