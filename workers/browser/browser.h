// SPDX-License-Identifier: Apache-2.0
// One session's browser: Chromium (started on first use, restarted after it died), its tabs,
// the refs of the last snapshot, downloads, and the actions of the `browser` tool over CDP.
// Runs in: worker (sandboxed)
//
// Every document Chromium is about to request (top-level, frame, redirect, link, popup) is
// paused (Fetch domain, attached to every page and frame before it runs) and requested only
// when the gate (the supervisor's policy) allowed its URL; without a gate nothing is requested.

#pragma once

#include <kj/async-io.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cdp.h"
#include "chromium.h"
#include "forwarder.h"

namespace chitin::browser {

struct GateAnswer {
  bool allowed = false;
  std::string reason;
};
using Gate = std::function<kj::Promise<GateAnswer>(const std::string& url)>;

struct Action {
  enum Kind { NAVIGATE, SNAPSHOT, CLICK, TYPE, PRESS, SCREENSHOT, TABS, CLOSE };
  Kind kind = SNAPSHOT;
  std::string url;
  uint32_t ref = 0;
  std::string text;
  std::string key;
};

struct DownloadedFile {
  std::string name;
  std::string data;
};

struct ActionResult {
  bool ok = false;
  std::string text;
  std::string url;
  std::string png;
  std::vector<DownloadedFile> downloads;
};

constexpr size_t MAX_DOWNLOAD_BYTES = 64 << 20;

class Browser {
 public:
  Browser(kj::AsyncIoContext& io, ChromiumSettings settings, std::string egressSocket);
  ~Browser() noexcept(false);

  void setGate(Gate gate) { gate_ = kj::mv(gate); }

  // Never rejects for expected failures (a bad ref, a refused or failed navigation): those are
  // results with ok == false. Rejects when Chromium cannot be started or misbehaves.
  kj::Promise<ActionResult> act(Action action);

 private:
  struct Tab {
    std::string targetId;
    std::string sessionId;
  };
  struct LoadWaiter {
    std::string sessionId;
    kj::Own<kj::PromiseFulfiller<void>> fulfiller;
  };

  kj::Promise<void> ensureStarted();
  void stop();
  void onEvent(const std::string& method, const nlohmann::json& params,
               const std::string& sessionId);
  void onAttached(const nlohmann::json& params);
  void onRequestPaused(const nlohmann::json& params, const std::string& sessionId);
  void onDownload(const std::string& method, const nlohmann::json& params);
  kj::Promise<void> waitForLoad(const std::string& sessionId, uint32_t millis);
  kj::Promise<void> settle();
  Tab* current();
  kj::Promise<nlohmann::json> call(const std::string& method, nlohmann::json params = {},
                                   bool onTab = true);

  kj::Promise<ActionResult> navigate(const std::string& url);
  kj::Promise<ActionResult> snapshot();
  kj::Promise<ActionResult> click(uint32_t ref);
  kj::Promise<ActionResult> type(uint32_t ref, const std::string& text);
  kj::Promise<ActionResult> press(const std::string& key);
  kj::Promise<ActionResult> screenshot();
  kj::Promise<ActionResult> tabs();
  kj::Promise<ActionResult> close();
  kj::Promise<ActionResult> finish(ActionResult result);
  kj::Maybe<int64_t> nodeOf(uint32_t ref, ActionResult& failure);

  kj::AsyncIoContext& io_;
  ChromiumSettings settings_;
  std::string egressSocket_;
  Gate gate_;
  kj::Maybe<kj::Own<Forwarder>> forwarder_;
  pid_t pid_ = -1;
  kj::Maybe<kj::Own<CdpClient>> cdp_;
  std::vector<Tab> tabs_;
  std::string currentTarget_;
  std::map<uint32_t, int64_t> refs_;
  std::map<std::string, bool> loading_;
  std::vector<LoadWaiter> loadWaiters_;
  std::map<std::string, std::string> downloadNames_;  // guid -> suggested name
  std::vector<DownloadedFile> finished_;
  std::string lastRefusal_;
  // Requests paused for the supervisor's gate and not yet answered, and settle()s waiting for
  // them: an action's result says what the gate refused on its behalf.
  size_t gatesPending_ = 0;
  std::vector<kj::Own<kj::PromiseFulfiller<void>>> gateWaiters_;
  kj::TaskSet::ErrorHandler& errors_;
  kj::TaskSet tasks_;
};

}  // namespace chitin::browser
