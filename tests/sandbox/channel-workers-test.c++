// SPDX-License-Identifier: Apache-2.0
// Sandbox claims about the channel workers: each real worker, spawned from its shipped profile
// with a SOCKS5 server as its egress socket, does its job through that socket only -- the
// Signal, Discord and Slack workers relay a message from their fake platform both ways (Discord
// keeps its gateway session in /state, Slack its event journal); the WhatsApp worker starts
// Node.js (its bridge) inside its sandbox, under its lockdown, and Baileys' first WhatsApp frame
// ("WA" prologue) leaves through the socket, the target named by domain; the IRC worker talks to
// a real ngircd, and the email worker to a real Dovecot and aiosmtpd (TLS verified against a CA
// file in its /state), keeping its IMAP progress in /state.
// Runs in: tests (real workers in real sandboxes; the servers on loopback, outside)

#include <capnp/rpc-twoparty.h>
#include <doctest/doctest.h>
#include <ctype.h>
#include <fcntl.h>
#include <kj/async-io.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <thread>

#include "channel.capnp.h"
#include "probe-runner.h"
#include "skip.h"

namespace chitin::testing {

namespace {

std::string env(const char* name) {
  const char* value = getenv(name);
  REQUIRE_MESSAGE(value != nullptr, name, " is not set (meson sets it)");
  return value;
}

// A helper process whose stdout lines the test reads; killed at the end.
class Helper {
 public:
  explicit Helper(std::vector<std::string> argv) {
    int fds[2];
    REQUIRE(pipe2(fds, O_CLOEXEC) == 0);
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      dup2(fds[1], 1);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    close(fds[1]);
    out_ = fds[0];
  }
  ~Helper() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    close(out_);
  }
  // The next line within `ms`, or "<timeout>".
  std::string line(int ms = 10000) {
    for (;;) {
      size_t nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        std::string l = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return l;
      }
      pollfd p{out_, POLLIN, 0};
      if (poll(&p, 1, ms) <= 0) return "<timeout>";
      char chunk[4096];
      ssize_t n = read(out_, chunk, sizeof chunk);
      if (n <= 0) return "<eof>";
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  std::string buffer_;
};

// The major version of the Node.js at `node`, or -1 when it does not run or says nothing usable.
int nodeMajorVersion(const std::string& node) {
  if (access(node.c_str(), X_OK) != 0) return -1;
  Helper version({node, "-p", "process.versions.node"});
  std::string line = version.line(20000);
  size_t digits = 0;
  while (digits < line.size() && digits < 4 && isdigit(static_cast<unsigned char>(line[digits])))
    digits++;
  return digits == 0 ? -1 : std::stoi(line.substr(0, digits));
}

// Until something accepts on 127.0.0.1:port (a server started as a Helper).
bool listening(uint16_t port, int seconds = 10) {
  for (int i = 0; i < seconds * 50; i++) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port);
    bool ok = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    close(fd);
    if (ok) return true;
    usleep(20000);
  }
  return false;
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class RecordingSink final : public rpc::InboundSink::Server {
 public:
  std::vector<std::string> messages;  // "<chatId> <text>"
  std::vector<rpc::ChannelStatus::State> states;
  std::string details;  // every status detail, for failure messages

 protected:
  kj::Promise<void> message(MessageContext context) override {
    auto m = context.getParams().getMessage();
    messages.push_back(std::string(m.getChatId().cStr()) + " " + m.getText().cStr());
    context.getResults().setAccepted(true);
    return kj::READY_NOW;
  }
  kj::Promise<void> status(StatusContext context) override {
    states.push_back(context.getParams().getStatus().getState());
    details += std::string(context.getParams().getStatus().getDetail().cStr()) + "\n";
    return kj::READY_NOW;
  }
  kj::Promise<void> login(LoginContext) override { return kj::READY_NOW; }
};
#pragma GCC diagnostic pop

// A real channel worker under its shipped profile, and a Cap'n Proto client to it.
struct Worker {
  spawn::SpawnedWorker spawned;
  kj::AsyncIoContext io = kj::setupAsyncIo();
  kj::Own<kj::AsyncIoStream> stream;
  kj::Own<capnp::TwoPartyClient> client;
  rpc::ChannelWorker::Client worker = nullptr;
  RecordingSink* sink = nullptr;

  Worker(const std::string& kind, std::map<std::string, std::string> vars,
         const std::string& egressSocket) {
    spawn::SpawnRequest request;
    request.profile = "channel-" + kind;
    request.vars = std::move(vars);
    request.egressSocket = egressSocket;
    request.stdoutFd = 2;  // the worker's (and the bridge's) log lines go to the test log
    request.stderrFd = 2;
    spawned = testSpawner().spawn(request);
    stream = io.lowLevelProvider->wrapSocketFd(spawned.socket.get());
    client = kj::heap<capnp::TwoPartyClient>(*stream);
    worker = client->bootstrap().castAs<rpc::ChannelWorker>();
  }
  ~Worker() {
    client = nullptr;
    stream = nullptr;
    spawned.socket = nullptr;
    pollfd p{spawned.pidfd.get(), POLLIN, 0};
    if (poll(&p, 1, 10000) <= 0) spawn::killWorker(spawned);
    spawn::waitForExit(spawned);
  }

  void start(const std::string& kind, std::vector<std::pair<std::string, std::string>> options,
             const std::string& credential = "") {
    auto request = worker.startRequest();
    auto settings = request.initSettings();
    settings.setKind(kind);
    settings.setAccount("default");
    settings.setCredential(
        kj::arrayPtr(reinterpret_cast<const kj::byte*>(credential.data()), credential.size()));
    auto list = settings.initOptions(options.size());
    for (size_t i = 0; i < options.size(); ++i) {
      list[i].setKey(options[i].first);
      list[i].setValue(options[i].second);
    }
    auto own = kj::heap<RecordingSink>();
    sink = own.get();
    request.setSink(kj::mv(own));
    request.send().wait(io.waitScope);
  }

  // Runs the event loop until `done` or `seconds` pass.
  bool until(const std::function<bool()>& done, int seconds = 15) {
    for (int i = 0; i < seconds * 20; i++) {
      if (done()) return true;
      io.provider->getTimer().afterDelay(50 * kj::MILLISECONDS).wait(io.waitScope);
    }
    return done();
  }
  bool reported(rpc::ChannelStatus::State state) {
    return std::count(sink->states.begin(), sink->states.end(), state) > 0;
  }
};

}  // namespace

TEST_CASE("signal worker: under its profile it reaches signal-cli only through its egress socket") {
  TempDir dir("chitin-signal-sandbox");
  std::string python = env("CHITIN_PYTHON");
  Helper daemon({python, env("CHITIN_FAKE_SIGNAL_CLI"), "--port", "0", "--port-file",
                 dir.path() + "/port", "--account", "+15550000000", "--account-uuid",
                 "00000000-0000-4000-8000-000000000001"});
  std::string port;
  for (int i = 0; i < 300 && port.empty(); i++) {
    std::ifstream(dir.path() + "/port") >> port;
    if (port.empty()) usleep(10000);
  }
  REQUIRE(!port.empty());
  std::string socket = dir.path() + "/egress.sock";
  Helper broker({python, env("CHITIN_SOCKS5_UNIX"), socket});
  REQUIRE(broker.line() == "ready");

  Worker w("signal", {{"STATE_DIR", dir.path()}}, socket);
  w.start("signal", {{"url", "http://127.0.0.1:" + port}, {"account", "+15550000000"}});
  CHECK(broker.line() == "CONNECT 127.0.0.1:" + port);  // the /check, through the socket
  REQUIRE(w.until([&] { return w.reported(rpc::ChannelStatus::State::CONNECTED); }));

  // A message arrives through the event stream and is delivered to the sink.
  Helper inject(
      {python, "-c",
       "import json,sys,urllib.request as u; u.urlopen(u.Request('http://127.0.0.1:" + port +
           "/_control/message', json.dumps({'from':'+15551110000','fromUuid':"
           "'11111111-1111-4111-8111-111111111111','text':'hi from outside'}).encode(),"
           "{'Content-Type':'application/json'})); print('sent')"});
  REQUIRE(inject.line() == "sent");
  REQUIRE(w.until([&] { return !w.sink->messages.empty(); }));
  CHECK(w.sink->messages[0] == "11111111-1111-4111-8111-111111111111 hi from outside");

  // And a reply goes back out.
  auto send = w.worker.sendRequest();
  send.initMessage().setChatId("11111111-1111-4111-8111-111111111111");
  send.getMessage().setText("hello back");
  auto ids = send.send().wait(w.io.waitScope).getMessageIds();
  CHECK(ids.size() == 1);
}

// A platform fake on a free port (its --port-file), and a line of Python that asks its control
// API for something, from outside the sandbox.
std::string startFake(TempDir& dir, Helper*& out, std::vector<std::string> argv) {
  argv.insert(argv.end(), {"--port", "0", "--port-file", dir.path() + "/port"});
  out = new Helper(argv);
  std::string port;
  for (int i = 0; i < 500 && port.empty(); i++) {
    std::ifstream(dir.path() + "/port") >> port;
    if (port.empty()) usleep(10000);
  }
  REQUIRE(!port.empty());
  return port;
}
void control(const std::string& port, const std::string& action, const std::string& json) {
  Helper call({env("CHITIN_PYTHON"), "-c",
               "import sys,urllib.request as u; u.urlopen(u.Request('http://127.0.0.1:" + port +
                   "/_control/" + action +
                   "', sys.argv[1].encode(), "
                   "{'Content-Type':'application/json'})); print('done')",
               json});
  REQUIRE(call.line() == "done");
}

TEST_CASE(
    "discord worker: under its profile it reaches Discord only through its egress socket "
    "and keeps its gateway session in /state") {
  TempDir dir("chitin-discord-sandbox");
  std::string python = env("CHITIN_PYTHON");
  Helper* fakeProcess = nullptr;
  std::string port =
      startFake(dir, fakeProcess, {python, env("CHITIN_FAKE_DISCORD"), "--token", "sandbox-token"});
  std::unique_ptr<Helper> fake(fakeProcess);
  std::string socket = dir.path() + "/egress.sock";
  Helper broker({python, env("CHITIN_SOCKS5_UNIX"), socket, "discord.test=127.0.0.1"});
  REQUIRE(broker.line() == "ready");
  std::string state = dir.path() + "/state";
  REQUIRE(mkdir(state.c_str(), 0700) == 0);

  Worker w("discord", {{"STATE_DIR", state}}, socket);
  w.start("discord", {{"apiRoot", "http://discord.test:" + port + "/api/v10"}}, "sandbox-token");
  // REST by name through the socket (the worker has no resolver and no AF_INET), then the
  // gateway URL Discord named.
  CHECK(broker.line() == "CONNECT discord.test:" + port);
  REQUIRE(w.until([&] { return w.reported(rpc::ChannelStatus::State::CONNECTED); }));

  control(port, "message",
          R"({"channel_id": "300000000000000003", "content": "hi from outside",
              "author": {"id": "200000000000000002", "username": "alice"}})");
  REQUIRE(w.until([&] { return !w.sink->messages.empty(); }));
  CHECK(w.sink->messages[0] == "300000000000000003 hi from outside");

  auto send = w.worker.sendRequest();
  send.initMessage().setChatId("300000000000000003");
  send.getMessage().setText("hello back");
  CHECK(send.send().wait(w.io.waitScope).getMessageIds().size() == 1);
  // Written from inside the sandbox, under the channel lockdown.
  std::ifstream session(state + "/discord-session.json");
  std::string text((std::istreambuf_iterator<char>(session)), std::istreambuf_iterator<char>());
  CHECK(text.find("\"session_id\"") != std::string::npos);
}

TEST_CASE("slack worker: under its profile it reaches Slack only through its egress socket") {
  TempDir dir("chitin-slack-sandbox");
  std::string python = env("CHITIN_PYTHON");
  Helper* fakeProcess = nullptr;
  std::string port = startFake(
      dir, fakeProcess,
      {python, env("CHITIN_FAKE_SLACK"), "--app-token", "xapp-1-s", "--bot-token", "xoxb-s"});
  std::unique_ptr<Helper> fake(fakeProcess);
  std::string socket = dir.path() + "/egress.sock";
  Helper broker({python, env("CHITIN_SOCKS5_UNIX"), socket, "slack.test=127.0.0.1"});
  REQUIRE(broker.line() == "ready");

  std::string state = dir.path() + "/state";
  REQUIRE(mkdir(state.c_str(), 0700) == 0);
  Worker w("slack", {{"STATE_DIR", state}}, socket);
  w.start("slack", {{"apiRoot", "http://slack.test:" + port + "/api"}}, "xapp-1-s\nxoxb-s\n");
  CHECK(broker.line() == "CONNECT slack.test:" + port);
  REQUIRE(w.until([&] { return w.reported(rpc::ChannelStatus::State::CONNECTED); }));

  control(port, "event",
          R"({"event": {"type": "message", "channel": "D0DM", "channel_type": "im",
              "user": "U1ALICE", "text": "hi from outside"}})");
  REQUIRE(w.until([&] { return !w.sink->messages.empty(); }));
  CHECK(w.sink->messages[0] == "D0DM hi from outside");
  // Journalled in /state from inside the sandbox, and removed once delivered.
  REQUIRE(w.until([&] { return std::filesystem::is_empty(state + "/slack-events"); }));

  auto send = w.worker.sendRequest();
  send.initMessage().setChatId("D0DM");
  send.getMessage().setText("hello back");
  CHECK(send.send().wait(w.io.waitScope).getMessageIds().size() == 1);
}

TEST_CASE(
    "whatsapp worker: Node runs inside its sandbox and Baileys' first frame leaves through the "
    "egress socket") {
  std::string bridge = env("CHITIN_WORKER_DIR") + "/channel/whatsapp-bridge/node_modules/baileys";
  if (access(bridge.c_str(), R_OK) != 0) {
    skipCase("the WhatsApp bridge is not built (needs Node.js >= 20 and npm at build time)");
    return;
  }
  // The worker runs the bridge with /usr/bin/node (WHATSAPP_NODE), whatever node meson found.
  int major = nodeMajorVersion("/usr/bin/node");
  if (major < 20) {
    skipCase("/usr/bin/node is " +
             (major < 0 ? std::string("missing or broken") : "Node.js " + std::to_string(major)) +
             "; the WhatsApp bridge needs Node.js >= 20");
    return;
  }
  TempDir dir("chitin-whatsapp-sandbox");
  std::string python = env("CHITIN_PYTHON");
  Helper server({python, env("CHITIN_WS_FIRST_FRAME")});
  std::string port = server.line();
  std::string socket = dir.path() + "/egress.sock";
  Helper broker({python, env("CHITIN_SOCKS5_UNIX"), socket, "wa.test=127.0.0.1"});
  REQUIRE(broker.line() == "ready");

  Worker w("whatsapp", {{"STATE_DIR", dir.path()}}, socket);
  w.start("whatsapp", {{"wsUrl", "ws://wa.test:" + port + "/ws/chat"}});
  // Not linked yet: the bridge started, said hello and asked for a login.
  REQUIRE(w.until([&] { return w.reported(rpc::ChannelStatus::State::LOGIN_REQUIRED); }, 30));

  auto login = w.worker.loginRequest();
  login.send().wait(w.io.waitScope);
  // The name goes to the broker unresolved (the sandbox has no DNS and no AF_INET at all).
  CHECK(broker.line(20000) == "CONNECT wa.test:" + port);
  std::string frame = server.line(20000);
  CHECK_MESSAGE(frame.rfind("FRAME 5741", 0) == 0, "the WhatsApp Web prologue is \"WA\": ", frame);
}

TEST_CASE(
    "irc worker: under its profile it talks to a real IRC server only through its egress socket") {
  if (access("/usr/sbin/ngircd", X_OK) != 0) {
    skipCase("ngircd is not installed (scripts/test installs it)");
    return;
  }
  TempDir dir("chitin-irc-sandbox");
  std::string python = env("CHITIN_PYTHON");
  uint16_t port = freePort();
  std::string conf =
      dir.file("ngircd.conf",
               "[Global]\nName = irc.test.local\nInfo = t\nListen = 127.0.0.1\n"
               "Ports = " +
                   std::to_string(port) + "\nMotdPhrase = \"t\"\nPidFile = " + dir.path() +
                   "/ngircd.pid\n[Options]\nPAM = no\nIdent = no\nDNS = no\n");
  Helper ircd({"/usr/sbin/ngircd", "-n", "-f", conf});
  REQUIRE(listening(port));
  std::string socket = dir.path() + "/egress.sock";
  Helper broker({python, env("CHITIN_SOCKS5_UNIX"), socket});
  REQUIRE(broker.line() == "ready");

  Worker w("irc", {}, socket);
  w.start("irc", {{"server", "127.0.0.1"},
                  {"port", std::to_string(port)},
                  {"tls", "false"},
                  {"nick", "chitin"}});
  CHECK(broker.line() == "CONNECT 127.0.0.1:" + std::to_string(port));
  REQUIRE(w.until([&] { return w.reported(rpc::ChannelStatus::State::CONNECTED); }));

  // A person on the network writes to the bot and reads its answer (raw RFC 2812).
  Helper alice(
      {python, "-c",
       "import socket\n"
       "s = socket.create_connection(('127.0.0.1', " +
           std::to_string(port) +
           "))\n"
           "s.sendall(b'NICK alice\\r\\nUSER alice 0 * :a\\r\\n')\n"
           "buf = b''\n"
           "while b' 001 ' not in buf: buf += s.recv(4096)\n"
           "s.sendall(b'PRIVMSG chitin :hi from outside\\r\\n')\n"
           "print('sent', flush=True)\n"
           "while b'PRIVMSG alice :' not in buf: buf += s.recv(4096)\n"
           "print(buf.split(b'PRIVMSG alice :')[1].split(b'\\r')[0].decode(), flush=True)\n"});
  REQUIRE(alice.line() == "sent");
  REQUIRE(w.until([&] { return !w.sink->messages.empty(); }));
  CHECK(w.sink->messages[0] == "alice hi from outside");

  auto send = w.worker.sendRequest();
  send.initMessage().setChatId("alice");
  send.getMessage().setText("hello **back**");
  CHECK(send.send().wait(w.io.waitScope).getMessageIds().size() == 1);
  CHECK(alice.line() == "hello back");
}

TEST_CASE(
    "email worker: under its profile it reads IMAP and sends SMTP only through its egress socket, "
    "state in /state") {
  if (access("/usr/sbin/dovecot", X_OK) != 0 ||
      system("/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null") != 0) {
    skipCase("dovecot-imapd or python3-aiosmtpd is not installed (scripts/test installs them)");
    return;
  }
  TempDir dir("chitin-email-sandbox");
  std::string d = dir.path();
  std::string python = env("CHITIN_PYTHON");
  std::string user = getpwuid(geteuid())->pw_name;  // Dovecot runs as us (we are not root here)
  std::string setup = "mkdir -p " + d + "/state";
  for (const char* box : {"bot@test.local", "alice@example.org"}) {
    for (const char* sub : {"new", "cur", "tmp"}) setup += " " + d + "/mail/" + box + "/" + sub;
  }
  setup +=
      " && openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -addext "
      "subjectAltName=DNS:localhost -keyout " +
      d + "/key.pem -out " + d + "/state/cert.pem 2>/dev/null";
  REQUIRE(system(setup.c_str()) == 0);
  dir.file("users", "bot@test.local:{PLAIN}botpass\nalice@example.org:{PLAIN}alicepass\n");
  dir.file("smtp-users", "bot@test.local:botpass\nalice@example.org:alicepass\n");
  uint16_t imap = freePort(), smtp = freePort();
  std::string conf = dir.file(
      "dovecot.conf",
      "protocols = imap\nlisten = 127.0.0.1\nbase_dir = " + d + "/run\nstate_dir = " + d +
          "/dstate\n"
          "ssl = no\ndisable_plaintext_auth = no\nauth_mechanisms = plain\nmail_location = "
          "maildir:" +
          d + "/mail/%u\nlog_path = " + d + "/dovecot.log\ndefault_login_user = " + user +
          "\ndefault_internal_user = " + user + "\ndefault_internal_group = " + user +
          "\npassdb {\n driver = passwd-file\n args = scheme=PLAIN "
          "username_format=%u " +
          d + "/users\n}\nuserdb {\n driver = static\n args = uid=" + user + " gid=" + user +
          " home=" + d +
          "/mail/%u\n}\nservice anvil {\n chroot =\n}\nservice imap-login {\n chroot =\n user = " +
          user + "\n inet_listener imap {\n  address = 127.0.0.1\n  port = " +
          std::to_string(imap) + "\n }\n inet_listener imaps {\n  port = 0\n }\n}\n");
  Helper dovecot({"/usr/sbin/dovecot", "-F", "-c", conf});
  REQUIRE(listening(imap));
  Helper sink({python, env("CHITIN_SMTP_SINK"), std::to_string(smtp), d + "/state/cert.pem",
               d + "/key.pem", d + "/smtp-users", d + "/mail"});
  REQUIRE(sink.line() == "ready");
  std::string socket = d + "/egress.sock";
  Helper broker({python, env("CHITIN_SOCKS5_UNIX"), socket});
  REQUIRE(broker.line() == "ready");

  Worker w("email", {{"STATE_DIR", d + "/state"}}, socket);
  w.start("email",
          {{"address", "bot@test.local"},
           {"imapHost", "127.0.0.1"},
           {"imapPort", std::to_string(imap)},
           {"imapTls", "none"},
           {"smtpHost", "localhost"},
           {"smtpPort", std::to_string(smtp)},
           {"caFile", "/state/cert.pem"}},
          "botpass");
  CHECK(broker.line() == "CONNECT 127.0.0.1:" + std::to_string(imap));
  REQUIRE_MESSAGE(w.until([&] { return w.reported(rpc::ChannelStatus::State::CONNECTED); }),
                  w.sink->details);
  CHECK(access((d + "/state/imap-INBOX.state").c_str(), R_OK) == 0);  // written inside the sandbox

  Helper alice({python, "-c",
                "import smtplib, ssl\nfrom email.message import EmailMessage\n"
                "m = EmailMessage(); m['From'] = 'alice@example.org'; m['To'] = 'bot@test.local'\n"
                "m['Subject'] = 'sandboxed'; m.set_content('hello from outside')\n"
                "s = smtplib.SMTP('localhost', " +
                    std::to_string(smtp) +
                    ")\n"
                    "s.starttls(context=ssl.create_default_context(cafile='" +
                    d +
                    "/state/cert.pem'))\n"
                    "s.login('alice@example.org', 'alicepass'); s.send_message(m); print('sent', "
                    "flush=True)\n"});
  REQUIRE(alice.line() == "sent");
  REQUIRE(w.until([&] { return !w.sink->messages.empty(); }));
  CHECK(w.sink->messages[0] == "alice@example.org Subject: sandboxed\n\nhello from outside");

  auto send = w.worker.sendRequest();
  send.initMessage().setChatId("alice@example.org");
  send.getMessage().setText("hello back");
  CHECK(send.send().wait(w.io.waitScope).getMessageIds().size() == 1);
  CHECK(broker.line() == "CONNECT localhost:" + std::to_string(smtp));  // SMTP named by domain
  std::string inbox = d + "/mail/alice@example.org/new";
  CHECK(system(("grep -lq '^To: <alice@example.org>' " + inbox + "/*").c_str()) == 0);
}

}  // namespace chitin::testing
