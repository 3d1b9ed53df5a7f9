// SPDX-License-Identifier: Apache-2.0
// chitin-worker-browser: one session's headless Chromium, serving the `browser` tool's actions
// to the supervisor (proto/browser.capnp) and asking it about every document Chromium would
// request.
// Runs in: worker (sandboxed)
//
// Flags (tests outside a sandbox only; the defaults are the sandbox's paths):
// --profile-dir=DIR (/profile), --tmp-dir=DIR (/tmp), --chromium=PATH. The egress socket comes
// from the spawner's --chitin-egress=; without one the worker refuses to start Chromium.

#include <kj/debug.h>
#include <string.h>

#include <memory>
#include <string>

#include "browser.capnp.h"
#include "browser.h"
#include "sandbox-child.h"
#include "utf8.h"
#include "worker-main.h"

namespace chitin::browser {
namespace {

std::string flagValue(const std::string& arg, const char* name) {
  return arg.rfind(name, 0) == 0 ? arg.substr(strlen(name)) : std::string();
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class BrowserWorkerServer final : public rpc::BrowserWorker::Server {
 public:
  BrowserWorkerServer(kj::AsyncIoContext& io, ChromiumSettings settings, std::string egress)
      : browser_(io, kj::mv(settings), kj::mv(egress)) {}

  kj::Promise<void> start(StartContext context) override {
    KJ_REQUIRE(!started_, "start called twice");
    started_ = true;
    // capnp clients copy only from non-const references; std::function needs a const copy.
    auto gate = std::make_shared<rpc::NavigationGate::Client>(context.getParams().getGate());
    browser_.setGate([gate](const std::string& url) {
      auto request = gate->decideRequest();
      request.setUrl(url);
      return request.send().then([](auto answer) {
        return GateAnswer{answer.getAllowed(), answer.getReason()};
      });
    });
    return kj::READY_NOW;
  }

  kj::Promise<void> act(ActContext context) override {
    KJ_REQUIRE(started_, "act before start");
    KJ_REQUIRE(!busy_, "act while another act runs");
    busy_ = true;
    auto request = context.getParams().getRequest();
    Action action;
    action.kind = static_cast<Action::Kind>(request.getAction());
    KJ_REQUIRE(action.kind >= Action::NAVIGATE && action.kind <= Action::CLOSE, "unknown action");
    action.url = request.getUrl();
    action.ref = request.getRef();
    action.text = request.getText();
    action.key = request.getKey();
    return browser_.act(kj::mv(action))
        .then(
            [this, context](ActionResult outcome) mutable {
              busy_ = false;
              auto result = context.getResults().initResult();
              // Every field at its contract bound (browser.capnp): the supervisor kills a
              // worker whose result is larger.
              if (outcome.png.size() > rpc::MAX_SCREENSHOT_BYTES) {
                outcome.ok = false;
                outcome.text = "the screenshot is larger than " +
                               std::to_string(rpc::MAX_SCREENSHOT_BYTES >> 20) + " MiB";
                outcome.png.clear();
              }
              std::string text = clipUtf8(outcome.text, rpc::MAX_RESULT_TEXT_BYTES - 3);
              if (outcome.ok) {
                result.setOk(text);
              } else {
                result.setFailed(text);
              }
              result.setUrl(clipUtf8(outcome.url, rpc::MAX_RESULT_TEXT_BYTES - 3));
              if (!outcome.png.empty()) {
                result.setScreenshot(kj::arrayPtr(
                    reinterpret_cast<const kj::byte*>(outcome.png.data()), outcome.png.size()));
              }
              auto files = result.initDownloads(outcome.downloads.size());
              for (size_t i = 0; i < outcome.downloads.size(); ++i) {
                files[i].setName(outcome.downloads[i].name);
                files[i].setData(kj::arrayPtr(
                    reinterpret_cast<const kj::byte*>(outcome.downloads[i].data.data()),
                    outcome.downloads[i].data.size()));
              }
            },
            [this](kj::Exception&& e) -> void {
              busy_ = false;
              kj::throwFatalException(kj::mv(e));
            });
  }

 private:
  Browser browser_;
  bool started_ = false;
  bool busy_ = false;
};
#pragma GCC diagnostic pop

}  // namespace
}  // namespace chitin::browser

int main(int argc, char** argv) {
  chitin::browser::ChromiumSettings settings;
  std::string egressSocket;
  std::string tmp = "/tmp";
  for (int i = 1; i < argc; i++) {
    std::string arg = argv[i];
    using chitin::browser::flagValue;
    if (auto v = flagValue(arg, chitin::EGRESS_FLAG); !v.empty()) egressSocket = v;
    if (auto v = flagValue(arg, "--profile-dir="); !v.empty()) settings.profileDir = v;
    if (auto v = flagValue(arg, "--tmp-dir="); !v.empty()) tmp = v;
    if (auto v = flagValue(arg, "--chromium="); !v.empty()) settings.executable = v;
  }
  settings.homeDir = tmp + "/home";
  settings.downloadDir = tmp + "/downloads";
  return chitin::runWorker(argc, argv, "browser", [&](chitin::WorkerContext& worker) {
    // Fail closed: without the broker's socket Chromium would have no way out, and a worker
    // started without one is a mistake, not a browser with no network.
    KJ_REQUIRE(!egressSocket.empty(), "the browser worker needs --chitin-egress=SOCKET");
    return capnp::Capability::Client(
        kj::heap<chitin::browser::BrowserWorkerServer>(worker.io, settings, egressSocket));
  });
}
