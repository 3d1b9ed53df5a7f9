#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A submission server for the email tests: Debian's aiosmtpd (a real RFC 5321 server) with
STARTTLS required and AUTH PLAIN/LOGIN checked against a users file, delivering each accepted
message into the recipient's Maildir, which Dovecot serves over IMAP.

Usage: smtp_sink.py PORT CERT KEY USERS_FILE MAIL_ROOT   (prints "ready" once listening)
USERS_FILE lines: "address:password". MAIL_ROOT/<address>/{new,cur,tmp} must exist.
Runs in: tests.
"""
import os
import ssl
import sys
import threading
import time
import uuid

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Deliver:
    def __init__(self, mail_root):
        self.mail_root = mail_root

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if not os.path.isdir(os.path.join(self.mail_root, address.lower())):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address.lower())
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        for rcpt in envelope.rcpt_tos:
            box = os.path.join(self.mail_root, rcpt)
            name = f"{time.time():.6f}.{uuid.uuid4().hex}.sink"
            tmp = os.path.join(box, "tmp", name)
            with open(tmp, "wb") as f:
                f.write(envelope.original_content)
            st = os.stat(box)
            os.chown(tmp, st.st_uid, st.st_gid)
            os.rename(tmp, os.path.join(box, "new", name))
        return "250 2.0.0 delivered"


def main():
    port, cert, key, users_file, mail_root = sys.argv[1:6]
    users = {}
    with open(users_file) as f:
        for line in f:
            if ":" in line:
                name, password = line.strip().split(":", 1)
                users[name] = password

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and
              users.get(auth_data.login.decode()) == auth_data.password.decode())
        return AuthResult(success=ok, handled=False)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    controller = Controller(Deliver(mail_root), hostname="127.0.0.1", port=int(port),
                            tls_context=context, require_starttls=True, auth_required=True,
                            authenticator=authenticate, auth_require_tls=True)
    controller.start()
    print("ready", flush=True)
    try:
        threading.Event().wait()  # until the test kills us
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
