// SPDX-License-Identifier: Apache-2.0
// Untrusted text made safe to show a person: on a terminal, in the web chat, on a chat channel.
// Runs in: supervisor, CLI and workers (pure code, no I/O, no dependencies beyond the standard
// library, so the `chitin` binary links it without KJ)
//
// What a model, a worker or a remote sender wrote can carry bytes that act on the viewer
// instead of being read by them: terminal escape sequences (ESC, CSI, OSC 52 clipboard
// writes), bidi controls that reorder what is shown, characters that show nothing at all, and
// long runs of spaces that push the rest of a line out of view. Every one of them is shown
// *visibly*, as an escape that starts with a backslash:
//
//   \n \r \t             newline (one-line layout only), carriage return, tab
//   \x1b                 any other C0 control (U+0000-001F) and DEL (U+007F)
//   \u202e  \U000e0041   C1 controls (U+0080-009F); bidi controls (U+061C, U+200E/F,
//                        U+202A-202E, U+2066-2069); zero-width and other invisible or format
//                        characters (U+00AD, U+034F, U+200B-200D, U+2060-2064, U+206A-206F,
//                        U+FEFF, U+180E, U+FFF9-FFFB, tag characters U+E0000-E007F, Hangul
//                        fillers, U+2800, ...); spaces that are not U+0020 (U+00A0, U+2000-200A,
//                        U+202F, U+205F, U+3000, ...); line and paragraph separators
//                        (U+2028/2029); private use and noncharacters; variation selectors
//                        (one U+FE0E/FE0F right after a shown character is kept: emoji
//                        presentation); combining marks beyond the second on one character
//   \xff                 a byte that is not part of well-formed UTF-8 (always >= \x80, so it
//                        cannot be confused with a control, which is always < \x80)
//   \[200 spaces]        a run of spaces long enough to push text out of view (16 or more on
//                        one line, 32 or more in a block), and any run that ends a line or the
//                        text (trailing spaces are otherwise invisible)
//   \\                   a literal backslash, where it would otherwise read as one of the
//                        escapes above (before n r t x u U [ or another escape); elsewhere a
//                        backslash is shown as itself, so shell commands stay readable
//
// So the display is unambiguous: reading it back, `\\` is a backslash, any other escape is the
// character it names, and everything else is itself. Nothing else is changed: homoglyphs
// (Cyrillic "а" for Latin "a") are shown as they are.
//
// One pass, no recursion, no backtracking: time and memory are linear in the input; the output
// is at most 6 bytes per input byte (`\x1b` for one byte, `\[1 space]\n` for two), plus 10 for
// a lone final space.

#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace chitin {

enum class DisplayLayout {
  LINE,   // one line: a newline is shown as \n
  BLOCK,  // several lines: a newline stays a line break
};

enum class DisplayBackslashes {
  MARK,   // doubled where needed (above): for raw text from a model, a worker or a sender
  AS_IS,  // left alone: for text whose backslashes already are escapes (JSON text, or display
          // text made by this module on the other side of the gateway). Display text shown this
          // way comes out unchanged, so nothing is escaped twice; a control that is still in it
          // is escaped all the same.
};

struct DisplayOptions {
  DisplayLayout layout = DisplayLayout::LINE;
  DisplayBackslashes backslashes = DisplayBackslashes::MARK;
};

// `text` as display text (see the top of this file).
std::string displayText(std::string_view text, DisplayOptions options = {});
inline std::string displayLine(std::string_view text) { return displayText(text); }
inline std::string displayBlock(std::string_view text) {
  return displayText(text, {DisplayLayout::BLOCK, DisplayBackslashes::MARK});
}

// At most `budget` bytes of display text (one-line layout) for `text`. When it does not all fit,
// the cut falls between two characters or escapes, never inside one, the text ends with "…",
// and `omittedBytes` says how many bytes of `text` are not shown.
struct DisplayCut {
  std::string text;
  uint64_t omittedBytes = 0;
};
DisplayCut displayCut(std::string_view text, size_t budget,
                      DisplayBackslashes backslashes = DisplayBackslashes::MARK);

// The same escaping for text that arrives in pieces (streamed reply deltas): a piece may end in
// the middle of a UTF-8 sequence, a run of spaces or before the character that decides how a
// backslash is shown. What `feed` returns can be written at once; `finish` returns the rest.
// Feeding the pieces and finishing gives exactly displayText() of their concatenation.
class DisplayEscaper {
 public:
  explicit DisplayEscaper(DisplayOptions options = {});

  std::string feed(std::string_view piece);
  // Everything held back, before the output pauses (another stream takes the terminal): held
  // spaces come out as spaces (or their marker), a held backslash as `\\`.
  std::string flush();
  // The end of the text. The escaper can be used again afterwards for a new text.
  std::string finish();

 private:
  friend DisplayCut displayCut(std::string_view, size_t, DisplayBackslashes);

  void run(std::string_view bytes, bool atEnd);
  void character(char32_t c, std::string_view bytes, uint64_t end);
  void escaped(char32_t c, uint64_t end);
  void invalidByte(unsigned char byte, uint64_t end);
  void releaseSpaces(bool endsLine);
  void releaseBackslash(bool doubled);
  void emit(std::string_view piece, uint64_t inputEnd);
  void endText();

  DisplayOptions options_;
  std::string out_;
  std::string carry_;             // an incomplete UTF-8 sequence at the end of the last piece
  uint64_t offset_ = 0;           // input bytes before the current piece (and carry_)
  uint64_t spaces_ = 0;           // a run of spaces not shown yet
  uint64_t spacesEnd_ = 0;        // input offset just after that run
  bool backslash_ = false;        // a backslash not shown yet (the next character decides how)
  uint64_t backslashEnd_ = 0;     // input offset just after it
  bool afterShown_ = false;       // the last thing shown is a character shown as itself
  bool selectorAllowed_ = false;  // ... and a variation selector may still follow it
  unsigned marks_ = 0;            // combining marks shown on that character
  // displayCut(): the output may not grow past `limit_`; once a piece did not fit, nothing more
  // is shown and `consumed_` is the input that was.
  size_t limit_ = SIZE_MAX;
  bool full_ = false;
  uint64_t consumed_ = 0;
};

}  // namespace chitin
