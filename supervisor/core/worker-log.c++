// SPDX-License-Identifier: Apache-2.0
// Reading a worker's output pipe into the log, capped (see worker-log.h).
// Runs in: supervisor

#include "worker-log.h"

#include <errno.h>
#include <kj/debug.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

namespace chitin {

namespace {

// At most this much is read per wake-up, so one worker cannot hold the loop.
constexpr size_t READ_PER_WAKEUP = 64 * 1024;

}  // namespace

struct WorkerLog::Handles {
  uv_poll_t poll;
  uv_timer_t timer;
  WorkerLog* owner;
  int open = 2;

  static void onClosed(uv_handle_t* h) {
    auto* self = static_cast<Handles*>(h->data);
    if (--self->open == 0) delete self;
  }
};

std::string WorkerLog::escape(const char* bytes, size_t size) {
  std::string out;
  out.reserve(size);
  for (size_t i = 0; i < size; i++) {
    unsigned char c = static_cast<unsigned char>(bytes[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char hex[5];
      snprintf(hex, sizeof(hex), "\\x%02x", c);
      out += hex;
    }
  }
  return out;
}

WorkerLog::WorkerLog(uv_loop_t* loop, kj::AutoCloseFd pipe, std::string label,
                     WorkerLogLimits limits, Emit emit)
    : loop_(loop),
      pipe_(kj::mv(pipe)),
      label_(std::move(label)),
      limits_(limits),
      emit_(std::move(emit)) {
  if (!emit_) {
    emit_ = [](const std::string& who, const std::string& line) {
      spdlog::warn("{}: {}", who, line);
    };
  }
  windowStart_ = uv_now(loop_);
  handles_ = new Handles;
  handles_->owner = this;
  handles_->poll.data = handles_;
  handles_->timer.data = handles_;
  KJ_ASSERT(uv_poll_init(loop_, &handles_->poll, pipe_.get()) == 0);
  KJ_ASSERT(uv_timer_init(loop_, &handles_->timer) == 0);
  KJ_ASSERT(uv_poll_start(&handles_->poll, UV_READABLE, [](uv_poll_t* h, int, int) {
              auto* self = static_cast<Handles*>(h->data);
              if (self->owner != nullptr) self->owner->onReadable();
            }) == 0);
}

WorkerLog::~WorkerLog() noexcept(false) {
  // Whatever is still in the pipe is read no more; a partial line is logged as it is.
  if (!line_.empty() && !ended_) emitLine();
  handles_->owner = nullptr;
  uv_poll_stop(&handles_->poll);
  uv_timer_stop(&handles_->timer);
  uv_close(reinterpret_cast<uv_handle_t*>(&handles_->poll), &Handles::onClosed);
  uv_close(reinterpret_cast<uv_handle_t*>(&handles_->timer), &Handles::onClosed);
}

void WorkerLog::startWindowIfDue() {
  uint64_t now = uv_now(loop_);
  if (now - windowStart_ < limits_.windowMs) return;
  windowStart_ = now;
  if (dropped_ > 0 && notedDrop_) {
    emit_(label_, "(output logged again; " + std::to_string(dropped_) + " bytes dropped so far)");
  }
  loggedInWindow_ = 0;
  readInWindow_ = 0;
  notedDrop_ = false;
}

void WorkerLog::onReadable() {
  startWindowIfDue();
  char buffer[16 * 1024];
  size_t thisWakeup = 0;
  while (thisWakeup < READ_PER_WAKEUP) {
    if (readInWindow_ >= limits_.readBytesPerWindow) {
      // Enough read for this window: stop reading until it ends. The worker blocks on its own
      // writes meanwhile.
      paused_ = true;
      uv_poll_stop(&handles_->poll);
      uint64_t left = windowStart_ + limits_.windowMs - uv_now(loop_);
      uv_timer_start(
          &handles_->timer,
          [](uv_timer_t* h) {
            auto* self = static_cast<Handles*>(h->data);
            if (self->owner != nullptr) self->owner->resume();
          },
          left > limits_.windowMs ? limits_.windowMs : left, 0);
      return;
    }
    size_t want = std::min(sizeof(buffer), limits_.readBytesPerWindow - readInWindow_);
    ssize_t n = ::read(pipe_.get(), buffer, want);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      n = 0;  // any other error ends the output like EOF
    }
    if (n == 0) {
      if (!line_.empty()) emitLine();
      ended_ = true;
      uv_poll_stop(&handles_->poll);
      return;
    }
    readInWindow_ += n;
    totalRead_ += n;
    thisWakeup += n;
    take(buffer, static_cast<size_t>(n));
  }
}

void WorkerLog::resume() {
  paused_ = false;
  startWindowIfDue();
  uv_poll_start(&handles_->poll, UV_READABLE, [](uv_poll_t* h, int, int) {
    auto* self = static_cast<Handles*>(h->data);
    if (self->owner != nullptr) self->owner->onReadable();
  });
}

void WorkerLog::take(const char* bytes, size_t size) {
  for (size_t i = 0; i < size; i++) {
    if (bytes[i] == '\n') {
      emitLine();
      continue;
    }
    if (line_.size() < limits_.maxLineBytes) {
      line_ += bytes[i];
    } else {
      lineCut_ = true;
    }
  }
}

void WorkerLog::emitLine() {
  size_t cost = line_.size() + 1;
  if (loggedInWindow_ + cost > limits_.logBytesPerWindow) {
    dropped_ += cost;
    if (!notedDrop_) {
      notedDrop_ = true;
      emit_(label_, "(more than " + std::to_string(limits_.logBytesPerWindow) +
                        " bytes of output in " + std::to_string(limits_.windowMs / 1000) +
                        " s; dropping the rest of this window)");
    }
  } else {
    loggedInWindow_ += cost;
    std::string text = escape(line_.data(), line_.size());
    if (lineCut_) text += " [line cut]";
    emit_(label_, text);
  }
  line_.clear();
  lineCut_ = false;
}

}  // namespace chitin
