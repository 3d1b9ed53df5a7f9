// SPDX-License-Identifier: Apache-2.0
// libwebsockets is opened when the gateway starts, not linked (lws-loader.h). A
// binary of its own: the library loads once per process, and these cases need a process where
// nothing has loaded it yet. They run in the order written.
// Runs in: test

#include <doctest/doctest.h>
#include <libwebsockets.h>

#include <fstream>
#include <stdexcept>
#include <string>

#include "lws-loader.h"

namespace chitin::gateway {
namespace {

bool mapped(const std::string& name) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line))
    if (line.find("/" + name) != std::string::npos) return true;
  return false;
}

TEST_CASE("lws loader: nothing of libwebsockets or OpenSSL is mapped until it is loaded") {
  CHECK_FALSE(libwebsocketsLoaded());
  CHECK(std::string(libwebsocketsSoname()).rfind("libwebsockets.so.", 0) == 0);
  CHECK_FALSE(mapped(libwebsocketsSoname()));
  CHECK_FALSE(mapped("libssl.so"));
  CHECK_FALSE(mapped("libcrypto.so"));
}

TEST_CASE("lws loader: before it is loaded, a call says so and a call returning nothing does nothing") {
  CHECK_THROWS_WITH_AS(lws_context_user(nullptr),
                       doctest::Contains("lws_context_user was called but libwebsockets.so."),
                       std::logic_error);
  lws_context_destroy(nullptr);  // no library, no crash
  lws_set_log_level(LLL_ERR, nullptr);
}

TEST_CASE("lws loader: a library that is missing, or is not libwebsockets, is named and not used") {
  std::string missing = loadLibwebsocketsFrom("libchitin-no-such-library.so.0");
  CHECK(missing.find("cannot load libchitin-no-such-library.so.0") != std::string::npos);
  CHECK(missing.find("built against libwebsockets ") != std::string::npos);
  // A real library without libwebsockets' functions: the first one looked up is named.
  std::string wrong = loadLibwebsocketsFrom("libz.so.1");
  CHECK(wrong.find("libz.so.1 has no lws_set_log_level") != std::string::npos);
  CHECK_FALSE(libwebsocketsLoaded());
  CHECK_THROWS_AS(lws_context_user(nullptr), std::logic_error);
}

TEST_CASE("lws loader: loaded; calls then reach it") {
  CHECK(loadLibwebsockets() == "");
  CHECK(libwebsocketsLoaded());
  CHECK(mapped(libwebsocketsSoname()));
  // A real call: a context without protocols or a port, then destroyed.
  lws_set_log_level(LLL_ERR, nullptr);
  lws_context_creation_info info{};
  info.port = CONTEXT_PORT_NO_LISTEN;
  info.gid = -1;
  info.uid = -1;
  lws_context* context = lws_create_context(&info);
  REQUIRE(context != nullptr);
  CHECK(lws_context_user(context) == nullptr);
  lws_context_destroy(context);
}

}  // namespace
}  // namespace chitin::gateway
