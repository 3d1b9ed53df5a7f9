# SPDX-License-Identifier: Apache-2.0
"""Helpers for end-to-end tests of chat channels through the real gateway and sandboxed workers.

A test configures accounts with `channels_config()` (passed as `Gateway(config=...)`), whose
credentials `write_credential()` puts in the test's temporary directory (mode 0600, owned by the
user the gateway runs as: the gateway refuses anything else), then follows the accounts with
`wait_for_state()` and lets a sender in with `approve_pairing()`, as the README tells an owner:

    token = channels.write_credential(d, "telegram-default", "123:abc")
    config = channels.channels_config([channels.account("telegram", token,
                                        options={"apiRoot": fake.url})])
    gw = harness.Gateway(model, config=config)
    channels.wait_for_state(gw, "telegram", "connected")
    # the fake platform delivers a stranger's DM; the bot answers with a pairing code
    channels.approve_pairing(gw, code)
"""
import json
import os
import shutil
import signal
import subprocess
import time

import harness


def write_credential(directory, name, token):
    """Writes `token` (plus a newline) to directory/name, mode 0600, owned by the gateway's user."""
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.chmod(path, 0o600)
    if harness.running_as_root():
        shutil.chown(path, harness.TEST_USER, harness.TEST_USER)
        # The gateway's user must reach the file.
        os.chmod(directory, os.stat(directory).st_mode | 0o711)
    return path


def _quoted(value):
    return json.dumps(value)  # a JSON string is a valid protobuf text-format string here


def account(kind, credential_file=None, name="default", options=None, egress=(), disabled=False):
    """One `account { ... }` block for channels_config()."""
    lines = [f"kind: {_quoted(kind)}", f"account: {_quoted(name)}"]
    if credential_file:
        lines.append(f"credential_file: {_quoted(credential_file)}")
    for key, value in sorted((options or {}).items()):
        lines.append(f"options {{ key: {_quoted(key)} value: {_quoted(str(value))} }}")
    for host_port in egress:
        lines.append(f"egress: {_quoted(host_port)}")
    if disabled:
        lines.append("disabled: true")
    return "  account {\n" + "".join(f"    {l}\n" for l in lines) + "  }\n"


def channels_config(accounts, allow_private=(), ack_reaction=None, max_attachment_bytes=None,
                    extra=""):
    """chitin.conf text with these account blocks (and the egress exceptions they need)."""
    text = "channels {\n" + "".join(accounts)
    if ack_reaction is not None:
        text += f"  ack_reaction: {_quoted(ack_reaction)}\n"
    if max_attachment_bytes is not None:
        text += f"  max_attachment_bytes: {int(max_attachment_bytes)}\n"
    text += "}\n"
    if allow_private:
        text += "egress {\n" + "".join(f"  allow_private: {_quoted(a)}\n" for a in allow_private) + "}\n"
    return text + extra


def status(gw):
    """`chitin channels status --json`: the accounts as the gateway reports them."""
    r = gw.cli("channels", "status", "--json")
    if not r.stdout.strip():
        raise AssertionError(f"channels status printed nothing: rc={r.returncode} {r.stderr!r}")
    return json.loads(r.stdout).get("accounts", [])


def account_status(gw, kind, name="default"):
    for a in status(gw):
        if a.get("kind") == kind and a.get("account") == name:
            return a
    raise AssertionError(f"{kind}/{name} is not in channels status")


def wait_for_state(gw, kind, state, name="default", timeout=20):
    """Waits until the account reports `state`; returns its status. Fails naming the last one."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = account_status(gw, kind, name)
        if last.get("state") == state:
            return last
        time.sleep(0.1)
    raise AssertionError(f"{kind}/{name} never became {state}: {last}\n{gw.stderr()[-3000:]}")


def pending_pairing(gw):
    """The pending pairing requests: [{code, channel, sender, ...}]."""
    r = gw.cli("pairing", "list", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout).get("requests", [])


def approve_pairing(gw, code, user=None):
    """`chitin pairing approve CODE` (the sender joins User::"owner" unless `user` says)."""
    args = ["pairing", "approve", code] + (["--user", user] if user else [])
    r = gw.cli(*args)
    assert r.returncode == 0, f"pairing approve {code}: {r.stdout} {r.stderr}"
    return r.stdout


def seen_ids(gw, kind, name="default"):
    """The message ids the gateway recorded for an account ("<chatId> <messageId>" lines)."""
    path = os.path.join(gw.home, "state", "channel-seen", f"{kind}-{name}")
    try:
        with open(path) as f:
            return [line for line in f.read().splitlines() if line]
    except OSError:
        return []


def kill_worker(gw, kind):
    """kill -9 of the account's one worker (`kind` as "channel-telegram"); returns its pids."""
    pids = harness.wait_for(lambda: gw.worker_pids(kind), what=f"the {kind} worker")
    assert len(pids) == 1, f"one {kind} worker expected, found {pids}"
    os.kill(pids[0], signal.SIGKILL)
    return pids


def wait_restarted(gw, kind, old_pids, timeout=30):
    """Waits for a worker of `kind` other than `old_pids` (the supervisor's restart)."""
    return harness.wait_for(lambda: (lambda p: p and p != old_pids)(gw.worker_pids(kind)),
                            timeout=timeout, what=f"a new {kind} worker")


def worker_exits(gw, kind):
    """The WORKER_EXIT audit records of `kind`'s workers."""
    return [r for r in gw.audit() if r.get("kind") == "WORKER_EXIT" and r.get("tool") == kind]


def inbox_file(gw, suffix=""):
    """The one file in the workspace's inbox/ (waited for): (name, bytes). Fails unless there is
    exactly one and its name ends with `suffix`."""
    inbox = os.path.join(gw.workspace, "inbox")
    names = harness.wait_for(lambda: os.listdir(inbox) if os.path.isdir(inbox) else None,
                             what="inbox/")
    assert len(names) == 1 and names[0].endswith(suffix), f"inbox/ holds {names}"
    with open(os.path.join(inbox, names[0]), "rb") as f:
        return names[0], f.read()


def session(gw, key):
    """One session of `chitin sessions --json` ({key, tainted, ...}); fails naming those there are."""
    r = gw.cli("sessions", "--json")
    sessions = {s["key"]: s for s in json.loads(r.stdout)["sessions"]}
    assert key in sessions, f"no session {key}: {sorted(sessions)}"
    return sessions[key]


def only_session(gw, key_part):
    """The one session whose key contains `key_part` (`chitin sessions --json`)."""
    r = gw.cli("sessions", "--json")
    sessions = [s for s in json.loads(r.stdout)["sessions"] if key_part in s["key"]]
    if len(sessions) != 1:
        raise AssertionError(f"expected one session with {key_part!r} in its key: {r.stdout}")
    return sessions[0]


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


class FakeServer:
    """A fake platform from tests/fakes/ (`SCRIPT --port 0 --port-file PATH ARGS...`) on
    127.0.0.1, its stderr in workdir/<name>.err; `port` and `url` once it listens."""

    def __init__(self, workdir, name, script, args=()):
        port_file = os.path.join(workdir, f"{name}.port")
        self._err = open(os.path.join(workdir, f"{name}.err"), "w")
        self.proc = subprocess.Popen(
            [harness.PYTHON, script, "--port", "0", "--port-file", port_file, *args],
            stdout=subprocess.DEVNULL, stderr=self._err)
        self.port = int(harness.wait_for(lambda: _read(port_file), what=f"{name} port"))
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self._err.close()
