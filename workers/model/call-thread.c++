// SPDX-License-Identifier: Apache-2.0
// One model call on its own thread, bridged to the RPC thread (see call-thread.h).
// Runs in: worker (sandboxed)

#include "call-thread.h"

#include <kj/debug.h>

namespace chitin::model {

CallThread::CallThread(CallSpec spec, std::unique_ptr<HttpSession> http,
                       std::unique_ptr<TransferThread> thread)
    : spec_(std::move(spec)), http_(std::move(http)), thread_(std::move(thread)) {
  thread_->start([this]() { runOnThread(); });
}

CallThread::~CallThread() {
  if (thread_ == nullptr) return;  // takeThread(): the job had returned
  {
    // Set under the mutex so a pushText() between its check and its wait cannot miss it.
    std::lock_guard<std::mutex> lock(mutex_);
    cancelled_ = true;
  }
  textTaken_.notify_all();
  if (http_ != nullptr) http_->wakeup();
  thread_->waitDone();
}

void CallThread::runOnThread() {
  Outcome outcome;
  kj::Maybe<kj::Exception> fault = kj::runCatchingExceptions([&]() {
    outcome = runCall(spec_, *http_, cancelled_, [this](std::string_view text) { pushText(text); });
  });
  kj::Own<kj::CrossThreadPromiseFulfiller<void>> wake;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    outcome_ = std::move(outcome);
    fault_ = kj::mv(fault);
    wake = kj::mv(wake_);
  }
  if (wake.get() != nullptr) wake->fulfill();
}

void CallThread::pushText(std::string_view text) {
  kj::Own<kj::CrossThreadPromiseFulfiller<void>> wake;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    textTaken_.wait(lock,
                    [&]() { return cancelled_.load() || pendingText_.size() < MAX_PENDING_TEXT; });
    if (cancelled_.load()) return;
    pendingText_.append(text);
    wake = kj::mv(wake_);
  }
  if (wake.get() != nullptr) wake->fulfill();
}

kj::Promise<kj::Own<Outcome>> CallThread::run(kj::Maybe<rpc::TextStream::Client> stream) {
  KJ_REQUIRE(!started_, "CallThread::run() called twice");
  started_ = true;
  stream_ = kj::mv(stream);
  return pump();
}

kj::Promise<kj::Own<Outcome>> CallThread::pump() {
  std::string text;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (pendingText_.empty()) {
      if (outcome_) {
        KJ_IF_MAYBE (fault, fault_) {
          return kj::cp(*fault);
        }
        return kj::heap<Outcome>(kj::mv(*outcome_));
      }
      auto paf = kj::newPromiseAndCrossThreadFulfiller<void>();
      wake_ = kj::mv(paf.fulfiller);
      return paf.promise.then([this]() { return pump(); });
    }
    text.swap(pendingText_);
  }
  textTaken_.notify_all();

  KJ_IF_MAYBE (stream, stream_) {
    auto request = stream->deltaRequest();
    request.setText(kj::StringPtr(text.c_str(), text.size()));
    return request.send().then([this]() { return pump(); },
                               [this](kj::Exception&& e) {
                                 // The text stream is informational: if the supervisor's side of it
                                 // failed, the call still produces its Completion; only further
                                 // text is dropped.
                                 KJ_LOG(WARNING, "text stream failed; dropping further deltas", e);
                                 stream_ = nullptr;
                                 return pump();
                               });
  }
  return pump();
}

std::unique_ptr<HttpSession> CallThread::takeSession() {
  // run() has resolved, so the thread has stored its outcome and is about to leave the job.
  if (thread_ != nullptr) thread_->waitDone();
  KJ_REQUIRE(outcome_ != std::nullopt, "takeSession() before the call finished");
  return std::move(http_);
}

std::unique_ptr<TransferThread> CallThread::takeThread() {
  KJ_REQUIRE(thread_ != nullptr, "takeThread() called twice");
  thread_->waitDone();
  KJ_REQUIRE(outcome_ != std::nullopt, "takeThread() before the call finished");
  return std::move(thread_);
}

}  // namespace chitin::model
