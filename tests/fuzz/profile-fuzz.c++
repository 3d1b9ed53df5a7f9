// SPDX-License-Identifier: Apache-2.0
// Fuzz target: a sandbox profile's text through loadProfile (protobuf text format and every
// validation rule), and a profile that loads through the argv and seccomp compilers.
// Runs in: test (libFuzzer target, tests/fuzz/)
//
// The profile is named after its own `name:` field when that parses, so inputs get past the
// file-name check to the rules behind it. A profile that loads must compile: any failure after
// loadProfile other than SandboxUnavailable is a finding.

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>
#include <kj/exception.h>

#include <cstdint>
#include <string>

#include "fuzz-support.h"
#include "spawner.h"

namespace spawn = chitin::spawn;

namespace {

const std::string DIR = "/profiles";

struct Silent : google::protobuf::io::ErrorCollector {
  void AddError(int, int, const std::string&) override {}
};

struct FakeOs : spawn::SpawnOs {
  std::string text;
  bool fileExists(const std::string& path) override { return path.rfind(DIR + "/", 0) == 0; }
  bool isExecutable(const std::string& path) override { return true; }
  std::string readFile(const std::string& path) override { return text; }
};

std::string nameOf(const std::string& text) {
  chitin::config::SandboxProfile partial;
  google::protobuf::TextFormat::Parser parser;
  parser.AllowPartialMessage(true);
  parser.AllowUnknownField(true);
  Silent silent;
  parser.RecordErrorsTo(&silent);
  if (!parser.ParseFromString(text, &partial) || partial.name().empty()) return "fuzz";
  return partial.name();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  chitin::fuzz::quietLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FakeOs os;
  os.text.assign(reinterpret_cast<const char*>(data), size);
  std::string name = nameOf(os.text);
  chitin::config::SandboxProfile profile;
  try {
    profile = spawn::loadProfile(os, DIR, name);
  } catch (const spawn::SandboxUnavailable&) {
    return 0;
  }

  spawn::Spawner spawner({"/usr/bin/bwrap", DIR, "/workers"}, os);
  spawn::SpawnRequest request;
  request.profile = name;
  request.vars["WORKSPACE"] = "/home/owner/.chitin/workspace/main";
  try {
    auto argv = spawner.compileArgv(profile, request, spawn::Spawner::SECCOMP_FD);
    FUZZ_CHECK(argv.size() > 3 && argv[0] == "/usr/bin/bwrap", "argv");
    for (auto& arg : argv) FUZZ_CHECK(arg.find('\0') == std::string::npos, arg);
    std::string bpf = spawn::compileSeccomp(profile);
    FUZZ_CHECK(!bpf.empty() && bpf.size() % 8 == 0, "seccomp program");
    (void)spawner.explain(name, request.vars);
  } catch (const spawn::SandboxUnavailable&) {
  }
  return 0;
}
