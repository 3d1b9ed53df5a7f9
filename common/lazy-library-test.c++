// SPDX-License-Identifier: Apache-2.0
// LazyLibrary: opened on first use, every name resolved at once, failures said and retried.
// Runs in: test

#include "lazy-library.h"

#include <doctest/doctest.h>
#include <zlib.h>

#include <fstream>
#include <string>

namespace chitin {
namespace {

bool mapped(const std::string& soname) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line))
    if (line.find("/" + soname) != std::string::npos) return true;
  return false;
}

// libz: small, on every Debian system, and not linked by this test.
constexpr char ZLIB[] = "libz.so.1";

TEST_CASE("lazy library: nothing is mapped or resolved until it is loaded") {
  REQUIRE_FALSE(mapped(ZLIB));  // the premise: this test does not link it
  LazyLibrary lib(ZLIB, {"zlibVersion", "crc32"});
  CHECK_FALSE(lib.loaded());
  CHECK(lib.resolved(0) == nullptr);
  CHECK_FALSE(mapped(ZLIB));
  CHECK(std::string(lib.soname()) == ZLIB);
}

TEST_CASE("lazy library: a missing library or function is named, and nothing is resolved") {
  LazyLibrary missing("libchitin-no-such-library.so.0", {"f"});
  std::string why;
  bool none = missing.function<int (*)()>(0, why) == nullptr;
  CHECK(none);
  CHECK(why.find("cannot load libchitin-no-such-library.so.0") != std::string::npos);
  CHECK_FALSE(missing.loaded());

  LazyLibrary lacking(ZLIB, {"zlibVersion", "chitin_no_such_function"});
  CHECK(lacking.load() == "libz.so.1 has no chitin_no_such_function");
  CHECK_FALSE(lacking.loaded());
  CHECK(lacking.resolved(0) == nullptr);  // not half loaded
}

TEST_CASE("lazy library: loaded on first use, its functions typed by the library's header") {
  LazyLibrary lib(ZLIB, {"zlibVersion", "crc32"});
  std::string why;
  auto version = lib.function<decltype(&::zlibVersion)>(0, why);
  REQUIRE(why.empty());
  bool found = version != nullptr;
  REQUIRE(found);
  CHECK(std::string(version()) == ZLIB_VERSION);
  CHECK(lib.loaded());
  CHECK(mapped(ZLIB));
  auto crc = lib.function<decltype(&::crc32)>(1, why);
  found = crc != nullptr;
  REQUIRE(found);
  // CRC-32 of "123456789", the check value of the standard.
  CHECK(crc(0, reinterpret_cast<const Bytef*>("123456789"), 9) == 0xCBF43926u);
  CHECK(lib.load() == "");  // loaded once; loading again changes nothing
}

TEST_CASE("lazy library: a failed load is tried again") {
  LazyLibrary lib(ZLIB, {"zlibVersion"});
  CHECK(lib.loadFrom("libchitin-no-such-library.so.0") != "");
  CHECK_FALSE(lib.loaded());
  CHECK(lib.load() == "");
  CHECK(lib.loaded());
}

}  // namespace
}  // namespace chitin
