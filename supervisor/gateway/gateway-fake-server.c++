// SPDX-License-Identifier: Apache-2.0
// Test program: the real gateway and web chat in front of the scripted FakeAgentService, serving
// on 127.0.0.1 until SIGINT/SIGTERM. Prints `WEBCHAT_URL=http://127.0.0.1:PORT/#token=…`.
// Runs in: supervisor (tests only)
//
// Usage: gateway-fake-server [--port N] [--token T] [--web-root DIR] [--step-ms N]

#include <sodium.h>
#include <uv.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "chitin-build-config.h"
#include "fake-agent-service.h"
#include "gateway.h"

namespace {

struct Stopper {
  chitin::gateway::Gateway* gateway;
  chitin::gateway::FakeAgentService* service;
  uv_signal_t signals[2];
  bool stopped = false;
};

int usage(const char* why) {
  std::cerr << "gateway-fake-server: " << why
            << "\nusage: gateway-fake-server [--port N] [--token T] [--web-root DIR] "
               "[--step-ms N]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  chitin::gateway::GatewayOptions options;
  options.port = 0;
  options.webRoot = std::string(CHITIN_SOURCE_ROOT) + "/web";
  options.version = CHITIN_VERSION;
  long stepMs = 150;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (i + 1 >= argc) return usage(("missing value after " + arg).c_str());
    std::string value = argv[++i];
    if (arg == "--port") {
      long port = std::strtol(value.c_str(), nullptr, 10);
      if (port < 0 || port > 65535) return usage("--port must be 0..65535");
      options.port = static_cast<uint16_t>(port);
    } else if (arg == "--token") {
      options.token = value;
    } else if (arg == "--web-root") {
      options.webRoot = value;
    } else if (arg == "--step-ms") {
      stepMs = std::strtol(value.c_str(), nullptr, 10);
      if (stepMs <= 0) return usage("--step-ms must be positive");
    } else {
      return usage(("unknown option " + arg).c_str());
    }
  }
  if (sodium_init() < 0) return 1;
  if (options.token.empty()) {
    unsigned char raw[24];
    randombytes_buf(raw, sizeof raw);
    char hex[sizeof raw * 2 + 1];
    options.token = sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
  }

  uv_loop_t loop;
  uv_loop_init(&loop);
  chitin::gateway::FakeAgentService service(&loop, std::chrono::milliseconds(stepMs));
  chitin::gateway::Gateway gateway(&loop, options, service);
  int status = 0;
  try {
    gateway.start();
    std::cout << "WEBCHAT_URL=http://127.0.0.1:" << gateway.port() << "/#token=" << options.token
              << std::endl;

    Stopper stopper{&gateway, &service, {}, false};
    for (int i = 0; i < 2; ++i) {
      uv_signal_init(&loop, &stopper.signals[i]);
      stopper.signals[i].data = &stopper;
      uv_signal_start(
          &stopper.signals[i],
          [](uv_signal_t* handle, int) {
            auto& s = *static_cast<Stopper*>(handle->data);
            if (s.stopped) return;
            s.stopped = true;
            s.gateway->stop();
            s.service->close();
            for (auto& signal : s.signals)
              uv_close(reinterpret_cast<uv_handle_t*>(&signal), nullptr);
          },
          i == 0 ? SIGINT : SIGTERM);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
  } catch (const std::exception& e) {
    std::cerr << "gateway-fake-server: " << e.what() << "\n";
    gateway.stop();
    service.close();
    uv_run(&loop, UV_RUN_DEFAULT);
    status = 1;
  }
  gateway.finishStop();
  int closed = uv_loop_close(&loop);
  if (closed != 0) std::cerr << "gateway-fake-server: loop not empty at exit\n";
  return status != 0 ? status : (closed != 0 ? 1 : 0);
}
