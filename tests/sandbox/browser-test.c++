// SPDX-License-Identifier: Apache-2.0
// The browser worker in its shipped sandbox profile, with headless Chromium, the real egress
// broker and a local web server: navigate, snapshot, click by ref, screenshot; and what a page
// cannot reach (another loopback service, file://), each with its control.
// Runs in: tests (the worker runs in a real sandbox)

#include <capnp/rpc-twoparty.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <kj/async-io.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "broker-test-fixture.h"
#include "browser.capnp.h"
#include "probe-runner.h"

namespace chitin::testing {

namespace {

using Clock = std::chrono::steady_clock;

// python3 -m http.server on 127.0.0.1, serving `dir`; stopped with the object.
struct WebServer {
  pid_t pid = -1;
  uint16_t port = freePort();
  explicit WebServer(const std::string& dir) {
    const char* python = getenv("CHITIN_PYTHON");
    std::string py = python ? python : "/usr/bin/python3";
    std::string portText = std::to_string(port);
    pid = fork();
    if (pid == 0) {
      int null = open("/dev/null", O_WRONLY);
      dup2(null, 1);
      dup2(null, 2);
      execl(py.c_str(), py.c_str(), "-m", "http.server", "--bind", "127.0.0.1", "-d", dir.c_str(),
            portText.c_str(), nullptr);
      _exit(127);
    }
    for (int i = 0; i < 200; ++i) {  // until it listens
      int fd = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(port);
      bool up = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
      close(fd);
      if (up) break;
      usleep(20000);
    }
  }
  ~WebServer() {
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
  }
  std::string root() const { return "http://127.0.0.1:" + std::to_string(port) + "/"; }
};

void writeFile(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
// The supervisor's side of the gate, as a test sees it: allows URLs under `prefix`, records all.
class TestGate final : public rpc::NavigationGate::Server {
 public:
  explicit TestGate(std::string prefix, std::vector<std::string>& asked)
      : prefix_(kj::mv(prefix)), asked_(asked) {}

 protected:
  kj::Promise<void> decide(DecideContext context) override {
    std::string url = context.getParams().getUrl();
    asked_.push_back(url);
    bool allowed = url.rfind(prefix_, 0) == 0;
    context.getResults().setAllowed(allowed);
    context.getResults().setReason(allowed ? "" : "not on the test's list");
    return kj::READY_NOW;
  }

 private:
  std::string prefix_;
  std::vector<std::string>& asked_;
};
#pragma GCC diagnostic pop

// Every process below `pid` (the sandbox: worker, Chromium and its helpers).
void descendants(pid_t pid, std::vector<pid_t>& out) {
  out.push_back(pid);
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  pid_t child;
  while (in >> child) descendants(child, out);
}

// The ref of the first snapshot line containing `what`.
uint32_t refOf(const std::string& snapshot, const std::string& what) {
  std::istringstream lines(snapshot);
  for (std::string line; std::getline(lines, line);) {
    auto open = line.find('[');
    if (line.find(what) != std::string::npos && open != std::string::npos)
      return static_cast<uint32_t>(std::stoul(line.substr(open + 1)));
  }
  return 0;
}

}  // namespace

TEST_CASE(
    "browser worker: Chromium in the browser profile navigates, snapshots, clicks by ref and "
    "screenshots through the broker; a page reaches no other loopback service and no file://") {
  if (access("/usr/lib/chromium/chromium", X_OK) != 0) {
    MESSAGE("SKIP: Chromium is not installed (apt-get install chromium)");
    return;
  }
  TempDir site("chitin-browser-site");
  TempDir other("chitin-browser-other");
  writeFile(other.path() + "/index.html", "<title>other</title>secret-of-another-service");
  WebServer otherServer(other.path());
  std::string otherUrl = otherServer.root();
  writeFile(site.path() + "/index.html",
            "<title>Start</title><h1>Start page</h1><a href=\"next.html\">Go next</a>"
            "<input aria-label=\"Query\">");
  writeFile(site.path() + "/next.html", "<title>Next</title><h1>Second page</h1>");
  // What a page's script can reach: its own server (control), another loopback service,
  // file:///etc/passwd. The results land in the page's text, read by a snapshot.
  writeFile(site.path() + "/probe.html",
            "<title>Probe</title><p id=out>pending</p><script>\n"
            "async function probe(name, url) {\n"
            "  try { const r = await fetch(url); const t = await r.text();\n"
            "        return name + '=reached:' + t.length; }\n"
            "  catch (e) { return name + '=blocked'; } }\n"
            "(async () => { const r = [];\n"
            "  r.push(await probe('own', 'next.html'));\n"
            "  r.push(await probe('loopback', '" +
                otherUrl +
                "'));\n"
                "  r.push(await probe('file', 'file:///etc/passwd'));\n"
                "  document.getElementById('out').textContent = 'done ' + r.join(' ');\n"
                "})();\n</script>");
  WebServer server(site.path());

  // The broker as the supervisor opens it for this worker: the owner listed the test server's
  // exact host:port in egress.allow_private; the other loopback service is not listed.
  egress::testing::Fixture broker;
  std::string where = "127.0.0.1:" + std::to_string(server.port);
  std::string egressSocket =
      broker.open("browser", {egress::parseRule(where, "egress.allow_private", true)});
  TempDir profile("chitin-browser-profile");
  TempDir logs("chitin-browser-log");
  int logFd = open((logs.path() + "/worker.log").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  REQUIRE(logFd >= 0);
  spawn::SpawnRequest request;
  request.profile = "browser";
  request.vars = {{"STATE_DIR", profile.path()}};
  request.egressSocket = egressSocket;
  request.stdoutFd = logFd;
  request.stderrFd = logFd;
  auto started = Clock::now();
  auto worker = testSpawner().spawn(request);
  close(logFd);

  auto io = kj::setupAsyncIo();
  auto stream = io.lowLevelProvider->wrapSocketFd(worker.socket.release(),
                                                  kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP);
  auto client = kj::heap<capnp::TwoPartyClient>(*stream);
  auto browser = client->bootstrap().castAs<rpc::BrowserWorker>();
  std::vector<std::string> asked;
  auto start = browser.startRequest();
  start.setGate(kj::heap<TestGate>(server.root(), asked));
  start.send().wait(io.waitScope);

  struct Answer {
    bool ok;
    std::string text, url, png;
  };
  auto act = [&](rpc::BrowserRequest::Action action, std::string url = "", uint32_t ref = 0,
                 std::string text = "") {
    auto call = browser.actRequest();
    auto r = call.initRequest();
    r.setAction(action);
    r.setUrl(url);
    r.setRef(ref);
    r.setText(text);
    auto response = call.send().wait(io.waitScope);
    auto result = response.getResult();
    Answer a{result.isOk(), result.isOk() ? result.getOk() : result.getFailed(), result.getUrl(),
             ""};
    auto png = result.getScreenshot();
    a.png.assign(reinterpret_cast<const char*>(png.begin()), png.size());
    return a;
  };
  using A = rpc::BrowserRequest::Action;
  INFO("worker log: " << readAll(logs.path() + "/worker.log"));

  auto nav = act(A::NAVIGATE, server.root());
  REQUIRE(nav.ok);
  CHECK(nav.url == server.root());
  auto first = act(A::SNAPSHOT);
  auto firstSnapshotMs =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();
  REQUIRE(first.ok);
  CHECK(first.text.find("heading \"Start page\"") != std::string::npos);
  uint32_t link = refOf(first.text, "link \"Go next\"");
  REQUIRE(link > 0);
  auto clicked = act(A::CLICK, "", link);
  CHECK(clicked.ok);
  CHECK(clicked.url == server.root() + "next.html");
  auto second = act(A::SNAPSHOT);
  CHECK(second.text.find("heading \"Second page\"") != std::string::npos);
  auto shot = act(A::SCREENSHOT);
  CHECK(shot.ok);
  CHECK(shot.png.rfind("\x89PNG\r\n", 0) == 0);
  // A ref from an old page is refused with what to do.
  auto stale = act(A::CLICK, "", 999);
  CHECK(!stale.ok);
  CHECK(stale.text.find("take a snapshot") != std::string::npos);

  // Memory of the whole sandbox: worker + Chromium's processes.
  std::vector<pid_t> pids;
  descendants(worker.pid, pids);
  long pss = 0, privateKb = 0;
  for (pid_t p : pids) {
    pss += rollupKb(p, "Pss");
    privateKb += rollupKb(p, "Private_Dirty") + rollupKb(p, "Private_Clean");
  }
  MESSAGE("browser sandbox: start -> first snapshot ", firstSnapshotMs, " ms; ", pids.size(),
          " processes, Pss ", pss / 1024, " MiB, private ", privateKb / 1024, " MiB");

  // The gate decided every document: the ones under the test server were asked and allowed.
  CHECK(std::find(asked.begin(), asked.end(), server.root()) != asked.end());
  // Control for the gate: a document the gate refuses is never requested.
  auto refused = act(A::NAVIGATE, otherUrl);
  CHECK(!refused.ok);
  CHECK(refused.text.find("not on the test's list") != std::string::npos);

  // A page's script: its own server yes (control); another loopback service and file:// no.
  auto probe = act(A::NAVIGATE, server.root() + "probe.html");
  REQUIRE(probe.ok);
  std::string out;
  for (int i = 0; i < 50 && out.find("done") == std::string::npos; ++i) {
    out = act(A::SNAPSHOT).text;
    usleep(100000);
  }
  INFO(out);
  CHECK(out.find("own=reached:") != std::string::npos);
  CHECK(out.find("loopback=blocked") != std::string::npos);
  CHECK(out.find("file=blocked") != std::string::npos);
  CHECK(out.find("secret-of-another-service") == std::string::npos);

  // Hang-up ends the sandbox, Chromium included.
  browser = nullptr;
  client = nullptr;
  stream = nullptr;
  std::optional<spawn::WorkerExit> exit;
  auto hangUp = Clock::now();
  while (!(exit = spawn::pollExit(worker)) && Clock::now() - hangUp < std::chrono::seconds(10)) {
    usleep(20000);
  }
  REQUIRE(exit);
  // Every connection went through the broker to the allowed server, or was refused there.
  for (auto& r : broker.records(1)) {
    CAPTURE(r.address());
    CHECK(r.worker() == "browser");
  }
}

}  // namespace chitin::testing
