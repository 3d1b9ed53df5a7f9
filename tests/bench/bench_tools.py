# SPDX-License-Identifier: Apache-2.0
"""Sections (m) to (p) of the benchmark (bench.py): the browser tool, web_fetch against curl,
memory_search over many notes (end to end, and phase by phase inside the worker), and prompt
assembly per turn."""
import json
import os
import statistics
import subprocess
import tempfile
import time

from bench_common import (
    pct, line, ms, private_kib, _tool_call_seconds, QUICK, ROOT)
import harness  # noqa: E402
from harness import FakeModel, Gateway  # noqa: E402


def browser_cost():
    """(m): the browser tool through the gateway against a local page the owner listed."""
    from test_browser import Site, nav
    if not os.access("/usr/lib/chromium/chromium", os.X_OK):
        return "not measured: Chromium is not installed"
    d = tempfile.mkdtemp(prefix="chitin-bench-browser-")
    os.chmod(d, 0o755)
    site = Site({"index.html": "<title>Bench</title><h1>Bench page</h1><a href=x>a link</a>"})
    script = {"scenarios": {"nav": nav(site.url("index.html")),
                            "snap": [{"tool_calls": [{"name": "browser",
                                                      "arguments": {"action": "snapshot"}}]},
                                     {"text": "{{last_tool_result}}"}]}}
    model = FakeModel(d, script)
    gw = None
    try:
        gw = Gateway(model, config=f"egress {{ allow_private: \"127.0.0.1:{site.port}\" }}\n")
        first, warm, memory = [], [], []
        for i in range(2 if QUICK else 3):
            key = f"agent:main:bench:direct:browser{i}"
            t0 = time.monotonic()
            code, out, err = gw.agent_json("[[scenario:nav]] go", key, timeout=120)
            first.append(time.monotonic() - t0)
            assert code == 0 and "Bench page" in out["reply"], (out, err)
            for _ in range(3):
                t0 = time.monotonic()
                code, out, err = gw.agent_json("[[scenario:snap]] go", key, timeout=120)
                warm.append(time.monotonic() - t0)
                assert code == 0 and "Bench page" in out["reply"], (out, err)
        procs = harness._processes()
        for pid in gw.worker_pids("browser"):
            tree, todo = [], [pid]
            while todo:
                p = todo.pop()
                tree.append(p)
                todo += [c for c, (ppid, _) in procs.items() if ppid == p]
            monitor = procs[pid][0]
            memory.append((sum(private_kib(p) for p in tree) + private_kib(monitor), len(tree)))
        return first, warm, memory
    finally:
        if gw is not None:
            gw.cleanup()
        model.stop()
        site.stop()


def web_fetch_cost():
    """(n): web_fetch of a local page through the gateway (its own sandboxed worker per call, the
    hop decided and granted on the broker) vs a direct `curl` of the same page."""
    from test_web_fetch import FakeWeb, fetch_scenario
    d = tempfile.mkdtemp(prefix="chitin-bench-web-")
    os.chmod(d, 0o755)
    web = FakeWeb(d)
    hosts = os.path.join(d, "hosts")
    with open(hosts, "w") as f:
        f.write("www.test 127.0.0.1\n")
    os.chmod(hosts, 0o644)
    url = f"http://www.test:{web.port}/inject"
    model = FakeModel(d, {"scenarios": {"fetch": fetch_scenario(url)}})
    gw = None
    n = 10 if QUICK else 30
    try:
        gw = Gateway(model, config=f'egress {{ allow_private: "www.test:{web.port}" '
                                   f'resolver_hosts_file: "{hosts}" }}\n')
        ws = gw.connect()
        tools = []
        for i in range(n + 2):  # the first two warm up
            stamps = {}
            ws.send_json({"type": "req", "id": f"w{i}", "method": "agent",
                          "params": {"message": "[[scenario:fetch]] go",
                                     "sessionKey": f"agent:main:bench:direct:web{i}"}})
            finals = 0
            while finals < 2:
                frame = ws.recv_json()
                now = time.monotonic()
                if frame["type"] == "res" and frame["id"] == f"w{i}":
                    finals += 1
                elif frame["type"] == "event" and frame["payload"].get("stream") == "tool":
                    stamps[frame["payload"]["phase"]] = now
                    if frame["payload"]["phase"] == "end":
                        assert frame["payload"]["tool"]["status"] == "ok", frame
            if i >= 2:
                tools.append(stamps["end"] - stamps["start"])
        ws.close()
        direct = []
        for _ in range(n):
            t0 = time.monotonic()
            subprocess.run(["curl", "-s", "-o", "/dev/null", "--resolve",
                            f"www.test:{web.port}:127.0.0.1", url], check=True)
            direct.append(time.monotonic() - t0)
        return tools, direct
    finally:
        if gw is not None:
            gw.cleanup()
        model.stop()
        web.stop()


def print_web_fetch_cost():
    print("\n(n) web_fetch of a local page (sandboxed worker, hop decided and granted, HTML to "
          "Markdown) vs `curl`")
    tools, direct = web_fetch_cost()
    line(f"web_fetch tool call p50 / p90 over {len(tools)}",
         f"{ms(pct(tools, 50))} / {ms(pct(tools, 90))}")
    line(f"curl of the same page (process start to exit) p50 over {len(direct)}",
         ms(pct(direct, 50)))
    line("ratio, web_fetch / curl", f"{pct(tools, 50) / pct(direct, 50):.2f}x")


def print_browser_cost():
    print("\n(m) browser tool (headless Chromium in its sandbox, local page through the broker)")
    c = browser_cost()
    if isinstance(c, str):
        line("browser", c)
        return
    first, warm, memory = c
    line(f"first browser turn of a session (start + navigate + snapshot), median of {len(first)}",
         ms(statistics.median(first)))
    line(f"warm snapshot turn p50 over {len(warm)}", ms(pct(warm, 50)))
    for private, n in memory:
        line(f"one session's browser sandbox: private memory ({n} processes + bwrap)",
             f"{private / 1024:.1f} MiB")


def memory_search_cost():
    """(o): (notes, first call, [warm calls]) of memory_search over 10,000 notes."""
    n_notes = 2000 if QUICK else 10000

    def notes(gw):
        d = os.path.join(gw.workspace, "memory")
        os.makedirs(d, exist_ok=True)
        for i in range(n_notes):
            with open(os.path.join(d, f"n{i:05d}.md"), "w") as f:
                f.write(f"# Note {i}\n\nMet person {i} about project {i % 97}.\n"
                        f"{'The giraffe enclosure came up.' if i % 100 == 0 else 'Nothing else.'}\n")

    script = {"scenarios": {"mem": [
        {"tool_calls": [{"name": "memory_search", "arguments": {"query": "giraffe enclosure"}}]},
        {"text": "ok"}]}}
    with harness.own_gateway(script, prepare_home=notes) as (_, gw):
        ws = gw.connect()
        try:
            first, status = _tool_call_seconds(ws, "[[scenario:mem]] go", "agent:main:bench:direct:mem", "m0")
            assert status == "ok", status
            warm = []
            for i in range(10 if QUICK else 30):
                t, status = _tool_call_seconds(ws, "[[scenario:mem]] go", "agent:main:bench:direct:mem",
                                               f"m{i + 1}")
                assert status == "ok", status
                warm.append(t)
        finally:
            ws.close()
    return n_notes, first, warm


def memory_worker_cost(n_notes):
    """(o) inside the worker: tests/bench/memory-bench's p50 per phase of a warm memory_search."""
    exe = os.path.join(os.path.dirname(os.environ["CHITIN_BIN"]), "..", "tests", "bench", "memory-bench")
    r = subprocess.run([exe, str(n_notes), "20" if QUICK else "50"], capture_output=True, text=True,
                       check=True)
    return json.loads(r.stdout)


def print_memory_search_cost():
    n_notes, first, warm = memory_search_cost()
    print(f"\n(o) memory_search over {n_notes} notes, end to end (tool start -> end)")
    line("first call (builds the index)", ms(first))
    line(f"warm p50 / p90 over {len(warm)}", f"{ms(pct(warm, 50))} / {ms(pct(warm, 90))}",
         "p50 <= 20 ms", pct(warm, 50) <= 0.020)
    w = memory_worker_cost(n_notes)
    print(f"    inside the worker, no sandbox (memory-bench, p50 of {w['rounds']} warm calls):")
    line("  open: lock, SQLite, checks (full check only when the stamp differs)", f"{w['open_ms']:.2f} ms")
    line("  update: the unchanged scan", f"{w['update_ms']:.2f} ms")
    line("    of which the directory walk alone (a stat per note)", f"{w['walk_ms']:.2f} ms")
    line("  update given the watch's unchanged pair (no walk; what a search pays)",
         f"{w['synced_update_ms']:.2f} ms")
    line("  search (FTS5, BM25, snippets)", f"{w['search_ms']:.2f} ms")
    line("  counts", f"{w['counts_ms']:.2f} ms")
    line("  together (open to close)", f"{w['total_ms']:.2f} ms")
    print(f"    with embeddings (model.embedding_model; {w['vectors']} chunk vectors of 768 "
          "dimensions), added per search besides the provider's time for the query:")
    line("  chunks still to embed", f"{w['pending_ms']:.2f} ms")
    line("  hybrid ranking (every vector read)", f"{w['hybrid_ms']:.2f} ms")
    line("  chunks embedded (for the answer)", f"{w['embedded_ms']:.2f} ms")


def prompt_assembly_cost():
    exe = os.path.join(os.path.dirname(os.environ["CHITIN_BIN"]), "..", "tests", "bench", "prompt-bench")
    r = subprocess.run([exe, os.path.join(ROOT, "skills"), "500" if QUICK else "2000"],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


def print_prompt_assembly_cost():
    p = prompt_assembly_cost()
    print(f"\n(p) prompt assembly per turn (prompt-bench, {p['rounds']} rounds)")
    line("workspace files (bootstrap templates, MEMORY.md; unchanged)", f"{p['files_us']:.1f} us")
    line("skills catalog + list (3 bundled skills)", f"{p['skills_us']:.1f} us")
    line("system prompt", f"{p['system_prompt_us']:.1f} us")
    line("transcript load + replay (100 entries)", f"{p['history_100_entries_us']:.1f} us")
    total = (p['files_us'] + p['skills_us'] + p['system_prompt_us'] + p['history_100_entries_us'])
    line("together", f"{total:.1f} us")
