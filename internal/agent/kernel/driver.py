# tidepool Python kernel driver: the kernel process runs it as
#   python3 -u -c 'import sys;exec(compile(sys.argv.pop(1),"<tidepool-driver>","exec"))' SOURCE
# so that its frames can be told from the user's in tracebacks.
# Standard library only. The protocol is described in protocol.go: frames
# of a 4-byte big-endian length and a JSON object, read from fd 3 and written
# to fd 4; the user's output goes to fds 1 and 2, which the agent reads: an
# execution's output is what they hold when the driver answers.
import os
import sys


def _main():
    # Every import here delays every kernel's start, so the driver keeps to
    # modules that cost next to nothing: _ast, not ast; _json, not json
    # (which imports re); _signal, not signal (enum); no linecache (tokenize,
    # re) and no ctypes; traceback only when an error needs it. Together
    # that is ~10 ms of a ~45 ms start.
    import _ast as ast
    import builtins

    try:
        import _signal as signal
    except ImportError:
        import signal

    loads, dumps = json_codec()

    # Private, non-inheritable copies of the protocol pipes: subprocesses
    # started by user code must not hold them (PEP 446: os.dup is
    # non-inheritable).
    rfd, wfd = os.dup(3), os.dup(4)
    os.close(3)
    os.close(4)

    # The agent starts python with -u, which leaves C stdio unbuffered: what
    # C code prints is in the pipes when the driver answers, with no
    # fflush(NULL) to call. It also leaves Python's streams write-through
    # over raw files, where a partial write would lose the rest: give them
    # back their buffered layer, flushed at each line (which keeps print()
    # output in order with what subprocesses write to the same fds).
    for name in ("stdout", "stderr"):
        old = getattr(sys, name)
        try:
            new = open(old.fileno(), "w", encoding=old.encoding, errors=old.errors, closefd=False, line_buffering=True)
        except Exception:
            continue
        setattr(sys, name, new)
        setattr(sys, "__%s__" % name, new)
    sys.argv = [""]

    # The user's namespace is a real __main__ module, so that pickle and
    # friends find classes defined in cells.
    main = type(sys)("__main__")
    main.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = main
    user_ns = main.__dict__

    tla = getattr(ast, "PyCF_ALLOW_TOP_LEVEL_AWAIT", 0)
    co_coroutine = 0x80  # inspect.CO_COROUTINE, without importing inspect

    class St:
        running = False  # user code (or its repr) is on the stack
        pending = False  # SIGINT arrived while running was False
        cells = 0
        loop = None

    def on_sigint(signum, frame):
        if St.running:
            raise KeyboardInterrupt
        St.pending = True

    signal.signal(signal.SIGINT, on_sigint)

    def call(fn, *args):
        """Runs fn interruptibly; returns (value, exception)."""
        try:
            try:
                St.running = True
                if St.pending:
                    St.pending = False
                    raise KeyboardInterrupt
                return fn(*args), None
            finally:
                St.running = False
        except BaseException as e:  # noqa: B902 - user code may raise anything
            return None, e

    def run_code(code):
        r = eval(code, user_ns)
        if code.co_flags & co_coroutine:
            if St.loop is None or St.loop.is_closed():
                import asyncio

                St.loop = asyncio.new_event_loop()
                asyncio.set_event_loop(St.loop)
            r = St.loop.run_until_complete(r)
        return r

    # --- framing -----------------------------------------------------------
    inbuf = bytearray()

    def read_frame():
        while True:
            if len(inbuf) >= 4:
                n = int.from_bytes(inbuf[:4], "big")
                if len(inbuf) >= 4 + n:
                    body = bytes(inbuf[4 : 4 + n])
                    del inbuf[: 4 + n]
                    return loads(body.decode())
            chunk = os.read(rfd, 1 << 16)
            if not chunk:
                return None
            inbuf.extend(chunk)

    def write_all(fd, data):
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]

    def send(msg):
        body = dumps(msg).encode()
        write_all(wfd, len(body).to_bytes(4, "big") + body)

    def flush():
        """Flushes the user's streams, so that all the code wrote is in the
        pipes before the answer (the agent reads them up to there)."""
        for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                s.flush()
            except Exception:
                pass

    # --- results -----------------------------------------------------------
    def json_default(o):
        tolist = getattr(o, "tolist", None)  # numpy arrays and scalars
        if callable(tolist):
            return tolist()
        raise TypeError("not JSON serializable")

    def describe(v, limit):
        try:
            r = repr(v)
        except Exception as e:
            r = "<repr failed: %s: %s>" % (type(e).__name__, e)
        if len(r) > limit:
            r = r[:limit]
        j = None
        try:
            j = dumps(v, default=json_default, allow_nan=False)
            if len(j) > limit:
                j = None
        except Exception:
            j = None
        return {"json": j, "repr": r, "type": type(v).__name__}

    own_file = "<tidepool-driver>"

    def format_error(e, compile_error=False):
        name = type(e).__name__
        try:
            value = str(e)
        except Exception:
            value = "<str failed>"
        try:
            import traceback

            if compile_error:
                tb_text = "".join(traceback.format_exception_only(type(e), e))
            else:
                # Start at the first cell frame (skipping the driver and
                # asyncio under it), and drop the driver's frames left (its
                # SIGINT handler, on top of an interrupted cell).
                t = e.__traceback__
                while t is not None and not t.tb_frame.f_code.co_filename.startswith("<cell-"):
                    t = t.tb_next
                if t is None:  # no cell frame: skip the bootstrap and the driver
                    t = e.__traceback__
                    while t is not None and t.tb_frame.f_code.co_filename in (own_file, "<string>"):
                        t = t.tb_next
                te = traceback.TracebackException(type(e), e, t, compact=True)
                seen = set()
                todo = [te]
                while todo:
                    x = todo.pop()
                    if x is None or id(x) in seen:
                        continue
                    seen.add(id(x))
                    x.stack[:] = [f for f in x.stack if f.filename != own_file]
                    todo += [x.__cause__, x.__context__]
                tb_text = "".join(te.format())
        except Exception:
            tb_text = "%s: %s\n" % (name, value)
        return {"name": name, "value": value, "traceback": tb_text}

    def figures():
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is None:
            return []
        import base64
        import io

        images = []
        for num in plt.get_fignums():
            buf = io.BytesIO()
            plt.figure(num).savefig(buf, format="png", bbox_inches="tight")
            images.append(base64.b64encode(buf.getvalue()).decode("ascii"))
        plt.close("all")
        return images

    sources = {}  # cell filename -> its linecache entry (bounded)

    def remember(fname, code):
        entry = (len(code), None, code.splitlines(True), fname)
        sources[fname] = entry
        lc = sys.modules.get("linecache")
        if lc is not None:
            lc.cache[fname] = entry
        while len(sources) > 1000:
            old = next(iter(sources))
            del sources[old]
            if lc is not None:
                lc.cache.pop(old, None)

    sys.meta_path.insert(0, linecache_filler(sources))

    def execute(req):
        env = req.get("env")
        if env:
            os.environ.update(env)
        code = req.get("code", "")
        limit = int(req.get("limit") or (1 << 20))
        St.cells += 1
        fname = "<cell-%d>" % St.cells
        res = {"type": "result", "id": req["id"]}
        err = None
        compile_err = False
        body = expr = None
        try:
            tree = compile(code, fname, "exec", ast.PyCF_ONLY_AST | tla, dont_inherit=True)
            remember(fname, code)
            last = None
            if tree.body and isinstance(tree.body[-1], ast.Expr):
                last = ast.Expression(tree.body.pop().value)
            if tree.body:
                body = compile(tree, fname, "exec", tla, dont_inherit=True)
            if last is not None:
                expr = compile(last, fname, "eval", tla, dont_inherit=True)
        except BaseException as e:  # SyntaxError, ValueError (NUL bytes), ...
            err, compile_err = e, True

        value = None
        if err is None and body is not None:
            _, err = call(run_code, body)
        if err is None and expr is not None:
            value, err = call(run_code, expr)
            if err is None and value is not None:
                res["value"], err = call(describe, value, limit)
        images, ierr = call(figures)
        if images:
            res["images"] = images
        if ierr is not None:
            try:
                sys.stderr.write("tidepool: could not save figures: %s: %s\n" % (type(ierr).__name__, ierr))
            except Exception:
                pass
        if err is not None:
            res["error"] = format_error(err, compile_err)
            res["interrupted"] = isinstance(err, KeyboardInterrupt)
        flush()
        return res

    def warm_up():
        """Runs the execution path once, on a namespace of its own, so that
        a session's first execution does not pay for its first use (the
        compiler's, eval's and the encoders' cold start, a few hundred µs):
        the kernel's start pays it instead."""
        ns = {"__builtins__": builtins}
        tree = compile("x = [1]\nx", "<warm-up>", "exec", ast.PyCF_ONLY_AST | tla, dont_inherit=True)
        last = ast.Expression(tree.body.pop().value)
        eval(compile(tree, "<warm-up>", "exec", tla, dont_inherit=True), ns)
        describe(eval(compile(last, "<warm-up>", "eval", tla, dont_inherit=True), ns), 1 << 10)
        call(figures)
        flush()

    def init(req):
        errors = {}
        for name in req.get("preImport") or []:
            _, e = call(__import__, name)
            if e is not None:
                errors[name] = "%s: %s" % (type(e).__name__, e)
        try:
            warm_up()
        except Exception:
            pass
        msg = {"type": "ready", "id": req["id"], "pid": os.getpid(), "version": sys.version.split()[0]}
        if errors:
            msg["preImportErrors"] = errors
        flush()
        return msg

    while True:
        try:
            req = read_frame()
        except KeyboardInterrupt:  # the user installed a raising SIGINT handler
            continue
        if req is None:
            return
        St.pending = False  # a late interrupt of the previous request
        kind = req.get("type")
        if kind == "execute":
            send(execute(req))
        elif kind == "init":
            send(init(req))
        else:
            send({"type": "error", "id": req.get("id", ""), "error": "unknown request %r" % kind})


def json_codec():
    """Returns loads(str) and dumps(obj, default=None, allow_nan=True) of
    compact ASCII JSON. They are made of the C accelerator _json when it is
    there and answers a probe as json would, else of json itself."""

    def no_default(o):
        raise TypeError("Object of type %s is not JSON serializable" % type(o).__name__)

    try:
        import _json

        def no_constant(name):
            raise ValueError("JSON constant %s" % name)

        class Context:  # what json.decoder.JSONDecoder gives the scanner
            strict = True
            object_hook = None
            object_pairs_hook = None
            parse_float = float
            parse_int = int
            parse_constant = staticmethod(no_constant)

        scan = _json.make_scanner(Context)

        def loads(s):
            v, end = scan(s, 0)
            if end != len(s):
                raise ValueError("extra data after JSON")
            return v

        def dumps(o, default=None, allow_nan=True):
            enc = _json.make_encoder(
                {}, default or no_default, _json.encode_basestring_ascii, None, ":", ",", False, False, allow_nan
            )
            return "".join(enc(o, 0))

        probe = {"a": [1, -2.5, "\u00e9\n\"", None, True, False], "b": {}}
        if dumps(probe) != '{"a":[1,-2.5,"\\u00e9\\n\\"",null,true,false],"b":{}}' or loads(dumps(probe)) != probe:
            raise ValueError("_json differs from json")
        return loads, dumps
    except Exception:
        import json

        return json.loads, lambda o, default=None, allow_nan=True: json.dumps(
            o, default=default, allow_nan=allow_nan, separators=(",", ":")
        )


def linecache_filler(sources):
    """Returns a meta path finder that, when something imports linecache
    (traceback, inspect, the user), puts the cells' sources in its cache as
    the module loads: tracebacks and inspect.getsource then show cell lines,
    and kernels that never need them do not import linecache."""

    class Filler:
        def __init__(self, loader):
            self.loader = loader

        def __getattr__(self, name):
            return getattr(self.loader, name)

        def create_module(self, spec):
            return self.loader.create_module(spec)

        def exec_module(self, module):
            self.loader.exec_module(module)
            module.cache.update(sources)

    class Finder:
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name != "linecache":
                return None
            for finder in sys.meta_path:
                find = getattr(finder, "find_spec", None)
                if finder is Finder or find is None:
                    continue
                spec = find(name, path, target)
                if spec is not None:
                    if spec.loader is not None:
                        spec.loader = Filler(spec.loader)
                    return spec
            return None

    return Finder


_main()
