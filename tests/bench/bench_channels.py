# SPDX-License-Identifier: Apache-2.0
"""Sections (k) and (l) of the benchmark (bench.py): a Telegram account against the fake Bot API
(message to posted reply, less the fakes' own measured costs) and the idle channel workers' memory
(the Telegram worker, the WhatsApp adapter and its Node bridge)."""
import json
import os
import tempfile
import threading
import time
import urllib.parse
import urllib.request

from bench_common import (
    pct, line, ms, private_kib, smaps_kib, _timed_http, fdatasync_cost, N_CHANNEL, PROBE_CHAT, ROOT)
import harness  # noqa: E402
from harness import Gateway  # noqa: E402


def _long_poll_turnaround(telegram, token, n):
    """Seconds from a message posted at the fake Bot API to a waiting getUpdates returning it."""
    offset = 0
    times = []
    for i in range(n):
        result = {}

        def poll():
            url = f"{telegram.url}/bot{token}/getUpdates?timeout=5&offset={offset}"
            with urllib.request.urlopen(url, timeout=10) as r:
                result["updates"] = json.loads(r.read())["result"]
            result["t"] = time.monotonic()

        thread = threading.Thread(target=poll)
        thread.start()
        time.sleep(0.02)  # the poll is waiting at the fake
        t0 = time.monotonic()
        telegram.message(PROBE_CHAT, f"probe {i}")
        thread.join()
        times.append(result["t"] - t0)
        offset = result["updates"][-1]["update_id"] + 1
    return times


def channel_cost(model):
    """(k) and (l): a Telegram account against the fake Bot API, an owner chatting with it;
    `model` answers (the instant model for (k), whose own time per answer it reports)."""
    import channels
    from test_channel_telegram import DM, TOKEN, FakeTelegram
    d = tempfile.mkdtemp(prefix="chitin-bench-telegram-")
    os.chmod(d, 0o755)
    telegram = FakeTelegram(d)
    try:
        # The fakes' own costs: the long poll's here, the others between the messages below
        # (so that they see the same load on this machine as chitin's runs do).
        poll = _long_poll_turnaround(telegram, TOKEN, 20)
        sends, peeks = [], []
        syncs = fdatasync_cost(d)
        token = channels.write_credential(d, "telegram-token", TOKEN)
        where = f"127.0.0.1:{telegram.port}"
        config = channels.channels_config(
            [channels.account("telegram", token, egress=[where],
                              options={"apiRoot": telegram.url, "pollTimeout": "5"})],
            allow_private=[where])
        gw = Gateway(model, config=config)
        try:
            channels.wait_for_state(gw, "telegram", "connected")
            telegram.message(DM, "hello?")
            harness.wait_for(lambda: channels.pending_pairing(gw), what="a pairing request")
            channels.approve_pairing(gw, channels.pending_pairing(gw)[0]["code"])

            def replies():
                return sum(1 for s in telegram.control("sent")["sent"]
                           if s["method"] == "sendMessage" and s["chat_id"] == DM["id"])

            latencies = []
            calls_before = len(telegram.sent(chat_id=DM["id"]))
            for i in range(N_CHANNEL + 3):  # the first three warm up
                before = replies()
                t0 = time.monotonic()
                telegram.message(DM, f"bench {i}")
                while replies() <= before:
                    if time.monotonic() - t0 > 30:
                        raise RuntimeError(f"no reply to bench {i}\n{gw.stderr()[-2000:]}")
                    time.sleep(0.0005)
                if i >= 3:
                    latencies.append(time.monotonic() - t0)
                    # Once chitin's work after the reply (offset, transcript) is done, or the
                    # fakes' figures would carry it.
                    time.sleep(0.05)
                    sends += _timed_http(f"{telegram.url}/bot{TOKEN}/sendMessage",
                                         {"chat_id": PROBE_CHAT["id"], "text": "probe"}, n=1)
                    peeks += _timed_http(f"{telegram.url}/control/sent", n=1)
            time.sleep(0.5)  # idle again
            # Bot API calls per message besides getUpdates (the reply, typing, the reaction).
            calls = (len(telegram.sent(chat_id=DM["id"])) - calls_before) / (N_CHANNEL + 3)
            memory = []
            procs = harness._processes()
            for pid in gw.worker_pids("channel-telegram"):
                memory.append((smaps_kib(pid), private_kib(procs[pid][0])))
        finally:
            gw.cleanup()
    finally:
        telegram.stop()
    return {"latencies": latencies, "poll": poll, "send": sends, "peek": peeks,
            "model": model.own_p50(),
            "calls": calls, "sync": syncs, "memory": memory}


def print_channel_cost(model, instant):
    c = channel_cost(instant)
    lat = c["latencies"]
    p50 = pct(lat, 50)
    print("\n(k) Telegram message -> reply posted (fake Bot API, instant model, approved owner)")
    line(f"p50 / p99 over {len(lat)} messages", f"{ms(p50)} / {ms(pct(lat, 99))}")
    fakes = {"fake Bot API: message -> waiting getUpdates returns": pct(c["poll"], 50),
             f"fake Bot API: {c['calls']:.1f} calls (reply, typing, reaction) x one sendMessage":
                 c["calls"] * pct(c["send"], 50),
             "instant model (C++): its own time per answer (inside it)": c["model"],
             "fake Bot API: one /control/sent look (the bench's poll)": pct(c["peek"], 50)}
    for label, value in fakes.items():
        line(f"  {label} p50", ms(value))
    own = p50 - sum(fakes.values())
    line("chitin's own overhead p50 (total - the fakes above)", ms(own), "p50 <= 5 ms", own <= 0.005)
    # Not taken off: waiting for the disk is chitin's choice (the seen-store and the transcript
    # are fdatasync'd before a message counts as taken), but its price is this disk's.
    line("  for scale: one fdatasync on this disk, p50", ms(pct(c["sync"], 50)))
    print("\n(l) idle channel worker memory (smaps_rollup)")
    for m, monitor in c["memory"]:
        private = m.get("Private_Clean", 0) + m.get("Private_Dirty", 0)
        line("Telegram worker (C++): private (clean+dirty) / anonymous",
             f"{private / 1024:.2f} MiB / {m.get('Anonymous', 0) / 1024:.2f} MiB", "<= 2 MiB",
             private <= 2048)
        line("  private clean / private dirty / RSS",
             f"{m.get('Private_Clean', 0) / 1024:.2f} / {m.get('Private_Dirty', 0) / 1024:.2f} / "
             f"{m.get('Rss', 0) / 1024:.2f} MiB")
        line("  its outer bwrap monitor, private", f"{monitor / 1024:.2f} MiB")
    if not c["memory"]:
        line("Telegram worker", "NOT FOUND", "<= 2 MiB", False)
    bridge = whatsapp_bridge_memory(model)
    if isinstance(bridge, str):
        line("WhatsApp Node bridge", bridge)
    else:
        adapter, node = bridge
        line("WhatsApp adapter (C++): private (clean+dirty) / anonymous",
             f"{_private(adapter) / 1024:.2f} MiB / {adapter.get('Anonymous', 0) / 1024:.2f} MiB",
             "<= 2 MiB", _private(adapter) <= 2048)
        line("  its Node bridge (not linked: between connection attempts), private / RSS",
             f"{_private(node) / 1024:.1f} MiB / {node.get('Rss', 0) / 1024:.1f} MiB")


def _private(smaps):
    return smaps.get("Private_Clean", 0) + smaps.get("Private_Dirty", 0)


def whatsapp_bridge_memory(model):
    """(adapter smaps, bridge smaps) of an idle WhatsApp account, or why it was not measured.

    With no network here the bridge cannot reach WhatsApp: it is measured idle between two
    connection attempts, after loading Baileys, which is most of what a linked bridge holds."""
    import channels
    bridge = os.path.join(ROOT, "build", "workers", "channel", "whatsapp-bridge", "node_modules",
                          "baileys")
    if not os.path.isdir(bridge):
        return "not measured: the Baileys bridge is not built (needs Node.js >= 20 and npm)"
    gw = Gateway(model, config=channels.channels_config([channels.account("whatsapp")]))
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            procs = harness._processes()
            for adapter in gw.worker_pids("channel-whatsapp"):
                nodes = [pid for pid, (ppid, argv) in procs.items()
                         if ppid == adapter and b"node" in argv.split(b"\0")[0]]
                if nodes:
                    time.sleep(3)  # Baileys loaded, the first attempt over
                    a, n = smaps_kib(adapter), smaps_kib(nodes[0])
                    if a and n:
                        return a, n
            time.sleep(0.2)
        return "not measured: the bridge did not start within 20 s\n" + gw.stderr()[-1000:]
    finally:
        gw.cleanup()
