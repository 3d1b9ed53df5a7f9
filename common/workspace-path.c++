// SPDX-License-Identifier: Apache-2.0
// Lexical workspace path rules (see workspace-path.h).
// Runs in: supervisor and worker (sandboxed)

#include "workspace-path.h"

#include <kj/vector.h>
#include <string.h>

namespace chitin {

namespace {

// Long paths are shown as head…tail so the message stays one readable line.
constexpr size_t DISPLAY_MAX_BYTES = 160;
constexpr size_t DISPLAY_HEAD_BYTES = 100;
constexpr size_t DISPLAY_TAIL_BYTES = 50;

bool isUtf8Continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

void appendEscaped(kj::Vector<char>& out, kj::ArrayPtr<const char> bytes) {
  static constexpr char HEX[] = "0123456789abcdef";
  for (char c : bytes) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out.add('\\');
      out.add(c);
    } else if (c == '\n') {
      out.addAll(kj::StringPtr("\\n"));
    } else if (c == '\t') {
      out.addAll(kj::StringPtr("\\t"));
    } else if (u < 0x20 || u == 0x7f) {
      out.addAll(kj::StringPtr("\\x"));
      out.add(HEX[u >> 4]);
      out.add(HEX[u & 0xf]);
    } else {
      out.add(c);
    }
  }
}

PathRejection reject(kj::StringPtr why, kj::StringPtr path) {
  return PathRejection{kj::str(why, ": ", displayPath(path))};
}

bool equals(kj::ArrayPtr<const char> component, kj::StringPtr word) {
  return component.size() == word.size() &&
         memcmp(component.begin(), word.begin(), word.size()) == 0;
}

}  // namespace

kj::String displayPath(kj::StringPtr path) {
  kj::Vector<char> out(path.size() + 8);
  out.add('"');
  if (path.size() <= DISPLAY_MAX_BYTES) {
    appendEscaped(out, path.asArray());
  } else {
    // Cut on UTF-8 character boundaries so the message itself stays valid UTF-8.
    size_t headEnd = DISPLAY_HEAD_BYTES;
    while (headEnd > 0 && isUtf8Continuation(path[headEnd])) --headEnd;
    size_t tailStart = path.size() - DISPLAY_TAIL_BYTES;
    while (tailStart < path.size() && isUtf8Continuation(path[tailStart])) ++tailStart;
    appendEscaped(out, path.asArray().slice(0, headEnd));
    out.addAll(kj::StringPtr("\xe2\x80\xa6"));  // U+2026 HORIZONTAL ELLIPSIS
    appendEscaped(out, path.asArray().slice(tailStart, path.size()));
  }
  out.add('"');
  out.add('\0');
  return kj::String(out.releaseAsArray());
}

kj::OneOf<kj::String, PathRejection> checkWorkspacePath(kj::StringPtr path) {
  if (path.size() == 0) {
    return PathRejection{
        kj::str("path is empty (expected a path relative to the workspace, "
                "e.g. \"notes/todo.md\")")};
  }
  if (path.size() > MAX_WORKSPACE_PATH_BYTES) {
    return reject(kj::str("path is too long (", path.size(), " bytes, at most ",
                          MAX_WORKSPACE_PATH_BYTES, ")"),
                  path);
  }
  if (memchr(path.begin(), '\0', path.size()) != nullptr) {
    return reject("path contains a NUL byte", path);
  }

  // Split on '/', dropping empty and "." components.
  kj::Vector<kj::ArrayPtr<const char>> components;
  const char* start = path.begin();
  for (const char* p = path.begin();; ++p) {
    if (p == path.end() || *p == '/') {
      kj::ArrayPtr<const char> component(start, p);
      if (component.size() > 0 && !equals(component, ".")) components.add(component);
      if (p == path.end()) break;
      start = p + 1;
    }
  }

  // An absolute path must name the mount point first; after that it is read like a relative
  // one, so "/workspace/../workspace/x" is refused just like "../workspace/x".
  size_t first = 0;
  if (path[0] == '/') {
    kj::StringPtr mountName = WORKSPACE_MOUNT + 1;
    if (components.size() == 0 || !equals(components[0], mountName)) {
      return reject(kj::str("absolute path outside the workspace (use a path relative to the "
                            "workspace, or one under ",
                            WORKSPACE_MOUNT, "/)"),
                    path);
    }
    first = 1;
  }

  kj::Vector<kj::ArrayPtr<const char>> kept(components.size());
  for (size_t i = first; i < components.size(); ++i) {
    if (equals(components[i], "..")) {
      if (kept.size() == 0) return reject("path escapes the workspace", path);
      kept.removeLast();
    } else {
      kept.add(components[i]);
    }
  }

  if (kept.size() == 0) return kj::str(".");
  kj::Vector<char> out(path.size() + 1);
  for (size_t i = 0; i < kept.size(); ++i) {
    if (i > 0) out.add('/');
    out.addAll(kept[i]);
  }
  out.add('\0');
  return kj::String(out.releaseAsArray());
}

}  // namespace chitin
