// SPDX-License-Identifier: Apache-2.0
// A minimal Chrome DevTools Protocol client on Chromium's --remote-debugging-pipe: JSON
// messages, each ended by a NUL byte, written to Chromium's fd 3 and read from its fd 4.
// Runs in: worker (sandboxed)
//
// Everything Chromium sends is untrusted (a page that took over a renderer can take over the
// browser process in the same sandbox): messages are size-capped, parsed with exceptions
// caught, and a malformed one ends the connection (every pending call rejects).

#pragma once

#include <kj/async-io.h>

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

namespace chitin::browser {

// One message may carry a full-page screenshot as base64.
constexpr size_t MAX_CDP_MESSAGE_BYTES = 64 << 20;

// Splits a byte stream into NUL-terminated messages. Pure; throws when one exceeds `maxBytes`.
class MessageSplitter {
 public:
  explicit MessageSplitter(size_t maxBytes) : maxBytes_(maxBytes) {}
  // Appends bytes and calls `onMessage` for each complete message.
  void feed(const char* data, size_t size, const std::function<void(std::string)>& onMessage);

 private:
  size_t maxBytes_;
  std::string pending_;
};

class CdpClient {
 public:
  using EventHandler = std::function<void(const std::string& method, const nlohmann::json& params,
                                          const std::string& sessionId)>;

  // `toChromium` is the write end of Chromium's fd 3, `fromChromium` the read end of its fd 4.
  CdpClient(kj::Own<kj::AsyncOutputStream> toChromium, kj::Own<kj::AsyncInputStream> fromChromium,
            EventHandler onEvent);

  // Sends one command; resolves to its `result`, rejects with the protocol's error message.
  kj::Promise<nlohmann::json> call(const std::string& method,
                                   nlohmann::json params = nlohmann::json::object(),
                                   const std::string& sessionId = "");

  // Resolves when the connection ends (Chromium exited or sent something malformed); the
  // exception says why.
  kj::Promise<void> whenClosed() { return closed_.addBranch(); }
  bool isClosed() const { return isClosed_; }

 private:
  kj::Promise<void> readLoop();
  void dispatch(std::string message);
  void fail(kj::Exception e);

  kj::Own<kj::AsyncOutputStream> out_;
  kj::Own<kj::AsyncInputStream> in_;
  EventHandler onEvent_;
  MessageSplitter splitter_{MAX_CDP_MESSAGE_BYTES};
  uint64_t nextId_ = 1;
  std::map<uint64_t, kj::Own<kj::PromiseFulfiller<nlohmann::json>>> pending_;
  kj::Promise<void> writes_ = kj::READY_NOW;
  kj::Array<char> buffer_;
  bool isClosed_ = false;
  kj::Maybe<kj::Exception> closeReason_;
  kj::Own<kj::PromiseFulfiller<void>> closedFulfiller_;
  kj::ForkedPromise<void> closed_;
  kj::Promise<void> reader_;
};

}  // namespace chitin::browser
