// SPDX-License-Identifier: Apache-2.0
// A QR payload as rows of modules (see qr-matrix.h).
// Runs in: supervisor

#include "qr-matrix.h"

#include <qrencode.h>

namespace chitin::channels {

std::vector<std::string> qrRows(const std::string& payload) {
  if (payload.empty()) return {};
  // 8-bit mode takes the bytes as they are; level M as phones expect for WhatsApp's codes.
  QRcode* code =
      QRcode_encodeData(static_cast<int>(payload.size()),
                        reinterpret_cast<const unsigned char*>(payload.data()), 0, QR_ECLEVEL_M);
  if (code == nullptr) return {};
  std::vector<std::string> rows(static_cast<size_t>(code->width),
                                std::string(static_cast<size_t>(code->width), '0'));
  for (int y = 0; y < code->width; ++y)
    for (int x = 0; x < code->width; ++x)
      if (code->data[y * code->width + x] & 1) rows[y][x] = '1';  // bit 0: dark module
  QRcode_free(code);
  return rows;
}

}  // namespace chitin::channels
