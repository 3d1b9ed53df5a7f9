// SPDX-License-Identifier: Apache-2.0
// Counting a tool worker's live output against its cap (see capped-sink.h).
// Runs in: supervisor

#include "capped-sink.h"

#include <kj/debug.h>

namespace chitin {

kj::Promise<void> CappedSink::refuse(const char* why) {
  if (overflow_->isWaiting()) overflow_->fulfill();
  return KJ_EXCEPTION(FAILED, "live output refused", why, cap_);
}

kj::Promise<void> CappedSink::write(WriteContext context) {
  size_t size = context.getParams().getChunk().size();
  if (ended_) return refuse("write after end");
  if (size == 0) return refuse("empty chunk");
  if (size > cap_ - received_) return refuse("over the cap for one call");
  // TODO(cleanup): forward to the gateway as live tool output events.
  received_ += size;
  return kj::READY_NOW;
}

kj::Promise<void> CappedSink::end(EndContext context) {
  if (ended_) return refuse("end twice");
  ended_ = true;
  return kj::READY_NOW;
}

}  // namespace chitin
