#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
# Runs webchat-test.mjs against the real gateway and web chat in front of the scripted fake
# agent service (gateway-fake-server), on 127.0.0.1 with a free port. SKIP (77) when Chromium
# or the npm packages are missing, never a pass.
# Runs in: tests (e2e)
#
# Usage: run-against-fake.py PATH/TO/gateway-fake-server SCREENSHOT.png

import os
import shutil
import signal
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
SKIP = 77


def main():
    server_path, screenshot = sys.argv[1], sys.argv[2]
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not os.access(chromium, os.X_OK):
        print(f"SKIP: no Chromium at {chromium}")
        return SKIP
    if not os.path.isdir(os.path.join(HERE, "node_modules", "playwright-core")):
        print(f"SKIP: run `npm ci` in {HERE} first")
        return SKIP
    node = shutil.which("node")
    if not node:
        print("SKIP: no node")
        return SKIP

    server = subprocess.Popen([server_path, "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        url = None
        # The server prints the URL once it listens, or exits (EOF); the timer bounds a hang.
        watchdog = threading.Timer(10, server.kill)
        watchdog.start()
        for line in server.stdout:
            if line.startswith("WEBCHAT_URL="):
                url = line.strip().split("=", 1)[1]
                break
        watchdog.cancel()
        # Keep draining the server's log so a full pipe never stalls it.
        threading.Thread(target=lambda: [print(f"server: {l}", end="") for l in server.stdout],
                         daemon=True).start()
        if url is None:
            print("FAIL: gateway-fake-server printed no WEBCHAT_URL")
            return 1
        env = dict(os.environ, WEBCHAT_URL=url, WEBCHAT_SCREENSHOT=screenshot,
                   WEBCHAT_MESSAGE="hello", WEBCHAT_EXPECT_REPLY="You said: hello",
                   WEBCHAT_TOOL_MESSAGE="please use a tool to list the workspace",
                   WEBCHAT_ABORT_MESSAGE="something slow", WEBCHAT_QR_ACCOUNT="whatsapp/default",
                   CHROMIUM=chromium)
        test = subprocess.run([node, os.path.join(HERE, "webchat-test.mjs")], env=env,
                              timeout=180)
        return test.returncode
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            code = server.wait()
        if code != 0:
            print(f"FAIL: gateway-fake-server exited {code} (a clean stop exits 0)")
            sys.exit(1)


if __name__ == "__main__":
    sys.exit(main())
