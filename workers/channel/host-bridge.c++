// SPDX-License-Identifier: Apache-2.0
// The platform threads' Host, bridged to the supervisor's InboundSink (see host-bridge.h).
// Runs in: worker (sandboxed)

#include "host-bridge.h"

#include <kj/debug.h>

#include <algorithm>
#include <chrono>
#include <variant>

#include "utf8.h"

namespace chitin::channel {

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

rpc::ChannelStatus::State toRpc(State state) {
  switch (state) {
    case State::STARTING:
      return rpc::ChannelStatus::State::STARTING;
    case State::CONNECTED:
      return rpc::ChannelStatus::State::CONNECTED;
    case State::RECONNECTING:
      return rpc::ChannelStatus::State::RECONNECTING;
    case State::LOGIN_REQUIRED:
      return rpc::ChannelStatus::State::LOGIN_REQUIRED;
    case State::FAILED:
      return rpc::ChannelStatus::State::FAILED;
    case State::STOPPED:
      return rpc::ChannelStatus::State::STOPPED;
  }
  KJ_UNREACHABLE;
}

namespace {


capnp::Data::Reader bytes(const std::string& s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

// `s` within `limit` bytes, cut at a character boundary with `note` at the end when it is cut.
std::string within(const std::string& s, size_t limit, std::string_view note) {
  if (s.size() <= limit) return s;
  size_t cut =
      utf8BoundaryAtOrBefore(kj::ArrayPtr<const char>(s.data(), s.size()), limit - note.size());
  return s.substr(0, cut) + std::string(note);
}

// Within the contract's bounds (proto/channel.capnp), which the supervisor enforces by killing
// the worker: a platform may carry more than one message may, and one long message must not make
// an honest worker a protocol breaker, killed again at each redelivery. A text longer than
// 64 KiB (a Slack message of 40,000 characters of up to 4 bytes, a long mail body) is cut and
// says so; a long display name is cut. Files past the count are left out (Signal allows 32); a
// file whose data would pass the total goes without it (its size stays, as for one over
// maxAttachmentBytes).
void fill(rpc::InboundMessage::Builder out, const Inbound& in) {
  out.setChatId(text(in.chatId));
  out.setChatType(in.group ? rpc::ChatType::GROUP : rpc::ChatType::DIRECT);
  out.setSenderId(text(in.senderId));
  out.setSenderName(text(within(in.senderName, rpc::MAX_INBOUND_NAME_BYTES, "")));
  out.setMessageId(text(in.messageId));
  out.setText(text(within(in.text, rpc::MAX_INBOUND_TEXT_BYTES,
                          "\n[… cut here: the message was longer than 64 KiB]")));
  out.setReplyTo(text(in.replyTo));
  out.setMentioned(in.mentioned);
  out.setTimestampMs(in.timestampMs);
  out.setThreadId(text(in.threadId));
  size_t count = std::min<size_t>(in.attachments.size(), rpc::MAX_INBOUND_ATTACHMENTS);
  auto attachments = out.initAttachments(count);
  uint64_t room = rpc::MAX_INBOUND_ATTACHMENT_BYTES;
  for (size_t i = 0; i < count; ++i) {
    auto& a = in.attachments[i];
    attachments[i].setName(text(a.name));
    attachments[i].setMimeType(text(a.mimeType));
    if (a.data.size() <= room) {
      attachments[i].setData(bytes(a.data));
      room -= a.data.size();
    }
    attachments[i].setSize(a.size);
  }
}

}  // namespace

// One deliver() waiting for the sink's answer. Guarded by the bridge's mutex.
struct HostBridge::Delivery {
  Inbound message;
  bool answered = false;
  bool accepted = false;
  std::string error;  // the sink's failure, if it failed
};

struct HostBridge::Item {
  struct Status {
    State state;
    std::string detail, identity;
    int64_t sinceMs;
  };
  struct Login {
    std::string qr, pairingCode;
  };
  std::variant<std::shared_ptr<Delivery>, Status, Login> what;
};

HostBridge::HostBridge(rpc::InboundSink::Client sink)
    : sink_(kj::mv(sink)), sinceMs_(nowMs()), tasks_(*this) {}

HostBridge::~HostBridge() noexcept { stop(); }

void HostBridge::startPumping() { tasks_.add(pump()); }

void HostBridge::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
}

bool HostBridge::stopping() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stopping_;
}

bool HostBridge::sleepFor(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock(mutex_);
  return !changed_.wait_for(lock, d, [&]() { return stopping_; });
}

void HostBridge::enqueue(Item item) {
  kj::Own<kj::CrossThreadPromiseFulfiller<void>> wake;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) throw Stopping{};
    queue_.push_back(std::move(item));
    wake = kj::mv(wake_);
  }
  if (wake.get() != nullptr) wake->fulfill();
}

bool HostBridge::deliver(Inbound message) {
  auto delivery = std::make_shared<Delivery>();
  delivery->message = std::move(message);
  enqueue(Item{delivery});
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&]() { return delivery->answered || stopping_; });
  if (!delivery->answered) throw Stopping{};
  if (!delivery->error.empty()) {
    throw ChannelError("the supervisor did not take the message: " + delivery->error);
  }
  return delivery->accepted;
}

void HostBridge::status(State state, const std::string& detail, const std::string& identity) {
  Item::Status status;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (state != state_) sinceMs_ = nowMs();
    state_ = state;
    detail_ = detail;
    if (!identity.empty()) identity_ = identity;
    status = Item::Status{state_, detail_, identity_, sinceMs_};
  }
  try {
    enqueue(Item{std::move(status)});
  } catch (Stopping&) {
    // Nobody is listening any more; status() itself never fails.
  }
}

void HostBridge::login(const std::string& qr, const std::string& pairingCode) {
  enqueue(Item{Item::Login{qr, pairingCode}});
}

void HostBridge::snapshot(rpc::ChannelStatus::Builder status) {
  std::lock_guard<std::mutex> lock(mutex_);
  status.setState(toRpc(state_));
  status.setDetail(text(detail_));
  status.setIdentity(text(identity_));
  status.setSinceMs(sinceMs_);
}

State HostBridge::state() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return state_;
}

kj::Promise<void> HostBridge::pump() {
  std::deque<Item> items;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (queue_.empty()) {
      auto paf = kj::newPromiseAndCrossThreadFulfiller<void>();
      wake_ = kj::mv(paf.fulfiller);
      return paf.promise.then([this]() { return pump(); });
    }
    items.swap(queue_);
  }
  // Sent without waiting for each answer: calls on one capability arrive in the order sent
  // (E-order), and a delivery's answer is what its deliver() waits for, not the next item.
  for (auto& item : items) send(item);
  return kj::evalLater([this]() { return pump(); });
}

void HostBridge::send(Item& item) {
  if (auto* delivery = std::get_if<std::shared_ptr<Delivery>>(&item.what)) {
    auto request = sink_.messageRequest();
    fill(request.initMessage(), (*delivery)->message);
    std::shared_ptr<Delivery> waiting = *delivery;
    auto answer = [this, waiting](bool accepted, std::string error) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        waiting->answered = true;
        waiting->accepted = accepted;
        waiting->error = std::move(error);
      }
      changed_.notify_all();
    };
    tasks_.add(
        request.send().then([answer](auto&& response) { answer(response.getAccepted(), ""); },
                            [answer](kj::Exception&& e) {
                              std::string description = e.getDescription().cStr();
                              answer(false, description.empty() ? "unknown error" : description);
                            }));
  } else if (auto* status = std::get_if<Item::Status>(&item.what)) {
    auto request = sink_.statusRequest();
    auto out = request.initStatus();
    out.setState(toRpc(status->state));
    out.setDetail(text(status->detail));
    out.setIdentity(text(status->identity));
    out.setSinceMs(status->sinceMs);
    tasks_.add(request.send().ignoreResult());
  } else if (auto* login = std::get_if<Item::Login>(&item.what)) {
    auto request = sink_.loginRequest();
    request.setQr(text(login->qr));
    request.setPairingCode(text(login->pairingCode));
    tasks_.add(request.send().ignoreResult());
  }
}

void HostBridge::taskFailed(kj::Exception&& exception) {
  // A status or login push the supervisor failed: informational, the worker carries on. (A
  // lost connection ends the worker through runWorker's disconnect watch instead.)
  KJ_LOG(WARNING, "a status or login push to the supervisor failed", exception);
}

}  // namespace chitin::channel
