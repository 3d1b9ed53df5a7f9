// SPDX-License-Identifier: Apache-2.0
// Snapshot tree names and manifests (see snapshot-names.h).
// Runs in: supervisor

#include "snapshot-names.h"

namespace chitin::audit::names {

namespace {

constexpr char HEX[] = "0123456789ABCDEF";

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;  // lower case is not canonical
}

bool needsEscape(unsigned char c) { return c == '%' || c < 0x20 || c == 0x7f; }

// Does git (libgit2, git itself on NTFS/HFS+) take this name for `.git` or one of its aliases?
// Checked loosely on purpose: lower-cased, non-ASCII bytes (HFS+ ignorables) dropped.
bool looksLikeDotGit(std::string_view name) {
  std::string folded;
  for (unsigned char c : name) {
    if (c >= 0x80) continue;
    folded += static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
    if (folded.size() == 4) break;
  }
  return folded == ".git" || folded == "git~";
}

void escape(std::string& out, unsigned char c) {
  out += '%';
  out += HEX[c >> 4];
  out += HEX[c & 15];
}

std::string cleanReason(std::string_view why) {
  std::string out(why);
  for (char& c : out)
    if (c == '\n' || c == '\t' || c == '\r') c = ' ';
  return out;
}

}  // namespace

std::string encodeName(std::string_view name) {
  std::string out;
  out.reserve(name.size() + 2);
  bool first = true;
  bool dotGit = looksLikeDotGit(name);
  for (unsigned char c : name) {
    if (needsEscape(c) || (first && dotGit)) {
      escape(out, c);
    } else {
      out += static_cast<char>(c);
    }
    first = false;
  }
  return out;
}

std::optional<std::string> decodeName(std::string_view stored) {
  std::string out;
  for (size_t i = 0; i < stored.size(); ++i) {
    char c = stored[i];
    if (c == '%') {
      if (i + 2 >= stored.size()) return std::nullopt;
      int hi = hexValue(stored[i + 1]), lo = hexValue(stored[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += c;
    }
  }
  if (out.empty() || out == "." || out == ".." || out.find('/') != std::string::npos ||
      out.find('\0') != std::string::npos)
    return std::nullopt;
  if (encodeName(out) != stored) return std::nullopt;  // only the canonical spelling
  return out;
}

std::string encodePath(std::string_view path) {
  if (path == ".") return ".";
  std::string out;
  size_t pos = 0;
  for (;;) {
    size_t slash = path.find('/', pos);
    out += encodeName(path.substr(pos, slash == std::string_view::npos ? slash : slash - pos));
    if (slash == std::string_view::npos) return out;
    out += '/';
    pos = slash + 1;
  }
}

std::optional<std::string> decodePath(std::string_view stored) {
  if (stored == ".") return std::string(".");
  std::string out;
  size_t pos = 0;
  for (;;) {
    size_t slash = stored.find('/', pos);
    auto part =
        decodeName(stored.substr(pos, slash == std::string_view::npos ? slash : slash - pos));
    if (!part) return std::nullopt;
    out += *part;
    if (slash == std::string_view::npos) return out;
    out += '/';
    pos = slash + 1;
  }
}

std::string writeManifest(const Manifest& m) {
  std::string out = "chitin-snapshot 2\n";
  if (m.incomplete) out += "incomplete\t" + cleanReason(m.incompleteReason) + "\n";
  for (const auto& s : m.skipped)
    out += "skipped\t" + encodePath(s.path) + "\t" + cleanReason(s.reason) + "\n";
  return out;
}

std::optional<Manifest> readManifest(std::string_view text) {
  constexpr std::string_view HEADER = "chitin-snapshot 2\n";
  if (text.substr(0, HEADER.size()) != HEADER) return std::nullopt;
  Manifest m;
  size_t pos = HEADER.size();
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) return std::nullopt;
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    size_t tab = line.find('\t');
    if (tab == std::string_view::npos) return std::nullopt;
    std::string_view key = line.substr(0, tab), rest = line.substr(tab + 1);
    if (key == "incomplete") {
      m.incomplete = true;
      m.incompleteReason = std::string(rest);
    } else if (key == "skipped") {
      size_t tab2 = rest.find('\t');
      if (tab2 == std::string_view::npos) return std::nullopt;
      auto path = decodePath(rest.substr(0, tab2));
      if (!path) return std::nullopt;
      m.skipped.push_back({*path, std::string(rest.substr(tab2 + 1))});
    } else {
      return std::nullopt;
    }
  }
  return m;
}

}  // namespace chitin::audit::names
