package kernel

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tidepool-dev/tidepool/internal/agent/wire"
)

// The interpreters sandboxes run: Debian's /usr/bin/python3 (not a pyenv
// python3 first on PATH) and node, /usr/bin/node preferred; the variables
// TIDEPOOL_TEST_PYTHON and TIDEPOOL_TEST_NODE choose others. Missing ones
// skip the tests, except in CI, where they fail.
func interpreter(t testing.TB, lang string) string {
	t.Helper()
	path := os.Getenv("TIDEPOOL_TEST_" + strings.ToUpper(lang))
	switch {
	case path != "":
	case lang == wire.LangPython:
		path = DefaultPython
	case lang == wire.LangNode:
		path = "/usr/bin/node"
		if _, err := os.Stat(path); err != nil {
			if p, err := exec.LookPath("node"); err == nil {
				path = p
			}
		}
	}
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s interpreter %s missing in CI: %v", lang, path, err)
		}
		t.Skipf("%s interpreter %s missing: %v", lang, path, err)
	}
	return path
}

// newManager returns a Manager for the test with the interpreters set, a
// temporary working directory, and a logger into the test log.
func newManager(t testing.TB, opts Options) *Manager {
	t.Helper()
	if opts.Python == "" {
		opts.Python = interpreter(t, wire.LangPython)
	}
	if opts.Node == "" {
		opts.Node = interpreter(t, wire.LangNode)
	}
	if opts.Cwd == "" {
		opts.Cwd = t.TempDir()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	m := New(opts)
	t.Cleanup(func() { m.Close() })
	return m
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// step is one execution and what its result must satisfy.
type step struct {
	code    string
	timeout time.Duration
	limit   int64
	check   func(*wire.ExecuteResult) error
}

func run(t *testing.T, m *Manager, lang string, steps ...step) {
	t.Helper()
	for i, st := range steps {
		res, err := m.Execute(context.Background(), lang, wire.ExecuteRequest{
			Code:           st.code,
			TimeoutMs:      st.timeout.Milliseconds(),
			MaxOutputBytes: st.limit,
		})
		if err != nil {
			t.Fatalf("step %d: Execute(%q): %v", i, st.code, err)
		}
		if st.check == nil {
			st.check = succeeded
		}
		if err := st.check(res); err != nil {
			b, _ := json.MarshalIndent(res, "", "  ")
			if len(b) > 4000 {
				b = append(b[:4000], "…"...)
			}
			t.Fatalf("step %d: Execute(%q): %v\nresult: %s", i, st.code, err, b)
		}
	}
}

// Checks, composable with all.

func all(checks ...func(*wire.ExecuteResult) error) func(*wire.ExecuteResult) error {
	return func(r *wire.ExecuteResult) error {
		for _, c := range checks {
			if err := c(r); err != nil {
				return err
			}
		}
		return nil
	}
}

func succeeded(r *wire.ExecuteResult) error { return status(wire.StatusSucceeded)(r) }

func status(want string) func(*wire.ExecuteResult) error {
	return func(r *wire.ExecuteResult) error {
		if r.Status != want {
			return fmt.Errorf("status %q, want %q", r.Status, want)
		}
		return nil
	}
}

func stdout(want string) func(*wire.ExecuteResult) error {
	return func(r *wire.ExecuteResult) error {
		if r.Stdout != want {
			return fmt.Errorf("stdout %q, want %q", r.Stdout, want)
		}
		return nil
	}
}

func stderrHas(want string) func(*wire.ExecuteResult) error {
	return func(r *wire.ExecuteResult) error {
		if !strings.Contains(r.Stderr, want) {
			return fmt.Errorf("stderr %q, want it to contain %q", r.Stderr, want)
		}
		return nil
	}
}

// result checks the value: json "" means no JSON form; a nil check of the
// whole value is noResult.
func result(json, repr, typ string) func(*wire.ExecuteResult) error {
	return func(r *wire.ExecuteResult) error {
		if r.Result == nil {
			return fmt.Errorf("no result, want %s %s", typ, repr)
		}
		v := r.Result
		if string(v.JSON) != json || v.Type != typ || (repr != "*" && v.Repr != repr) {
			return fmt.Errorf("result json=%s repr=%q type=%q, want json=%s repr=%q type=%q", v.JSON, v.Repr, v.Type, json, repr, typ)
		}
		return nil
	}
}

func reprPrefix(prefix string) func(*wire.ExecuteResult) error {
	return func(r *wire.ExecuteResult) error {
		if r.Result == nil || !strings.HasPrefix(r.Result.Repr, prefix) {
			return fmt.Errorf("result %+v, want a repr starting %q", r.Result, prefix)
		}
		return nil
	}
}

func noResult(r *wire.ExecuteResult) error {
	if r.Result != nil {
		return fmt.Errorf("result %+v, want none", r.Result)
	}
	return nil
}

func failed(name string, traceback ...string) func(*wire.ExecuteResult) error {
	return func(r *wire.ExecuteResult) error {
		if r.Status != wire.StatusFailed {
			return fmt.Errorf("status %q, want %q", r.Status, wire.StatusFailed)
		}
		return errorIs(name, traceback...)(r)
	}
}

func errorIs(name string, traceback ...string) func(*wire.ExecuteResult) error {
	return func(r *wire.ExecuteResult) error {
		if r.Error == nil || r.Error.Name != name {
			return fmt.Errorf("error %+v, want %s", r.Error, name)
		}
		for _, s := range traceback {
			if neg, ok := strings.CutPrefix(s, "!"); ok {
				if strings.Contains(r.Error.Traceback, neg) {
					return fmt.Errorf("traceback %q contains %q", r.Error.Traceback, neg)
				}
			} else if !strings.Contains(r.Error.Traceback, s) {
				return fmt.Errorf("traceback %q, want it to contain %q", r.Error.Traceback, s)
			}
		}
		return nil
	}
}

func timedOut(restarted bool) func(*wire.ExecuteResult) error {
	return func(r *wire.ExecuteResult) error {
		if r.Status != wire.StatusTimedOut || r.Restarted != restarted {
			return fmt.Errorf("status %q restarted=%v, want %q restarted=%v", r.Status, r.Restarted, wire.StatusTimedOut, restarted)
		}
		return errorIs(ErrorNameTimeout)(r)
	}
}

func restarted(want bool) func(*wire.ExecuteResult) error {
	return func(r *wire.ExecuteResult) error {
		if r.Restarted != want {
			return fmt.Errorf("restarted=%v, want %v", r.Restarted, want)
		}
		return nil
	}
}

func truncatedOut(max int) func(*wire.ExecuteResult) error {
	return func(r *wire.ExecuteResult) error {
		if !r.StdoutTruncated || len(r.Stdout) > max || len(r.Stdout) < max-utf8.UTFMax || !utf8.ValidString(r.Stdout) {
			return fmt.Errorf("stdout of %d bytes truncated=%v valid=%v, want ≤ %d valid bytes, truncated", len(r.Stdout), r.StdoutTruncated, utf8.ValidString(r.Stdout), max)
		}
		return nil
	}
}

func TestPython(t *testing.T) {
	m := newManager(t, Options{})
	tests := []struct {
		name  string
		steps []step
	}{
		{"print", []step{{code: "print('hello')", check: all(succeeded, stdout("hello\n"), noResult)}}},
		{"int", []step{{code: "40 + 2", check: result("42", "42", "int")}}},
		{"str", []step{{code: "'hi'", check: result(`"hi"`, "'hi'", "str")}}},
		{"dict", []step{{code: "{'a': [1, 2], 'b': None}", check: result(`{"a":[1,2],"b":null}`, "{'a': [1, 2], 'b': None}", "dict")}}},
		{"object has no JSON", []step{{code: "object()", check: all(result("", "*", "object"), reprPrefix("<object object at "))}}},
		{"NaN has no JSON", []step{{code: "float('nan')", check: result("", "nan", "float")}}},
		{"None is no result", []step{{code: "None", check: noResult}}},
		{"statement is no result", []step{{code: "y = 1", check: noResult}}},
		{"print then value", []step{{code: "print('a')\n1 + 1", check: all(stdout("a\n"), result("2", "2", "int"))}}},
		{"state persists", []step{{code: "x = 1"}, {code: "x + 1", check: result("2", "2", "int")}}},
		{"functions persist", []step{{code: "def double(n):\n    return 2 * n"}, {code: "double(21)", check: result("42", "42", "int")}}},
		{"exception", []step{{code: "1 / 0", check: failed("ZeroDivisionError", "Traceback (most recent call last)", `File "<cell-`, "1 / 0", "ZeroDivisionError: division by zero", "!<string>", "!tidepool-driver")}}},
		{"exception in a function of an earlier cell", []step{
			{code: "def bad():\n    raise ValueError('bad value')"},
			{code: "bad()", check: failed("ValueError", "in bad", "raise ValueError('bad value')", "ValueError: bad value", "!<string>")},
		}},
		{"chained exception", []step{{code: "try:\n    {}['k']\nexcept KeyError as e:\n    raise ValueError('v') from e", check: failed("ValueError", "KeyError: 'k'", "direct cause", "ValueError: v", "!tidepool-driver")}}},
		{"exec'd string frames are kept", []step{{code: "exec('1/0')", check: failed("ZeroDivisionError", `File "<string>"`)}}},
		{"exception keeps output", []step{{code: "print('before')\nraise KeyError('k')", check: all(failed("KeyError"), stdout("before\n"))}}},
		{"syntax error", []step{{code: "x = (", check: failed("SyntaxError", "<cell-", "SyntaxError:")}}},
		{"NUL in source", []step{{code: "x = '\x00'", check: status(wire.StatusFailed)}}},
		{"SystemExit keeps the kernel", []step{
			{code: "z = 7"},
			{code: "import sys; sys.exit(3)", check: failed("SystemExit")},
			{code: "z", check: all(result("7", "7", "int"), restarted(false))},
		}},
		{"stderr", []step{{code: "import sys; print('oops', file=sys.stderr)", check: all(stdout(""), stderrHas("oops\n"))}}},
		{"warnings on stderr", []step{{code: "import warnings; warnings.warn('careful')", check: stderrHas("UserWarning: careful")}}},
		{"fd 1 from os.system", []step{{code: "import os; os.system('echo from-shell')", check: stdout("from-shell\n")}}},
		{"fd 1 and 2 from a subprocess", []step{{code: "import subprocess; subprocess.run(['sh', '-c', 'echo out; echo err >&2'])", check: all(stdout("out\n"), stderrHas("err\n"))}}},
		{"fd 1 directly", []step{{code: "import os; os.write(1, b'raw\\n')", check: all(stdout("raw\n"), result("4", "4", "int"))}}},
		{"order of print and subprocess", []step{{code: "import os\nprint('a')\nos.system('echo b')\nprint('c')", check: stdout("a\nb\nc\n")}}},
		{"print without newline", []step{{code: "print('no newline', end='')", check: stdout("no newline")}}},
		{"stdin is empty", []step{{code: "input()", check: failed("EOFError")}}},
		{"working directory", []step{{code: "import os; os.getcwd()", check: result(jsonString(m.opts.Cwd), "*", "str")}}},
		{"cwd is on sys.path", []step{{code: "open('mymod.py', 'w').write('VALUE = 11')\nimport mymod\nmymod.VALUE", check: result("11", "11", "int")}}},
		{"classes pickle from __main__", []step{
			{code: "class Point:\n    def __init__(self, x): self.x = x"},
			{code: "import pickle; pickle.loads(pickle.dumps(Point(3))).x", check: result("3", "3", "int")},
		}},
		{"top-level await", []step{
			{code: "import asyncio\nasync def f():\n    await asyncio.sleep(0)\n    return 5"},
			{code: "v = await f()\nv * 2", check: result("10", "10", "int")},
			{code: "await f()", check: result("5", "5", "int")},
		}},
		{"await error", []step{
			{code: "async def g():\n    raise RuntimeError('async boom')"},
			{code: "await g()", check: failed("RuntimeError", "in g", "RuntimeError: async boom")},
		}},
		{"large output truncated", []step{{code: "print('x' * 5000)", limit: 1000, check: all(succeeded, truncatedOut(1000))}}},
		{"truncated on a rune boundary", []step{{code: "print('é' * 5000)", limit: 1001, check: truncatedOut(1001)}}},
		{"repr bounded", []step{{code: "'y' * 3000", limit: 100, check: func(r *wire.ExecuteResult) error {
			if r.Result == nil || len(r.Result.Repr) != 100 || r.Result.JSON != nil {
				return fmt.Errorf("result %+v, want a 100-byte repr and no JSON", r.Result)
			}
			return nil
		}}}},
		{"non-ASCII values and output", []step{{code: "print('é ✓')\n'é' + chr(0x1F600)", check: all(stdout("é ✓\n"), result(`"\u00e9\ud83d\ude00"`, "'é😀'", "str"))}}},
		{"numpy-like values use tolist", []step{{code: "class A:\n    def tolist(self): return [1.5, None]\nA()", check: result(`[1.5,null]`, "*", "A")}}},
		{"matplotlib is not imported unasked", []step{{code: "import sys; 'matplotlib' in sys.modules", check: result("false", "False", "bool")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { run(t, m, wire.LangPython, tt.steps...) })
	}
}

func TestNode(t *testing.T) {
	m := newManager(t, Options{})
	tests := []struct {
		name  string
		steps []step
	}{
		{"console.log", []step{{code: "console.log('hello', 1)", check: all(succeeded, stdout("hello 1\n"), noResult)}}},
		{"console.error", []step{{code: "console.error('oops')", check: all(stdout(""), stderrHas("oops\n"))}}},
		{"number", []step{{code: "40 + 2", check: result("42", "42", "number")}}},
		{"string", []step{{code: "'hi'", check: result(`"hi"`, "'hi'", "string")}}},
		{"object", []step{{code: "({a: [1, 2], b: null})", check: result(`{"a":[1,2],"b":null}`, "{ a: [ 1, 2 ], b: null }", "Object")}}},
		{"array", []step{{code: "[1, 'two']", check: result(`[1,"two"]`, "[ 1, 'two' ]", "Array")}}},
		{"null", []step{{code: "null", check: result("null", "null", "null")}}},
		{"undefined is no result", []step{{code: "undefined", check: noResult}}},
		{"function has no JSON", []step{{code: "(function f() {})", check: result("", "[Function: f]", "function")}}},
		{"bigint has no JSON", []step{{code: "10n ** 20n", check: result("", "100000000000000000000n", "bigint")}}},
		{"let persists", []step{{code: "let x = 1"}, {code: "x + 1", check: result("2", "2", "number")}}},
		{"var and functions persist", []step{{code: "var v = 20; function inc(n) { return n + 1 }"}, {code: "inc(v)", check: result("21", "21", "number")}}},
		{"thrown error", []step{{code: "function f() { null.x }\nf()", check: failed("TypeError", "at f (<cell-", "TypeError: Cannot read properties of null", "!node:vm", "![eval]")}}},
		{"thrown value", []step{{code: "throw 42", check: failed("Uncaught", "Uncaught 42")}}},
		{"syntax error", []step{{code: "let = = 1", check: failed("SyntaxError", "<cell-")}}},
		{"await", []step{{code: "await new Promise(r => setTimeout(() => r(7), 1))", check: result("7", "7", "number")}}},
		{"top-level await keeps declarations", []step{{code: "const w = await Promise.resolve(3)"}, {code: "w * 2", check: result("6", "6", "number")}}},
		{"promise value is awaited", []step{{code: "Promise.resolve(5)", check: result("5", "5", "number")}}},
		{"rejection", []step{{code: "await Promise.reject(new RangeError('no'))", check: failed("RangeError", "RangeError: no")}}},
		{"child process output", []step{{code: "require('child_process').execSync('echo out; echo err >&2', {stdio: 'inherit'}); 1", check: all(stdout("out\n"), stderrHas("err\n"), result("1", "1", "number"))}}},
		{"require", []step{{code: "require('path').join('a', 'b')", check: result(`"a/b"`, "'a/b'", "string")}}},
		{"uncaught in a timer keeps the kernel", []step{
			{code: "await new Promise(r => { setTimeout(() => { throw new Error('background') }, 0); setTimeout(r, 20) })", check: all(succeeded, stderrHas("background"))},
			{code: "1", check: all(result("1", "1", "number"), restarted(false))},
		}},
		{"large output truncated", []step{{code: "process.stdout.write('x'.repeat(5000))", limit: 1000, check: truncatedOut(1000)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { run(t, m, wire.LangNode, tt.steps...) })
	}
}

// TestPythonStartsLean: the driver starts without the modules it avoids
// for the kernels' start time (see driver.py), and what it gave up for
// them still works: cell sources reach linecache when something first
// imports it, and C stdio is unbuffered without ctypes' fflush.
func TestPythonStartsLean(t *testing.T) {
	// Not the test process's environment: PYTHONUNBUFFERED there would
	// hide a kernel started without -u.
	env := []string{"PATH=/usr/bin:/bin"}
	run(t, newManager(t, Options{Env: env}), wire.LangPython,
		step{code: "import sys\nsorted(m for m in ('re', 'json', 'linecache', 'tokenize', 'ctypes', 'enum', 'ast') if m in sys.modules)", check: result(`[]`, "[]", "list")},
		step{code: "def g():\n    raise ValueError('lazy')"},
		step{code: "g()", check: failed("ValueError", "raise ValueError('lazy')")},
	)
	run(t, newManager(t, Options{Env: env}), wire.LangPython,
		step{code: "def f():\n    return 1\nimport inspect\ninspect.getsource(f)", check: result(`"def f():\n    return 1\n"`, "*", "str")},
	)
	run(t, newManager(t, Options{Env: env}), wire.LangPython,
		step{code: "import ctypes\n_ = ctypes.CDLL(None).printf(b'from C\\n')", check: stdout("from C\n")},
	)
}

func TestTimeouts(t *testing.T) {
	const timeout = 300 * time.Millisecond
	tests := []struct {
		name  string
		lang  string
		steps []step
	}{
		{"python interrupted keeps state", wire.LangPython, []step{
			{code: "x = 5"},
			{code: "import time\nprint('started')\ntime.sleep(60)", timeout: timeout, check: all(timedOut(false), stdout("started\n"), errorIs(ErrorNameTimeout, "KeyboardInterrupt", "time.sleep(60)", "!tidepool-driver", "!on_sigint"))},
			{code: "x", check: all(result("5", "5", "int"), restarted(false))},
		}},
		{"python busy loop printing is bounded", wire.LangPython, []step{
			{code: "x = 6"},
			{code: "while True:\n    print('x' * 1000)", timeout: timeout, limit: 10000, check: all(timedOut(false), truncatedOut(10000))},
			{code: "x", check: all(result("6", "6", "int"), stdout(""))},
		}},
		{"python ignoring the interrupt is restarted", wire.LangPython, []step{
			{code: "x = 5"},
			{code: "import time\nwhile True:\n    try:\n        time.sleep(10)\n    except KeyboardInterrupt:\n        pass", timeout: timeout, check: timedOut(true)},
			{code: "x", check: all(failed("NameError"), restarted(false))},
		}},
		{"python subprocess is interrupted too", wire.LangPython, []step{
			{code: "x = 8"},
			{code: "import subprocess\nsubprocess.run(['sleep', '60'])", timeout: timeout, check: timedOut(false)},
			{code: "x", check: result("8", "8", "int")},
		}},
		{"node busy loop keeps state", wire.LangNode, []step{
			{code: "let kept = 5"},
			{code: "while (true) {}", timeout: timeout, check: timedOut(false)},
			{code: "kept", check: all(result("5", "5", "number"), restarted(false))},
		}},
		{"node busy loop printing is bounded", wire.LangNode, []step{
			{code: "let kept = 4"},
			{code: "while (true) console.log('x'.repeat(1000))", timeout: timeout, limit: 10000, check: all(timedOut(false), truncatedOut(10000))},
			{code: "kept", check: all(result("4", "4", "number"), stdout(""))},
		}},
		{"node pending promise keeps state", wire.LangNode, []step{
			{code: "let kept = 6"},
			{code: "await new Promise(() => {})", timeout: timeout, check: timedOut(false)},
			{code: "kept", check: result("6", "6", "number")},
		}},
		{"node async busy loop is restarted", wire.LangNode, []step{
			{code: "let kept = 7"},
			{code: "await null; while (true) {}", timeout: timeout, check: timedOut(true)},
			{code: "typeof kept", check: all(result(`"undefined"`, "'undefined'", "string"), restarted(false))},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newManager(t, Options{}) // the default grace: loaded CI machines
			run(t, m, tt.lang, tt.steps...)
		})
	}
}

// TestPrintLoopMemoryIsBounded runs code that prints as fast as it can
// until its deadline: the kernel must not buffer what the agent drops.
func TestPrintLoopMemoryIsBounded(t *testing.T) {
	const maxPeak = 256 << 10 // kB
	for lang, code := range map[string]string{
		wire.LangPython: "while True:\n    print('x' * 1000)",
		wire.LangNode:   "while (true) console.log('x'.repeat(1000))",
	} {
		t.Run(lang, func(t *testing.T) {
			t.Parallel()
			m := newManager(t, Options{})
			if err := m.Start(context.Background(), lang); err != nil {
				t.Fatalf("Start: %v", err)
			}
			run(t, m, lang, step{code: code, timeout: time.Second, limit: 1000, check: all(timedOut(false), truncatedOut(1000))})
			m.mu.Lock()
			pid := m.kernels[lang].proc.pid
			m.mu.Unlock()
			status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if err != nil {
				t.Fatalf("read status: %v", err)
			}
			for _, line := range strings.Split(string(status), "\n") {
				if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
					var kb int
					fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
					if kb > maxPeak {
						t.Errorf("kernel peak RSS %d kB, want at most %d kB", kb, maxPeak)
					}
					return
				}
			}
			t.Errorf("no VmHWM in /proc/%d/status", pid)
		})
	}
}

func TestContextCancellationInterrupts(t *testing.T) {
	m := newManager(t, Options{})
	run(t, m, wire.LangPython, step{code: "x = 9"})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	res, err := m.Execute(ctx, wire.LangPython, wire.ExecuteRequest{Code: "import time; time.sleep(60)"})
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	if err := timedOut(false)(res); err != nil {
		t.Fatalf("Execute with a cancelled ctx: %v", err)
	}
	run(t, m, wire.LangPython, step{code: "x", check: result("9", "9", "int")})
}

func TestKernelDeath(t *testing.T) {
	tests := []struct {
		name, lang, setup, kill, check string
	}{
		{"python SIGKILL", wire.LangPython, "x = 1", "import os; os.kill(os.getpid(), 9)", "'x' in globals()"},
		{"python os._exit", wire.LangPython, "x = 1", "import os; os._exit(3)", "'x' in globals()"},
		{"node process.exit", wire.LangNode, "var x = 1", "process.exit(2)", "'x' in globalThis"},
		{"node SIGKILL", wire.LangNode, "var x = 1", "process.kill(process.pid, 'SIGKILL')", "'x' in globalThis"},
	}
	boolType := map[string]string{wire.LangPython: "bool", wire.LangNode: "boolean"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newManager(t, Options{})
			run(t, m, tt.lang,
				step{code: tt.setup},
				step{code: tt.kill, check: all(failed(ErrorNameKernelDied), restarted(false))},
				step{code: tt.check, check: all(result("false", "*", boolType[tt.lang]), restarted(true))},
				step{code: tt.check, check: restarted(false)},
			)
		})
	}
}

// TestKernelDiesWhileIdle kills a kernel between executions.
func TestKernelDiesWhileIdle(t *testing.T) {
	m := newManager(t, Options{})
	if err := m.Start(context.Background(), wire.LangPython); err != nil {
		t.Fatalf("Start: %v", err)
	}
	run(t, m, wire.LangPython, step{code: "x = 1"})
	m.mu.Lock()
	p := m.kernels[wire.LangPython].proc
	m.mu.Unlock()
	if err := syscall.Kill(p.pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill: %v", err)
	}
	<-p.exited
	run(t, m, wire.LangPython,
		step{code: "'x' in globals()", check: all(result("false", "False", "bool"), restarted(true))},
		step{code: "1", check: restarted(false)},
	)
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestPreImport(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	m := newManager(t, Options{
		PreImport: []string{"fractions", "no_such_module_tidepool"},
		Logger:    slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil)),
	})
	if err := m.Start(context.Background(), wire.LangPython); err != nil {
		t.Fatalf("Start: %v", err)
	}
	run(t, m, wire.LangPython,
		step{code: "import sys; 'fractions' in sys.modules", check: result("true", "True", "bool")},
		step{code: "'fractions' in globals()", check: result("false", "False", "bool")},
	)
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "pre-import failed") || !strings.Contains(logs.String(), "no_such_module_tidepool") {
		t.Errorf("log %q, want a pre-import failure of no_such_module_tidepool", logs.String())
	}
	// And without pre-import, the module is not there.
	m2 := newManager(t, Options{})
	run(t, m2, wire.LangPython, step{code: "import sys; 'fractions' in sys.modules", check: result("false", "False", "bool")})
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

func TestMatplotlibFigure(t *testing.T) {
	py := interpreter(t, wire.LangPython)
	if out, err := exec.Command(py, "-c", "import matplotlib").CombinedOutput(); err != nil {
		t.Skipf("matplotlib is not installed for %s (Debian package python3-matplotlib): %v: %s", py, err, bytes.TrimSpace(out))
	}
	m := newManager(t, Options{})
	run(t, m, wire.LangPython,
		step{code: "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()", check: func(r *wire.ExecuteResult) error {
			if r.Status != wire.StatusSucceeded || len(r.Images) != 1 {
				return fmt.Errorf("status %s, %d images, want Succeeded and 1", r.Status, len(r.Images))
			}
			png, err := base64.StdEncoding.DecodeString(r.Images[0].Data)
			if err != nil || r.Images[0].Format != "png" || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
				return fmt.Errorf("image format %q, %d bytes (%v), want a PNG", r.Images[0].Format, len(png), err)
			}
			return nil
		}},
		// Figures are closed once sent.
		step{code: "len(plt.get_fignums())", check: all(result("0", "0", "int"), func(r *wire.ExecuteResult) error {
			if len(r.Images) != 0 {
				return fmt.Errorf("%d images, want none", len(r.Images))
			}
			return nil
		})},
		step{code: "import matplotlib; matplotlib.get_backend()", check: result(`"agg"`, "'agg'", "str")},
	)
}

func TestSetEnv(t *testing.T) {
	for _, lang := range []string{wire.LangPython, wire.LangNode} {
		t.Run(lang, func(t *testing.T) {
			m := newManager(t, Options{Env: []string{"PATH=" + os.Getenv("PATH"), "BASE=base"}})
			code := map[string][2]string{
				wire.LangPython: {"import os; state = 1; (os.environ.get('BASE'), os.environ.get('LATE'))", "import subprocess; print(subprocess.run(['sh', '-c', 'echo $LATE'], capture_output=True, text=True).stdout, end=''); (state, os.environ['LATE'])"},
				wire.LangNode:   {"var state = 1; [process.env.BASE, process.env.LATE]", "process.stdout.write(require('child_process').execSync('echo $LATE').toString()); [state, process.env.LATE]"},
			}[lang]
			nullJSON := map[string]string{wire.LangPython: `["base",null]`, wire.LangNode: `["base",null]`}[lang]
			run(t, m, lang, step{code: code[0], check: func(r *wire.ExecuteResult) error {
				if r.Result == nil || string(r.Result.JSON) != nullJSON {
					return fmt.Errorf("result %+v, want %s", r.Result, nullJSON)
				}
				return nil
			}})
			m.SetEnv(map[string]string{"LATE": "bound"})
			run(t, m, lang, step{code: code[1], check: all(stdout("bound\n"), restarted(false), func(r *wire.ExecuteResult) error {
				if r.Result == nil || string(r.Result.JSON) != `[1,"bound"]` {
					return fmt.Errorf("result %+v, want [1,\"bound\"]: state kept, env set", r.Result)
				}
				return nil
			})})
		})
	}
}

func TestExecutionsAreSerialised(t *testing.T) {
	m := newManager(t, Options{})
	run(t, m, wire.LangPython, step{code: "n = 0"})
	const calls = 8
	var wg sync.WaitGroup
	results := make(chan string, calls)
	for range calls {
		wg.Go(func() {
			// A read, a yield to other threads, a write: interleaved
			// executions would lose increments.
			res, err := m.Execute(context.Background(), wire.LangPython, wire.ExecuteRequest{Code: "import time\nv = n\ntime.sleep(0.01)\nn = v + 1\nn"})
			if err != nil {
				results <- err.Error()
				return
			}
			_ = m.Status()
			results <- string(res.Result.JSON)
		})
	}
	wg.Wait()
	close(results)
	seen := map[string]bool{}
	for r := range results {
		seen[r] = true
	}
	for i := 1; i <= calls; i++ {
		if !seen[fmt.Sprint(i)] {
			t.Errorf("results %v, want each of 1..%d once", seen, calls)
			break
		}
	}
}

func TestQueuedExecutionHonoursContext(t *testing.T) {
	m := newManager(t, Options{})
	s := m.kernels[wire.LangPython]
	s.sem <- struct{}{} // someone else's execution
	defer s.release()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := m.Execute(ctx, wire.LangPython, wire.ExecuteRequest{Code: "1"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Execute while the kernel is held: %v, want DeadlineExceeded", err)
	}
}

func TestLifecycle(t *testing.T) {
	m := newManager(t, Options{})
	ctx := context.Background()
	if st := m.Status(); len(st) != 0 {
		t.Errorf("Status before Start = %v, want empty", st)
	}
	if err := m.Start(ctx, wire.LangPython); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := m.Start(ctx, wire.LangPython); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	if st := m.Status(); st[wire.LangPython] != StateReady || len(st) != 1 {
		t.Errorf("Status after Start = %v, want python ready", st)
	}
	if _, err := m.Execute(ctx, "ruby", wire.ExecuteRequest{Code: "1"}); !errors.Is(err, ErrUnknownLanguage) {
		t.Errorf("Execute(ruby) error = %v, want ErrUnknownLanguage", err)
	}
	m.mu.Lock()
	p := m.kernels[wire.LangPython].proc
	m.mu.Unlock()
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-p.exited:
	default:
		t.Errorf("kernel still running after Close")
	}
	if err := m.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
	if _, err := m.Execute(ctx, wire.LangPython, wire.ExecuteRequest{Code: "1"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Execute after Close = %v, want ErrClosed", err)
	}
}

func TestStartFailure(t *testing.T) {
	m := newManager(t, Options{Python: "/nonexistent/python3"})
	if err := m.Start(context.Background(), wire.LangPython); err == nil {
		t.Fatalf("Start with a missing interpreter succeeded")
	}
	if st := m.Status()[wire.LangPython]; st != StateDead {
		t.Errorf("Status = %q, want %q", st, StateDead)
	}
	if _, err := m.Execute(context.Background(), wire.LangPython, wire.ExecuteRequest{Code: "1"}); err == nil {
		t.Errorf("Execute with a missing interpreter succeeded")
	}
}
