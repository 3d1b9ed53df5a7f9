// SPDX-License-Identifier: Apache-2.0
// The SOCKS5 handshake (RFC 1928) as the broker speaks it: no authentication, CONNECT only,
// ATYP IPv4 / domain / IPv6. An incremental parser of the worker's bytes; no I/O. A pure module.
// Runs in: supervisor
//
// Everything here comes from a possibly hostile worker: the parser never reads past what it
// was given, never buffers more than one handshake (MAX_HANDSHAKE_BYTES), and answers anything
// it does not support with the RFC's reply code before the broker closes the connection.

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace chitin::egress::socks5 {

// RFC 1928 section 6.
enum class Reply : uint8_t {
  SUCCEEDED = 0x00,
  GENERAL_FAILURE = 0x01,
  NOT_ALLOWED = 0x02,  // "connection not allowed by ruleset"
  NETWORK_UNREACHABLE = 0x03,
  HOST_UNREACHABLE = 0x04,
  CONNECTION_REFUSED = 0x05,
  TTL_EXPIRED = 0x06,
  COMMAND_NOT_SUPPORTED = 0x07,
  ADDRESS_TYPE_NOT_SUPPORTED = 0x08,
};

enum class AddressType : uint8_t { IPV4 = 0x01, DOMAIN = 0x03, IPV6 = 0x04 };

struct Request {
  AddressType type = AddressType::DOMAIN;
  std::string host;  // the domain as sent (1..255 bytes, unvalidated), or the address as text
  uint16_t port = 0;
};

// The greeting (2 + 255 bytes) and the largest request (4 + 1 + 255 + 2 bytes).
constexpr size_t MAX_HANDSHAKE_BYTES = 257 + 262;

class Handshake {
 public:
  struct Step {
    std::string send;                // bytes for the worker now (method choice or a reply)
    bool close = false;              // then close: the handshake failed
    std::optional<Request> request;  // a complete CONNECT request: resolve, check, connect
    std::string error;               // why it failed, for the audit ("not SOCKS5", ...)
  };

  // Consumes bytes from the front of `input` (up to the end of the request; what follows is
  // the worker's first payload and stays in `input`). Call again with more bytes while the
  // step has neither `request` nor `close`. After either, further calls are a bug.
  Step feed(std::string_view& input);

  bool finished() const { return state_ == State::DONE || state_ == State::FAILED; }

 private:
  enum class State { GREETING, REQUEST, DONE, FAILED };
  State state_ = State::GREETING;
  std::string buffer_;  // at most one message

  Step fail(std::string error, std::string send = "");
  size_t needed() const;  // the current message's length, as far as its bytes tell yet
};

// The 10-byte reply to a request: VER 5, `code`, RSV 0, ATYP IPv4, BND.ADDR 0.0.0.0:0 (the
// broker's own address is none of the worker's business).
std::string reply(Reply code);

}  // namespace chitin::egress::socks5
