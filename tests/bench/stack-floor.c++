// SPDX-License-Identifier: Apache-2.0
// The floor under (a) and (b): the smallest WebSocket server on chitin's own transport stack
// (libwebsockets on a libuv loop, created as the gateway creates its context and vhost), with no
// chitin in it. It greets each client with one text frame and answers each frame it receives
// with one, which is the shape of the gateway's challenge -> connect -> ok. scripts/bench times
// it from its start to a client's answer, and reads its memory after that client, beside the
// gateway's own figures: what is left above this floor is chitin's.
//
// Usage: stack-floor PORT. Runs until SIGTERM. Not a test and not shipped.

#include <libwebsockets.h>
#include <uv.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

constexpr char GREETING[] = R"({"type":"event","event":"connect.challenge"})";
constexpr char ANSWER[] = R"({"type":"res","ok":true})";

struct Connection {
  bool greeted;
  int answersOwed;
};

int writeText(lws* wsi, const char* text) {
  unsigned char buffer[LWS_PRE + 128];
  size_t length = strlen(text);
  memcpy(buffer + LWS_PRE, text, length);
  return lws_write(wsi, buffer + LWS_PRE, length, LWS_WRITE_TEXT) < static_cast<int>(length) ? -1
                                                                                             : 0;
}

int onEvent(lws* wsi, lws_callback_reasons reason, void* user, void*, size_t) {
  auto* connection = static_cast<Connection*>(user);
  switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
      *connection = Connection{false, 0};
      lws_callback_on_writable(wsi);
      break;
    case LWS_CALLBACK_RECEIVE:
      if (lws_is_final_fragment(wsi)) {
        connection->answersOwed++;
        lws_callback_on_writable(wsi);
      }
      break;
    case LWS_CALLBACK_SERVER_WRITEABLE:
      if (!connection->greeted) {
        connection->greeted = true;
        if (writeText(wsi, GREETING) != 0) return -1;
      } else if (connection->answersOwed > 0) {
        connection->answersOwed--;
        if (writeText(wsi, ANSWER) != 0) return -1;
      }
      if (connection->answersOwed > 0) lws_callback_on_writable(wsi);
      break;
    default:
      break;
  }
  return 0;
}

const lws_protocols PROTOCOLS[] = {
    {"floor", onEvent, sizeof(Connection), 4096, 0, nullptr, 0},
    {nullptr, nullptr, 0, 0, 0, nullptr, 0},  // the end of the list
};

void onTerm(uv_signal_t* signal, int) { uv_stop(signal->loop); }

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
    fprintf(stderr, "usage: stack-floor PORT (1-65535)\n");
    return 2;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  void* foreignLoops[1] = {&loop};

  lws_set_log_level(LLL_ERR | LLL_WARN, nullptr);
  lws_context_creation_info info{};
  info.options =
      LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_DISABLE_IPV6;
  info.foreign_loops = foreignLoops;
  info.gid = -1;
  info.uid = -1;
  info.protocols = PROTOCOLS;
  lws_context* context = lws_create_context(&info);
  if (context == nullptr) {
    fprintf(stderr, "stack-floor: libwebsockets failed to start on the libuv loop\n");
    return 1;
  }
  info.vhost_name = "floor";
  info.port = atoi(argv[1]);
  info.iface = "127.0.0.1";
  if (lws_create_vhost(context, &info) == nullptr) {
    fprintf(stderr, "stack-floor: cannot listen on 127.0.0.1:%s\n", argv[1]);
    return 1;
  }

  uv_signal_t term;
  uv_signal_init(&loop, &term);
  uv_signal_start(&term, onTerm, SIGTERM);
  uv_run(&loop, UV_RUN_DEFAULT);
  // Like the gateway, no orderly teardown of a foreign-loop context: the process ends here.
  return 0;
}
