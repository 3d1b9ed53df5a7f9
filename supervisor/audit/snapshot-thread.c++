// SPDX-License-Identifier: Apache-2.0
// The snapshot thread: the *Async methods of Snapshots (see snapshots.h, "Threads").
// Runs in: supervisor (the caller's event loop, and the thread this file starts)
//
// One thread per Snapshots, started on first use with every signal blocked (signals belong to
// the supervisor's libuv loop); jobs run one at a time under the same lock the synchronous
// methods take, so one thread uses the libgit2 repository at a time. Results travel back through
// KJ cross-thread fulfillers, which wake the caller's loop through KJ's own eventfd.

#include <signal.h>
#include <spdlog/spdlog.h>
#include <time.h>

#include "snapshots-impl.h"

namespace chitin::audit {

// ---- the snapshot thread
// -------------------------------------------------------------------------

void Snapshots::Impl::post(kj::Function<void()> job) {
  std::lock_guard<std::mutex> g(queueLock);
  if (!worker.joinable()) {
    // Signals stay with the supervisor's loop (libuv): the thread is born with all of them
    // blocked.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    worker = std::thread([this] { workerLoop(); });
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
  }
  jobs.push_back(kj::mv(job));
  queueReady.notify_one();
}

void Snapshots::Impl::workerLoop() {
  for (;;) {
    kj::Function<void()> job;
    {
      std::unique_lock<std::mutex> g(queueLock);
      queueReady.wait(g, [this] { return stopping || !jobs.empty(); });
      if (stopping) return;
      job = kj::mv(jobs.front());
      jobs.pop_front();
    }
    job();
  }
}

namespace {

kj::Exception asKj(const char* what) {
  return kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__, kj::str(what));
}

// Runs `work` on the snapshot thread and fulfils the promise with its result, or rejects it with
// the error; then runs `after` (still on the thread, the promise already fulfilled).
// (`ImplT` is Snapshots::Impl, deduced: the name is private to Snapshots.)
template <typename T, typename ImplT, typename Work, typename After>
kj::Promise<T> runOnThread(ImplT& impl, Work work, After after) {
  auto paf = kj::newPromiseAndCrossThreadFulfiller<T>();
  impl.post([&impl, work = kj::mv(work), fulfiller = kj::mv(paf.fulfiller),
             after = kj::mv(after)]() mutable {
    try {
      T result = [&] {
        std::lock_guard<std::mutex> g(impl.lock);
        return work();
      }();
      fulfiller->fulfill(kj::mv(result));
    } catch (const kj::Exception& e) {
      fulfiller->reject(kj::cp(e));
    } catch (const std::exception& e) {
      fulfiller->reject(asKj(e.what()));
    }
    after();
  });
  return kj::mv(paf.promise);
}

}  // namespace

kj::Promise<Snapshot> Snapshots::takeAsync(std::string message) {
  Impl& im = *impl_;
  return runOnThread<Snapshot>(
      im, [&im, message = kj::mv(message)] { return im.takeLocked(message); },
      [&im] {
        std::lock_guard<std::mutex> g(im.lock);
        if (!im.pruneDue()) return;
        try {
          im.pruneLocked(static_cast<int64_t>(::time(nullptr)));
        } catch (const std::exception& e) {
          // The next due prune tries again; the snapshot itself is stored.
          spdlog::error("snapshot retention: {}", e.what());
          im.prunedOnce = true;
          im.sincePrune = 0;
        }
      });
}

kj::Promise<Comparison> Snapshots::compareAsync(std::string id) {
  Impl& im = *impl_;
  return runOnThread<Comparison>(
      im, [&im, id = kj::mv(id)] { return im.compareLocked(id); }, [] {});
}

kj::Promise<Restored> Snapshots::restoreAsync(std::string id, std::string beforeMessage) {
  Impl& im = *impl_;
  return runOnThread<Restored>(
      im, [&im, id = kj::mv(id), msg = kj::mv(beforeMessage)] { return im.restoreLocked(id, msg); },
      [] {});
}

kj::Promise<std::vector<Skipped>> Snapshots::restorePathsAsync(std::string id,
                                                               std::vector<std::string> paths) {
  Impl& im = *impl_;
  return runOnThread<std::vector<Skipped>>(
      im,
      [&im, id = kj::mv(id), paths = kj::mv(paths)] { return im.restorePathsLocked(id, paths); },
      [] {});
}

}  // namespace chitin::audit
