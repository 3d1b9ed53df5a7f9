# SPDX-License-Identifier: Apache-2.0
"""Starts real chitin processes for the e2e tests: the fake model API and `chitin gateway`.

Everything listens on 127.0.0.1 and is stopped by the test that started it. When the tests run
as root (CI), the gateway is started with --user CHITIN_TEST_USER, as the README tells root users
to do: chitin never runs a worker as uid 0.
"""
import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from wsclient import WsClient

CHITIN = os.environ["CHITIN_BIN"]
FAKE_MODEL = os.environ["CHITIN_FAKE_MODEL"]
PYTHON = os.environ.get("CHITIN_TEST_PYTHON", sys.executable)
TEST_USER = os.environ.get("CHITIN_TEST_USER", "chitin-test")
# argv flag of a zygote (common/zygote.h): its forked workers are its children and keep its argv.
ZYGOTE_FLAG = b"--chitin-zygote"


def running_as_root():
    return os.geteuid() == 0


def skip_reason():
    """Why the e2e suite cannot run here, or None."""
    if not os.path.exists("/usr/bin/bwrap"):
        return "bubblewrap is not installed"
    if running_as_root():
        try:
            pwd.getpwnam(TEST_USER)
        except KeyError:
            return f"running as root and the test user {TEST_USER} does not exist"
    return None


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise TimeoutError(f"timed out waiting for {what}")


class FakeModel:
    def __init__(self, workdir, script=None, expect_key=None):
        self.port_file = os.path.join(workdir, "model.port")
        self.log = os.path.join(workdir, "model-requests.jsonl")
        args = [PYTHON, FAKE_MODEL, "--port", "0", "--port-file", self.port_file, "--log", self.log]
        if script is not None:
            path = os.path.join(workdir, "script.json")
            with open(path, "w") as f:
                json.dump(script, f)
            args += ["--script", path]
        if expect_key:
            args += ["--expect-key", expect_key]
        self._err = open(os.path.join(workdir, "model.err"), "w")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self._err)
        self.port = int(wait_for(lambda: _read(self.port_file).strip(), what="fake model port"))
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def requests(self):
        text = _read(self.log)
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self._err.close()


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


TRUST_OPERATOR_EXEC = """// e2e: the local operator's exec calls run without confirmation.
@id("e2e-operator-exec")
permit (principal == Sender::"local:operator", action == Action::"exec", resource);
"""


class Gateway:
    """`chitin gateway` in a fresh CHITIN_HOME."""

    def __init__(self, model=None, provider="openai", api_key="sk-test-key", config=None, extra_env=None,
                 policies=None):
        self.tmp = tempfile.mkdtemp(prefix="chitin-e2e-")
        os.chmod(self.tmp, 0o755)
        self.home = os.path.join(self.tmp, "home")
        os.mkdir(self.home, 0o700)
        # The owner's own policies. By default the foundation tests' trust: the local operator's
        # commands run without confirmation (the shipped policy would ask for most of them).
        if policies is None:
            policies = {"e2e-operator-exec.cedar": TRUST_OPERATOR_EXEC}
        os.mkdir(os.path.join(self.home, "policies"), 0o700)
        for name, text in policies.items():
            with open(os.path.join(self.home, "policies", name), "w") as f:
                f.write(text)
        if config is not None:
            with open(os.path.join(self.home, "chitin.conf"), "w") as f:
                f.write(config)
        env = {"PATH": "/usr/bin:/bin", "CHITIN_HOME": self.home, "LANG": "C.UTF-8"}
        if model is not None:
            env.update({"CHITIN_MODEL_PROVIDER": provider, "CHITIN_MODEL_BASE_URL": model.base_url,
                        "CHITIN_MODEL": "fake-model", "CHITIN_MODEL_API_KEY": api_key})
            if provider == "anthropic":
                env["CHITIN_MODEL_BASE_URL"] = f"http://127.0.0.1:{model.port}"
        env.update(extra_env or {})
        self.env = env
        self.stdout_path = os.path.join(self.tmp, "gateway.out")
        self.stderr_path = os.path.join(self.tmp, "gateway.err")
        self._start()

    def _start(self):
        args = [CHITIN, "gateway", "--port", "0"]
        if running_as_root():
            args += ["--user", TEST_USER]
        url_path = os.path.join(self.home, "gateway.url")
        if os.path.exists(url_path):
            os.unlink(url_path)
        self._out = open(self.stdout_path, "a")
        self._err = open(self.stderr_path, "a")
        self.proc = subprocess.Popen(args, env=self.env, stdout=self._out, stderr=self._err)
        url = wait_for(lambda: self._url_or_exit(), timeout=20, what="gateway.url")
        self.port = int(url.rsplit(":", 1)[1])
        self.token = _read(os.path.join(self.home, "gateway.token")).strip()
        self.workspace = os.path.join(self.home, "workspace", "main")

    def _url_or_exit(self):
        if self.proc.poll() is not None:
            self._out.close()
            self._err.close()
            raise RuntimeError(f"gateway exited with {self.proc.returncode}: {self.stderr()}")
        return _read(os.path.join(self.home, "gateway.url")).strip()

    def stderr(self):
        return _read(self.stderr_path)

    def cli(self, *args, timeout=60, env=None):
        e = dict(self.env)
        e.update(env or {})
        return subprocess.run([CHITIN, *args], env=e, capture_output=True, text=True, timeout=timeout)

    def agent_json(self, message, session=None, timeout=60):
        args = ["agent", "-m", message, "--json"]
        if session:
            args += ["--session", session]
        r = self.cli(*args, timeout=timeout)
        try:
            data = json.loads(r.stdout) if r.stdout.strip() else None
        except json.JSONDecodeError:
            raise AssertionError(f"agent --json printed non-JSON: {r.stdout!r} stderr={r.stderr!r}")
        return r.returncode, data, r.stderr

    def agent_ok(self, message, session, timeout=120):
        """`chitin agent -m MESSAGE --json` in `session`: the result, or an AssertionError with
        the gateway's log if the CLI failed."""
        code, out, err = self.agent_json(message, session, timeout=timeout)
        if code != 0:
            raise AssertionError(f"agent exited {code}: {err} {self.stderr()[-3000:]}")
        return out

    def scenario_turn(self, name, session, text="go", timeout=120):
        """agent_ok of "[[scenario:NAME]] TEXT": one turn scripted by the fake model."""
        return self.agent_ok(f"[[scenario:{name}]] {text}", session, timeout=timeout)

    def connect(self, origin=None):
        ws = WsClient("127.0.0.1", self.port, origin=origin)
        challenge = ws.recv_json()
        assert challenge["event"] == "connect.challenge", challenge
        ws.send_json({"type": "req", "id": "c1", "method": "connect",
                      "params": {"auth": {"token": self.token}, "nonce": challenge["payload"]["nonce"],
                                 "client": {"id": "e2e", "version": "1", "user": "tester"},
                                 "minProtocol": 1, "maxProtocol": 1}})
        res = ws.recv_json()
        assert res["ok"], res
        return ws

    def audit(self):
        """The audit log's records, parsed."""
        path = os.path.join(self.home, "state", "audit", "audit.jsonl")
        return [json.loads(l) for l in _read(path).splitlines() if l.strip()]

    def request(self, ws, method, params, req_id="r1", timeout=30):
        """One request/response on an authenticated connection; events before it are kept in
        `ws.events`."""
        ws.sock.settimeout(timeout)
        ws.send_json({"type": "req", "id": req_id, "method": method, "params": params})
        while True:
            frame = ws.recv_json()
            if frame is None:
                raise ConnectionError("gateway closed the connection")
            if frame["type"] == "res" and frame["id"] == req_id:
                return frame
            if not hasattr(ws, "events"):
                ws.events = []
            ws.events.append(frame)

    def transcript(self, session_key):
        name = "".join(c if c.isalnum() or c in "._-" else "%%%02X" % ord(c) for c in session_key)
        path = os.path.join(self.home, "state", "sessions", name + ".jsonl")
        return [json.loads(l) for l in _read(path).splitlines() if l.strip()]

    def worker_pids(self, kind):
        """pids of the chitin-worker-<kind> processes this gateway started.

        Each worker runs as pid 1 of its sandbox under an outer bwrap that is the gateway's
        child and names the worker binary in its argv; or, for a fork_server profile, it is a
        child of that profile's zygote, which runs so (common/zygote.h)."""
        procs = _processes()
        sandboxes = self._sandboxes(procs, kind)
        inner = [pid for pid, (ppid, _) in procs.items() if ppid in sandboxes]
        workers = []
        for pid in inner:
            if ZYGOTE_FLAG in procs[pid][1]:
                workers += [child for child, (ppid, _) in procs.items() if ppid == pid]
            else:
                workers.append(pid)
        return workers

    def zygote_pids(self, kind):
        """pids of the zygote of chitin-worker-<kind> and of its outer bwrap, if one runs."""
        procs = _processes()
        sandboxes = self._sandboxes(procs, kind)
        return [(pid, ppid) for pid, (ppid, argv) in procs.items()
                if ppid in sandboxes and ZYGOTE_FLAG in argv]

    def _sandboxes(self, procs, kind):
        """The outer bwraps this gateway started for chitin-worker-<kind> (its children)."""
        return [pid for pid, (ppid, argv) in procs.items()
                if ppid == self.proc.pid and f"chitin-worker-{kind}".encode() in argv]

    def restart(self):
        """Starts the gateway again on the same home (after stop())."""
        self._out.close()
        self._err.close()
        self._start()

    # How long SIGTERM may take to stop the gateway: it kills its workers and closes its
    # connections, which takes milliseconds; anything that still holds its loop open after this
    # (a worker, a timer) is a gateway that would hang a `systemctl stop`.
    STOP_SECONDS = 10

    def stop(self):
        """Stops the gateway with SIGTERM, as systemd does; fails the test when it does not exit
        on its own (it is killed then, so the next test starts clean). A process of its own left
        running afterwards (any process whose command line names its home: its sandboxes do, at
        every layer) is killed and reported on stderr as LEFT BEHIND, not failed: raised here,
        from a tearDown, it would skip the test's other clean-up (its fake servers' threads then
        hold the process until the suite's timeout). The sandbox suite's kill tests are what
        fail on a leak."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(
                    f"the gateway did not stop within {self.STOP_SECONDS} s of SIGTERM "
                    f"(killed); its last log lines:\n{self.stderr()[-2000:]}")
            left = self.left_behind()
            if left:
                what = "; ".join(f"{pid} ({_describe(pid, argv)})" for pid, argv in left.items())
                for pid in left:
                    try:
                        os.kill(pid, signal.SIGKILL)  # not left for the next test
                    except ProcessLookupError:
                        pass
                print(f"LEFT BEHIND: the gateway stopped but left processes of its own "
                      f"running (killed now): {what}", file=sys.stderr, flush=True)
        return self.proc.returncode

    def left_behind(self, grace=3.0):
        """{pid: argv} of live processes naming this gateway's home once it has stopped (a
        SIGKILLed process may take a moment to go: waited for up to `grace` seconds)."""
        home = self.home.encode()
        deadline = time.monotonic() + grace
        while True:
            left = {pid: argv for pid, (_, argv) in _processes().items()
                    if home in argv and _state(pid) not in ("Z", "X", None)}
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(0.02)

    def cleanup(self):
        try:
            self.stop()
        finally:
            self._out.close()
            self._err.close()
            shutil.rmtree(self.tmp, ignore_errors=True)


@contextlib.contextmanager
def own_gateway(script, setup=None, prepare_home=None, model_args=None, **gateway_args):
    """A fake model with `script` and a gateway of the caller's own, stopped and removed
    afterwards. `setup(dir)` may prepare files in the temporary directory and return more Gateway
    arguments; `prepare_home(gw)` runs with the gateway stopped after its first start (its home
    then exists) and before it starts again. `model_args` go to FakeModel (e.g. expect_key)."""
    d = tempfile.mkdtemp(prefix="chitin-e2e-own-")
    model = gw = None
    try:
        model = FakeModel(d, script, **(model_args or {}))
        if setup is not None:
            gateway_args.update(setup(d))
        gw = Gateway(model, **gateway_args)
        if prepare_home is not None:
            gw.stop()
            prepare_home(gw)
            if running_as_root():
                for root, dirs, files in os.walk(gw.home):
                    for name in dirs + files:
                        shutil.chown(os.path.join(root, name), TEST_USER, TEST_USER)
            gw.restart()
        yield model, gw
    finally:
        if gw is not None:
            gw.cleanup()
        if model is not None:
            model.stop()
        shutil.rmtree(d, ignore_errors=True)


def workers_dir(d, substitutes):
    """A worker directory in `d` for `sandbox { worker_dir }`: every real worker of the build,
    except the kinds in `substitutes` ({"session": path}), which run the given binary instead
    (a hostile stand-in under the real kind's profile)."""
    os.chmod(d, 0o755)
    workers = os.path.join(d, "workers")
    os.mkdir(workers)
    os.chmod(workers, 0o755)
    build = os.environ["CHITIN_WORKER_BUILD_DIR"]
    real = [("session", "session"), ("model", "model"), ("exec", "exec"), ("read", "file"),
            ("write", "file"), ("edit", "file")]
    real += [(name[len("chitin-worker-"):], "channel")
             for name in sorted(os.listdir(os.path.join(build, "channel")))
             if name.startswith("chitin-worker-channel-") and not name.endswith(".p")]
    for kind, sub in real:
        target = substitutes.get(kind, os.path.join(build, sub, f"chitin-worker-{kind}"))
        os.symlink(target, os.path.join(workers, f"chitin-worker-{kind}"))
    return workers


def rewrite_script(model, script):
    """Replaces a running fake model's script (it re-reads the file when it changes), e.g. once
    paths known only after the gateway started can be filled in."""
    path = os.path.join(os.path.dirname(model.port_file), "script.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(script, f)
    os.replace(tmp, path)


def processes():
    """{pid: (ppid, raw cmdline)} for every process we can see."""
    return _processes()


def _stat_fields(pid):
    """The fields of /proc/PID/stat after the parenthesised name (state, ppid, ...), or None
    when the process has gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _describe(pid, argv):
    """A left-behind process for the LEFT BEHIND report: state, parent, its program and the
    worker binary its sandbox runs (a bwrap's argv names it after --ro-bind)."""
    fields = _stat_fields(pid) or ["?", "?"]
    args = argv.split(b"\0")
    workers = [a.decode(errors="replace") for a in args if b"chitin-worker-" in a]
    return (f"state {fields[0]}, parent {fields[1]}, {args[0].decode(errors='replace')}, "
            f"worker {workers[-1] if workers else '?'}, {len(args)} arguments")


def _state(pid):
    """A process's state letter (R, S, D, Z, ...), or None when it has gone."""
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def _processes():
    """{pid: (ppid, raw cmdline)} for every process we can see."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(entry)
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read()
            ppid = int(fields[1])
        except (OSError, ValueError, TypeError):
            continue
        out[int(entry)] = (ppid, argv)
    return out


def agent_over_ws(ws, message, session=None, req_id="a1", on_accepted=None, timeout=60):
    """Runs one `agent` request; returns (accepted, events, final)."""
    params = {"message": message}
    if session:
        params["sessionKey"] = session
    ws.sock.settimeout(timeout)
    ws.send_json({"type": "req", "id": req_id, "method": "agent", "params": params})
    accepted, events = None, []
    while True:
        frame = ws.recv_json()
        if frame is None:
            raise ConnectionError("gateway closed the connection mid-run")
        if frame["type"] == "res" and frame["id"] == req_id:
            if accepted is None:
                assert frame["ok"], frame
                accepted = frame["payload"]
                if on_accepted:
                    on_accepted(accepted)
                continue
            return accepted, events, frame
        if frame["type"] == "event" and frame.get("event") == "agent":
            events.append(frame)
