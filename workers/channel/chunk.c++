// SPDX-License-Identifier: Apache-2.0
// Cuts Markdown into pieces a platform accepts (see format.h): at most `limit` units each,
// cut at a paragraph break if the piece has one, else a line break, else a space, else between
// two code points; a fenced code block that a cut falls into is closed at the end of one piece
// and reopened (with its language) at the start of the next.
// Runs in: worker (sandboxed)

#include <algorithm>

#include "format.h"

namespace chitin::channel {

namespace {

// Bytes in the UTF-8 sequence that starts with `lead`, or 1 for a byte that cannot start one
// (stray continuation bytes and invalid leads count as one unit each and are never joined).
size_t sequenceLength(std::string_view s, size_t i) {
  auto b = static_cast<unsigned char>(s[i]);
  size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xe ? 3 : (b >> 3) == 0x1e ? 4 : 1;
  if (i + n > s.size()) return 1;
  for (size_t k = 1; k < n; ++k) {
    if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return 1;
  }
  return n;
}

size_t unitsOf(size_t sequenceBytes, Unit unit) {
  switch (unit) {
    case Unit::BYTES:
      return sequenceBytes;
    case Unit::CODE_POINTS:
      return 1;
    case Unit::UTF16:
      return sequenceBytes == 4 ? 2 : 1;  // astral code points are surrogate pairs
  }
  return sequenceBytes;
}

size_t measure(std::string_view s, Unit unit) {
  size_t total = 0;
  for (size_t i = 0; i < s.size();) {
    size_t n = sequenceLength(s, i);
    total += unitsOf(n, unit);
    i += n;
  }
  return total;
}

// The furthest end (a sequence boundary) such that s[from, end) fits in `budget` units; at
// least one sequence past `from`, so that every piece makes progress.
size_t fitEnd(std::string_view s, size_t from, size_t budget, Unit unit) {
  size_t used = 0, i = from;
  while (i < s.size()) {
    size_t n = sequenceLength(s, i);
    size_t u = unitsOf(n, unit);
    if (used + u > budget && i > from) break;
    used += u;
    i += n;
    if (used >= budget) break;
  }
  return i;
}

size_t fenceRun(std::string_view line) {
  std::string_view s = stripIndent(line);
  if (s.size() < 3 || (s[0] != '`' && s[0] != '~')) return 0;
  size_t n = 0;
  while (n < s.size() && s[n] == s[0]) ++n;
  return n >= 3 ? n : 0;
}

// The fence state after the lines that start in [from, to): the opening line of the block
// still open there, or "" outside any. `open` is the state at `from`.
std::string fenceStateAt(std::string_view s, size_t from, size_t to, std::string open) {
  for (size_t i = from; i < to;) {
    size_t nl = s.find('\n', i);
    size_t lineEnd = nl == std::string_view::npos ? s.size() : nl;
    std::string_view line = s.substr(i, lineEnd - i);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    size_t run = fenceRun(line);
    if (run != 0) {
      std::string_view marker = stripIndent(line).substr(0, run);
      if (open.empty()) {
        // An inline ```code``` on one line opens nothing.
        if (marker[0] != '`' || stripIndent(line).substr(run).find('`') == std::string::npos) {
          open = std::string(line);
        }
      } else {
        std::string_view opener = stripIndent(open);
        size_t openRun = fenceRun(open);
        std::string_view after = stripIndent(line).substr(run);
        bool blank = after.find_first_not_of(" \t") == std::string_view::npos;
        if (marker[0] == opener[0] && run >= openRun && blank) open.clear();
      }
    }
    if (nl == std::string_view::npos) break;
    i = nl + 1;
  }
  return open;
}

struct Cut {
  size_t end;   // the piece is s[from, end)
  size_t next;  // the next piece starts here (separators dropped)
};

// Where to end a piece that may reach up to `maxEnd`: the last paragraph break, else line
// break, else space at or before maxEnd (but after `from`), else maxEnd itself.
Cut chooseCut(std::string_view s, size_t from, size_t maxEnd) {
  std::string_view window = s.substr(from, std::min(maxEnd, s.size() - 1) - from + 1);
  auto skip = [&](size_t i, std::string_view chars) {
    while (i < s.size() && chars.find(s[i]) != std::string_view::npos) ++i;
    return i;
  };
  size_t p = window.rfind("\n\n");
  if (p != std::string_view::npos && p > 0) return {from + p, skip(from + p, "\n\r")};
  p = window.rfind('\n');
  if (p != std::string_view::npos && p > 0) return {from + p, from + p + 1};
  p = window.find_last_of(" \t");
  if (p != std::string_view::npos && p > 0) return {from + p, skip(from + p, " \t")};
  return {maxEnd, maxEnd};
}

}  // namespace

std::vector<std::string> chunkText(std::string_view text, size_t limit, Unit unit) {
  std::vector<std::string> pieces;
  if (limit == 0) limit = 1;
  std::string open;  // the fence line of a code block cut by the previous piece
  size_t from = 0;
  while (from < text.size()) {
    std::string prefix = open.empty() ? "" : open + "\n";
    std::string closer =
        open.empty() ? "" : "\n" + std::string(stripIndent(open).substr(0, fenceRun(open)));
    size_t prefixUnits = measure(prefix, unit);
    // Reopening needs room for the fence lines and some code; without it the block is simply
    // continued as text (degraded, never lost).
    if (!open.empty() && prefixUnits + measure(closer, unit) + 1 > limit) {
      prefix.clear();
      prefixUnits = 0;
    }
    size_t budget = limit - prefixUnits;
    if (measure(text.substr(from), unit) <= budget) {
      pieces.push_back(prefix + std::string(text.substr(from)));
      break;
    }
    size_t maxEnd = fitEnd(text, from, budget, unit);
    Cut cut = chooseCut(text, from, maxEnd);
    std::string state = fenceStateAt(text, from, cut.end, prefix.empty() ? "" : open);
    if (!state.empty()) {
      // Inside a block at the cut: leave room to close it.
      std::string close = "\n" + std::string(stripIndent(state).substr(0, fenceRun(state)));
      size_t closeUnits = measure(close, unit);
      if (budget > closeUnits) {
        maxEnd = fitEnd(text, from, budget - closeUnits, unit);
        cut = chooseCut(text, from, maxEnd);
        state = fenceStateAt(text, from, cut.end, prefix.empty() ? "" : open);
      }
    }
    std::string piece = prefix + std::string(text.substr(from, cut.end - from));
    if (!state.empty()) {
      std::string close = "\n" + std::string(stripIndent(state).substr(0, fenceRun(state)));
      if (measure(piece + close, unit) <= limit) piece += close;
    }
    // A cut in a run of blank lines or spaces can leave a piece of separators only.
    if (piece.find_first_not_of(" \t\r\n") != std::string::npos) pieces.push_back(std::move(piece));
    open = state;
    from = cut.next;
    if (!open.empty()) {
      // The block's own closing line right after the cut: the piece closed it already, so the
      // next piece must not reopen it only to close it again.
      size_t nl = text.find('\n', from);
      std::string_view line = text.substr(from, nl == std::string_view::npos ? nl : nl - from);
      if (fenceStateAt(line, 0, line.size(), open).empty()) {
        open.clear();
        from = nl == std::string_view::npos ? text.size() : nl + 1;
      }
    }
  }
  return pieces;
}

}  // namespace chitin::channel
