# SPDX-License-Identifier: Apache-2.0
"""Red-team scenarios that need a gateway of their own (tests/redteam/README.md): a session worker
that breaks the RPC protocol and processes that try to outlive the supervisor (11, 9), the local
control plane (14), and a hostile workspace against snapshots and rollback (16, 17).

The same machinery as test_redteam.py. Run by meson (`meson test --suite redteam`).
"""
import os
import shutil
import signal
import socket
import subprocess
import time
import unittest

from test_redteam import (END, SKIP, HERE, RedTeamBase, ex, tool, statuses, tool_results, audit_since, last_seq, scan, harness, test_e2e, Canaries, assert_clean, Gateway, wait_for, HandshakeError, WsClient)  # noqa: E402
import channels  # noqa: E402  (tests/e2e/, on the path through test_redteam)


HOSTILE_SCRIPT = {"scenarios": {
    "twice": [ex("echo once >> count.txt"), END],
    "outlive": [ex("sleep 4245.5 & sleep 4245.5; echo never")],
}}

# Stands in for /usr/bin/bwrap (the gateway's `sandbox { bwrap_path }`): while the file `hold`
# exists beside it, a spawn stops for HOLD_SECONDS between the supervisor's clone and bwrap's own
# set-up (it says so with a file `held.<pid>`), as a slow or loaded host can stop it; then, and
# always otherwise, it becomes the real bwrap with the same argv. It sleeps in its own process
# (no child of its own), so what outlives the supervisor is the spawn itself.
SLOW_BWRAP = """#!/usr/bin/python3
import os, sys, time
here = os.path.dirname(os.path.abspath(__file__))
if os.path.exists(os.path.join(here, "hold")):
    # Our pid as the supervisor sees it: /proc is its, and we are pid 1 of our own namespace.
    open(os.path.join(here, "held.%s" % os.readlink("/proc/self")), "w").close()
    time.sleep(HOLD)
os.execv("/usr/bin/bwrap", ["/usr/bin/bwrap"] + sys.argv[1:])
"""
HOLD_SECONDS = 5


def descendants(root):
    """pids below `root` in the process tree (bwrap's sandboxes nest: outer bwrap, worker, the
    worker's own children), as seen now."""
    procs = harness.processes()
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, (ppid, _) in procs.items() if ppid in frontier} - found
        found |= frontier
    return found


def alive(pid):
    """Whether `pid` runs. A zombie does not: it is dead and holds nothing but its pid until its
    parent (pid 1 once the supervisor is gone) reaps it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@unittest.skipIf(SKIP, SKIP or "")
class HostileWorker(RedTeamBase):
    """Scenario 11: a session worker that breaks the RPC protocol; 9: outliving the supervisor."""

    def setUp(self):
        self.client_texts = []

    def assert_carries_on(self, gw, model):
        self.assertIsNone(gw.proc.poll())
        self.assertEqual(gw.cli("health").returncode, 0)
        code, out, err = gw.agent_json("keep going", "agent:main:redteam:direct:bystander")
        self.assertEqual(code, 0, err)
        self.assertEqual(out["reply"], "echo: keep going")

    def test_11_capability_abuse_from_a_hostile_session_worker(self):
        canaries = Canaries()

        def setup(d):
            args = canaries.gateway_args(d)
            args.update(test_e2e.hostile_workers(d))
            return args

        try:
            with harness.own_gateway(HOSTILE_SCRIPT, setup, prepare_home=canaries.plant_home,
                                     model_args={"expect_key": canaries.values["api_key"]}) as (model, gw):
                canaries.started(gw, model)
                before = canaries.snapshot(gw)
                seq = last_seq(gw)
                # Control first: a well-behaved turn through the same worker binary.
                self.assertEqual(self.turn(gw, "keep this turn's model", "agent:main:redteam:direct:reuse")
                                 ["status"], "ok")
                cases = [
                    ("invent a call", "agent:main:redteam:direct:invent", "was not requested by the model"),
                    ("reuse the old one", "agent:main:redteam:direct:reuse", "capability of a turn that has ended"),
                    ("twice [[scenario:twice]] go", "agent:main:redteam:direct:twice", "was not requested by the model"),
                    ("forge a capability", "agent:main:redteam:direct:forge", None),
                    ("garbage bytes", "agent:main:redteam:direct:garbage", None),
                ]
                for message, session, violation in cases:
                    with self.subTest(message=message):
                        out = self.turn(gw, message, session)
                        self.assertEqual(out["status"], "error", out)
                        self.assertIn("session worker", out["error"])
                        if violation:
                            self.assertIn(violation, gw.stderr())
                        wait_for(lambda: not gw.worker_pids("session") or
                                 len(gw.worker_pids("session")) <= 2, what="the worker to go")
                        self.assert_carries_on(gw, model)
                self.assertFalse(os.path.exists(os.path.join(gw.workspace, "pwned")))
                with open(os.path.join(gw.workspace, "count.txt")) as f:
                    self.assertEqual(f.read(), "once\n")  # the replay did not run
                starts = [r for r in audit_since(gw, seq) if r["kind"] == "TOOL_START"]
                self.assertEqual(len(starts), 1, starts)
                assert_clean(self, canaries, gw, model, before,
                             [c[1] for c in cases], self.client_texts)
        finally:
            canaries.cleanup()

    def test_09_sandboxed_processes_do_not_outlive_the_supervisor(self):
        with harness.own_gateway(HOSTILE_SCRIPT) as (model, gw):
            proc = subprocess.Popen([harness.CHITIN, "agent", "-m", "[[scenario:outlive]] go",
                                     "--session", "agent:main:redteam:direct:outlive"],
                                    env=gw.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_for(lambda: len(scan(b"4245.5")) >= 2, timeout=20, what="the sandboxed sleeps")
                # The whole supervisor goes at once (no clean shutdown), as in a crash.
                gw.proc.send_signal(signal.SIGKILL)
                gw.proc.wait(timeout=10)
                wait_for(lambda: not scan(b"4245.5"), timeout=10,
                         what="the sandboxed processes to die with the supervisor")
            finally:
                proc.kill()
                proc.wait()

    def test_09_no_layer_of_any_sandbox_outlives_a_supervisor_killed_mid_spawn(self):
        """Every sandbox of every kind dies with the supervisor: the outer bwrap, the worker in
        it, the worker's own children, and a spawn caught between clone and bwrap's own
        --die-with-parent (which bwrap arms only after its set-up, tied to whoever is its parent
        by then: pid 1 once the supervisor has died)."""
        irc = socket.socket()  # an IRC server that accepts and never answers: the worker waits
        irc.bind(("127.0.0.1", 0))
        irc.listen(4)
        where = f"127.0.0.1:{irc.getsockname()[1]}"
        held_dir = []

        def setup(d):
            os.chmod(d, 0o755)
            spawn_dir = os.path.join(d, "spawn")
            os.mkdir(spawn_dir, 0o755)
            wrapper = os.path.join(spawn_dir, "slow-bwrap")
            with open(wrapper, "w") as f:
                f.write(SLOW_BWRAP.replace("HOLD", str(HOLD_SECONDS)))
            os.chmod(wrapper, 0o755)
            if harness.running_as_root():
                shutil.chown(spawn_dir, harness.TEST_USER, harness.TEST_USER)
            held_dir.append(spawn_dir)
            config = channels.channels_config(
                [channels.account("irc", options={"server": "127.0.0.1", "port": where.split(":")[1],
                                                  "tls": "false", "nick": "chitinbot"})],
                allow_private=[where], extra=f'sandbox {{ bwrap_path: "{wrapper}" }}\n')
            return {"config": config}

        survivors = set()
        cleanup = None
        agents = []
        try:
            with harness.own_gateway(HOSTILE_SCRIPT, setup) as (model, gw):
                spawn_dir = held_dir[0]
                # Running sandboxes of four kinds: the model worker, a channel worker, a session
                # worker, and an exec tool worker with two children of its own.
                wait_for(lambda: gw.worker_pids("channel-irc"), timeout=20, what="the IRC worker")
                agents.append(subprocess.Popen(
                    [harness.CHITIN, "agent", "-m", "[[scenario:outlive]] go",
                     "--session", "agent:main:redteam:direct:outlive"],
                    env=gw.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                wait_for(lambda: len(scan(b"4245.5")) >= 2, timeout=20, what="the sandboxed sleeps")
                # And one spawn caught before bwrap has armed anything: a new session's first
                # exec sandbox (its session worker is forked by the session zygote, which runs
                # already: no bwrap of its own).
                open(os.path.join(spawn_dir, "hold"), "w").close()
                agents.append(subprocess.Popen(
                    [harness.CHITIN, "agent", "-m", "[[scenario:twice]] go", "--session",
                     "agent:main:redteam:direct:midspawn"],
                    env=gw.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                held = wait_for(lambda: [n for n in os.listdir(spawn_dir) if n.startswith("held.")],
                                timeout=20, what="a spawn held before bwrap")
                held_pid = int(held[0].split(".")[1])
                tree = descendants(gw.proc.pid)
                markers = [gw.home.encode(), spawn_dir.encode(), b"4245.5"]

                def marked():
                    return {pid for pid, (_, argv) in harness.processes().items()
                            if any(m in argv for m in markers)}

                def left():
                    return {pid for pid in tree | marked() if alive(pid)}

                # Control: the scan sees every layer of every kind while the supervisor runs.
                self.assertIn(held_pid, tree)
                for kind in ("model", "channel-irc", "session", "exec"):
                    self.assertTrue(gw.worker_pids(kind), kind)
                self.assertGreaterEqual(len(scan(b"4245.5")), 2)
                self.assertLessEqual({held_pid, *scan(b"4245.5")}, left())
                # The whole supervisor goes at once (no clean shutdown), as in a crash.
                gw.proc.send_signal(signal.SIGKILL)
                gw.proc.wait(timeout=10)
                try:
                    wait_for(lambda: not left(), timeout=2,
                             what="every sandboxed process to die with the supervisor")
                except TimeoutError:
                    survivors = left()
                    procs = harness.processes()
                    cleanup = marked
                    self.fail("outlived the supervisor: " + "; ".join(
                        f"{pid} (ppid {procs[pid][0]}): {procs[pid][1][:120]!r}"
                        for pid in sorted(survivors) if pid in procs))
        finally:
            if survivors:  # never left running for the next test, nor what a held spawn starts
                time.sleep(HOLD_SECONDS)
                for pid in survivors | cleanup() | set().union(*map(descendants, survivors)):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
            for agent in agents:
                agent.kill()
                agent.wait()
            irc.close()


@unittest.skipIf(SKIP, SKIP or "")
class ControlPlane(RedTeamBase):
    """Scenario 14: the local control plane."""

    def connect_with(self, gw, token, path="/ws", origin=None):
        ws = WsClient("127.0.0.1", gw.port, path=path, origin=origin)
        challenge = ws.recv_json()
        auth = {} if token is None else {"token": token}
        ws.send_json({"type": "req", "id": "c1", "method": "connect",
                      "params": {"auth": auth, "nonce": challenge["payload"]["nonce"],
                                 "client": {"id": "redteam", "version": "1", "user": "redteam"},
                                 "minProtocol": 1, "maxProtocol": 1}})
        res = ws.recv_json()
        ws.close()
        return res

    def test_14_control_plane_hijack(self):
        config = "gateway { auth_failures_before_lockout: 3 lockout_seconds: 2 }\n"
        gw = Gateway(None, config=config)
        try:
            # Another origin: refused at the upgrade.
            with self.assertRaises(HandshakeError) as ctx:
                WsClient("127.0.0.1", gw.port, origin="http://evil.example")
            self.assertEqual(ctx.exception.status, 403)
            with self.assertRaises(HandshakeError) as ctx:
                WsClient("127.0.0.1", gw.port, origin=f"http://127.0.0.1.evil.example:{gw.port}")
            self.assertEqual(ctx.exception.status, 403)
            stderr_before = len(gw.stderr())
            failures = 0
            # A token in the URL authenticates nothing (refused at the upgrade, or unauthenticated).
            try:
                res = self.connect_with(gw, None, path=f"/ws?token={gw.token}")
                self.assertEqual(res["error"]["code"], "UNAUTHORIZED", res)
                failures += 1
            except HandshakeError as e:
                self.assertEqual(e.status, 404)
            # Missing and wrong tokens, then brute force: each failing connection past the third
            # is answered later than the one before...
            guesses = [None, "0" * 64, gw.token[:-1] + ("0" if gw.token[-1] != "0" else "1"),
                       "guess-a", "guess-b"]
            while failures < 3:
                res = self.connect_with(gw, guesses.pop(0))
                self.assertEqual(res["error"]["code"], "UNAUTHORIZED", res)
                failures += 1
            started = time.time()
            for i in range(3):
                self.assertEqual(self.connect_with(gw, f"guess{i}")["error"]["code"], "UNAUTHORIZED")
            self.assertGreaterEqual(time.time() - started, 1.0, "failures were not slowed")
            # ...but a guesser cannot lock the owner out (issue 8 §9): the right token, from the
            # same address, gets in at once, and so does the CLI.
            started = time.time()
            res = self.connect_with(gw, gw.token)
            self.assertTrue(res["ok"], res)
            self.assertLess(time.time() - started, 0.9)
            self.assertEqual(gw.cli("status").returncode, 0)
            # HTTP with the token in the query: the page, nothing more; the token is not logged.
            s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
            s.sendall(f"GET /?token={gw.token} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                      .encode())
            page = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                page += chunk
            s.close()
            self.assertNotIn(gw.token.encode(), page)
            self.assertNotIn(gw.token, gw.stderr()[stderr_before:])
            with open(os.path.join(os.path.dirname(os.path.dirname(HERE)), "web", "app.js")) as f:
                app = f.read()
            # The web chat takes the token from the fragment only (never sent to a server).
            self.assertIn("new URLSearchParams(location.hash", app)
            self.assertNotIn("URLSearchParams(location.search", app)
            # Control: the right token from the gateway's own origin works.
            ws = WsClient("127.0.0.1", gw.port, origin=f"http://127.0.0.1:{gw.port}")
            ws.close()
            res = self.connect_with(gw, gw.token, origin=f"http://127.0.0.1:{gw.port}")
            self.assertTrue(res["ok"], res)
            self.assertEqual(gw.cli("status").returncode, 0)
        finally:
            gw.cleanup()


@unittest.skipIf(SKIP, SKIP or "")
class HostileWorkspace(RedTeamBase):
    """Scenarios 16 and 17: the workspace itself as the weapon. One exec makes a directory the
    supervisor cannot read (16); a write plants git config in a repository of the workspace (17).
    Neither may stop another session's calls or the owner's rollback, and both are in history."""

    SCRIPT = {"scenarios": {
        "lock": [ex("mkdir locked && echo inside > locked/f && chmod 000 locked && echo locked-ok"),
                 END],
        "lockctl": [ex("mkdir open && echo inside > open/f && echo open-ok"), END],
        "write": [tool("write", path="notes.txt", content="from another session\n"), END],
        "plant": [tool("write", path="proj/.git/config", content="[core]\n\tfsmonitor = ./evil.sh\n"),
                  END],
    }}
    GIT_CONFIG = "[core]\n\trepositoryformatversion = 0\n\tbare = false\n"

    def setUp(self):
        self.client_texts = []

    def prepare(self, gw):
        os.makedirs(os.path.join(gw.workspace, "proj", ".git"), exist_ok=True)
        with open(os.path.join(gw.workspace, "proj", ".git", "config"), "w") as f:
            f.write(self.GIT_CONFIG)
        with open(os.path.join(gw.workspace, "proj", ".git", "HEAD"), "w") as f:
            f.write("ref: refs/heads/main\n")

    def lock_then_write_then_rollback(self, gw, scenario):
        out = self.turn(gw, f"[[scenario:{scenario}]] go", "agent:main:redteam:direct:locker")
        self.assertEqual(statuses(out), ["ok"], out)
        seq = last_seq(gw)
        out = self.turn(gw, "[[scenario:write]] go", "agent:main:redteam:direct:bystander")
        self.assertEqual(statuses(out), ["ok"], out)
        notes = os.path.join(gw.workspace, "notes.txt")
        with open(notes) as f:
            self.assertEqual(f.read(), "from another session\n")
        start = [r for r in audit_since(gw, seq) if r["kind"] == "TOOL_START"]
        self.assertEqual(len(start), 1, start)
        self.assertEqual(len(start[0]["snapshot"]), 40)
        r = gw.cli("rollback", "--last")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertFalse(os.path.exists(notes))
        rollback = [x for x in gw.audit() if x["kind"] == "ROLLBACK"][-1]
        self.assertEqual(gw.cli("audit", "verify").returncode, 0)
        return start[0], r.stdout, rollback

    def test_16_unreadable_directory_does_not_stop_other_sessions_or_rollback(self):
        with harness.own_gateway(self.SCRIPT) as (model, gw):
            try:
                start, shown, rollback = self.lock_then_write_then_rollback(gw, "lock")
                # The snapshot says what it could not take, and why; so does the rollback.
                skipped = {s["path"]: s["reason"] for s in start.get("skipped", [])}
                self.assertIn("Permission denied", skipped.get("locked", ""), start)
                self.assertIn("not restored: locked", shown)
                self.assertEqual(rollback["outcome"], "partly restored")
                self.assertIn("locked", [s["path"] for s in rollback.get("skipped", [])])
                self.assertTrue(os.path.isdir(os.path.join(gw.workspace, "locked")))
            finally:
                os.chmod(os.path.join(gw.workspace, "locked"), 0o755)

    def test_16_control_a_readable_directory_is_snapshotted_whole(self):
        with harness.own_gateway(self.SCRIPT) as (model, gw):
            start, shown, rollback = self.lock_then_write_then_rollback(gw, "lockctl")
            self.assertNotIn("skipped", start)
            self.assertNotIn("not restored", shown)
            self.assertEqual(rollback["outcome"], "restored")
            with open(os.path.join(gw.workspace, "open", "f")) as f:
                self.assertEqual(f.read(), "inside\n")

    def test_16_a_snapshot_that_cannot_be_stored_still_stops_the_call(self):
        # Skipping is for what the workspace holds; a store that cannot take the snapshot means
        # the mutating call does not run (fail closed), and the next one runs once it can.
        with harness.own_gateway(self.SCRIPT) as (model, gw):
            objects = os.path.join(gw.home, "state", "snapshots", "main.git", "objects")
            os.chmod(objects, 0o500)
            try:
                out = self.turn(gw, "[[scenario:write]] go", "agent:main:redteam:direct:nostore")
                self.assertEqual(statuses(out), ["error"], out)
                self.assertIn("the workspace snapshot failed",
                              tool_results(gw, "agent:main:redteam:direct:nostore")[0])
                self.assertFalse(os.path.exists(os.path.join(gw.workspace, "notes.txt")))
                self.assertNotIn("TOOL_START", [r["kind"] for r in gw.audit()])
            finally:
                os.chmod(objects, 0o700)
            out = self.turn(gw, "[[scenario:write]] go", "agent:main:redteam:direct:nostore")
            self.assertEqual(statuses(out), ["ok"], out)

    def test_17_git_config_planted_in_a_workspace_repository_is_rolled_back(self):
        with harness.own_gateway(self.SCRIPT, prepare_home=self.prepare) as (model, gw):
            config = os.path.join(gw.workspace, "proj", ".git", "config")
            self.client_texts = []
            # A write into a repository's metadata asks (shipped `repository-metadata-asks`)...
            out, asked = self.ws_turn(gw, "agent:main:redteam:direct:planter", "plant",
                                      decision="deny")
            self.assertEqual([a["tool"] for a in asked], ["write"], out)
            self.assertIn("proj/.git/config", asked[0]["description"])
            with open(config) as f:
                self.assertEqual(f.read(), self.GIT_CONFIG)
            # ...and one the owner approves is in history all the same, and rolls back.
            out, asked = self.ws_turn(gw, "agent:main:redteam:direct:planter", "plant",
                                      decision="approve")
            self.assertEqual(statuses(out), ["ok"], out)
            with open(config) as f:
                self.assertIn("fsmonitor", f.read())
            changes = [r for r in gw.audit() if r["kind"] == "FILE_CHANGE"]
            self.assertEqual([f["path"] for f in changes[-1]["files"]], ["proj/.git/config"])
            r = gw.cli("rollback", "--last")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("proj/.git/config", r.stdout)
            with open(config) as f:
                self.assertEqual(f.read(), self.GIT_CONFIG)
            # Control: the rest of the repository was never touched.
            with open(os.path.join(gw.workspace, "proj", ".git", "HEAD")) as f:
                self.assertEqual(f.read(), "ref: refs/heads/main\n")


if __name__ == "__main__":
    unittest.main(verbosity=2)
