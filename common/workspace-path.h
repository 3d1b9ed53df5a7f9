// SPDX-License-Identifier: Apache-2.0
// The rules that turn a model-supplied path into a clean path relative to the agent's workspace.
// Runs in: supervisor and worker (sandboxed) -- pure functions, no system calls.
//
// The model may write `foo/bar.txt`, `./foo` or `/workspace/foo`. Everything is normalised
// lexically into one clean relative form (no empty, `.` or `..` components) so that the path the
// policy engine decides on is byte for byte the path the worker opens. Lexical checks are only
// the first wall: the file workers still open with openat2(RESOLVE_BENEATH) so that symlinks
// inside the workspace cannot lead out of it, and the sandbox mounts nothing else.

#pragma once

#include <kj/one-of.h>
#include <kj/string.h>

namespace chitin {

// Where the agent's workspace is mounted inside every tool worker's sandbox.
constexpr const char WORKSPACE_MOUNT[] = "/workspace";

// PATH_MAX: a longer path cannot be opened anyway, and rejecting it early keeps messages short.
constexpr size_t MAX_WORKSPACE_PATH_BYTES = 4096;

// A path that was refused, with a message for the model that names the path and says why.
struct PathRejection {
  kj::String message;
};

// Returns the clean relative path ("." for the workspace root itself, otherwise components
// joined by single slashes), or why it was refused: empty, contains a NUL byte, longer than
// MAX_WORKSPACE_PATH_BYTES, absolute but not under WORKSPACE_MOUNT, or leaving the workspace
// root at any step of its lexical normalisation (`../x`, `a/../../x`).
kj::OneOf<kj::String, PathRejection> checkWorkspacePath(kj::StringPtr path);

// `path` quoted for a message: control bytes escaped, long paths shortened in the middle, so
// an error message stays one readable line whatever the model sent.
kj::String displayPath(kj::StringPtr path);

}  // namespace chitin
