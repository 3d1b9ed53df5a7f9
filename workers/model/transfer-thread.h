// SPDX-License-Identifier: Apache-2.0
// A thread that runs one job at a time and waits between jobs, so a model call does not pay for
// starting and ending a thread (in a VM, that was a tenth of the model worker's share of a turn).
// Runs in: worker (sandboxed)
//
// The owner hands it a job with start() and, before the job's state goes away, waits for the
// job to have returned with waitDone(). A thread that cannot be started throws from the
// constructor (std::system_error), as std::thread does.

#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace chitin::model {

class TransferThread {
 public:
  TransferThread();
  // Waits for the running job, if any, then ends the thread.
  ~TransferThread();
  TransferThread(const TransferThread&) = delete;
  TransferThread& operator=(const TransferThread&) = delete;

  // Runs `job` on the thread. Only while idle: after construction, or after waitDone().
  void start(std::function<void()> job);
  // Blocks until the job given last has returned (at once when there is none).
  void waitDone();

 private:
  void loop();

  std::mutex mutex_;
  std::condition_variable changed_;
  // Guarded by mutex_:
  std::function<void()> job_;  // set by start(), cleared when the job returns
  bool stopping_ = false;

  std::thread thread_;  // last: started once everything above exists
};

}  // namespace chitin::model
