// SPDX-License-Identifier: Apache-2.0
// The channel worker framework over a real Cap'n Proto connection, with a trivial platform:
// deliveries reach the sink, outbound calls keep their order, platform errors cross back as
// the platform wrote them, and shutdown while a delivery is blocked is prompt.
// Runs in: tests

#include <capnp/rpc-twoparty.h>
#include <doctest/doctest.h>
#include <kj/async-io.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "channel-worker.h"

namespace chitin::channel {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// What the test platform did, shared with the test (the factory must capture it).
struct Record {
  std::mutex mutex;
  std::vector<Inbound> toDeliver;
  std::vector<std::string> deliverOutcomes;  // "accepted", "duplicate", "stopping", "error: ..."
  std::vector<std::string> calls;
  std::string credential;
  uint64_t maxAttachmentBytes = 0;
  std::atomic<bool> interrupted{false};
  std::atomic<bool> runReturned{false};

  std::vector<std::string> callsNow() {
    std::lock_guard<std::mutex> lock(mutex);
    return calls;
  }
  std::vector<std::string> outcomesNow() {
    std::lock_guard<std::mutex> lock(mutex);
    return deliverOutcomes;
  }
};

class TestPlatform final : public Platform {
 public:
  explicit TestPlatform(std::shared_ptr<Record> record) : record_(std::move(record)) {}

  Capabilities capabilities() const override { return {321, true, true, false}; }

  void run(Host& host) override {
    host.status(State::CONNECTED, "", "@test_bot");
    std::vector<Inbound> messages;
    {
      std::lock_guard<std::mutex> lock(record_->mutex);
      messages = record_->toDeliver;
    }
    for (auto& m : messages) {
      std::string outcome;
      try {
        outcome = host.deliver(m) ? "accepted" : "duplicate";
      } catch (const Stopping&) {
        outcome = "stopping";
      } catch (const ChannelError& e) {
        outcome = std::string("error: ") + e.what();
      }
      {
        std::lock_guard<std::mutex> lock(record_->mutex);
        record_->deliverOutcomes.push_back(outcome);
      }
      if (outcome == "stopping") break;
    }
    while (host.sleepFor(std::chrono::hours(1))) {
    }
    record_->runReturned = true;
  }

  void interrupt() override { record_->interrupted = true; }

  std::vector<std::string> send(const Outbound& m) override {
    if (m.chatId == "bad") throw ChannelError("400 Bad Request: chat not found");
    if (m.text == "slow") std::this_thread::sleep_for(milliseconds(100));
    note("send " + m.chatId + " " + m.text + " reply=" + m.replyTo +
         " attachments=" + std::to_string(m.attachments.size()));
    return {"id-" + m.text, "id2-" + m.text};
  }
  void typing(const std::string& chatId, bool on) override {
    note("typing " + chatId + (on ? " on" : " off"));
  }
  void react(const std::string& chatId, const std::string& messageId,
             const std::string& emoji) override {
    if (emoji == "boom") throw std::runtime_error("bug");
    note("react " + chatId + " " + messageId + " " + emoji);
  }

 private:
  void note(std::string call) {
    std::lock_guard<std::mutex> lock(record_->mutex);
    record_->calls.push_back(std::move(call));
  }
  std::shared_ptr<Record> record_;
};

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class TestSink final : public rpc::InboundSink::Server {
 public:
  std::vector<std::string> ids;
  std::vector<std::string> statuses;      // "CONNECTED @test_bot"
  std::vector<std::string> files;         // "<name>:<data bytes>" per attachment delivered
  std::vector<std::string> texts, names;  // each message's text and sender name, whole
  bool hold = false;                      // never answer message()
  bool fail = false;                      // answer message() with an exception
  std::vector<kj::Own<kj::PromiseFulfiller<void>>> held;

 protected:
  kj::Promise<void> message(MessageContext context) override {
    auto m = context.getParams().getMessage();
    ids.push_back(std::string(m.getChatId().cStr()) + "/" + m.getMessageId().cStr() + " " +
                  m.getText().cStr() + (m.getChatType() == rpc::ChatType::GROUP ? " group" : "") +
                  (m.getMentioned() ? " mentioned" : "") +
                  " attachments=" + std::to_string(m.getAttachments().size()));
    texts.push_back(m.getText().cStr());
    names.push_back(m.getSenderName().cStr());
    for (auto f : m.getAttachments())
      files.push_back(std::string(f.getName().cStr()) + ":" + std::to_string(f.getData().size()));
    if (fail) return KJ_EXCEPTION(FAILED, "message id too long");
    if (hold) {
      auto paf = kj::newPromiseAndFulfiller<void>();
      held.push_back(kj::mv(paf.fulfiller));
      return kj::mv(paf.promise);
    }
    context.getResults().setAccepted(seen_.insert(m.getMessageId().cStr()).second);
    return kj::READY_NOW;
  }
  kj::Promise<void> status(StatusContext context) override {
    auto s = context.getParams().getStatus();
    statuses.push_back(
        std::string(s.getState() == rpc::ChannelStatus::State::CONNECTED ? "CONNECTED" : "OTHER") +
        " " + s.getIdentity().cStr());
    return kj::READY_NOW;
  }

 private:
  std::set<std::string> seen_;
};
#pragma GCC diagnostic pop

Inbound message(std::string id, std::string text) {
  Inbound m;
  m.chatId = "42";
  m.senderId = "7";
  m.messageId = std::move(id);
  m.text = std::move(text);
  return m;
}

// A worker served on one end of an in-memory pipe, and a client on the other.
struct Harness {
  kj::AsyncIoContext io = kj::setupAsyncIo();
  kj::TwoWayPipe pipe = kj::newTwoWayPipe();
  std::shared_ptr<Record> record = std::make_shared<Record>();
  kj::Maybe<rpc::ChannelWorker::Client> serverRef;  // the worker's own ref, as runWorker keeps
  kj::Own<capnp::TwoPartyClient> server;
  kj::Own<capnp::TwoPartyClient> client;
  rpc::ChannelWorker::Client worker = nullptr;
  TestSink* sink = nullptr;
  rpc::InboundSink::Client sinkClient = nullptr;

  Harness() {
    WorkerOptions options;
    options.kind = "channel-test";
    options.egressSocket = "";
    options.stateDir = "/nonexistent";
    auto rec = record;
    rpc::ChannelWorker::Client bootstrap =
        newChannelWorker(options, [rec](Settings& s, Host&) -> std::unique_ptr<Platform> {
          std::string greeting = s.take("greeting");
          s.finish();
          if (greeting == "refuse") throw ChannelError("greeting \"refuse\" is not accepted");
          rec->credential = s.credential;
          rec->maxAttachmentBytes = s.maxAttachmentBytes;
          return std::make_unique<TestPlatform>(rec);
        });
    serverRef = bootstrap;
    server = kj::heap<capnp::TwoPartyClient>(*pipe.ends[0], kj::mv(bootstrap),
                                             capnp::rpc::twoparty::Side::SERVER);
    client = kj::heap<capnp::TwoPartyClient>(*pipe.ends[1]);
    worker = client->bootstrap().castAs<rpc::ChannelWorker>();
    auto ownSink = kj::heap<TestSink>();
    sink = ownSink.get();
    sinkClient = kj::mv(ownSink);
  }

  capnp::Response<rpc::ChannelWorker::StartResults> start(
      std::vector<std::pair<std::string, std::string>> options = {}, std::string kind = "test") {
    auto request = worker.startRequest();
    auto settings = request.initSettings();
    settings.setKind(kind);
    settings.setAccount("default");
    settings.setCredential(kj::StringPtr("secret-token").asBytes());
    auto list = settings.initOptions(options.size());
    for (size_t i = 0; i < options.size(); ++i) {
      list[i].setKey(options[i].first);
      list[i].setValue(options[i].second);
    }
    request.setSink(sinkClient);
    return request.send().wait(io.waitScope);
  }

  // Runs the event loop until `done()` or the timeout.
  bool waitUntil(const std::function<bool()>& done, milliseconds timeout = milliseconds(5000)) {
    auto deadline = Clock::now() + timeout;
    while (!done()) {
      if (Clock::now() > deadline) return false;
      io.provider->getTimer().afterDelay(5 * kj::MILLISECONDS).wait(io.waitScope);
    }
    return true;
  }

  // As the supervisor hanging up does: the connection goes, then the worker's own reference.
  milliseconds hangUp() {
    auto begin = Clock::now();
    server = nullptr;
    serverRef = nullptr;
    return std::chrono::duration_cast<milliseconds>(Clock::now() - begin);
  }

  ~Harness() {
    if (server.get() != nullptr) hangUp();
  }
};

std::string errorOf(kj::Promise<void> promise, kj::WaitScope& waitScope) {
  try {
    promise.wait(waitScope);
  } catch (const kj::Exception& e) {
    return e.getDescription().cStr();
  }
  return "";
}

TEST_CASE("channel worker: start hands the platform its settings and returns its capabilities") {
  Harness h;
  auto started = h.start({{"greeting", "hi"}});
  CHECK(started.getCapabilities().getMaxMessageChars() == 321);
  CHECK(started.getCapabilities().getReactions());
  CHECK_FALSE(started.getCapabilities().getAttachments());
  CHECK(h.record->credential == "secret-token");
  CHECK(h.record->maxAttachmentBytes == DEFAULT_MAX_ATTACHMENT_BYTES);
  CHECK(h.waitUntil([&]() { return !h.sink->statuses.empty(); }));
  CHECK(h.sink->statuses[0] == "CONNECTED @test_bot");
  auto response = h.worker.statusRequest().send().wait(h.io.waitScope);
  auto status = response.getStatus();
  CHECK(status.getState() == rpc::ChannelStatus::State::CONNECTED);
  CHECK(status.getIdentity() == "@test_bot");
  // Exactly once.
  CHECK(errorOf(h.worker.startRequest().send().ignoreResult(), h.io.waitScope)
            .find("start called twice") != std::string::npos);
}

TEST_CASE("channel worker: bad settings fail start with the platform's message") {
  {
    Harness h;
    auto request = h.worker.startRequest();
    request.initSettings().setKind("test");
    auto options = request.getSettings().initOptions(1);
    options[0].setKey("colour");
    options[0].setValue("red");
    request.setSink(h.sinkClient);
    CHECK(errorOf(request.send().ignoreResult(), h.io.waitScope) ==
          "remote exception: unknown test option \"colour\" (known: greeting)");
  }
  {
    Harness h;
    auto request = h.worker.startRequest();
    request.initSettings().setKind("test");
    auto options = request.getSettings().initOptions(1);
    options[0].setKey("greeting");
    options[0].setValue("refuse");
    request.setSink(h.sinkClient);
    CHECK(errorOf(request.send().ignoreResult(), h.io.waitScope) ==
          "remote exception: greeting \"refuse\" is not accepted");
  }
  {
    // A telegram worker refuses to be configured as another platform.
    Harness h;
    auto request = h.worker.startRequest();
    request.initSettings().setKind("discord");
    request.setSink(h.sinkClient);
    CHECK(errorOf(request.send().ignoreResult(), h.io.waitScope).find("another platform") !=
          std::string::npos);
  }
  {
    Harness h;
    CHECK(errorOf(h.worker.typingRequest().send().ignoreResult(), h.io.waitScope)
              .find("start has not run") != std::string::npos);
  }
}

TEST_CASE("channel worker: deliveries reach the sink in order; duplicates come back as such") {
  Harness h;
  h.record->toDeliver = {message("1", "hello"), message("2", "again"), message("1", "hello")};
  h.start();
  CHECK(h.waitUntil([&]() { return h.record->outcomesNow().size() == 3; }));
  CHECK(h.record->outcomesNow() == std::vector<std::string>{"accepted", "accepted", "duplicate"});
  CHECK(h.sink->ids == std::vector<std::string>{"42/1 hello attachments=0",
                                                "42/2 again attachments=0",
                                                "42/1 hello attachments=0"});
}

TEST_CASE("channel worker: attachments past the contract's bounds are left out, not sent") {
  Harness h;
  Inbound m = message("1", "files");
  std::string data(20u << 20, 'd');  // 20 MiB: the third passes 63 MiB with the first three
  for (int i = 0; i < 20; ++i) {
    Attachment a;
    a.name = "f" + std::to_string(i);
    a.data = i < 4 ? data : "x";
    a.size = a.data.size();
    m.attachments.push_back(a);
  }
  h.record->toDeliver = {m};
  h.start();
  REQUIRE(h.waitUntil([&]() { return h.record->outcomesNow().size() == 1; }));
  CHECK(h.record->outcomesNow()[0] == "accepted");
  std::vector<std::string> expected = {"f0:20971520", "f1:20971520", "f2:20971520", "f3:0"};
  for (int i = 4; i < 16; ++i) expected.push_back("f" + std::to_string(i) + ":1");
  CHECK(h.sink->files == expected);
}

TEST_CASE("channel worker: a text or name past the contract's bounds is cut at a character") {
  Harness h;
  Inbound m = message("1", "");
  for (int i = 0; i < 50000; ++i) m.text += "\xc3\xa9";  // "é": 100,000 bytes
  m.senderName = std::string(255, 'n') + "\xc3\xa9";     // the 257th byte is mid-character
  h.record->toDeliver = {m};
  h.start();
  REQUIRE(h.waitUntil([&]() { return h.record->outcomesNow().size() == 1; }));
  CHECK(h.record->outcomesNow()[0] == "accepted");
  REQUIRE(h.sink->texts.size() == 1);
  const std::string& text = h.sink->texts[0];
  std::string note = "\n[… cut here: the message was longer than 64 KiB]";
  CHECK(text.size() <= rpc::MAX_INBOUND_TEXT_BYTES);
  REQUIRE(text.size() > note.size());
  CHECK(text.compare(text.size() - note.size(), note.size(), note) == 0);
  CHECK((text.size() - note.size()) % 2 == 0);  // whole "é"s only
  CHECK(h.sink->names[0] == std::string(255, 'n'));
}

TEST_CASE("channel worker: a sink failure reaches deliver() as a ChannelError") {
  Harness h;
  h.record->toDeliver = {message("1", "x")};
  h.sink->fail = true;
  h.start();
  CHECK(h.waitUntil([&]() { return h.record->outcomesNow().size() == 1; }));
  CHECK(h.record->outcomesNow()[0].find(
            "error: the supervisor did not take the message: remote exception: message id too "
            "long") == 0);
}

TEST_CASE("channel worker: outbound calls run in the order sent; errors cross back verbatim") {
  Harness h;
  h.start();
  auto send = [&](std::string chat, std::string text) {
    auto r = h.worker.sendRequest();
    r.initMessage().setChatId(chat);
    r.getMessage().setText(text);
    r.getMessage().setReplyTo("9");
    return r.send();
  };
  auto first = send("42", "slow");  // the platform takes 100 ms: later calls must wait for it
  auto typingRequest = h.worker.typingRequest();
  typingRequest.setChatId("42");
  typingRequest.setOn(true);
  auto typing = typingRequest.send();
  auto second = send("42", "second");
  auto bad = send("bad", "x");
  auto reactRequest = h.worker.reactRequest();
  reactRequest.setChatId("42");
  reactRequest.setMessageId("7");
  reactRequest.setEmoji("\U0001F440");
  auto react = reactRequest.send();

  auto ids = first.wait(h.io.waitScope).getMessageIds();
  REQUIRE(ids.size() == 2);
  CHECK(ids[0] == "id-slow");
  typing.wait(h.io.waitScope);
  CHECK(second.wait(h.io.waitScope).getMessageIds()[0] == "id-second");
  CHECK(errorOf(bad.ignoreResult(), h.io.waitScope) ==
        "remote exception: 400 Bad Request: chat not found");
  react.wait(h.io.waitScope);
  CHECK(h.record->callsNow() ==
        std::vector<std::string>{"send 42 slow reply=9 attachments=0", "typing 42 on",
                                 "send 42 second reply=9 attachments=0", "react 42 7 \U0001F440"});
  // A bug in the platform is an internal error, and the queue carries on after it.
  auto boom = h.worker.reactRequest();
  boom.setEmoji("boom");
  CHECK(errorOf(boom.send().ignoreResult(), h.io.waitScope) ==
        "remote exception: internal error: bug");
  CHECK(send("42", "after").wait(h.io.waitScope).getMessageIds()[0] == "id-after");
  // Not supported by this platform: login.
  CHECK(errorOf(h.worker.loginRequest().send().ignoreResult(), h.io.waitScope) ==
        "remote exception: login: this channel has no interactive login");
}

TEST_CASE("channel worker: hang-up while a delivery is blocked stops everything promptly") {
  Harness h;
  h.record->toDeliver = {message("1", "never answered"), message("2", "never sent")};
  h.sink->hold = true;
  h.start();
  CHECK(h.waitUntil([&]() { return h.sink->held.size() == 1; }));
  auto took = h.hangUp();
  CHECK(took < milliseconds(1000));
  CHECK(h.record->interrupted.load());
  CHECK(h.record->runReturned.load());
  CHECK(h.record->outcomesNow() == std::vector<std::string>{"stopping"});
}

TEST_CASE("channel worker: hang-up with outbound calls queued behind a slow one") {
  Harness h;
  h.start();
  std::vector<kj::Promise<void>> pending;
  for (int i = 0; i < 5; ++i) {
    auto r = h.worker.sendRequest();
    r.initMessage().setChatId("42");
    r.getMessage().setText("slow");
    pending.push_back(r.send().ignoreResult());
  }
  h.io.provider->getTimer().afterDelay(20 * kj::MILLISECONDS).wait(h.io.waitScope);
  auto took = h.hangUp();
  // The one running finishes (100 ms); the queued ones are dropped, not run.
  CHECK(took < milliseconds(1000));
  CHECK(h.record->callsNow().size() <= 1);
}

}  // namespace
}  // namespace chitin::channel
