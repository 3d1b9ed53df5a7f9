// SPDX-License-Identifier: Apache-2.0
// Fuzz target: chitin.conf text through parseConfig (protobuf text format, defaults,
// validation) and the model settings resolved from it.
// Runs in: test (libFuzzer target, tests/fuzz/)
//
// A config the parser accepts must resolve without anything but a ConfigError, and the error
// must name the file.

#include <cstdint>
#include <string>

#include "config.h"
#include "fuzz-support.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  chitin::fuzz::quietLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  chitin::config::ChitinConfig config;
  try {
    config = chitin::parseConfig(text, "fuzz.conf");
  } catch (const chitin::ConfigError& e) {
    FUZZ_CHECK(std::string(e.what()).rfind("fuzz.conf", 0) == 0, e.what());
    return 0;
  }
  auto noEnvironment = [](const std::string&) -> std::optional<std::string> {
    return std::nullopt;
  };
  auto keyFile = [](const std::string& path) -> std::string {
    if (path.size() % 2) throw std::runtime_error("cannot read " + path);
    return "sk-fuzz \n";
  };
  try {
    auto settings = chitin::resolveModelSettings(config, noEnvironment, keyFile);
    (void)settings.providerName();
  } catch (const chitin::ConfigError&) {
  }
  return 0;
}
