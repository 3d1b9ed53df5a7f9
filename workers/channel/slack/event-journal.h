// SPDX-License-Identifier: Apache-2.0
// Events acknowledged to Slack but not yet delivered, kept on disk so a worker that dies in
// between delivers them when it starts again.
// Runs in: worker (sandboxed)
//
// Slack forgets an envelope once it is acknowledged, and it must be acknowledged within ~3 s,
// before a delivery (a slow supervisor, a large file) is sure to be done. So each event is
// written here first (a file of its own, written whole, synced, renamed into place), then
// acknowledged, then delivered, then removed. What is left at start-up is delivered first, in
// the order it arrived; a repeat reaches the supervisor at worst, which drops it by message id.

#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "json-fields.h"

namespace chitin::channel::slack {

class EventJournal {
 public:
  // `dir` is created if missing; "" keeps nothing (every call is a no-op).
  explicit EventJournal(std::string dir);

  // Writes `event` and returns its file, or "" when it could not be written (logged: the
  // event is then delivered without the safety net rather than not at all).
  std::string keep(const Json& event);
  void done(const std::string& file);

  // The events a previous run left, oldest first, with their files.
  std::vector<std::pair<std::string, Json>> leftovers();

 private:
  std::string dir_;
  uint64_t next_ = 0;
};

}  // namespace chitin::channel::slack
