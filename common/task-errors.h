// SPDX-License-Identifier: Apache-2.0
// A kj::TaskSet's error handler that logs each failed task, prefixed with what the set serves.
// Runs in: supervisor
//
// A task that fails has no caller left to tell; the log is where an operator finds it.

#pragma once

#include <kj/async.h>
#include <spdlog/spdlog.h>

namespace chitin {

class LogTaskErrors final : public kj::TaskSet::ErrorHandler {
 public:
  // `what` is a string literal ("channel router"): it must outlive the handler.
  explicit LogTaskErrors(const char* what, spdlog::level::level_enum level = spdlog::level::warn)
      : what_(what), level_(level) {}

  void taskFailed(kj::Exception&& e) override {
    spdlog::log(level_, "{}: {}", what_, e.getDescription().cStr());
  }

 private:
  const char* what_;
  spdlog::level::level_enum level_;
};

}  // namespace chitin
