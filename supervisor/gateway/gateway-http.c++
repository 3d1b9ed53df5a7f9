// SPDX-License-Identifier: Apache-2.0
// The gateway's HTTP side: GET /healthz, the web chat's allowlisted files with hardening headers,
// and the checks that decide whether an upgrade to the WebSocket may proceed.
// Runs in: supervisor

#include <strings.h>

#include <algorithm>
#include <cstring>

#include "gateway-impl.h"

namespace chitin::gateway::internal {

namespace {

constexpr size_t HTTP_CHUNK = 16 * 1024;

const std::string HEALTHZ_BODY = "{\"ok\":true}";
const std::string NOT_FOUND_BODY = "not found\n";
const std::string METHOD_BODY = "only GET is supported\n";
const std::string FORBIDDEN_BODY = "origin not allowed\n";
const std::string BUSY_BODY = "too many connections\n";
const std::string BAD_UPGRADE_BODY = "only WebSocket upgrades on /ws are supported\n";

std::optional<std::string> header(lws* wsi, lws_token_indexes token) {
  int length = lws_hdr_total_length(wsi, token);
  if (length <= 0) return std::nullopt;
  std::string value(static_cast<size_t>(length) + 1, '\0');
  if (lws_hdr_copy(wsi, value.data(), length + 1, token) < 0) return std::nullopt;
  value.resize(static_cast<size_t>(length));
  return value;
}

// Writes the status line and headers. Every response carries the hardening headers; the page
// is what needs them, and they cost nothing elsewhere.
bool writeHeaders(lws* wsi, Gateway::Impl& impl, unsigned status, const char* contentType,
                  size_t length) {
  unsigned char buffer[LWS_PRE + 2048];
  unsigned char* start = buffer + LWS_PRE;
  unsigned char* p = start;
  unsigned char* end = buffer + sizeof(buffer) - 1;
  auto add = [&](const char* name, const std::string& value) {
    return lws_add_http_header_by_name(wsi, reinterpret_cast<const unsigned char*>(name),
                                       reinterpret_cast<const unsigned char*>(value.data()),
                                       static_cast<int>(value.size()), &p, end) == 0;
  };
  return lws_add_http_common_headers(wsi, status, contentType, length, &p, end) == 0 &&
         add("content-security-policy:", impl.contentSecurityPolicy) &&
         add("x-content-type-options:", "nosniff") && add("referrer-policy:", "no-referrer") &&
         add("x-frame-options:", "DENY") && add("cache-control:", "no-store") &&
         lws_finalize_write_http_header(wsi, start, &p, end) == 0;
}

// Answers an upgrade we refuse, synchronously (lws completes the transaction when the
// CONFIRM_UPGRADE callback returns > 0).
int refuseUpgrade(lws* wsi, Gateway::Impl& impl, unsigned status, const std::string& body) {
  if (!writeHeaders(wsi, impl, status, "text/plain; charset=utf-8", body.size())) return -1;
  std::string buffer(LWS_PRE, '\0');
  buffer += body;
  int n = lws_write(wsi, reinterpret_cast<unsigned char*>(buffer.data()) + LWS_PRE, body.size(),
                    LWS_WRITE_HTTP_FINAL);
  return n < 0 ? -1 : 1;
}

}  // namespace

int confirmUpgrade(lws* wsi, Gateway::Impl& impl, const char* upgrade) {
  std::optional<std::string> origin = header(wsi, WSI_TOKEN_ORIGIN);
  std::optional<std::string> path = header(wsi, WSI_TOKEN_GET_URI);
  std::optional<std::string> subprotocol = header(wsi, WSI_TOKEN_PROTOCOL);
  if (upgrade == nullptr || strcasecmp(upgrade, "websocket") != 0 || path != "/ws" ||
      (subprotocol && *subprotocol != WS_PROTOCOL)) {
    return refuseUpgrade(wsi, impl, HTTP_STATUS_NOT_FOUND, BAD_UPGRADE_BODY);
  }
  if (!impl.origins->allowed(origin)) {
    spdlog::warn("gateway: refused a WebSocket from origin {}",
                 frames::sanitizeMessage(origin.value_or(""), 100));
    return refuseUpgrade(wsi, impl, HTTP_STATUS_FORBIDDEN, FORBIDDEN_BODY);
  }
  if (impl.sockets.size() >= impl.options.maxConnections) {
    return refuseUpgrade(wsi, impl, HTTP_STATUS_SERVICE_UNAVAILABLE, BUSY_BODY);
  }
  return 0;
}

int httpCallback(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len) {
  auto* session = static_cast<HttpSession*>(user);
  switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
      return confirmUpgrade(wsi, implOf(wsi), static_cast<const char*>(in));

    case LWS_CALLBACK_HTTP: {
      Gateway::Impl& impl = implOf(wsi);
      std::string_view path(static_cast<const char*>(in));
      unsigned status = HTTP_STATUS_OK;
      const char* contentType = "text/plain; charset=utf-8";
      const std::string* body;
      if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0) {
        status = HTTP_STATUS_METHOD_NOT_ALLOWED;
        body = &METHOD_BODY;
      } else if (path == "/healthz") {
        contentType = "application/json";
        body = &HEALTHZ_BODY;
      } else if (const WebFile* file = impl.web->find(path)) {
        contentType = file->contentType.c_str();
        body = &file->body;
      } else {
        status = HTTP_STATUS_NOT_FOUND;
        body = &NOT_FOUND_BODY;
      }
      if (!writeHeaders(wsi, impl, status, contentType, body->size())) return 1;
      session->body = body;
      session->sent = 0;
      lws_callback_on_writable(wsi);
      return 0;
    }

    case LWS_CALLBACK_HTTP_WRITEABLE: {
      if (session == nullptr || session->body == nullptr) break;
      size_t chunk = std::min(HTTP_CHUNK, session->body->size() - session->sent);
      bool final = session->sent + chunk == session->body->size();
      std::string buffer(LWS_PRE, '\0');
      buffer.append(*session->body, session->sent, chunk);
      int n = lws_write(wsi, reinterpret_cast<unsigned char*>(buffer.data()) + LWS_PRE, chunk,
                        final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP);
      if (n < 0 || static_cast<size_t>(n) != chunk) return -1;
      session->sent += chunk;
      if (!final) {
        lws_callback_on_writable(wsi);
        return 0;
      }
      session->body = nullptr;
      return lws_http_transaction_completed(wsi) ? -1 : 0;
    }

    default:
      break;
  }
  return lws_callback_http_dummy(wsi, reason, user, in, len);
}

}  // namespace chitin::gateway::internal
