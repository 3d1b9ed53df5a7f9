// SPDX-License-Identifier: Apache-2.0
// A QR payload as rows of modules (see qr-matrix.h).
// Runs in: supervisor

#include "qr-matrix.h"

#include <qrencode.h>
#include <spdlog/spdlog.h>

#include "lazy-library.h"

namespace chitin::channels {

namespace {

// Only a WhatsApp login draws a QR code: libqrencode is opened for the first (lazy-library.h).
enum QrFunction : size_t { QR_ENCODE_DATA, QR_FREE };
LazyLibrary& qrencode() {
  static LazyLibrary lib("libqrencode.so.4", {"QRcode_encodeData", "QRcode_free"});
  return lib;
}

}  // namespace

std::vector<std::string> qrRows(const std::string& payload) {
  if (payload.empty()) return {};
  std::string missing;
  auto encode = qrencode().function<decltype(&::QRcode_encodeData)>(QR_ENCODE_DATA, missing);
  if (encode == nullptr) {
    // The web chat then shows the login without its code, as for one that does not fit; the
    // terminal's `chitin channels login` draws it with the qrencode program instead.
    spdlog::warn("cannot draw the login QR code for the web chat: {}", missing);
    return {};
  }
  // 8-bit mode takes the bytes as they are; level M as phones expect for WhatsApp's codes.
  QRcode* code = encode(static_cast<int>(payload.size()),
                        reinterpret_cast<const unsigned char*>(payload.data()), 0, QR_ECLEVEL_M);
  if (code == nullptr) return {};
  std::vector<std::string> rows(static_cast<size_t>(code->width),
                                std::string(static_cast<size_t>(code->width), '0'));
  for (int y = 0; y < code->width; ++y)
    for (int x = 0; x < code->width; ++x)
      if (code->data[y * code->width + x] & 1) rows[y][x] = '1';  // bit 0: dark module
  qrencode().resolvedAs<decltype(&::QRcode_free)>(QR_FREE)(code);
  return rows;
}

}  // namespace chitin::channels
