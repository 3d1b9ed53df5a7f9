// SPDX-License-Identifier: Apache-2.0
// The DevTools protocol client (see cdp.h).
// Runs in: worker (sandboxed)

#include "cdp.h"

#include <kj/debug.h>

namespace chitin::browser {

using nlohmann::json;

void MessageSplitter::feed(const char* data, size_t size,
                           const std::function<void(std::string)>& onMessage) {
  while (size > 0) {
    const char* nul = static_cast<const char*>(memchr(data, '\0', size));
    size_t take = nul == nullptr ? size : static_cast<size_t>(nul - data);
    KJ_REQUIRE(pending_.size() + take <= maxBytes_, "DevTools message over the size cap",
               maxBytes_);
    pending_.append(data, take);
    if (nul == nullptr) return;
    onMessage(std::move(pending_));
    pending_.clear();
    data += take + 1;
    size -= take + 1;
  }
}

namespace {
kj::ForkedPromise<void> makeClosed(kj::Own<kj::PromiseFulfiller<void>>& fulfiller) {
  auto paf = kj::newPromiseAndFulfiller<void>();
  fulfiller = kj::mv(paf.fulfiller);
  return paf.promise.fork();
}
}  // namespace

CdpClient::CdpClient(kj::Own<kj::AsyncOutputStream> toChromium,
                     kj::Own<kj::AsyncInputStream> fromChromium, EventHandler onEvent)
    : out_(kj::mv(toChromium)),
      in_(kj::mv(fromChromium)),
      onEvent_(kj::mv(onEvent)),
      buffer_(kj::heapArray<char>(1 << 16)),
      closed_(makeClosed(closedFulfiller_)),
      reader_(nullptr) {
  reader_ =
      readLoop().catch_([this](kj::Exception&& e) { fail(kj::mv(e)); }).eagerlyEvaluate(nullptr);
}

kj::Promise<void> CdpClient::readLoop() {
  return in_->tryRead(buffer_.begin(), 1, buffer_.size())
      .then([this](size_t n) -> kj::Promise<void> {
        if (n == 0) {
          fail(KJ_EXCEPTION(DISCONNECTED, "Chromium closed the DevTools pipe (it exited)"));
          return kj::READY_NOW;
        }
        splitter_.feed(buffer_.begin(), n, [this](std::string m) { dispatch(kj::mv(m)); });
        if (isClosed_) return kj::READY_NOW;
        return readLoop();
      });
}

void CdpClient::dispatch(std::string message) {
  json parsed = json::parse(message, nullptr, false);
  KJ_REQUIRE(parsed.is_object(), "DevTools message is not a JSON object");
  auto id = parsed.find("id");
  if (id != parsed.end()) {
    KJ_REQUIRE(id->is_number_unsigned(), "DevTools message id is not a number");
    auto it = pending_.find(id->get<uint64_t>());
    if (it == pending_.end()) return;  // a call whose caller gave up
    auto fulfiller = kj::mv(it->second);
    pending_.erase(it);
    auto error = parsed.find("error");
    if (error != parsed.end()) {
      std::string text =
          error->is_object() ? error->value("message", std::string("error")) : std::string("error");
      fulfiller->reject(KJ_EXCEPTION(FAILED, "DevTools", text));
    } else {
      auto result = parsed.find("result");
      fulfiller->fulfill(result != parsed.end() && result->is_object() ? kj::mv(*result)
                                                                       : json::object());
    }
    return;
  }
  auto method = parsed.find("method");
  KJ_REQUIRE(method != parsed.end() && method->is_string(),
             "DevTools message without id or method");
  std::string sessionId;
  auto session = parsed.find("sessionId");
  if (session != parsed.end() && session->is_string()) sessionId = session->get<std::string>();
  auto params = parsed.find("params");
  onEvent_(method->get<std::string>(),
           params != parsed.end() && params->is_object() ? *params : json::object(), sessionId);
}

void CdpClient::fail(kj::Exception e) {
  if (isClosed_) return;
  isClosed_ = true;
  for (auto& [id, fulfiller] : pending_) fulfiller->reject(kj::cp(e));
  pending_.clear();
  closedFulfiller_->reject(kj::mv(e));
}

kj::Promise<json> CdpClient::call(const std::string& method, json params,
                                  const std::string& sessionId) {
  if (isClosed_) {
    return KJ_EXCEPTION(DISCONNECTED, "Chromium is not running");
  }
  uint64_t id = nextId_++;
  json message = {{"id", id}, {"method", method}, {"params", kj::mv(params)}};
  if (!sessionId.empty()) message["sessionId"] = sessionId;
  auto bytes = kj::heapString(message.dump());
  auto paf = kj::newPromiseAndFulfiller<json>();
  pending_.emplace(id, kj::mv(paf.fulfiller));
  // Writes go out one after another: two messages must not interleave on the pipe.
  writes_ = writes_
                .then([this, bytes = kj::mv(bytes)]() mutable {
                  // The NUL terminator is the kj::String's own.
                  auto promise = out_->write(bytes.begin(), bytes.size() + 1);
                  return promise.attach(kj::mv(bytes));
                })
                .catch_([this](kj::Exception&& e) { fail(kj::mv(e)); })
                .eagerlyEvaluate(nullptr);
  return kj::mv(paf.promise);
}

}  // namespace chitin::browser
