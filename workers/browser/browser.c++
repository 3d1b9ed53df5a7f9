// SPDX-License-Identifier: Apache-2.0
// One session's browser over CDP (see browser.h).
// Runs in: worker (sandboxed)

#include "browser.h"

#include <fcntl.h>
#include <kj/debug.h>
#include <kj/encoding.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "browser.capnp.h"
#include "snapshot.h"

namespace chitin::browser {

using nlohmann::json;

namespace {

struct LogErrors final : kj::TaskSet::ErrorHandler {
  void taskFailed(kj::Exception&& e) override {
    KJ_LOG(WARNING, "browser task failed", e.getDescription());
  }
};
LogErrors logErrors;

ActionResult failed(std::string text) { return ActionResult{false, kj::mv(text), {}, {}, {}}; }

// The keys `press` knows by name: {key, code, windowsVirtualKeyCode, text}.
struct KeyInfo {
  const char* key;
  int code;
  const char* text;
};
const KeyInfo KEYS[] = {
    {"Enter", 13, "\r"},    {"Tab", 9, ""},      {"Escape", 27, ""},    {"Backspace", 8, ""},
    {"Delete", 46, ""},     {"ArrowUp", 38, ""}, {"ArrowDown", 40, ""}, {"ArrowLeft", 37, ""},
    {"ArrowRight", 39, ""}, {"Home", 36, ""},    {"End", 35, ""},       {"PageUp", 33, ""},
    {"PageDown", 34, ""},   {"Space", 32, " "},
};

std::string readFileCapped(const std::string& path, size_t cap, bool& tooBig) {
  std::string data;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return data;
  kj::AutoCloseFd owned(fd);
  char buffer[65536];
  ssize_t n;
  while ((n = read(fd, buffer, sizeof(buffer))) > 0) {
    if (data.size() + n > cap) {
      tooBig = true;
      return "";
    }
    data.append(buffer, n);
  }
  return data;
}

}  // namespace

Browser::Browser(kj::AsyncIoContext& io, ChromiumSettings settings, std::string egressSocket)
    : io_(io),
      settings_(kj::mv(settings)),
      egressSocket_(kj::mv(egressSocket)),
      errors_(logErrors),
      tasks_(logErrors) {}

Browser::~Browser() noexcept(false) { stop(); }

void Browser::stop() {
  cdp_ = nullptr;
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    pid_ = -1;
  }
  tabs_.clear();
  refs_.clear();
  loading_.clear();
  loadWaiters_.clear();
  reapChildren();
}

kj::Promise<void> Browser::ensureStarted() {
  KJ_IF_MAYBE (cdp, cdp_) {
    if (!(*cdp)->isClosed() && !tabs_.empty()) return kj::READY_NOW;
  }
  stop();
  if (forwarder_ == nullptr) forwarder_ = kj::heap<Forwarder>(io_, egressSocket_);
  KJ_IF_MAYBE (f, forwarder_) {
    settings_.proxyPort = (*f)->port();
  }
  auto process = startChromium(settings_);
  pid_ = process.pid;
  auto& provider = *io_.lowLevelProvider;
  auto out = provider.wrapOutputFd(process.toChromium.release(),
                                   kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP);
  auto in = provider.wrapInputFd(process.fromChromium.release(),
                                 kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP);
  auto client = kj::heap<CdpClient>(
      kj::mv(out), kj::mv(in),
      [this](const std::string& method, const json& params, const std::string& sessionId) {
        onEvent(method, params, sessionId);
      });
  auto& cdp = *client;
  cdp_ = kj::mv(client);
  return cdp.call("Browser.getVersion")
      .then([this, &cdp](json) {
        return cdp.call("Browser.setDownloadBehavior", {{"behavior", "allowAndName"},
                                                        {"downloadPath", settings_.downloadDir},
                                                        {"eventsEnabled", true}});
      })
      .then([&cdp](json) {
        // Every page, popup and frame is attached before it runs, so its documents are gated.
        return cdp.call(
            "Target.setAutoAttach",
            {{"autoAttach", true}, {"waitForDebuggerOnStart", true}, {"flatten", true}});
      })
      .then([&cdp](json) {
        return cdp.call("Target.createTarget", {{"url", "about:blank"}});
      })
      .then([this](json created) -> kj::Promise<void> {
        currentTarget_ = created.value("targetId", std::string());
        // The attach event for it arrives before or just after the answer.
        return io_.provider->getTimer().afterDelay(50 * kj::MILLISECONDS).then([this]() {
          KJ_REQUIRE(current() != nullptr, "Chromium did not attach its first tab");
        });
      });
}

Browser::Tab* Browser::current() {
  for (auto& tab : tabs_) {
    if (tab.targetId == currentTarget_) return &tab;
  }
  return nullptr;
}

kj::Promise<json> Browser::call(const std::string& method, json params, bool onTab) {
  KJ_IF_MAYBE (cdp, cdp_) {
    std::string session;
    if (onTab) {
      Tab* tab = current();
      if (tab == nullptr) return KJ_EXCEPTION(FAILED, "no tab is open");
      session = tab->sessionId;
    }
    return (*cdp)->call(method, params.is_null() ? json::object() : kj::mv(params), session);
  }
  return KJ_EXCEPTION(DISCONNECTED, "Chromium is not running");
}

void Browser::onEvent(const std::string& method, const json& params, const std::string& sessionId) {
  if (method == "Target.attachedToTarget") {
    onAttached(params);
  } else if (method == "Target.detachedFromTarget") {
    std::string gone = params.value("sessionId", std::string());
    tabs_.erase(std::remove_if(tabs_.begin(), tabs_.end(),
                               [&](const Tab& t) { return t.sessionId == gone; }),
                tabs_.end());
    if (current() == nullptr && !tabs_.empty()) currentTarget_ = tabs_.back().targetId;
  } else if (method == "Fetch.requestPaused") {
    onRequestPaused(params, sessionId);
  } else if (method == "Page.frameStartedLoading") {
    loading_[sessionId] = true;
  } else if (method == "Page.loadEventFired") {
    loading_[sessionId] = false;
    for (auto it = loadWaiters_.begin(); it != loadWaiters_.end();) {
      if (it->sessionId == sessionId) {
        it->fulfiller->fulfill();
        it = loadWaiters_.erase(it);
      } else {
        ++it;
      }
    }
  } else if (method == "Browser.downloadWillBegin" || method == "Browser.downloadProgress") {
    onDownload(method, params);
  }
}

void Browser::onAttached(const json& params) {
  std::string sessionId = params.value("sessionId", std::string());
  json info = params.value("targetInfo", json::object());
  std::string type = info.value("type", std::string());
  std::string targetId = info.value("targetId", std::string());
  KJ_IF_MAYBE (cdp, cdp_) {
    auto& c = **cdp;
    json patterns = json::array(
        {{{"urlPattern", "*"}, {"resourceType", "Document"}, {"requestStage", "Request"}}});
    kj::Promise<void> setup = kj::READY_NOW;
    if (type == "page" || type == "iframe") {
      if (type == "page") tabs_.push_back(Tab{targetId, sessionId});
      setup = c.call("Fetch.enable", {{"patterns", patterns}}, sessionId)
                  .then([&c, sessionId, type](json) -> kj::Promise<void> {
                    if (type != "page") return kj::READY_NOW;
                    return c.call("Page.enable", json::object(), sessionId).ignoreResult();
                  })
                  .then([&c, sessionId]() {
                    return c.call(
                        "Target.setAutoAttach",
                        {{"autoAttach", true}, {"waitForDebuggerOnStart", true}, {"flatten", true}},
                        sessionId);
                  })
                  .ignoreResult();
    }
    tasks_.add(setup.then([&c, sessionId]() {
      return c.call("Runtime.runIfWaitingForDebugger", json::object(), sessionId).ignoreResult();
    }));
  }
}

void Browser::onRequestPaused(const json& params, const std::string& sessionId) {
  std::string requestId = params.value("requestId", std::string());
  json request = params.value("request", json::object());
  std::string url = request.value("url", std::string());
  KJ_IF_MAYBE (cdp, cdp_) {
    auto& c = **cdp;
    kj::Promise<GateAnswer> answer =
        gate_ ? gate_(url) : kj::Promise<GateAnswer>(GateAnswer{false, "no gate"});
    ++gatesPending_;
    tasks_.add(answer
                   .catch_([](kj::Exception&& e) {
                     return GateAnswer{false, "the supervisor did not answer"};
                   })
                   .then([this, &c, requestId, sessionId, url](GateAnswer a) {
                     if (!a.allowed) lastRefusal_ = url + ": " + a.reason;
                     if (--gatesPending_ == 0) {
                       for (auto& waiter : gateWaiters_) waiter->fulfill();
                       gateWaiters_.clear();
                     }
                     if (a.allowed) {
                       return c.call("Fetch.continueRequest", {{"requestId", requestId}}, sessionId)
                           .ignoreResult();
                     }
                     return c
                         .call("Fetch.failRequest",
                               {{"requestId", requestId}, {"errorReason", "BlockedByClient"}},
                               sessionId)
                         .ignoreResult();
                   }));
  }
}

void Browser::onDownload(const std::string& method, const json& params) {
  std::string guid = params.value("guid", std::string());
  if (guid.empty() || guid.find('/') != std::string::npos || guid[0] == '.') return;
  if (method == "Browser.downloadWillBegin") {
    downloadNames_[guid] = params.value("suggestedFilename", std::string("download"));
    return;
  }
  std::string state = params.value("state", std::string());
  if (state != "completed" && state != "canceled") return;
  std::string path = settings_.downloadDir + "/" + guid;
  if (state == "completed") {
    bool tooBig = false;
    std::string data = readFileCapped(path, MAX_DOWNLOAD_BYTES, tooBig);
    if (!tooBig) finished_.push_back(DownloadedFile{downloadNames_[guid], kj::mv(data)});
  }
  unlink(path.c_str());
  downloadNames_.erase(guid);
}

kj::Promise<void> Browser::waitForLoad(const std::string& sessionId, uint32_t millis) {
  auto paf = kj::newPromiseAndFulfiller<void>();
  loadWaiters_.push_back(LoadWaiter{sessionId, kj::mv(paf.fulfiller)});
  return io_.provider->getTimer()
      .timeoutAfter(millis * kj::MILLISECONDS, kj::mv(paf.promise))
      .catch_([](kj::Exception&&) {});  // a page still loading is read as it is
}

kj::Promise<void> Browser::settle() {
  // An action may start a navigation (a link, a form): give it a moment to begin, let the gate
  // answer the requests it paused meanwhile (a refusal belongs in this action's result), then
  // wait for its load event, within bounds.
  return io_.provider->getTimer()
      .afterDelay(200 * kj::MILLISECONDS)
      .then([this]() -> kj::Promise<void> {
        if (gatesPending_ == 0) return kj::READY_NOW;
        auto answered = kj::newPromiseAndFulfiller<void>();
        gateWaiters_.push_back(kj::mv(answered.fulfiller));
        return answered.promise.exclusiveJoin(
            io_.provider->getTimer().afterDelay(10 * kj::SECONDS));
      })
      .then([this]() -> kj::Promise<void> {
        Tab* tab = current();
        if (tab == nullptr || !loading_[tab->sessionId]) return kj::READY_NOW;
        return waitForLoad(tab->sessionId, 10000);
      });
}

kj::Promise<ActionResult> Browser::act(Action action) {
  reapChildren();
  lastRefusal_.clear();
  return ensureStarted()
      .then([this, action = kj::mv(action)]() -> kj::Promise<ActionResult> {
        switch (action.kind) {
          case Action::NAVIGATE:
            return navigate(action.url);
          case Action::SNAPSHOT:
            return snapshot();
          case Action::CLICK:
            return click(action.ref);
          case Action::TYPE:
            return type(action.ref, action.text);
          case Action::PRESS:
            return press(action.key);
          case Action::SCREENSHOT:
            return screenshot();
          case Action::TABS:
            return tabs();
          case Action::CLOSE:
            return close();
        }
        KJ_FAIL_REQUIRE("unknown browser action");
      })
      .then([this](ActionResult result) { return finish(kj::mv(result)); });
}

kj::Promise<ActionResult> Browser::finish(ActionResult result) {
  // At most the contract's share per result (browser.capnp); the rest wait for the next one.
  size_t taken = 0, bytes = 0;
  while (taken < finished_.size() && taken < rpc::MAX_DOWNLOADS_PER_RESULT &&
         bytes + finished_[taken].data.size() <= rpc::MAX_DOWNLOAD_BYTES_PER_RESULT) {
    bytes += finished_[taken].data.size();
    ++taken;
  }
  result.downloads.assign(std::make_move_iterator(finished_.begin()),
                          std::make_move_iterator(finished_.begin() + taken));
  finished_.erase(finished_.begin(), finished_.begin() + taken);
  Tab* tab = current();
  if (tab == nullptr) return kj::mv(result);
  return call("Target.getTargetInfo", {{"targetId", tab->targetId}}, false)
      .then([result = kj::mv(result)](json info) mutable {
        result.url = info.value("targetInfo", json::object()).value("url", std::string());
        return kj::mv(result);
      });
}

kj::Promise<ActionResult> Browser::navigate(const std::string& url) {
  Tab* tab = current();
  KJ_REQUIRE(tab != nullptr, "no tab is open");
  std::string session = tab->sessionId;
  auto loaded = waitForLoad(session, 15000);
  return call("Page.navigate", {{"url", url}})
      .then([this, url, loaded = kj::mv(loaded)](json answer) mutable -> kj::Promise<ActionResult> {
        std::string error = answer.value("errorText", std::string());
        if (!error.empty()) {
          std::string why = lastRefusal_.empty() ? error : "refused: " + lastRefusal_;
          return failed("navigation to " + url + " failed: " + why);
        }
        return loaded.then([url]() {
          return ActionResult{true, "navigated to " + url, {}, {}, {}};
        });
      });
}

kj::Promise<ActionResult> Browser::snapshot() {
  return call("Accessibility.getFullAXTree").then([this](json tree) {
    auto formatted = formatSnapshot(tree.value("nodes", json::array()));
    refs_ = kj::mv(formatted.refs);
    return ActionResult{true, kj::mv(formatted.text), {}, {}, {}};
  });
}

kj::Maybe<int64_t> Browser::nodeOf(uint32_t ref, ActionResult& failure) {
  auto it = refs_.find(ref);
  if (it == refs_.end()) {
    failure = failed("no element [" + std::to_string(ref) +
                     "] in the last snapshot; take a snapshot and use one of its refs");
    return nullptr;
  }
  return it->second;
}

kj::Promise<ActionResult> Browser::click(uint32_t ref) {
  ActionResult failure;
  KJ_IF_MAYBE (node, nodeOf(ref, failure)) {
    int64_t id = *node;
    return call("DOM.scrollIntoViewIfNeeded", {{"backendNodeId", id}})
        .then([this, id](json) {
          return call("DOM.getContentQuads", {{"backendNodeId", id}});
        })
        .then([this, ref](json quads) -> kj::Promise<ActionResult> {
          auto list = quads.value("quads", json::array());
          if (list.empty() || !list[0].is_array() || list[0].size() != 8) {
            return failed("element [" + std::to_string(ref) + "] is not visible");
          }
          double x = 0, y = 0;
          for (int i = 0; i < 4; ++i) {
            if (!list[0][2 * i].is_number() || !list[0][2 * i + 1].is_number())
              return failed("element [" + std::to_string(ref) + "] has no position");
            x += list[0][2 * i].get<double>() / 4;
            y += list[0][2 * i + 1].get<double>() / 4;
          }
          json base = {{"x", x}, {"y", y}, {"button", "left"}, {"clickCount", 1}};
          json press = base, release = base;
          press["type"] = "mousePressed";
          release["type"] = "mouseReleased";
          return call("Input.dispatchMouseEvent", {{"type", "mouseMoved"}, {"x", x}, {"y", y}})
              .then([this, press](json) { return call("Input.dispatchMouseEvent", press); })
              .then([this, release](json) { return call("Input.dispatchMouseEvent", release); })
              .then([this](json) { return settle(); })
              .then([this, ref]() {
                std::string note =
                    lastRefusal_.empty() ? "" : " (a navigation was refused: " + lastRefusal_ + ")";
                return ActionResult{
                    true, "clicked [" + std::to_string(ref) + "]" + note, {}, {}, {}};
              });
        });
  }
  return kj::mv(failure);
}

kj::Promise<ActionResult> Browser::type(uint32_t ref, const std::string& text) {
  ActionResult failure;
  KJ_IF_MAYBE (node, nodeOf(ref, failure)) {
    return call("DOM.focus", {{"backendNodeId", *node}})
        .then([this, text](json) {
          return call("Input.insertText", {{"text", text}});
        })
        .then([ref](json) {
          return ActionResult{true, "typed into [" + std::to_string(ref) + "]", {}, {}, {}};
        });
  }
  return kj::mv(failure);
}

kj::Promise<ActionResult> Browser::press(const std::string& key) {
  json down = {{"type", "keyDown"}, {"key", key}};
  bool known = false;
  for (auto& k : KEYS) {
    if (key == k.key) {
      known = true;
      down["windowsVirtualKeyCode"] = k.code;
      down["key"] = std::string(k.key) == "Space" ? " " : k.key;
      if (k.text[0] != '\0') down["text"] = k.text;
    }
  }
  if (!known) {
    // One printable character types itself.
    if (key.empty() || key.size() > 4 || static_cast<unsigned char>(key[0]) < 0x20) {
      return failed(
          "key must be one character or one of Enter, Tab, Escape, Backspace, Delete, "
          "ArrowUp, ArrowDown, ArrowLeft, ArrowRight, Home, End, PageUp, PageDown, "
          "Space; got \"" +
          key + "\"");
    }
    down["text"] = key;
  }
  json up = {{"type", "keyUp"}, {"key", down["key"]}};
  if (down.contains("windowsVirtualKeyCode"))
    up["windowsVirtualKeyCode"] = down["windowsVirtualKeyCode"];
  return call("Input.dispatchKeyEvent", down)
      .then([this, up](json) { return call("Input.dispatchKeyEvent", up); })
      .then([this](json) { return settle(); })
      .then([key]() {
        return ActionResult{true, "pressed " + key, {}, {}, {}};
      });
}

kj::Promise<ActionResult> Browser::screenshot() {
  return call("Page.captureScreenshot", {{"format", "png"}}).then([](json shot) {
    std::string data = shot.value("data", std::string());
    auto decoded = kj::decodeBase64(kj::StringPtr(data.c_str(), data.size()));
    KJ_REQUIRE(!decoded.hadErrors, "Chromium's screenshot is not base64");
    ActionResult result{true, "screenshot taken", {}, {}, {}};
    result.png.assign(reinterpret_cast<const char*>(decoded.begin()), decoded.size());
    return result;
  });
}

kj::Promise<ActionResult> Browser::tabs() {
  return call("Target.getTargets", json::object(), false).then([this](json targets) {
    std::string text;
    int index = 0;
    for (auto& info : targets.value("targetInfos", json::array())) {
      if (!info.is_object() || info.value("type", std::string()) != "page") continue;
      std::string id = info.value("targetId", std::string());
      text += (id == currentTarget_ ? "* " : "  ") + std::to_string(++index) + ". " +
              info.value("title", std::string()) + " — " + info.value("url", std::string()) + "\n";
    }
    return ActionResult{true, text.empty() ? "no tabs" : text, {}, {}, {}};
  });
}

kj::Promise<ActionResult> Browser::close() {
  Tab* tab = current();
  if (tab == nullptr) return failed("no tab is open");
  if (tabs_.size() == 1) {
    // The last tab: the whole browser goes, and its memory with it; the next action starts it.
    stop();
    return ActionResult{true, "closed the browser", {}, {}, {}};
  }
  std::string id = tab->targetId;
  return call("Target.closeTarget", {{"targetId", id}}, false).then([this, id](json) {
    tabs_.erase(
        std::remove_if(tabs_.begin(), tabs_.end(), [&](const Tab& t) { return t.targetId == id; }),
        tabs_.end());
    if (!tabs_.empty()) currentTarget_ = tabs_.back().targetId;
    refs_.clear();
    return ActionResult{true, "closed the tab", {}, {}, {}};
  });
}

}  // namespace chitin::browser
