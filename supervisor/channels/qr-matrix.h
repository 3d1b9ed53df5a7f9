// SPDX-License-Identifier: Apache-2.0
// A WhatsApp login QR payload as the grid of modules the web chat draws: the supervisor encodes,
// the browser only paints squares.
// Runs in: supervisor
//
// The payload comes from a channel worker (bounded to 4 KiB by the channel host). Encoding it
// here, with Debian's libqrencode, means the page receives rows of '0' and '1' and nothing it
// could interpret; the terminal's `chitin channels login` draws the same payload with the
// `qrencode` program.

#pragma once

#include <string>
#include <vector>

namespace chitin::channels {

// Rows of '1' (dark) and '0' (light), top to bottom, without the quiet zone: a square of side
// 4 * version + 17. Empty when the payload is empty or does not fit a QR code.
std::vector<std::string> qrRows(const std::string& payload);

}  // namespace chitin::channels
