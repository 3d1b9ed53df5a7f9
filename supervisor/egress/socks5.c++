// SPDX-License-Identifier: Apache-2.0
// The SOCKS5 handshake parser (see socks5.h).
// Runs in: supervisor

#include "socks5.h"

#include <arpa/inet.h>
#include <kj/debug.h>

namespace chitin::egress::socks5 {

namespace {

constexpr uint8_t VERSION = 0x05;
constexpr uint8_t NO_AUTHENTICATION = 0x00;
constexpr uint8_t NO_ACCEPTABLE_METHOD = 0xff;
constexpr uint8_t CONNECT = 0x01;

}  // namespace

std::string reply(Reply code) {
  return std::string(
      {static_cast<char>(VERSION), static_cast<char>(code), 0, 0x01, 0, 0, 0, 0, 0, 0});
}

Handshake::Step Handshake::fail(std::string error, std::string send) {
  state_ = State::FAILED;
  buffer_.clear();
  Step step;
  step.close = true;
  step.error = std::move(error);
  step.send = std::move(send);
  return step;
}

size_t Handshake::needed() const {
  if (state_ == State::GREETING) {
    return buffer_.size() < 2 ? 2 : 2 + static_cast<uint8_t>(buffer_[1]);
  }
  if (buffer_.size() < 5) return 5;  // VER CMD RSV ATYP and the domain's length (or address)
  uint8_t type = buffer_[3];
  return type == 0x01 ? 10 : type == 0x04 ? 22 : 7 + static_cast<uint8_t>(buffer_[4]);
}

Handshake::Step Handshake::feed(std::string_view& input) {
  KJ_REQUIRE(!finished(), "the SOCKS5 handshake is over");
  Step step;
  while (!input.empty() && !finished()) {
    // Take only what the current message can still need, so `buffer_` stays one message and
    // what follows the request stays with the caller.
    size_t want = needed();
    size_t take = std::min(want - buffer_.size(), input.size());
    buffer_.append(input.substr(0, take));
    input.remove_prefix(take);
    want = needed();  // the length bytes may just have arrived
    if (state_ == State::GREETING) {
      if (!buffer_.empty() && static_cast<uint8_t>(buffer_[0]) != VERSION) {
        // Not SOCKS5 (an HTTP request, SOCKS4...): no reply we could send would be understood.
        return fail("not SOCKS5 (first byte " + std::to_string(static_cast<uint8_t>(buffer_[0])) +
                    ")");
      }
      if (buffer_.size() >= 2 && static_cast<uint8_t>(buffer_[1]) == 0) {
        return fail(
            "SOCKS5 greeting offers no method",
            std::string({static_cast<char>(VERSION), static_cast<char>(NO_ACCEPTABLE_METHOD)}));
      }
      if (buffer_.size() < 2 || buffer_.size() < want) continue;
      bool noAuth = buffer_.find(static_cast<char>(NO_AUTHENTICATION), 2) != std::string::npos;
      if (!noAuth) {
        return fail(
            "SOCKS5 greeting does not offer \"no authentication\"",
            std::string({static_cast<char>(VERSION), static_cast<char>(NO_ACCEPTABLE_METHOD)}));
      }
      step.send += std::string({static_cast<char>(VERSION), static_cast<char>(NO_AUTHENTICATION)});
      buffer_.clear();
      state_ = State::REQUEST;
      continue;
    }
    // REQUEST: VER CMD RSV ATYP DST.ADDR DST.PORT
    if (buffer_.size() < 4) continue;
    if (static_cast<uint8_t>(buffer_[0]) != VERSION) {
      return fail("SOCKS5 request with version " + std::to_string(static_cast<uint8_t>(buffer_[0])),
                  step.send + reply(Reply::GENERAL_FAILURE));
    }
    uint8_t command = buffer_[1];
    if (command != CONNECT) {
      return fail("SOCKS5 command " + std::to_string(command) + " (only CONNECT is supported)",
                  step.send + reply(Reply::COMMAND_NOT_SUPPORTED));
    }
    uint8_t type = buffer_[3];
    if (type != 0x01 && type != 0x03 && type != 0x04) {
      return fail("SOCKS5 address type " + std::to_string(type),
                  step.send + reply(Reply::ADDRESS_TYPE_NOT_SUPPORTED));
    }
    if (type == 0x03 && buffer_.size() >= 5 && static_cast<uint8_t>(buffer_[4]) == 0) {
      return fail("SOCKS5 request with an empty domain", step.send + reply(Reply::NOT_ALLOWED));
    }
    if (buffer_.size() < 5 || buffer_.size() < want) continue;
    Request request;
    request.type = static_cast<AddressType>(type);
    const char* bytes = buffer_.data();
    size_t portAt = want - 2;
    request.port = static_cast<uint16_t>((static_cast<uint8_t>(bytes[portAt]) << 8) |
                                         static_cast<uint8_t>(bytes[portAt + 1]));
    char text[INET6_ADDRSTRLEN];
    if (type == 0x01) {
      inet_ntop(AF_INET, bytes + 4, text, sizeof(text));
      request.host = text;
    } else if (type == 0x04) {
      inet_ntop(AF_INET6, bytes + 4, text, sizeof(text));
      request.host = text;
    } else {
      request.host.assign(bytes + 5, static_cast<uint8_t>(bytes[4]));
    }
    buffer_.clear();
    state_ = State::DONE;
    step.request = std::move(request);
    return step;
  }
  return step;
}

}  // namespace chitin::egress::socks5
