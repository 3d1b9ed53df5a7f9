// SPDX-License-Identifier: Apache-2.0
// The page as the model reads it: Chromium's accessibility tree (Accessibility.getFullAXTree)
// as indented text, one line per meaningful node, each element numbered so that the model can
// name it in `click` and `type`: `[12] button "Sign in"`.
// Runs in: worker (sandboxed)

#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>

namespace chitin::browser {

struct Snapshot {
  std::string text;
  std::map<uint32_t, int64_t> refs;  // ref -> backendDOMNodeId
  bool truncated = false;
};

constexpr size_t MAX_SNAPSHOT_LINES = 2000;
constexpr size_t MAX_SNAPSHOT_NAME_BYTES = 200;

// `nodes` is the `nodes` array of getFullAXTree's result (untrusted: any shape is tolerated,
// nodes of an unexpected shape are skipped). Ignored nodes and unnamed containers are left out
// (their children are kept); text runs show without a ref.
Snapshot formatSnapshot(const nlohmann::json& nodes);

}  // namespace chitin::browser
