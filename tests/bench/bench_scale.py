# SPDX-License-Identifier: Apache-2.0
"""chitin's benchmark, the scale figures (bench.py's (q) and (r)): many idle sessions, each with
its session worker alive, and many WebSocket clients held open at once. Real gateway, real
sandboxes, the fake model on 127.0.0.1."""
import json
import random
import resource
import statistics
import time

from bench_common import QUICK, line, ms, pct, private_kib, rss_kib, session_memory
from harness import Gateway, agent_over_ws  # noqa: E402

N_MANY_SESSIONS = 100 if QUICK else 1000
N_MANY_CLIENTS = 200 if QUICK else 1000


def _raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def many_idle_sessions(model, n):
    """n sessions, one turn each (which starts the session's worker), all left idle: their
    workers' private memory (each worker and its outer bwrap) and the supervisor's."""
    gw = Gateway(model)
    try:
        ws = gw.connect()
        t0 = time.monotonic()
        for i in range(n):
            _, _, final = agent_over_ws(ws, f"hello {i}", f"agent:main:bench:direct:many{i}",
                                        req_id=f"m{i}", timeout=60)
            assert final["payload"]["status"] == "ok", final
        started = time.monotonic() - t0
        # Idle: a session worker gives its free heap back after 2 s without a turn
        # (SessionWorkerImpl::TRIM_AFTER_IDLE).
        time.sleep(2.5)
        per, shared = session_memory(gw)
        # One of them again: its worker is warm.
        t1 = time.monotonic()
        agent_over_ws(ws, "again", "agent:main:bench:direct:many0", req_id="again")
        again = time.monotonic() - t1
        ws.close()
        return {"sessions": n, "workers": len(per), "started_s": started,
                "workers_private": sum(per) + shared, "zygote_private": shared,
                "per_worker": statistics.median(per) if per else 0,
                "supervisor_private": private_kib(gw.proc.pid),
                "supervisor_rss": rss_kib(gw.proc.pid), "again": again}
    finally:
        gw.cleanup()


def many_clients(model, n):
    """n WebSocket clients connected (token handshake) and held open; then a turn on a sample of
    them while all stay open: the latency, the supervisor's memory, the gateway's count."""
    _raise_fd_limit()
    gw = Gateway(model)
    clients = []
    try:
        t0 = time.monotonic()
        for _ in range(n):
            clients.append(gw.connect())
        connected = time.monotonic() - t0
        status = gw.cli("status", "--json")
        counted = json.loads(status.stdout).get("connections", 0)
        lat = []
        for k, ws in enumerate(random.Random(3).sample(clients, 20)):
            t1 = time.monotonic()
            _, _, final = agent_over_ws(ws, f"held {k}", f"agent:main:bench:direct:held{k}",
                                        req_id=f"h{k}")
            assert final["payload"]["reply"] == f"echo: held {k}", final
            lat.append(time.monotonic() - t1)
        return {"clients": n, "connected_s": connected, "counted": counted,
                "p50": pct(lat, 50), "max": max(lat), "rss": rss_kib(gw.proc.pid),
                "private": private_kib(gw.proc.pid)}
    finally:
        for ws in clients:
            try:
                ws.close()
            except OSError:
                pass
        gw.cleanup()


def print_scale_cost(model):
    s = many_idle_sessions(model, N_MANY_SESSIONS)
    print(f"\n(q) {s['sessions']} idle sessions, each with its session worker alive")
    line("sessions started (one turn each, sequential)", f"{s['started_s']:.1f} s")
    line("session workers alive", f"{s['workers']}")
    line("private memory of all session workers (each with its own bwrap, or their zygote)",
         f"{s['workers_private'] / 1024:.1f} MiB",
         "<= 64 MiB at 1,000" if not QUICK else None,
         s["workers_private"] <= 64 * 1024 if not QUICK else None)
    line("  per session (median)", f"{s['per_worker'] / 1024:.2f} MiB")
    line("  the session zygote and its bwrap, once", f"{s['zygote_private'] / 1024:.2f} MiB")
    line("supervisor private / RSS with them",
         f"{s['supervisor_private'] / 1024:.1f} / {s['supervisor_rss'] / 1024:.1f} MiB")
    line("a turn in one of them afterwards", ms(s["again"]))
    c = many_clients(model, N_MANY_CLIENTS)
    print(f"\n(r) {c['clients']} WebSocket clients held open at once")
    line("all connected (token handshake each, sequential)", f"{c['connected_s']:.1f} s")
    line("connections the gateway counts (with the status CLI's)", f"{c['counted']}",
         f"{c['clients'] + 1}", c["counted"] == c["clients"] + 1)
    line("a turn on 20 of them meanwhile: p50 / max", f"{ms(c['p50'])} / {ms(c['max'])}")
    line("supervisor private / RSS with them",
         f"{c['private'] / 1024:.1f} / {c['rss'] / 1024:.1f} MiB")
