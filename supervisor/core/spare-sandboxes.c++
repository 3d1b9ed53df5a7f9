// SPDX-License-Identifier: Apache-2.0
// Warm spare sandboxes (see spare-sandboxes.h).
// Runs in: supervisor

#include "spare-sandboxes.h"

#include <kj/debug.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "worker-host.h"

namespace chitin {

std::string spareRequestKey(const spawn::SpawnRequest& request) {
  // Each field length-prefixed: no two requests give one key, whatever bytes their values hold.
  std::string key;
  auto field = [&key](const std::string& value) {
    key += std::to_string(value.size()) + ":" + value;
  };
  field(request.profile);
  key += "v" + std::to_string(request.vars.size());
  for (const auto& [name, value] : request.vars) {
    field(name);
    field(value);
  }
  key += "h" + std::to_string(request.hide.size());
  for (const auto& path : request.hide) field(path);
  key += "a" + std::to_string(request.workerArgs.size());
  for (const auto& arg : request.workerArgs) field(arg);
  key += "o" + std::to_string(request.workerOverride.has_value());
  if (request.workerOverride) field(*request.workerOverride);
  key += "f" + std::to_string(request.stdoutFd) + "," + std::to_string(request.stderrFd);
  field(request.egressSocket);
  return key;
}

struct SpareSandboxes::Spare {
  std::string session;
  std::string key;           // spareRequestKey()
  std::string hiddenAt;      // Spawner::hiddenIdentity() when it was built
  uint64_t builtAtMs = 0;    // uv_now()
  kj::Own<WorkerHost> host;
};

struct SpareSandboxes::Pending {
  std::string session;
  spawn::SpawnRequest request;
  std::string label;
  capnp::ReaderOptions readerOptions;
};

struct SpareSandboxes::Timers {
  uv_timer_t build;  // 0 ms: builds what prepare() queued, after the current event
  uv_timer_t sweep;  // while spares wait: expires them, forgets the dead
  SpareSandboxes* owner;
  int open = 2;

  static void onClosed(uv_handle_t* h) {
    auto* t = static_cast<Timers*>(h->data);
    if (--t->open == 0) delete t;
  }
};

SpareSandboxes::SpareSandboxes(uv_loop_t* loop, kj::AsyncIoContext& io, spawn::Spawner& spawner,
                               SpareSettings settings)
    : loop_(loop), io_(io), spawner_(spawner), settings_(settings), timers_(new Timers) {
  timers_->owner = this;
  KJ_ASSERT(uv_timer_init(loop, &timers_->build) == 0);
  KJ_ASSERT(uv_timer_init(loop, &timers_->sweep) == 0);
  timers_->build.data = timers_;
  timers_->sweep.data = timers_;
}

SpareSandboxes::~SpareSandboxes() noexcept(false) {
  spares_.clear();  // each WorkerHost kills and reaps its worker
  timers_->owner = nullptr;
  uv_timer_stop(&timers_->build);
  uv_timer_stop(&timers_->sweep);
  uv_close(reinterpret_cast<uv_handle_t*>(&timers_->build), &Timers::onClosed);
  uv_close(reinterpret_cast<uv_handle_t*>(&timers_->sweep), &Timers::onClosed);
}

kj::Own<WorkerHost> SpareSandboxes::take(const std::string& session,
                                         const spawn::SpawnRequest& request) {
  if (session.empty()) return {};
  std::string key = spareRequestKey(request);
  auto it = std::find_if(spares_.begin(), spares_.end(), [&](const auto& s) {
    return s->session == session && s->key == key;
  });
  if (it == spares_.end()) return {};
  std::unique_ptr<Spare> spare = std::move(*it);
  spares_.erase(it);
  stats_.waiting = spares_.size();
  if (spare->host->exited()) {
    ++stats_.died;
    return {};
  }
  if (uv_now(loop_) - spare->builtAtMs >= uint64_t{settings_.idleSeconds} * 1000) {
    ++stats_.expired;
    retire(std::move(spare));
    return {};  // its sweep had not come round yet
  }
  if (!request.hide.empty()) {
    auto now = spawner_.hiddenIdentity(request);
    if (!now || *now != spare->hiddenAt) {
      // Killed, not used: the call spawns a sandbox whose covers are mounted on what the paths
      // name now (or is refused, as any spawn would be).
      ++stats_.changed;
      spdlog::info("{}: a hidden directory was replaced since the spare was built; not used",
                   spare->host->label());
      retire(std::move(spare));
      return {};
    }
  }
  ++stats_.taken;
  spare->host->armWallClock();
  return kj::mv(spare->host);
}

void SpareSandboxes::prepare(const std::string& session, const spawn::SpawnRequest& request,
                             const std::string& label, capnp::ReaderOptions readerOptions) {
  if (shutDown_ || settings_.maxSpares == 0 || session.empty()) return;
  if (!request.egressSocket.empty()) return;
  if (request.stdoutFd >= 0 || request.stderrFd >= 0) return;  // fds the caller owns now
  pending_.push_back(Pending{session, request, label, readerOptions});
  uv_timer_start(
      &timers_->build,
      [](uv_timer_t* h) {
        auto* t = static_cast<Timers*>(h->data);
        if (t->owner != nullptr) t->owner->buildPending();
      },
      0, 0);
}

void SpareSandboxes::buildPending() {
  std::vector<Pending> queue = std::move(pending_);
  pending_.clear();
  for (auto& p : queue) {
    std::string key = spareRequestKey(p.request);
    bool waiting = std::any_of(spares_.begin(), spares_.end(), [&](const auto& s) {
      return s->session == p.session && s->key == key && !s->host->exited();
    });
    if (waiting) continue;
    auto spare = std::make_unique<Spare>();
    spare->session = p.session;
    spare->key = key;
    try {
      // Identified before the spawn: a directory swapped between the two leaves the spare
      // recorded with the old one, so take() refuses it (the safe direction).
      auto hidden = spawner_.hiddenIdentity(p.request);
      if (!hidden) {
        ++stats_.failed;
        continue;  // a spawn would be refused: the call will say why
      }
      spare->hiddenAt = *hidden;
      spare->host = kj::heap<WorkerHost>(loop_, io_, spawner_.spawn(p.request),
                                         p.label + " (spare)", p.readerOptions,
                                         WorkerHost::WallClock::ON_USE);
    } catch (const spawn::SandboxUnavailable& e) {
      ++stats_.failed;
      spdlog::debug("no spare {}: {}", p.label, e.what());
      continue;
    } catch (const kj::Exception& e) {
      ++stats_.failed;
      spdlog::warn("no spare {}: {}", p.label, e.getDescription().cStr());
      continue;
    }
    spare->builtAtMs = uv_now(loop_);
    ++stats_.built;
    add(std::move(spare));
  }
}

void SpareSandboxes::add(std::unique_ptr<Spare> spare) {
  while (spares_.size() >= settings_.maxSpares && !spares_.empty()) {
    retire(std::move(spares_.front()));  // the oldest
    spares_.erase(spares_.begin());
    ++stats_.evicted;
  }
  spares_.push_back(std::move(spare));
  stats_.waiting = spares_.size();
  armSweep();
}

void SpareSandboxes::armSweep() {
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(&timers_->sweep))) return;
  // Often enough that a spare outlives idleSeconds by a quarter of it at most; not more often
  // than once a second.
  uint64_t every = std::clamp<uint64_t>(uint64_t{settings_.idleSeconds} * 250, 1000, 30000);
  uv_timer_start(
      &timers_->sweep,
      [](uv_timer_t* h) {
        auto* t = static_cast<Timers*>(h->data);
        if (t->owner != nullptr) t->owner->sweep();
      },
      every, every);
}

void SpareSandboxes::sweep() {
  uint64_t now = uv_now(loop_);
  uint64_t idleMs = uint64_t{settings_.idleSeconds} * 1000;
  std::erase_if(spares_, [&](std::unique_ptr<Spare>& s) {
    if (s->host->exited()) {
      ++stats_.died;
      return true;
    }
    if (now - s->builtAtMs >= idleMs) {
      ++stats_.expired;
      retire(std::move(s));
      return true;
    }
    return false;
  });
  stats_.waiting = spares_.size();
  if (spares_.empty()) uv_timer_stop(&timers_->sweep);
}

void SpareSandboxes::dropSession(const std::string& session) {
  std::erase_if(pending_, [&](const Pending& p) { return p.session == session; });
  size_t before = spares_.size();
  std::erase_if(spares_, [&](std::unique_ptr<Spare>& s) {
    if (s->session != session) return false;
    retire(std::move(s));
    return true;
  });
  stats_.expired += before - spares_.size();
  stats_.waiting = spares_.size();
}

void SpareSandboxes::shutdown() {
  shutDown_ = true;
  pending_.clear();
  stats_.expired += spares_.size();
  spares_.clear();  // each WorkerHost kills and reaps its worker
  endings_.endNow();
  stats_.waiting = 0;
  uv_timer_stop(&timers_->build);
  uv_timer_stop(&timers_->sweep);
}

void SpareSandboxes::retire(std::unique_ptr<Spare> spare) {
  if (spare != nullptr) endings_.add(kj::mv(spare->host));
}

SpareStats SpareSandboxes::stats() const { return stats_; }

}  // namespace chitin
