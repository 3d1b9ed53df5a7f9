// SPDX-License-Identifier: Apache-2.0
// The accessibility tree as text with refs (see snapshot.h).
// Runs in: worker (sandboxed)

#include "snapshot.h"

#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>
#include <vector>

namespace chitin::browser {

using nlohmann::json;

namespace {

std::string valueOf(const json& node, const char* key) {
  auto it = node.find(key);
  if (it == node.end() || !it->is_object()) return "";
  auto value = it->find("value");
  if (value == it->end()) return "";
  if (value->is_string()) return value->get<std::string>();
  if (value->is_boolean() || value->is_number()) return value->dump();
  return "";
}

// One line of text: control characters become spaces, long names are cut on a UTF-8 boundary.
std::string clean(const std::string& text) {
  std::string out;
  for (unsigned char c : text) out += c < 0x20 || c == 0x7f ? ' ' : static_cast<char>(c);
  if (out.size() > MAX_SNAPSHOT_NAME_BYTES) {
    size_t cut = MAX_SNAPSHOT_NAME_BYTES;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
    out = out.substr(0, cut) + "…";
  }
  return out;
}

std::string quotedText(const std::string& text) {
  std::string out = "\"";
  for (char c : clean(text)) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// Roles that only group other nodes: shown when they carry a name, skipped otherwise.
const std::set<std::string> CONTAINERS = {"generic",   "none",          "presentation", "group",
                                          "LineBreak", "InlineTextBox", "paragraph",    "div",
                                          "section",   "Section",       "RootWebArea",  "WebArea"};

constexpr int MAX_LEVELS = 256;

struct Walker {
  const std::unordered_map<std::string, const json*>& byId;
  Snapshot& out;
  size_t lines = 0;
  std::set<std::string> visited;

  void walk(const json& node, int depth, int level) {
    // Bounds before recursion: a page can nest elements as deep as it likes.
    if (out.truncated || level > MAX_LEVELS) return;
    std::string id = node.contains("nodeId") && node["nodeId"].is_string()
                         ? node["nodeId"].get<std::string>()
                         : "";
    if (!visited.insert(id).second) return;  // a cycle or a repeated child
    bool ignored = node.value("ignored", false);
    std::string role = valueOf(node, "role");
    std::string name = valueOf(node, "name");
    bool shown = !ignored && !(CONTAINERS.count(role) && name.empty()) && role != "InlineTextBox";
    if (role == "StaticText" && name.empty()) shown = false;
    if (shown) {
      if (++lines > MAX_SNAPSHOT_LINES) {
        out.truncated = true;
        return;
      }
      std::string line(static_cast<size_t>(depth) * 2, ' ');
      if (role == "StaticText") {
        line += "text " + quotedText(name);
      } else {
        auto backend = node.find("backendDOMNodeId");
        if (backend != node.end() && backend->is_number_integer()) {
          uint32_t ref = static_cast<uint32_t>(out.refs.size() + 1);
          out.refs[ref] = backend->get<int64_t>();
          line += "[" + std::to_string(ref) + "] ";
        }
        line += clean(role.empty() ? "node" : role);
        if (!name.empty()) line += " " + quotedText(name);
        std::string value = valueOf(node, "value");
        if (!value.empty()) line += " value=" + quotedText(value);
      }
      out.text += line + "\n";
    }
    auto children = node.find("childIds");
    if (children == node.end() || !children->is_array()) return;
    for (auto& child : *children) {
      if (!child.is_string()) continue;
      auto found = byId.find(child.get<std::string>());
      if (found != byId.end()) walk(*found->second, shown ? depth + 1 : depth, level + 1);
    }
  }
};

}  // namespace

Snapshot formatSnapshot(const json& nodes) {
  Snapshot out;
  if (!nodes.is_array()) return out;
  std::unordered_map<std::string, const json*> byId;
  std::vector<const json*> roots;
  for (auto& node : nodes) {
    if (!node.is_object() || !node.contains("nodeId") || !node["nodeId"].is_string()) continue;
    byId.emplace(node["nodeId"].get<std::string>(), &node);
    if (!node.contains("parentId")) roots.push_back(&node);
  }
  Walker walker{byId, out};
  for (auto* root : roots) walker.walk(*root, 0, 0);
  if (out.truncated)
    out.text += "[snapshot cut at " + std::to_string(MAX_SNAPSHOT_LINES) + " lines]\n";
  return out;
}

}  // namespace chitin::browser
