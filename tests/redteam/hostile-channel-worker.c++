// SPDX-License-Identifier: Apache-2.0
// A hostile stand-in for a channel worker, for the red-team suite (scenario 21): it starts like
// a real one (the same framework, sandbox profile and lockdown, run as chitin-worker-channel-irc)
// and then does what a compromised channel worker would: reaches for hosts outside its
// allowlist, floods the supervisor from many threads at once, and finally breaks the bounds of
// an inbound message. It reports what happened on stderr (the gateway's log, labelled with the
// worker). The supervisor must refuse, throttle and kill it while every other channel goes on.
// Runs in: worker (sandboxed), tests only

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "platform.h"
#include "stream.h"

namespace {

using namespace chitin::channel;
using namespace std::chrono_literals;

class Hostile final : public Platform {
 public:
  explicit Hostile(int64_t floodSeconds) : floodSeconds_(floodSeconds) {}

  Capabilities capabilities() const override { return {4000, true, true, false}; }

  void run(Host& host) override {
    host.status(State::CONNECTED, "hostile");
    reach();
    flood(host);
    // An id with a line break: a parser-bug worker smuggling a second line into the logs.
    Inbound bad;
    bad.chatId = "666\nforged";
    bad.senderId = "666";
    bad.messageId = "bad";
    bad.text = "x";
    try {
      host.deliver(bad);
    } catch (const Stopping&) {
      return;
    } catch (const std::exception& e) {
      fprintf(stderr, "hostile: the bad id was refused: %s\n", e.what());
    }
    fprintf(stderr, "hostile: still alive after the bad id\n");
    while (host.sleepFor(1000ms)) {
    }
  }

  void interrupt() override {}
  std::vector<std::string> send(const Outbound&) override { return {"0"}; }
  void typing(const std::string&, bool) override {}
  void react(const std::string&, const std::string&, const std::string&) override {}

 private:
  // Hosts no IRC account was allowed: a public name, the metadata address, the loopback.
  void reach() {
    const std::pair<const char*, uint16_t> targets[] = {
        {"example.org", 443}, {"169.254.169.254", 80}, {"127.0.0.1", 22}};
    for (auto [host, port] : targets) {
      try {
        StreamOptions options;
        options.egressSocket = EGRESS_SOCKET_IN_SANDBOX;
        options.connectTimeout = 5000ms;
        Stream::open(host, port, options);
        fprintf(stderr, "hostile: REACHED %s:%u\n", host, port);
      } catch (const std::exception& e) {
        fprintf(stderr, "hostile: refused %s:%u: %s\n", host, port, e.what());
      }
    }
  }

  // 8 threads (its profile allows 16 tasks in all) delivering as fast as the supervisor answers,
  // for `floodSeconds_`.
  void flood(Host& host) {
    std::atomic<int> accepted{0}, refused{0}, duplicate{0};
    std::atomic<bool> stop{false};
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(floodSeconds_);
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t]() {
        for (int i = 0; std::chrono::steady_clock::now() < until && !stop; ++i) {
          Inbound m;
          m.chatId = "666";
          m.senderId = "666";
          m.messageId = std::to_string(t) + "-" + std::to_string(i);
          m.text = "flood";
          try {
            (host.deliver(m) ? accepted : duplicate)++;
          } catch (const Stopping&) {
            stop = true;
          } catch (const std::exception&) {
            ++refused;
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    fprintf(stderr, "hostile: flood accepted %d refused %d duplicate %d\n", accepted.load(),
            refused.load(), duplicate.load());
  }

  int64_t floodSeconds_;
};

std::unique_ptr<Platform> makeHostile(Settings& settings, Host& host) {
  settings.take("server");  // what its account names; it goes elsewhere anyway
  int64_t seconds = settings.takeInt("floodSeconds", 6, 0, 60);
  settings.finish();
  return std::make_unique<Hostile>(seconds);
}

}  // namespace

int main(int argc, char** argv) {
  return chitin::channel::workerMain(argc, argv, "channel-irc", makeHostile);
}
