// SPDX-License-Identifier: Apache-2.0
// Tests of qrRows: the grid matches what Debian's `qrencode` program draws for the same payload
// (8-bit mode, level M, no margin), with the three finder patterns where a reader looks for them.
// Runs in: tests

#include "qr-matrix.h"

#include <doctest/doctest.h>
#include <stdio.h>

#include <string>
#include <vector>

namespace chitin::channels {
namespace {

// `qrencode -t ASCII` prints "##" for a dark module and two spaces for a light one.
std::vector<std::string> drawnByQrencode(const std::string& payload) {
  std::string command = "qrencode -t ASCII -m 0 -l M -8 -o - '" + payload + "'";
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::vector<std::string> rows;
  char line[4096];
  while (::fgets(line, sizeof(line), pipe)) {
    std::string text(line);
    if (!text.empty() && text.back() == '\n') text.pop_back();
    std::string row;
    for (size_t i = 0; i + 1 < text.size() + 1; i += 2) row += text[i] == '#' ? '1' : '0';
    rows.push_back(row);
  }
  ::pclose(pipe);
  return rows;
}

TEST_CASE("qrRows: the same modules as the qrencode program, finder patterns in three corners") {
  std::string payload = "2@Xk9f1Q==,aGVsbG8gd29ybGQ=,cGFpcmluZw==,d2hhdHNhcHA=";
  auto rows = qrRows(payload);
  REQUIRE(!rows.empty());
  size_t side = rows.size();
  CHECK((side - 17) % 4 == 0);
  for (const auto& row : rows) CHECK(row.size() == side);
  CHECK(rows == drawnByQrencode(payload));
  // A finder pattern: a 7x7 dark ring around a light ring around a 3x3 dark core.
  auto finderAt = [&](size_t top, size_t left) {
    for (size_t y = 0; y < 7; ++y)
      for (size_t x = 0; x < 7; ++x) {
        bool ring = y == 0 || y == 6 || x == 0 || x == 6;
        bool core = y >= 2 && y <= 4 && x >= 2 && x <= 4;
        if (rows[top + y][left + x] != ((ring || core) ? '1' : '0')) return false;
      }
    return true;
  };
  CHECK(finderAt(0, 0));
  CHECK(finderAt(0, side - 7));
  CHECK(finderAt(side - 7, 0));
  CHECK_FALSE(finderAt(side - 7, side - 7));
}

TEST_CASE("qrRows: nothing for an empty payload or one too long for any QR code") {
  CHECK(qrRows("").empty());
  CHECK(qrRows(std::string(4000, 'x')).empty());  // version 40-M holds 2331 bytes
}

}  // namespace
}  // namespace chitin::channels
