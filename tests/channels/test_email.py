#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The email platform against a real Dovecot (IMAP, implicit TLS and STARTTLS) and a real
aiosmtpd submission server (STARTTLS + AUTH), both Debian, with every connection of the platform
going through a SOCKS5 unix socket as it would through the egress broker. The human on the other
side is Python's own smtplib, imaplib and email package: mail in -> delivered once with its text
and attachment; the reply arrives threaded; a restart neither redelivers nor misses mail.

Runs in: tests. Setup about 0.5 s; each case one to two seconds.
"""
import base64
import email
import email.policy
import imaplib
import os
import smtplib
import ssl
import subprocess
import sys
import time
import unittest
from email.message import EmailMessage

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from support import Daemon, Harness, PlatformTest, SocksRelay, free_port, require, rmtree, tempdir, wait_port  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"
USERS = {"bot@test.local": "botpass", "alice@example.org": "alicepass"}

DOVECOT_CONF = """protocols = imap
listen = 127.0.0.1
base_dir = {dir}/run
state_dir = {dir}/state
ssl = yes
ssl_cert = <{dir}/cert.pem
ssl_key = <{dir}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{dir}/mail/%u
log_path = {dir}/dovecot.log
{extra}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/users
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={dir}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
"""


class Mail:
    """Dovecot + aiosmtpd + the SOCKS relay in one temporary directory."""

    def __init__(self, extra_dovecot=""):
        self.dir = tempdir("chitin-email-")
        os.chmod(self.dir, 0o755)
        d = self.dir
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-keyout", f"{d}/key.pem", "-out", f"{d}/cert.pem"],
                       check=True, capture_output=True)
        with open(f"{d}/users", "w") as f:
            f.writelines(f"{u}:{{PLAIN}}{p}\n" for u, p in USERS.items())
        with open(f"{d}/smtp-users", "w") as f:
            f.writelines(f"{u}:{p}\n" for u, p in USERS.items())
        nobody = 65534
        for user in USERS:
            for sub in ("new", "cur", "tmp"):
                os.makedirs(f"{d}/mail/{user}/{sub}")
            for root, dirs, _ in os.walk(f"{d}/mail/{user}"):
                os.chown(root, nobody, nobody)
        os.chown(f"{d}/mail", nobody, nobody)
        self.imap, self.imaps, self.smtp = free_port(), free_port(), free_port()
        with open(f"{d}/dovecot.conf", "w") as f:
            f.write(DOVECOT_CONF.format(dir=d, imap=self.imap, imaps=self.imaps, extra=extra_dovecot))
        self.dovecot = Daemon(["dovecot", "-F", "-c", f"{d}/dovecot.conf"], self.imaps,
                              f"{d}/dovecot.out").start()
        wait_port(self.imap)
        self.sink = subprocess.Popen([PYTHON, f"{HERE}/smtp_sink.py", str(self.smtp), f"{d}/cert.pem",
                                      f"{d}/key.pem", f"{d}/smtp-users", f"{d}/mail"],
                                     stdout=subprocess.PIPE, text=True)
        assert self.sink.stdout.readline().strip() == "ready"
        self.relay = SocksRelay(d)
        self.socket = self.relay.socket
        self.ssl = ssl.create_default_context(cafile=f"{d}/cert.pem")

    def stop(self):
        self.relay.stop()
        self.sink.kill()
        self.sink.wait()
        self.sink.stdout.close()
        self.dovecot.stop()
        rmtree(self.dir)

    def options(self, **overrides):
        o = {"address": "bot@test.local", "imapHost": "localhost", "imapPort": str(self.imaps),
             "imapTls": "tls", "smtpHost": "localhost", "smtpPort": str(self.smtp),
             "smtpTls": "starttls", "caFile": f"{self.dir}/cert.pem", "fromName": "Chitin"}
        o.update({k: str(v) for k, v in overrides.items()})
        return o

    def send_as_alice(self, subject, body, attachment=None, headers=None):
        msg = EmailMessage()
        msg["From"] = "Alice Example <alice@example.org>"
        msg["To"] = "bot@test.local"
        msg["Subject"] = subject
        msg["Message-ID"] = email.utils.make_msgid(domain="example.org")
        msg["Date"] = email.utils.formatdate()
        for k, v in (headers or {}).items():
            msg[k] = v
        msg.set_content(body)
        if attachment:
            name, data, maintype, subtype = attachment
            msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
        with smtplib.SMTP("localhost", self.smtp, timeout=10) as s:
            s.starttls(context=self.ssl)
            s.login("alice@example.org", "alicepass")
            s.send_message(msg)
        return msg

    def alice_inbox(self, count, timeout=10.0):
        """The first `count` messages in alice's INBOX, parsed by Python's email package."""
        deadline = time.monotonic() + timeout
        while True:
            with imaplib.IMAP4_SSL("localhost", self.imaps, ssl_context=self.ssl) as m:
                m.login("alice@example.org", "alicepass")
                m.select("INBOX")
                _, data = m.search(None, "ALL")
                ids = data[0].split()
                if len(ids) >= count:
                    out = []
                    for i in ids[:count]:
                        _, parts = m.fetch(i, "(RFC822)")
                        out.append(email.message_from_bytes(parts[0][1], policy=email.policy.default))
                    return out
            if time.monotonic() > deadline:
                raise AssertionError(f"alice has {len(ids)} messages, expected {count}")
            time.sleep(0.1)

    def bot_flags(self):
        with imaplib.IMAP4_SSL("localhost", self.imaps, ssl_context=self.ssl) as m:
            m.login("bot@test.local", "botpass")
            m.select("INBOX", readonly=True)
            _, data = m.fetch("1:*", "(FLAGS)")
            return [d.decode() for d in data if d]

    def egress_targets(self):
        return self.relay.targets()


class EmailTest(PlatformTest):
    @classmethod
    def setUpClass(cls):
        cls.mail = Mail()

    @classmethod
    def tearDownClass(cls):
        cls.mail.stop()

    def start(self, state, credential="botpass", **overrides):
        os.makedirs(os.path.join(self.mail.dir, state), exist_ok=True)
        h = Harness("email", self.mail.options(**overrides), credential=credential,
                    state_dir=os.path.join(self.mail.dir, state), egress_socket=self.mail.socket)
        self.cleanup.append(h.stop)
        return h

    def test_mail_in_is_delivered_once_and_the_reply_arrives_threaded(self):
        h = self.start("s1")
        connected = h.wait_status("CONNECTED")
        self.assertIn("TLS", connected["detail"])
        self.assertIn("IDLE", connected["detail"])
        self.assertEqual(connected["identity"], "bot@test.local")

        pdf = b"%PDF-1.4\n" + bytes(range(256)) * 4
        sent = self.mail.send_as_alice("Caf\u00e9 plans", "Shall we meet at 5?\nBring the notes.",
                                       attachment=("notes \u00e9.pdf", pdf, "application", "pdf"))
        t0 = time.monotonic()
        m = h.wait_deliver()
        latency = time.monotonic() - t0
        self.assertLess(latency, 5.0)
        self.assertEqual(m["chatId"], "alice@example.org")
        self.assertEqual(m["senderId"], "alice@example.org")
        self.assertEqual(m["senderName"], "Alice Example")
        self.assertFalse(m["group"])
        self.assertEqual(m["messageId"], sent["Message-ID"].strip("<>"))
        self.assertEqual(m["threadId"], m["messageId"])
        self.assertEqual(m["text"], "Subject: Caf\u00e9 plans\n\nShall we meet at 5?\nBring the notes.")
        self.assertEqual(len(m["attachments"]), 1)
        a = m["attachments"][0]
        self.assertEqual((a["name"], a["mimeType"], a["size"]), ("notes \u00e9.pdf", "application/pdf", len(pdf)))
        self.assertEqual(base64.b64decode(a["data64"]), pdf)

        # Delivered, then marked \Seen; and not delivered a second time.
        deadline = time.monotonic() + 5
        while "\\Seen" not in " ".join(self.mail.bot_flags()):
            self.assertLess(time.monotonic(), deadline, "never marked \\Seen")
            time.sleep(0.1)
        time.sleep(0.5)
        self.assertEqual(len(h.delivered()), 1)

        ids = h.send("alice@example.org", "Yes, **5 pm**. Notes attached.", reply_to=m["messageId"],
                     thread_id=m["threadId"],
                     attachments=[{"name": "agenda.txt", "mimeType": "text/plain",
                                   "data64": base64.b64encode(b"1. coffee\n").decode()}])
        self.assertEqual(len(ids), 1)
        reply = self.mail.alice_inbox(1)[0]
        self.assertEqual(reply["Subject"], "Re: Caf\u00e9 plans")
        self.assertEqual(reply["In-Reply-To"], sent["Message-ID"])
        self.assertEqual(reply["References"].split(), [sent["Message-ID"]])
        self.assertEqual(reply["Message-ID"], "<" + ids[0] + ">")
        self.assertEqual(reply["From"].addresses[0].addr_spec, "bot@test.local")
        self.assertEqual(reply["Auto-Submitted"], "auto-replied")
        body = reply.get_body(preferencelist=("plain",)).get_content()
        self.assertEqual(body.strip(), "Yes, 5 pm. Notes attached.")  # Markdown made plain
        attachments = list(reply.iter_attachments())
        self.assertEqual([x.get_filename() for x in attachments], ["agenda.txt"])
        self.assertEqual(attachments[0].get_content(), "1. coffee\n")

        # Both IMAP and SMTP went through the egress socket.
        targets = self.mail.egress_targets()
        self.assertIn(f"localhost:{self.mail.imaps}", targets)
        self.assertIn(f"localhost:{self.mail.smtp}", targets)

    def test_restart_neither_redelivers_nor_misses(self):
        first = self.start("s2")
        first.wait_status("CONNECTED")
        a = self.mail.send_as_alice("one", "first mail")
        self.assertEqual(first.wait_deliver()["messageId"], a["Message-ID"].strip("<>"))
        first.stop()
        b = self.mail.send_as_alice("two", "sent while the platform was down")
        second = self.start("s2")
        got = second.wait_deliver()
        self.assertEqual(got["messageId"], b["Message-ID"].strip("<>"))
        c = self.mail.send_as_alice("three", "after the restart")
        self.assertEqual(second.wait_deliver()["messageId"], c["Message-ID"].strip("<>"))
        time.sleep(0.5)
        self.assertEqual([m["messageId"] for m in second.delivered()],
                         [b["Message-ID"].strip("<>"), c["Message-ID"].strip("<>")])

    def test_automatic_mail_is_skipped(self):
        h = self.start("s3")
        h.wait_status("CONNECTED")
        self.mail.send_as_alice("Out of office", "I am away", headers={"Auto-Submitted": "auto-replied"})
        real = self.mail.send_as_alice("real", "a person wrote this")
        self.assertEqual(h.wait_deliver()["messageId"], real["Message-ID"].strip("<>"))
        self.assertEqual(len(h.delivered()), 1)

    def test_wrong_password_fails_without_retrying(self):
        h = self.start("s4", credential="wrong")
        failed = h.wait_status("FAILED")
        self.assertIn("login as 'bot@test.local' failed", failed["detail"])
        self.assertNotIn("wrong", failed["detail"].replace("login", ""))

    def test_unverified_sender_when_a_trusted_authserv_id_is_set(self):
        h = self.start("s5", trustedAuthServId="mx.test.local")
        h.wait_status("CONNECTED")
        # Alice forges the header herself; the topmost one is hers since no server added one,
        # but it names a server we do not trust.
        self.mail.send_as_alice("forged", "trust me",
                                headers={"Authentication-Results": "evil.example; dmarc=pass"})
        self.assertEqual(h.wait_deliver()["senderId"], "unverified:alice@example.org")

    def test_bad_options_fail_the_factory(self):
        h = Harness("email", {"address": "not-an-address", "imapHost": "x", "smtpHost": "y"})
        self.assertIn('"address"', h.wait(lambda e: e["event"] == "factoryError")["what"])
        h = Harness("email", {"address": "a@b.c", "imapHost": "x", "smtpHost": "y", "imapTls": "maybe"})
        self.assertIn('"imapTls"', h.wait(lambda e: e["event"] == "factoryError")["what"])


class PollingStartTlsTest(unittest.TestCase):
    """A server without IDLE (its capability list says so): the platform polls with NOOP; and
    the plain-text port upgraded with STARTTLS."""

    def test_polling_without_idle_over_starttls(self):
        mail = Mail(extra_dovecot="imap_capability = IMAP4rev1 SASL-IR LITERAL+ ENABLE UIDPLUS")
        try:
            h = Harness("email", mail.options(imapPort=mail.imap, imapTls="starttls", pollSeconds=1),
                        credential="botpass", state_dir=mail.dir, egress_socket=mail.socket)
            try:
                connected = h.wait_status("CONNECTED")
                self.assertIn("polling every 1 s", connected["detail"])
                self.assertIn("TLS", connected["detail"])
                sent = mail.send_as_alice("polled", "found by NOOP polling")
                self.assertEqual(h.wait_deliver(timeout=5)["messageId"], sent["Message-ID"].strip("<>"))
            finally:
                h.stop()
        finally:
            mail.stop()


if __name__ == "__main__":
    require("dovecot", "openssl")
    try:
        import aiosmtpd  # noqa: F401
    except ImportError:
        print("SKIP: python3-aiosmtpd is not installed")
        sys.exit(77)
    if os.geteuid() != 0:
        print("SKIP: needs root to start Dovecot and own its Maildirs")
        sys.exit(77)
    unittest.main(verbosity=2)
