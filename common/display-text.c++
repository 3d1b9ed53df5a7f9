// SPDX-License-Identifier: Apache-2.0
// Untrusted text made safe to show a person (see display-text.h).
// Runs in: supervisor, CLI and workers

#include "display-text.h"

#include <algorithm>

namespace chitin {

namespace {

// Space runs this long are shown as a count: long enough to push what follows out of view.
constexpr uint64_t LINE_SPACE_RUN = 16;
constexpr uint64_t BLOCK_SPACE_RUN = 32;
// Combining marks shown on one character; more are escaped (stacked marks can paint over the
// neighbouring lines). Two cover decomposed Vietnamese, the most any language needs here.
constexpr unsigned MAX_MARKS = 2;

struct Range {
  char32_t first, last;
};

// Shown escaped wherever they occur: bidi controls, invisible and format characters, spaces
// other than U+0020, separators, private use. Sorted, not overlapping. (C0, DEL and C1 are
// tested directly; noncharacters by their bit pattern; variation selectors separately.)
constexpr Range ESCAPED[] = {
    {0x00A0, 0x00A0},     // no-break space
    {0x00AD, 0x00AD},     // soft hyphen
    {0x034F, 0x034F},     // combining grapheme joiner
    {0x0600, 0x0605},     // Arabic number signs (format)
    {0x061C, 0x061C},     // Arabic letter mark (bidi)
    {0x06DD, 0x06DD},     // Arabic end of ayah (format)
    {0x070F, 0x070F},     // Syriac abbreviation mark (format)
    {0x0890, 0x0891},     // Arabic pound/piastre mark above (format)
    {0x08E2, 0x08E2},     // Arabic disputed end of ayah (format)
    {0x115F, 0x1160},     // Hangul choseong/jungseong fillers (blank)
    {0x1680, 0x1680},     // Ogham space mark
    {0x17B4, 0x17B5},     // Khmer inherent vowels (invisible)
    {0x180B, 0x180F},     // Mongolian variation selectors, vowel separator
    {0x2000, 0x200F},     // en/em/... spaces, zero-width space/non-joiner/joiner, LRM, RLM
    {0x2028, 0x202F},     // line/paragraph separators, bidi embeddings and overrides, narrow nbsp
    {0x205F, 0x206F},     // math space, word joiner, invisible operators, bidi isolates, ...
    {0x2800, 0x2800},     // Braille pattern blank
    {0x3000, 0x3000},     // ideographic space
    {0x3164, 0x3164},     // Hangul filler
    {0xE000, 0xF8FF},     // private use
    {0xFDD0, 0xFDEF},     // noncharacters
    {0xFEFF, 0xFEFF},     // zero-width no-break space (BOM)
    {0xFFA0, 0xFFA0},     // halfwidth Hangul filler
    {0xFFF0, 0xFFFB},     // specials, interlinear annotation controls
    {0x110BD, 0x110BD},   // Kaithi number sign (format)
    {0x110CD, 0x110CD},   // Kaithi number sign above (format)
    {0x13430, 0x1343F},   // Egyptian hieroglyph format controls
    {0x1BCA0, 0x1BCA3},   // shorthand format controls
    {0x1D173, 0x1D17A},   // musical symbol format controls
    {0xE0000, 0xE0FFF},   // tag characters, variation selectors supplement
    {0xF0000, 0x10FFFF},  // supplementary private use
};

// Combining marks that attach to any base: counted, and escaped beyond MAX_MARKS.
constexpr Range MARKS[] = {
    {0x0300, 0x036F}, {0x0483, 0x0489}, {0x1AB0, 0x1AFF},
    {0x1DC0, 0x1DFF}, {0x20D0, 0x20FF}, {0xFE20, 0xFE2F},
};

template <size_t N>
constexpr bool sortedApart(const Range (&ranges)[N]) {
  for (size_t i = 0; i < N; ++i) {
    if (ranges[i].first > ranges[i].last || (i > 0 && ranges[i - 1].last >= ranges[i].first))
      return false;
  }
  return true;
}
// inRanges() searches them.
static_assert(sortedApart(ESCAPED) && sortedApart(MARKS));

template <size_t N>
bool inRanges(const Range (&ranges)[N], char32_t c) {
  auto it = std::upper_bound(std::begin(ranges), std::end(ranges), c,
                             [](char32_t v, const Range& r) { return v < r.first; });
  return it != std::begin(ranges) && c <= (it - 1)->last;
}

bool alwaysEscaped(char32_t c) {
  return c < 0x20 || (c >= 0x7F && c <= 0x9F) || (c & 0xFFFE) == 0xFFFE || inRanges(ESCAPED, c);
}

bool isVariationSelector(char32_t c) { return c >= 0xFE00 && c <= 0xFE0F; }

// A backslash before one of these would read as the start of an escape.
bool introducesEscape(char32_t c) {
  return c == 'n' || c == 'r' || c == 't' || c == 'x' || c == 'u' || c == 'U' || c == '[' ||
         c == '\\';
}

// Length of the UTF-8 sequence at bytes[i] (Unicode table 3-7: no overlongs, no surrogates,
// nothing above U+10FFFF) with its code point; 0 if malformed; -1 if it is a well-formed start
// cut off by the end of `bytes`.
int decode(std::string_view bytes, size_t i, char32_t& c) {
  auto at = [&](size_t k) { return static_cast<unsigned char>(bytes[k]); };
  unsigned lead = at(i);
  if (lead < 0x80) {
    c = lead;
    return 1;
  }
  int n;
  unsigned lo = 0x80, hi = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    n = 2;
    c = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    n = 3;
    c = lead & 0x0F;
    if (lead == 0xE0) lo = 0xA0;
    if (lead == 0xED) hi = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    n = 4;
    c = lead & 0x07;
    if (lead == 0xF0) lo = 0x90;
    if (lead == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  for (int k = 1; k < n; ++k) {
    if (i + k >= bytes.size()) return -1;
    unsigned b = at(i + k);
    if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) return 0;
    c = (c << 6) | (b & 0x3F);
  }
  return n;
}

// `prefix` and `digits` lowercase hex digits of `value`: \x1b, \u202e, \U000e0041.
std::string hexEscape(std::string_view prefix, int digits, uint32_t value) {
  static constexpr char HEX[] = "0123456789abcdef";
  std::string out(prefix);
  for (int shift = 4 * (digits - 1); shift >= 0; shift -= 4) out += HEX[(value >> shift) & 0xF];
  return out;
}

}  // namespace

DisplayEscaper::DisplayEscaper(DisplayOptions options) : options_(options) {}

void DisplayEscaper::emit(std::string_view piece, uint64_t inputEnd) {
  if (full_) return;
  if (out_.size() + piece.size() > limit_) {
    full_ = true;
    return;
  }
  out_.append(piece);
  consumed_ = inputEnd;
}

void DisplayEscaper::releaseBackslash(bool doubled) {
  if (!backslash_) return;
  backslash_ = false;
  emit(doubled ? "\\\\" : "\\", backslashEnd_);
  afterShown_ = !doubled;
  selectorAllowed_ = false;
  marks_ = 0;
}

// Shows the held run of spaces, which ends here: as spaces when it is short and something
// visible follows on the same line, as a counted marker otherwise.
void DisplayEscaper::releaseSpaces(bool endsLine) {
  if (spaces_ == 0) return;
  uint64_t longRun = options_.layout == DisplayLayout::LINE ? LINE_SPACE_RUN : BLOCK_SPACE_RUN;
  bool marked = endsLine || spaces_ >= longRun;
  // A backslash right before the run reads as an escape only if the run becomes a marker.
  releaseBackslash(marked);
  if (marked) {
    emit("\\[" + std::to_string(spaces_) + (spaces_ == 1 ? " space]" : " spaces]"), spacesEnd_);
  } else {
    emit(std::string(spaces_, ' '), spacesEnd_);
  }
  spaces_ = 0;
  afterShown_ = false;
  selectorAllowed_ = false;
}

void DisplayEscaper::escaped(char32_t c, uint64_t end) {
  releaseSpaces(false);
  releaseBackslash(options_.backslashes == DisplayBackslashes::MARK);
  if (c == '\n') {
    emit("\\n", end);
  } else if (c == '\r') {
    emit("\\r", end);
  } else if (c == '\t') {
    emit("\\t", end);
  } else if (c < 0x20 || c == 0x7F) {
    emit(hexEscape("\\x", 2, c), end);
  } else if (c <= 0xFFFF) {
    emit(hexEscape("\\u", 4, c), end);
  } else {
    emit(hexEscape("\\U", 8, c), end);
  }
  afterShown_ = false;
  selectorAllowed_ = false;
}

void DisplayEscaper::invalidByte(unsigned char byte, uint64_t end) {
  releaseSpaces(false);
  releaseBackslash(options_.backslashes == DisplayBackslashes::MARK);
  emit(hexEscape("\\x", 2, byte), end);
  afterShown_ = false;
  selectorAllowed_ = false;
}

void DisplayEscaper::character(char32_t c, std::string_view bytes, uint64_t end) {
  bool mark = options_.backslashes == DisplayBackslashes::MARK;
  if (c == ' ') {
    ++spaces_;
    spacesEnd_ = end;
    return;
  }
  if (c == '\n' && options_.layout == DisplayLayout::BLOCK) {
    releaseSpaces(true);
    releaseBackslash(false);
    emit("\n", end);
    afterShown_ = false;
    selectorAllowed_ = false;
    return;
  }
  bool held = spaces_ > 0 || backslash_;
  bool selector = isVariationSelector(c);
  if (selector) {
    // Emoji presentation: one U+FE0E/FE0F right after a character shown as itself.
    if ((c != 0xFE0E && c != 0xFE0F) || !selectorAllowed_ || held) return escaped(c, end);
    selectorAllowed_ = false;
    emit(bytes, end);
    return;
  }
  if (alwaysEscaped(c)) return escaped(c, end);
  if (inRanges(MARKS, c)) {
    if (held || !afterShown_ || marks_ >= MAX_MARKS) return escaped(c, end);
    ++marks_;
    emit(bytes, end);
    return;
  }
  releaseSpaces(false);
  if (c == '\\' && mark) {
    // Whether it must be doubled depends on what follows: hold it.
    releaseBackslash(true);
    backslash_ = true;
    backslashEnd_ = end;
    return;
  }
  releaseBackslash(mark && introducesEscape(c));
  emit(bytes, end);
  afterShown_ = true;
  selectorAllowed_ = true;
  marks_ = 0;
}

void DisplayEscaper::run(std::string_view bytes, bool atEnd) {
  for (size_t i = 0; i < bytes.size();) {
    char32_t c = 0;
    int n = decode(bytes, i, c);
    if (n < 0 && !atEnd) {
      carry_.assign(bytes.substr(i));
      offset_ += i;
      return;
    }
    if (n <= 0) {
      invalidByte(static_cast<unsigned char>(bytes[i]), offset_ + i + 1);
      ++i;
      continue;
    }
    character(c, bytes.substr(i, n), offset_ + i + n);
    i += n;
  }
  offset_ += bytes.size();
  carry_.clear();
}

std::string DisplayEscaper::feed(std::string_view piece) {
  if (carry_.empty()) {
    run(piece, false);
  } else {
    std::string joined = carry_;
    joined.append(piece);
    carry_.clear();
    run(joined, false);
  }
  std::string out;
  out.swap(out_);
  return out;
}

std::string DisplayEscaper::flush() {
  if (!carry_.empty()) {
    std::string rest;
    rest.swap(carry_);
    run(rest, true);
  }
  releaseSpaces(false);
  releaseBackslash(options_.backslashes == DisplayBackslashes::MARK);
  std::string out;
  out.swap(out_);
  return out;
}

void DisplayEscaper::endText() {
  if (!carry_.empty()) {
    std::string rest;
    rest.swap(carry_);
    run(rest, true);
  }
  releaseSpaces(true);
  // Nothing follows a final backslash, so it cannot start an escape.
  releaseBackslash(false);
  afterShown_ = selectorAllowed_ = false;
  marks_ = 0;
  offset_ = 0;
}

std::string DisplayEscaper::finish() {
  endText();
  std::string out;
  out.swap(out_);
  return out;
}

std::string displayText(std::string_view text, DisplayOptions options) {
  DisplayEscaper escaper(options);
  std::string out = escaper.feed(text);
  out += escaper.finish();
  return out;
}

DisplayCut displayCut(std::string_view text, size_t budget, DisplayBackslashes backslashes) {
  static constexpr std::string_view ELLIPSIS = "…";
  DisplayEscaper escaper({DisplayLayout::LINE, backslashes});
  escaper.limit_ = budget;
  escaper.run(text, true);
  escaper.endText();
  if (!escaper.full_) return {std::move(escaper.out_), 0};
  // Cut again, leaving room for the ellipsis.
  DisplayEscaper again({DisplayLayout::LINE, backslashes});
  again.limit_ = budget > ELLIPSIS.size() ? budget - ELLIPSIS.size() : 0;
  again.run(text, true);
  again.endText();
  again.out_.append(ELLIPSIS);
  return {std::move(again.out_), text.size() - again.consumed_};
}

}  // namespace chitin
