# SPDX-License-Identifier: Apache-2.0
"""What the local HTTP fakes share: serve a handler on 127.0.0.1 (an ephemeral port, written
atomically to a file for the test to read) until terminated.

Runs in: tests only."""
import os
from http.server import ThreadingHTTPServer


def serve(handler, port_file):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, port_file)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0
