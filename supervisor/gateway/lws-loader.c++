// SPDX-License-Identifier: Apache-2.0
// libwebsockets opened when the gateway starts (see lws-loader.h).
// Runs in: supervisor

#include "lws-loader.h"

#include <libwebsockets.h>

#include "lazy-library.h"

// Every libwebsockets function the gateway calls: return type, name, parameters, arguments. A
// function used and not listed here does not link.
#define CHITIN_LWS_FUNCTIONS(X)                                                                    \
  X(void, lws_set_log_level, (int level, void (*log_emit_function)(int level, const char* line)), \
    (level, log_emit_function))                                                                    \
  X(struct lws_context*, lws_create_context, (const struct lws_context_creation_info* info),       \
    (info))                                                                                        \
  X(struct lws_vhost*, lws_create_vhost,                                                           \
    (struct lws_context * context, const struct lws_context_creation_info* info), (context, info)) \
  X(void, lws_context_destroy, (struct lws_context * context), (context))                          \
  X(void*, lws_context_user, (struct lws_context * context), (context))                            \
  X(struct lws_context*, lws_get_context, (const struct lws* wsi), (wsi))                          \
  X(int, lws_get_vhost_listen_port, (struct lws_vhost * vhost), (vhost))                           \
  X(int, lws_callback_http_dummy,                                                                  \
    (struct lws * wsi, enum lws_callback_reasons reason, void* user, void* in, size_t len),        \
    (wsi, reason, user, in, len))                                                                  \
  X(int, lws_callback_on_writable, (struct lws * wsi), (wsi))                                      \
  X(int, lws_write,                                                                                \
    (struct lws * wsi, unsigned char* buf, size_t len, enum lws_write_protocol protocol),          \
    (wsi, buf, len, protocol))                                                                     \
  X(int, lws_send_pipe_choked, (struct lws * wsi), (wsi))                                          \
  X(void, lws_set_timeout, (struct lws * wsi, enum pending_timeout reason, int secs),              \
    (wsi, reason, secs))                                                                           \
  X(void, lws_close_reason,                                                                        \
    (struct lws * wsi, enum lws_close_status status, unsigned char* buf, size_t len),              \
    (wsi, status, buf, len))                                                                       \
  X(size_t, lws_remaining_packet_payload, (struct lws * wsi), (wsi))                               \
  X(int, lws_is_first_fragment, (struct lws * wsi), (wsi))                                         \
  X(int, lws_is_final_fragment, (struct lws * wsi), (wsi))                                         \
  X(int, lws_frame_is_binary, (struct lws * wsi), (wsi))                                           \
  X(int, lws_hdr_total_length, (struct lws * wsi, enum lws_token_indexes h), (wsi, h))             \
  X(int, lws_hdr_copy, (struct lws * wsi, char* dest, int len, enum lws_token_indexes h),          \
    (wsi, dest, len, h))                                                                           \
  X(const char*, lws_get_peer_simple, (struct lws * wsi, char* name, size_t namelen),              \
    (wsi, name, namelen))                                                                          \
  X(int, lws_http_transaction_completed, (struct lws * wsi), (wsi))                                \
  X(int, lws_add_http_common_headers,                                                              \
    (struct lws * wsi, unsigned int code, const char* content_type, lws_filepos_t content_len,     \
     unsigned char** p, unsigned char* end),                                                       \
    (wsi, code, content_type, content_len, p, end))                                                \
  X(int, lws_add_http_header_by_name,                                                              \
    (struct lws * wsi, const unsigned char* name, const unsigned char* value, int length,          \
     unsigned char** p, unsigned char* end),                                                       \
    (wsi, name, value, length, p, end))                                                            \
  X(int, lws_finalize_write_http_header,                                                           \
    (struct lws * wsi, unsigned char* start, unsigned char** p, unsigned char* end),               \
    (wsi, start, p, end))

namespace chitin::gateway {

// A namespace of its own: this file shares a unity file with others (meson.build).
namespace lws_table {

enum class Fn : size_t {
#define CHITIN_ENUM(ret, name, params, args) name,
  CHITIN_LWS_FUNCTIONS(CHITIN_ENUM)
#undef CHITIN_ENUM
};

LazyLibrary& library() {
  static LazyLibrary lib(CHITIN_LWS_SONAME, {
#define CHITIN_NAME(ret, name, params, args) #name,
                                                CHITIN_LWS_FUNCTIONS(CHITIN_NAME)
#undef CHITIN_NAME
                                            });
  return lib;
}

}  // namespace lws_table

const char* libwebsocketsSoname() { return lws_table::library().soname(); }

bool libwebsocketsLoaded() { return lws_table::library().loaded(); }

std::string loadLibwebsockets() { return loadLibwebsocketsFrom(libwebsocketsSoname()); }

std::string loadLibwebsocketsFrom(const char* soname) {
  std::string problem = lws_table::library().loadFrom(soname);
  if (!problem.empty())
    return problem + " (chitin was built against libwebsockets " LWS_LIBRARY_VERSION ")";
  return "";
}

}  // namespace chitin::gateway

// The definitions the gateway links against. Each declaration is libwebsockets' own, so a
// parameter list here that differs from the library's does not compile.
#define CHITIN_FORWARD(ret, name, params, args)                                                \
  CHITIN_LAZY_FORWARD(chitin::gateway::lws_table::library(),                                   \
                      static_cast<size_t>(chitin::gateway::lws_table::Fn::name), ret, name, \
                      params, args)
CHITIN_LWS_FUNCTIONS(CHITIN_FORWARD)
#undef CHITIN_FORWARD
