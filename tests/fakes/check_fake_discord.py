#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Checks fake_discord.py with an independent client, Debian's discord.py (python3-discord):
if the fake misread the documentation in a way discord.py depends on, this fails.

Runs in: tests only. discord.py connects with zlib-stream compression, identifies, receives a
DM, replies, reacts and types; the fake then turns zombie (no ACKs) and discord.py must resume
and get the message dispatched meanwhile; op 7 makes it resume again; a forced 429 is waited
out; a bad token ends with close code 4004. Prints "N passed, 0 failed".
"""

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

try:
    import discord
    import discord.gateway
    import discord.http
    import yarl
except ImportError:
    print("SKIP: python3-discord is not installed")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
TOKEN = "check-token"


def control(port, action, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/_control/{action}",
                                 data=json.dumps(body or {}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def start_fake(tmp):
    port_file = os.path.join(tmp, "port")
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "fake_discord.py"), "--port", "0",
                             "--port-file", port_file, "--token", TOKEN, "--heartbeat-ms", "400"])
    deadline = time.time() + 10
    while not os.path.exists(port_file):
        if time.time() > deadline or proc.poll() is not None:
            proc.kill()
            sys.exit("FAIL: fake_discord.py did not start")
        time.sleep(0.02)
    return proc, int(open(port_file).read())


async def wait_for(predicate, what, timeout=10):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def scenario(port):
    passed = 0
    intents = discord.Intents.none()
    intents.guilds = intents.guild_messages = intents.dm_messages = intents.message_content = True
    client = discord.Client(intents=intents, heartbeat_timeout=1.5)
    seen = []
    resumed = []

    @client.event
    async def on_message(message):
        seen.append(message)

    @client.event
    async def on_resumed():
        resumed.append(time.monotonic())

    task = asyncio.ensure_future(client.start(TOKEN))
    await wait_for(client.is_ready, "READY")
    assert str(client.user.id) == "100000000000000001", client.user
    state = control(port, "state")
    assert state["connections"][0]["query"]["compress"] == "zlib-stream"
    assert state["connections"][0]["identify"]["intents"] == int(intents.value)
    passed += 1

    author = {"id": "200000000000000002", "username": "alice", "discriminator": "0", "bot": False}
    control(port, "message", {"channel_id": "300000000000000003", "author": author,
                              "content": "hello bot"})
    await wait_for(lambda: len(seen) == 1, "the DM")
    msg = seen[0]
    assert msg.content == "hello bot" and msg.guild is None
    await msg.reply("hi alice")
    await msg.add_reaction("👀")
    await msg.channel.typing()
    log = control(port, "state")["log"]
    posted = [r for r in log if r["kind"] == "message_posted"]
    assert posted[-1]["content"] == "hi alice"
    assert posted[-1]["message_reference"]["message_id"] == msg.id or \
        str(posted[-1]["message_reference"]["message_id"]) == str(msg.id)
    assert [r["emoji"] for r in log if r["kind"] == "reaction"] == ["👀"]
    assert any(r["kind"] == "typing" for r in log)
    passed += 1

    # A zombie connection: no ACKs. discord.py gives up after heartbeat_timeout and resumes;
    # the message dispatched meanwhile is replayed exactly once.
    control(port, "zombie")
    control(port, "message", {"channel_id": "300000000000000003", "author": author,
                              "content": "while you were away"})
    await wait_for(lambda: len(seen) == 2, "the replayed message", timeout=15)
    assert seen[1].content == "while you were away"
    resume = control(port, "state")["connections"][-1]["resume"]
    assert resume and resume["seq"] >= 2, resume
    await asyncio.sleep(0.5)
    assert len(seen) == 2
    passed += 1

    # op 7: reconnect and resume.
    count = len(control(port, "state")["connections"])
    control(port, "reconnect")
    await wait_for(lambda: len(control(port, "state")["connections"]) > count, "op 7 reconnect")
    await wait_for(lambda: control(port, "state")["connections"][-1]["resume"] is not None,
                   "RESUME after op 7")
    passed += 1

    # A forced 429 on the messages route is waited out and the post retried.
    control(port, "rate_limit", {"route": "POST /channels/{channel_id}/messages",
                                 "retry_after": 0.4})
    start = time.monotonic()
    await msg.channel.send("after a 429")
    assert time.monotonic() - start >= 0.35
    passed += 1

    await client.close()
    await asyncio.wait_for(task, 5)

    # A wrong token: the gateway closes with 4004, which discord.py treats as fatal.
    bad = discord.Client(intents=intents)
    try:
        await asyncio.wait_for(bad.start("wrong-token"), 10)
        raise AssertionError("a wrong token was accepted")
    except discord.LoginFailure:
        passed += 1  # REST /users/@me already said 401
    finally:
        await bad.close()
    return passed


def main():
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_fake(tmp)
        try:
            # discord.py 2.2 takes its REST root and first gateway URL from class attributes.
            discord.http.Route.BASE = f"http://127.0.0.1:{port}/api/v10"
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(f"ws://127.0.0.1:{port}/")
            passed = asyncio.run(asyncio.wait_for(scenario(port), 60))
        finally:
            proc.terminate()
            proc.wait(5)
    print(f"{passed} passed, 0 failed")


if __name__ == "__main__":
    main()
