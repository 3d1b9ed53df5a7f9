// SPDX-License-Identifier: Apache-2.0
// A kept thread for model calls (see transfer-thread.h).
// Runs in: worker (sandboxed)

#include "transfer-thread.h"

#include <kj/debug.h>

namespace chitin::model {

TransferThread::TransferThread() : thread_([this]() { loop(); }) {}

TransferThread::~TransferThread() {
  {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this]() { return !job_; });
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void TransferThread::start(std::function<void()> job) {
  KJ_REQUIRE(job != nullptr, "TransferThread::start() without a job");
  {
    std::lock_guard<std::mutex> lock(mutex_);
    KJ_REQUIRE(!job_, "TransferThread::start() while a job is running");
    job_ = std::move(job);
  }
  changed_.notify_all();
}

void TransferThread::waitDone() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [this]() { return !job_; });
}

void TransferThread::loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    changed_.wait(lock, [this]() { return stopping_ || job_; });
    if (stopping_) return;
    // The job runs without the lock; job_ stays set meanwhile, which is what "busy" means.
    std::function<void()>& job = job_;
    lock.unlock();
    job();
    lock.lock();
    job_ = nullptr;
    changed_.notify_all();
  }
}

}  // namespace chitin::model
