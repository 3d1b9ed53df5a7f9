# SPDX-License-Identifier: Apache-2.0
"""What the benchmark's sections share: the paths and environment the real gateway and the fakes
need, the run sizes (--quick), how a figure is printed against its target, memory readings from
/proc, and timing a tool call between its start and end events. bench.py says what each section
measures."""
import http.client
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
os.environ.setdefault("CHITIN_BIN", os.path.join(ROOT, "build", "cli", "chitin"))
os.environ.setdefault("CHITIN_FAKE_MODEL", os.path.join(ROOT, "tests", "fakes", "fake_model.py"))
os.environ.setdefault("CHITIN_TEST_PYTHON", "/usr/bin/python3")

import harness  # noqa: E402

# Run sizes: --quick is for development (under two minutes), the full run for the closing notes.
QUICK = "--quick" in sys.argv
N_CHANNEL = 30 if QUICK else 50
N_TURNS = 30 if QUICK else 100
N_TOOLS = 15 if QUICK else 50
N_FLOOR = 15 if QUICK else 50
N_AUDIT_RECORDS = 20000 if QUICK else 200000  # (a): start-up must not grow with the log
N_CLI = 10 if QUICK else 30
N_IDLE = 5 if QUICK else 10
N_LOAD_CLIENTS = 50 if QUICK else 200
LOAD_SECONDS = 5 if QUICK else 15
# (g)'s open loop: turns per second per client on average. 200 clients at 1/s offer 200 turns/s,
# about half what this 2-core host serves when saturated (the closed loop after it measures
# that), and far more than 200 people typing.
LOAD_RATE = 1.0
PROBE_CHAT = {"id": 2002, "type": "private", "first_name": "Probe"}
SCRIPT = {"scenarios": {
    "tool": [{"tool_calls": [{"name": "exec", "arguments": {"command": "true"}}]}, {"text": "ok"}],
    "read": [{"tool_calls": [{"name": "read", "arguments": {"path": "small.txt"}}]}, {"text": "ok"}],
}}
TOOL_PAUSE = 0.05  # s between tool turns: far less than a real model takes to answer


class InstantModel:
    """tests/bench/instant-model: a short streamed answer echoing the last user message, in
    microseconds (C++), for the figures that should be chitin's own ((c), (g), (k)); own_p50()
    is its own time per answer. Quacks like harness.FakeModel where Gateway needs it
    (base_url, port, stop)."""

    def __init__(self, workdir):
        self.port_file = os.path.join(workdir, "instant-model.port")
        self.proc = subprocess.Popen(
            [os.path.join(ROOT, "build", "tests", "bench", "instant-model"), "--port-file",
             self.port_file], stdout=subprocess.DEVNULL)
        self.port = int(harness.wait_for(lambda: harness._read(self.port_file).strip(),
                                         what="instant model port"))
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def own_p50(self):
        """Seconds per answer inside the instant model (request read -> reply written), p50 of
        every answer so far."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=10) as r:
            return json.loads(r.read())["p50_us"] / 1e6

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def line(label, value, target=None, ok=None):
    t = f"   target {target}  {'OK' if ok else 'MISSED'}" if target else ""
    print(f"  {label:<48} {value}{t}")


def ms(seconds):
    return f"{seconds * 1000:.2f} ms"


def private_kib(pid):
    total = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for l in f:
                if l.startswith(("Private_Clean:", "Private_Dirty:")):
                    total += int(l.split()[1])
    except OSError:
        pass
    return total


def mapped_kib(pid, path=None, field="Rss:"):
    """A /proc/PID/smaps field in KiB, summed over every mapping of the file `path` (for a
    program, its own text and data as this process holds them), or over all mappings."""
    total, inside = 0, path is None
    real = os.path.realpath(path) if path else None
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for l in f:
                fields = l.split()
                if "-" in fields[0] and not fields[0].endswith(":"):  # a mapping's header line
                    inside = real is None or " ".join(fields[5:]) == real
                elif inside and fields[0] == field:
                    total += int(fields[1])
    except OSError:  # as private_kib(): not this user's to read
        pass
    return total


def forget_references(pid):
    """Clears the referenced bits of every page `pid` maps (/proc/PID/clear_refs), so that
    mapped_kib(..., field="Referenced:") then counts the pages it used since. False if this
    user may not (a non-dumpable process's /proc files are root's)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("1")
        return True
    except OSError:
        return False


def session_memory(gw):
    """The idle session workers' private memory: ([each worker, with its own outer bwrap when
    bwrap spawned it], what all of them share once: the session zygote and its outer bwrap, when
    the workers were forked by one (common/zygote.h)), in KiB."""
    procs = harness._processes()
    zygotes = {pid for pid, _ in gw.zygote_pids("session")}
    per, shared = [], 0
    for pid in gw.worker_pids("session"):
        if pid not in procs:
            continue
        parent = procs[pid][0]
        per.append(private_kib(pid) + (0 if parent in zygotes else private_kib(parent)))
    for zygote, monitor in gw.zygote_pids("session"):
        shared += private_kib(zygote) + private_kib(monitor)
    return per, shared


def smaps_kib(pid):
    """{field: KiB} from /proc/<pid>/smaps_rollup (empty once the process is gone)."""
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for l in f:
                parts = l.split()
                if len(parts) == 3 and parts[2] == "kB":
                    out[parts[0].rstrip(":")] = int(parts[1])
    except OSError:
        pass
    return out


def rss_kib(pid, field="VmRSS:"):
    """A memory line of /proc/PID/status in KiB (VmRSS, or e.g. RssAnon)."""
    with open(f"/proc/{pid}/status") as f:
        for l in f:
            if l.startswith(field):
                return int(l.split()[1])
    return 0


def _free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _gateway_args(port):
    args = [os.environ["CHITIN_BIN"], "gateway", "--port", str(port), "--quiet"]
    if os.geteuid() == 0:
        args += ["--user", harness.TEST_USER]
    return args


def _env(home, model):
    return {"PATH": "/usr/bin:/bin", "CHITIN_HOME": home, "CHITIN_MODEL_PROVIDER": "openai",
            "CHITIN_MODEL_BASE_URL": model.base_url, "CHITIN_MODEL": "bench", "CHITIN_MODEL_API_KEY": "k"}


_KEPT = {}  # (host, port) -> http.client.HTTPConnection, kept alive as chitin's clients do


def _timed_http(url, body=None, n=20):
    """Wall times of n requests to one of the fakes, made directly (their own cost), on a
    kept-alive connection as chitin's workers make them."""
    parts = urllib.parse.urlsplit(url)
    times = []
    for _ in range(n):
        conn = _KEPT.get(parts.netloc)
        if conn is None:
            conn = _KEPT[parts.netloc] = http.client.HTTPConnection(parts.netloc, timeout=10)
        data = None if body is None else json.dumps(body).encode()
        t0 = time.monotonic()
        conn.request("GET" if data is None else "POST", parts.path + (
            "?" + parts.query if parts.query else ""), body=data,
            headers={"Content-Type": "application/json"})
        conn.getresponse().read()
        times.append(time.monotonic() - t0)
    return times


def fdatasync_cost(directory, n=20):
    """Seconds one small append + fdatasync takes on the filesystem holding `directory`."""
    path = os.path.join(directory, "fdatasync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    times = []
    try:
        for _ in range(n):
            os.write(fd, b"0123456789 0123456789\n")
            t0 = time.monotonic()
            os.fdatasync(fd)
            times.append(time.monotonic() - t0)
    finally:
        os.close(fd)
        os.unlink(path)
    return times


def _tool_call_seconds(ws, message, session, req_id):
    """One turn whose model makes one tool call: seconds between its tool start and end events
    (and the tool's status)."""
    stamps, status = {}, None
    ws.send_json({"type": "req", "id": req_id, "method": "agent",
                  "params": {"message": message, "sessionKey": session}})
    finals = 0
    while finals < 2:
        frame = ws.recv_json()
        now = time.monotonic()
        if frame["type"] == "res" and frame["id"] == req_id:
            finals += 1
        elif frame["type"] == "event" and frame["payload"].get("stream") == "tool":
            stamps[frame["payload"]["phase"]] = now
            if frame["payload"]["phase"] == "end":
                status = frame["payload"]["tool"]["status"]
    return stamps["end"] - stamps["start"], status


def _tool_calls(ws, scenario, n, pause, session=None):
    """(d): seconds of n one-call turns of `scenario` in one session, the first (which found no
    spare: the session had not used the tool yet) apart: (first, [the rest])."""
    session = session or f"agent:main:bench:direct:{scenario}"
    times = []
    for i in range(n):
        t, status = _tool_call_seconds(ws, f"[[scenario:{scenario}]] go", session, f"{scenario}{i}")
        assert status == "ok", status
        times.append(t)
        time.sleep(pause)
    return times[0], times[1:]


def _health_pings(gw, ready, stop, results):
    """(d), in a process of its own: a second client's `health` round trips, one a millisecond,
    until `stop` is set; their seconds go to `results`."""
    ws = gw.connect()
    ready.set()
    times, i = [], 0
    while not stop.is_set():
        i += 1
        t0 = time.monotonic()
        ws.send_json({"type": "req", "id": f"h{i}", "method": "health"})
        while ws.recv_json().get("id") != f"h{i}":
            pass
        times.append(time.monotonic() - t0)
        time.sleep(0.001)
    ws.close()
    results.put(times)


def _tool_calls_watched(gw, ws, n, pause):
    """(d): n exec calls as _tool_calls makes them, while another client asks the gateway for its
    health every millisecond: ([the calls after the first], [the health round trips]). What the
    supervisor's loop spends blocked on a call (a spawn, a sync, a wait) is everyone's wait."""
    import multiprocessing
    context = multiprocessing.get_context("fork")
    ready, stop, results = context.Event(), context.Event(), context.Queue()
    pinger = context.Process(target=_health_pings, args=(gw, ready, stop, results))
    pinger.start()
    try:
        if not ready.wait(20):
            raise RuntimeError("the health client did not connect")
        _, calls = _tool_calls(ws, "tool", n, pause, session="agent:main:bench:direct:watched")
    finally:
        stop.set()
    pings = results.get(timeout=20)
    pinger.join(20)
    return calls, pings
