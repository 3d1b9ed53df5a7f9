// SPDX-License-Identifier: Apache-2.0
// Runs one model call (runCall) on a transfer thread of its own while it lasts (a kept
// TransferThread, reused by later calls), because libcurl blocks, and hands its streamed text
// and final Outcome to the RPC thread.
// Runs in: worker (sandboxed)
//
// The transfer thread never waits on the RPC thread's event loop: it appends text to a
// mutex-guarded buffer and wakes the loop through a cross-thread fulfiller. When the buffer
// is full it waits on a condition variable (backpressure from the supervisor's TextStream),
// which cancellation also signals. So the destructor -- run on the RPC thread when the
// supervisor drops the call -- can cancel, wake libcurl, and wait for the job without deadlock.

#pragma once

#include <kj/async.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "model.capnp.h"
#include "transfer-thread.h"
#include "transfer.h"

namespace chitin::model {

class CallThread {
 public:
  // Starts the call on `thread` (idle) at once.
  CallThread(CallSpec spec, std::unique_ptr<HttpSession> http,
             std::unique_ptr<TransferThread> thread);
  // Cancels the transfer if it is still running and waits for the thread to leave it.
  ~CallThread();
  CallThread(const CallThread&) = delete;
  CallThread& operator=(const CallThread&) = delete;

  // Forwards text to `stream` (when there is one) as it arrives and resolves to the outcome.
  // Call once, on the RPC thread. A fault on the transfer thread (a bug, not a provider failure) rejects it.
  // (Heap-allocated: moving an Outcome through KJ's promise nodes trips a GCC 12
  // -Wmaybe-uninitialized false positive.)
  kj::Promise<kj::Own<Outcome>> run(kj::Maybe<rpc::TextStream::Client> stream);

  // After run() resolved: the HTTP session, so its open connection can serve the next call.
  std::unique_ptr<HttpSession> takeSession();
  // After run() resolved: the thread, idle again, for the next call.
  std::unique_ptr<TransferThread> takeThread();

  // Text held for the RPC thread before the transfer thread waits for it to be taken.
  static constexpr size_t MAX_PENDING_TEXT = 64u << 10;

 private:
  void runOnThread();
  void pushText(std::string_view text);  // transfer thread
  kj::Promise<kj::Own<Outcome>> pump();  // RPC thread

  CallSpec spec_;
  std::unique_ptr<HttpSession> http_;
  std::atomic<bool> cancelled_{false};

  std::mutex mutex_;
  std::condition_variable textTaken_;
  // Guarded by mutex_:
  std::string pendingText_;
  std::optional<Outcome> outcome_;
  kj::Maybe<kj::Exception> fault_;
  kj::Own<kj::CrossThreadPromiseFulfiller<void>> wake_;

  // RPC thread only.
  kj::Maybe<rpc::TextStream::Client> stream_;
  bool started_ = false;

  std::unique_ptr<TransferThread> thread_;  // last: given the job once everything above exists
};

}  // namespace chitin::model
