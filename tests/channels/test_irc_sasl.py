#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The IRC platform against a real InspIRCd 3 linked to Atheme services (both Debian): CAP LS
302 / REQ / END, SASL PLAIN (success and a wrong password), account-tag identities, server-time
and msgid.

Runs in: tests. Both daemons run as the Debian user `irc` (InspIRCd refuses root); setup takes
about 1.5 s, each case about a second.
"""
import os
import pwd
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ircpeer import IrcPeer  # noqa: E402
from support import Daemon, Harness, PlatformTest, SocksRelay, free_port, require, rmtree, tempdir  # noqa: E402

INSPIRCD_CONF = """<server name="irc.test.local" description="chitin test" id="001" network="TestNet">
<admin name="test" nick="test" email="test@test.local">
<bind address="127.0.0.1" port="{port}" type="clients">
<bind address="127.0.0.1" port="{link}" type="servers">
<connect name="main" allow="*" resolvehostnames="no" useident="no" fakelag="no"
  commandrate="100000" pingfreq="120" timeout="20" localmax="100" globalmax="100" limit="100">
<dns server="127.0.0.1" timeout="1">
<pid file="{dir}/inspircd.pid">
<files motd="{dir}/motd.txt">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="{dir}/inspircd.log">
<module name="cap"><module name="ircv3"><module name="ircv3_capnotify">
<module name="ircv3_servertime"><module name="ircv3_echomessage"><module name="ircv3_ctctags">
<module name="ircv3_msgid"><module name="ircv3_accounttag"><module name="ircv3_batch">
<module name="spanningtree"><module name="sasl"><module name="services_account">
<link name="services.test.local" ipaddr="127.0.0.1" port="{link}" allowmask="127.0.0.1/32"
  sendpass="pw" recvpass="pw">
<uline server="services.test.local" silent="yes">
<sasl target="services.test.local">
"""

ATHEME_CONF = """loadmodule "modules/protocol/inspircd";
loadmodule "modules/backend/opensex";
loadmodule "modules/crypto/pbkdf2v2";
loadmodule "modules/nickserv/main";
loadmodule "modules/nickserv/register";
loadmodule "modules/nickserv/identify";
loadmodule "modules/saslserv/main";
loadmodule "modules/saslserv/plain";
serverinfo {{
  name = "services.test.local"; desc = "test services"; numeric = "00A"; recontime = 1;
  netname = "TestNet"; hidehostsuffix = "users.test"; adminname = "test";
  adminemail = "test@test.local"; registeremail = "test@test.local"; auth = none;
  maxlogins = 5; maxusers = 5; maxnicks = 5; maxchans = 5; mdlimit = 30;
  emaillimit = 10; emailtime = 300;
}};
uplink "irc.test.local" {{ host = "127.0.0.1"; password = "pw"; port = {link}; }};
nickserv {{ nick = "NickServ"; user = "NickServ"; host = "services.test.local"; real = "NickServ"; }};
saslserv {{ nick = "SaslServ"; user = "SaslServ"; host = "services.test.local"; real = "SaslServ"; }};
general {{ chan = "#services"; commit_interval = 5; maxcertfp = 5; }};
logfile "{dir}/atheme.log" {{ error; info; }};
"""


def as_irc_user(argv):
    # setpriv execs, so the PID we keep is the daemon's own (runuser would add a wrapper).
    return ["setpriv", "--reuid=irc", "--regid=irc", "--init-groups"] + argv


class SaslTest(PlatformTest):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempdir("chitin-irc-sasl-")
        irc = pwd.getpwnam("irc")
        os.chmod(cls.dir, 0o755)
        cls.port, link = free_port(), free_port()
        with open(os.path.join(cls.dir, "inspircd.conf"), "w") as f:
            f.write(INSPIRCD_CONF.format(port=cls.port, link=link, dir=cls.dir))
        with open(os.path.join(cls.dir, "atheme.conf"), "w") as f:
            f.write(ATHEME_CONF.format(link=link, dir=cls.dir))
        with open(os.path.join(cls.dir, "motd.txt"), "w") as f:
            f.write("test\n")
        os.mkdir(os.path.join(cls.dir, "data"))
        for root, dirs, files in os.walk(cls.dir):
            for name in dirs + files + [""]:
                os.chown(os.path.join(root, name), irc.pw_uid, irc.pw_gid)
        cls.ircd = Daemon(as_irc_user(["inspircd", "--nofork", "--config=" + cls.dir + "/inspircd.conf"]),
                          cls.port, os.path.join(cls.dir, "inspircd.out")).start()
        cls.services = Daemon(as_irc_user(["atheme-services", "-n", "-c", cls.dir + "/atheme.conf",
                                           "-D", cls.dir + "/data", "-l", cls.dir + "/atheme.log",
                                           "-p", cls.dir + "/atheme.pid"]),
                              None, os.path.join(cls.dir, "atheme.out")).start()
        deadline = time.monotonic() + 10
        while "finished synching" not in cls.services.log():
            if time.monotonic() > deadline or cls.services.proc.poll() is not None:
                raise RuntimeError("atheme did not link: " + cls.services.log()[-2000:])
            time.sleep(0.02)
        cls.relay = SocksRelay(cls.dir)
        # Accounts, registered through NickServ as a user would.
        for nick, password in (("chitinbot", "botpass"), ("alice", "alicepass")):
            p = IrcPeer(cls.port, nick)
            p.privmsg("NickServ", f"REGISTER {password} {nick}@test.local")
            p.expect(lambda c, params, l: c == "NOTICE" and b"registered" in l)
            p.close()

    @classmethod
    def tearDownClass(cls):
        cls.relay.stop()
        cls.services.stop()
        cls.ircd.stop()
        rmtree(cls.dir)

    def platform(self, credential, **options):
        opts = {"server": "127.0.0.1", "port": str(self.port), "tls": "false", "nick": "chitinbot"}
        opts.update(options)
        h = Harness("irc", opts, credential=credential, egress_socket=self.relay.socket)
        self.cleanup.append(h.stop)
        return h

    def test_sasl_plain_logs_in_and_account_tags_name_senders(self):
        h = self.platform("botpass")
        connected = h.wait_status("CONNECTED")
        self.assertIn("logged in as chitinbot", connected["detail"])

        alice = IrcPeer(self.port, "alice")
        self.cleanup.append(alice.close)
        alice.privmsg("NickServ", "IDENTIFY alicepass")
        alice.expect(lambda c, p, l: c == "900")  # RPL_LOGGEDIN
        alice.privmsg("chitinbot", "hi from a logged-in alice")
        m = h.wait_deliver()
        self.assertEqual(m["senderId"], "account:alice")
        self.assertEqual(m["chatId"], "alice")
        self.assertTrue(m["messageId"].startswith("msgid:"), m["messageId"])
        self.assertLess(abs(m["timestampMs"] - time.time() * 1000), 5000)  # from server-time

        # Someone without an account cannot pass as alice: a nick is not an account.
        mallory = IrcPeer(self.port, "mallory")
        self.cleanup.append(mallory.close)
        mallory.privmsg("chitinbot", "I am alice, honest")
        self.assertEqual(h.wait_deliver()["senderId"], "nick:mallory")

        h.send("alice", "hello alice")
        self.assertEqual(alice.privmsgs_from("chitinbot")[0][3], "hello alice")

    def test_wrong_password_fails_without_retrying(self):
        h = self.platform("not-the-password")
        failed = h.wait_status("FAILED")
        self.assertIn("SASL login as 'chitinbot' failed", failed["detail"])
        self.assertNotIn("not-the-password", failed["detail"])
        time.sleep(0.5)
        self.assertFalse([e for e in h.seen if e["event"] == "status" and e["state"] == "RECONNECTING"])

    def test_sasl_user_option_logs_in_under_another_nick(self):
        h = self.platform("botpass", nick="chitin2", saslUser="chitinbot")
        connected = h.wait_status("CONNECTED")
        self.assertEqual(connected["identity"], "chitin2")
        self.assertIn("logged in as chitinbot", connected["detail"])


if __name__ == "__main__":
    require("inspircd", "atheme-services", "setpriv")
    try:
        pwd.getpwnam("irc")
    except KeyError:
        print("SKIP: no user 'irc' to run InspIRCd as")
        sys.exit(77)
    if os.geteuid() != 0:
        print("SKIP: needs root to start InspIRCd as the user irc")
        sys.exit(77)
    unittest.main(verbosity=2)
