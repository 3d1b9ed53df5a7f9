// SPDX-License-Identifier: Apache-2.0
// The ChannelWorker server, its two platform threads, and every channel worker's main()
// (see channel-worker.h).
// Runs in: worker (sandboxed)

#include "channel-worker.h"

#include <kj/debug.h>
#include <malloc.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include "host-bridge.h"
#include "worker-main.h"

namespace chitin::channel {

namespace {

std::string toString(capnp::Text::Reader t) { return std::string(t.cStr(), t.size()); }
std::string toString(capnp::Data::Reader d) {
  return std::string(reinterpret_cast<const char*>(d.begin()), d.size());
}

// A platform's complaint as the supervisor will see it: the message alone, no "std::exception".
kj::Exception failure(const std::string& message) {
  return kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__, kj::heapString(message));
}

std::vector<Attachment> fromRpc(capnp::List<rpc::Attachment>::Reader list) {
  std::vector<Attachment> out;
  for (auto a : list) {
    out.push_back(
        {toString(a.getName()), toString(a.getMimeType()), toString(a.getData()), a.getSize()});
  }
  return out;
}

// One outbound call, run on the outbound thread; its result goes back through `fulfiller`.
struct Job {
  virtual ~Job() noexcept(false) = default;  // kj::Own may throw from its destructor
  virtual void run() = 0;
};

template <typename T, typename F>
struct TypedJob final : Job {
  TypedJob(kj::Own<kj::CrossThreadPromiseFulfiller<T>> f, F w)
      : fulfiller(kj::mv(f)), work(std::move(w)) {}
  void run() override {
    try {
      if constexpr (std::is_void_v<T>) {
        work();
        fulfiller->fulfill();
      } else {
        fulfiller->fulfill(work());
      }
    } catch (const ChannelError& e) {
      fulfiller->reject(failure(e.what()));
    } catch (const Stopping&) {
      fulfiller->reject(kj::Exception(kj::Exception::Type::DISCONNECTED, __FILE__, __LINE__,
                                      kj::heapString("the channel worker is stopping")));
    } catch (kj::Exception& e) {
      fulfiller->reject(kj::mv(e));
    } catch (const std::exception& e) {
      fulfiller->reject(failure(std::string("internal error: ") + e.what()));
    }
  }
  kj::Own<kj::CrossThreadPromiseFulfiller<T>> fulfiller;
  F work;
};

// The outbound thread's queue: FIFO, so the supervisor's calls reach the platform in order.
class OutboundQueue {
 public:
  template <typename T, typename F>
  kj::Promise<T> post(F work) {
    auto paf = kj::newPromiseAndCrossThreadFulfiller<T>();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      KJ_REQUIRE(!stopping_, "the channel worker is stopping");
      jobs_.push_back(std::make_unique<TypedJob<T, F>>(kj::mv(paf.fulfiller), std::move(work)));
    }
    ready_.notify_one();
    return kj::mv(paf.promise);
  }

  // The outbound thread's body: returns after stop().
  void runOnThread() {
    for (;;) {
      std::unique_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [&]() { return stopping_ || !jobs_.empty(); });
        if (stopping_) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job->run();
      job.reset();
      // Going idle: the free pages a reply left in the heap (a long text, a file) go back to
      // the system, not kept for days by a worker that mostly waits.
      bool idle;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        idle = jobs_.empty();
      }
      if (idle) malloc_trim(0);
    }
  }

  // Queued calls are dropped: their promises reject (the supervisor has gone anyway).
  void stop() {
    std::deque<std::unique_ptr<Job>> dropped;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      dropped.swap(jobs_);
    }
    ready_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  bool stopping_ = false;
  std::deque<std::unique_ptr<Job>> jobs_;
};

// Cap'n Proto servers are owned through kj::Own, which records the concrete type.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class ChannelWorkerServer final : public rpc::ChannelWorker::Server {
 public:
  ChannelWorkerServer(WorkerOptions options, PlatformFactory factory)
      : options_(std::move(options)), factory_(std::move(factory)) {}
  ~ChannelWorkerServer() noexcept { shutdown(); }

 protected:
  kj::Promise<void> start(StartContext context) override {
    KJ_REQUIRE(platform_ == nullptr, "ChannelWorker.start called twice");
    auto params = context.getParams();
    Settings settings = settingsFrom(params.getSettings());

    auto bridge = std::make_unique<HostBridge>(params.getSink());
    bridge->startPumping();
    std::unique_ptr<Platform> platform;
    try {
      platform = factory_(settings, *bridge);
    } catch (const ChannelError& e) {
      return failure(e.what());
    }
    KJ_REQUIRE(platform != nullptr, "the platform factory returned nothing");
    Capabilities capabilities = platform->capabilities();

    bridge_ = std::move(bridge);
    platform_ = std::move(platform);
    threadsRunning_ = 2;
    receiveThread_ = std::thread([this]() {
      receiveOnThread();
      threadDone();
    });
    outboundThread_ = std::thread([this]() {
      outbound_.runOnThread();
      threadDone();
    });

    auto out = context.getResults().initCapabilities();
    out.setMaxMessageChars(capabilities.maxMessageChars);
    out.setReactions(capabilities.reactions);
    out.setTyping(capabilities.typing);
    out.setAttachments(capabilities.attachments);
    return kj::READY_NOW;
  }

  kj::Promise<void> send(SendContext context) override {
    requireStarted();
    auto in = context.getParams().getMessage();
    Outbound message{toString(in.getChatId()), toString(in.getText()), toString(in.getReplyTo()),
                     toString(in.getThreadId()), fromRpc(in.getAttachments())};
    return outbound_
        .post<std::vector<std::string>>(
            [this, message = std::move(message)]() { return platform_->send(message); })
        .then([context](std::vector<std::string> ids) mutable {
          auto list = context.getResults().initMessageIds(ids.size());
          for (size_t i = 0; i < ids.size(); ++i) list.set(i, text(ids[i]));
        });
  }

  kj::Promise<void> typing(TypingContext context) override {
    requireStarted();
    auto params = context.getParams();
    return outbound_.post<void>([this, chatId = toString(params.getChatId()),
                                 on = params.getOn()]() { platform_->typing(chatId, on); });
  }

  kj::Promise<void> react(ReactContext context) override {
    requireStarted();
    auto params = context.getParams();
    return outbound_.post<void>(
        [this, chatId = toString(params.getChatId()), messageId = toString(params.getMessageId()),
         emoji = toString(params.getEmoji())]() { platform_->react(chatId, messageId, emoji); });
  }

  kj::Promise<void> status(StatusContext context) override {
    auto out = context.getResults().initStatus();
    if (bridge_ == nullptr) {
      out.setState(rpc::ChannelStatus::State::STARTING);
      return kj::READY_NOW;
    }
    bridge_->snapshot(out);
    return kj::READY_NOW;
  }

  kj::Promise<void> login(LoginContext context) override {
    requireStarted();
    return outbound_.post<void>([this, phone = toString(context.getParams().getPhoneNumber())]() {
      platform_->login(phone);
    });
  }

 private:
  void requireStarted() { KJ_REQUIRE(platform_ != nullptr, "ChannelWorker.start has not run"); }

  Settings settingsFrom(rpc::ChannelSettings::Reader in) {
    Settings settings;
    settings.kind = toString(in.getKind());
    settings.account = toString(in.getAccount());
    // Refused here rather than later: a telegram worker must never be handed a discord token.
    KJ_REQUIRE("channel-" + settings.kind == options_.kind, "this worker serves another platform",
               options_.kind, settings.kind);
    settings.credential = toString(in.getCredential());
    settings.egressSocket = options_.egressSocket;
    settings.stateDir = options_.stateDir;
    settings.maxAttachmentBytes =
        in.getMaxAttachmentBytes() != 0 ? in.getMaxAttachmentBytes() : DEFAULT_MAX_ATTACHMENT_BYTES;
    for (auto option : in.getOptions()) {
      std::string key = toString(option.getKey());
      if (!settings.options.emplace(key, toString(option.getValue())).second) {
        kj::throwFatalException(failure(settings.kind + " option \"" + key + "\" is given twice"));
      }
    }
    return settings;
  }

  void receiveOnThread() {
    std::string fault;
    try {
      platform_->run(*bridge_);
    } catch (const Stopping&) {
    } catch (const ChannelError& e) {
      fault = e.what();
    } catch (const kj::Exception& e) {
      fault = std::string("internal error: ") + e.getDescription().cStr();
    } catch (const std::exception& e) {
      fault = std::string("internal error: ") + e.what();
    }
    if (bridge_->stopping()) return;
    // run() returns on its own only after a fatal error, which it should have reported.
    if (fault.empty()) fault = "the receive loop ended";
    KJ_LOG(ERROR, "channel receive loop stopped", fault);
    if (bridge_->state() != State::FAILED) bridge_->status(State::FAILED, fault);
  }

  void threadDone() {
    {
      std::lock_guard<std::mutex> lock(threadsMutex_);
      --threadsRunning_;
    }
    threadsDone_.notify_all();
  }

  void shutdown() {
    if (platform_ == nullptr) return;
    bridge_->stop();
    outbound_.stop();
    platform_->interrupt();
    {
      std::unique_lock<std::mutex> lock(threadsMutex_);
      if (!threadsDone_.wait_for(lock, options_.stopGrace,
                                 [&]() { return threadsRunning_ == 0; })) {
        // A platform stuck in a call interrupt() cannot reach: end the process rather than keep
        // a worker (and its credential) alive with nobody to talk to.
        fprintf(stderr, "chitin-worker-%s: the platform did not stop within %lld ms; exiting\n",
                options_.kind.c_str(), static_cast<long long>(options_.stopGrace.count()));
        _exit(0);
      }
    }
    receiveThread_.join();
    outboundThread_.join();
    platform_.reset();
    bridge_.reset();
  }

  WorkerOptions options_;
  PlatformFactory factory_;
  OutboundQueue outbound_;
  std::unique_ptr<HostBridge> bridge_;
  std::unique_ptr<Platform> platform_;  // non-null once started

  std::mutex threadsMutex_;
  std::condition_variable threadsDone_;
  int threadsRunning_ = 0;  // guarded by threadsMutex_
  std::thread receiveThread_, outboundThread_;
};
#pragma GCC diagnostic pop

}  // namespace

kj::Own<rpc::ChannelWorker::Server> newChannelWorker(WorkerOptions options,
                                                     PlatformFactory factory) {
  return kj::heap<ChannelWorkerServer>(std::move(options), std::move(factory));
}

int localWorkerMain(int argc, char** argv, const char* kind, PlatformFactory factory) {
  return runChannelWorker(argc, argv, kind, std::move(factory), nullptr);
}

int runChannelWorker(int argc, char** argv, const char* kind, PlatformFactory factory,
                     void (*beforeThreads)()) {
  return runWorker(argc, argv, kind, [&](WorkerContext&) {
    if (beforeThreads != nullptr) beforeThreads();
    // One malloc arena for the three threads: they rarely allocate at once, and each extra
    // arena costs touched pages (and 64 MiB of address space) in an otherwise idle worker.
    mallopt(M_ARENA_MAX, 1);
    WorkerOptions options;
    options.kind = kind;
    return capnp::Capability::Client(newChannelWorker(std::move(options), std::move(factory)));
  });
}

}  // namespace chitin::channel
