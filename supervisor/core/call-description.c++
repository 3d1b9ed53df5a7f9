// SPDX-License-Identifier: Apache-2.0
// What the owner is shown of a tool call (see call-description.h).
// Runs in: supervisor

#include "call-description.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <vector>

#include "display-text.h"

namespace chitin {

namespace {

using nlohmann::json;

// Display bytes each argument may take on the one line (the whole line stays under ~700).
constexpr size_t COMMAND_BUDGET = 400;
constexpr size_t PATH_BUDGET = 160;
constexpr size_t WORKDIR_BUDGET = 120;
constexpr size_t TEXT_BUDGET = 200;  // a write's content, an edit's old and new text
constexpr size_t OTHER_BUDGET = 400;

// Arguments that hold file text: always shown as a block in the full view.
bool isFileText(const std::string& key) {
  return key == "content" || key == "oldText" || key == "newText";
}

std::string count(uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

uint64_t lineCount(std::string_view text) {
  uint64_t n = 0;
  for (char c : text) n += c == '\n';
  return n + (!text.empty() && text.back() != '\n');
}

std::string sizeOf(std::string_view text) {
  if (text.empty()) return "empty";
  return count(text.size(), "byte", "bytes") + ", " + count(lineCount(text), "line", "lines");
}

// The one line, built from our own words and budgeted, escaped arguments.
class Line {
 public:
  Line& words(std::string_view ours) {
    text_ += ours;
    return *this;
  }
  Line& field(std::string_view untrusted, size_t budget,
              DisplayBackslashes backslashes = DisplayBackslashes::MARK) {
    DisplayCut cut = displayCut(untrusted, budget, backslashes);
    text_ += cut.text;
    omitted_ += cut.omittedBytes;
    return *this;
  }
  CallDescription done(std::string full) {
    return CallDescription{std::move(text_), omitted_, std::move(full)};
  }

 private:
  std::string text_;
  uint64_t omitted_ = 0;
};

// `name: value` for one argument. Text with lines (and file text always) becomes a block under
// a heading with its size, each line indented by "  | ", so the end of every line is visible.
void fullArgument(std::string& out, const std::string& name, const json& value) {
  out += displayLine(name) + ":";
  if (!value.is_string()) {
    // JSON text: its backslashes are JSON's escapes already.
    out += " " +
           displayText(value.dump(-1, ' ', false, json::error_handler_t::replace),
                       {DisplayLayout::LINE, DisplayBackslashes::AS_IS}) +
           "\n";
    return;
  }
  const std::string& text = value.get_ref<const std::string&>();
  if (!isFileText(name) && text.find('\n') == std::string::npos) {
    out += " " + displayLine(text) + "\n";
    return;
  }
  bool finalNewline = !text.empty() && text.back() == '\n';
  out += " " + sizeOf(text);
  if (!text.empty()) out += finalNewline ? ", ends with a newline" : ", no newline at the end";
  out += "\n";
  if (text.empty()) return;
  std::string block = displayBlock(std::string_view(text).substr(0, text.size() - finalNewline));
  out += "  | ";
  for (char c : block) {
    out += c;
    if (c == '\n') out += "  | ";
  }
  out += "\n";
}

// The tool, then its arguments: the ones the tool defines in their order, then any others.
std::string fullCall(const std::string& tool, const json& args) {
  std::string out = "tool: " + displayLine(tool) + "\n";
  if (!args.is_object()) {
    fullArgument(out, "arguments", args);
    return out;
  }
  std::vector<std::string> order;
  if (tool == "exec") order = {"command", "workdir", "timeoutSeconds"};
  if (tool == "read") order = {"path"};
  if (tool == "write") order = {"path", "content"};
  if (tool == "edit") order = {"path", "oldText", "newText"};
  if (tool == "message") order = {"action", "to", "text", "media"};
  for (const std::string& key : order) {
    if (auto it = args.find(key); it != args.end()) fullArgument(out, key, *it);
  }
  for (auto it = args.begin(); it != args.end(); ++it) {
    if (std::find(order.begin(), order.end(), it.key()) == order.end())
      fullArgument(out, it.key(), it.value());
  }
  return out;
}

}  // namespace

std::string CallDescription::lineWithHint(std::string_view whereToSeeAll) const {
  if (omittedBytes == 0) return line;
  return line + " [+" + count(omittedBytes, "byte", "bytes") + " not shown; " +
         std::string(whereToSeeAll) + "]";
}

CallDescription describeCall(const std::string& tool, const json& args) {
  auto str = [&](const char* key) {
    auto it = args.is_object() ? args.find(key) : args.end();
    return it != args.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  Line line;
  if (tool == "exec") {
    line.words("exec: ").field(str("command"), COMMAND_BUDGET);
    if (!str("workdir").empty())
      line.words("  (in ").field(str("workdir"), WORKDIR_BUDGET).words(")");
  } else if (tool == "write") {
    std::string content = str("content");
    line.words("write ").field(str("path"), PATH_BUDGET).words(" (" + sizeOf(content) + ")");
    if (!content.empty()) line.words(": ").field(content, TEXT_BUDGET);
  } else if (tool == "edit") {
    line.words("edit ").field(str("path"), PATH_BUDGET).words(": replace \"");
    line.field(str("oldText"), TEXT_BUDGET).words("\" with \"");
    line.field(str("newText"), TEXT_BUDGET).words("\"");
  } else if (tool == "read") {
    line.words("read ").field(str("path"), PATH_BUDGET);
  } else if (tool == "message") {
    // Who gets it first, then the words: the owner judges a send by both.
    std::string text = str("text");
    line.words("message to ").field(str("to"), PATH_BUDGET).words(" (" + sizeOf(text) + ")");
    if (!text.empty()) line.words(": ").field(text, TEXT_BUDGET);
    auto media = args.is_object() ? args.find("media") : args.end();
    if (media != args.end() && !media->is_null())
      line.words(" + files ")
          .field(media->dump(-1, ' ', false, json::error_handler_t::replace), PATH_BUDGET,
                 DisplayBackslashes::AS_IS);
  } else {
    line.field(tool, PATH_BUDGET).words(" ");
    line.field(args.dump(-1, ' ', false, json::error_handler_t::replace), OTHER_BUDGET,
               DisplayBackslashes::AS_IS);
  }
  return line.done(fullCall(tool, args));
}

}  // namespace chitin
