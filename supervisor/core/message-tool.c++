// SPDX-License-Identifier: Apache-2.0
// The `message` tool (see message-tool.h).
// Runs in: supervisor

#include "message-tool.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kj/debug.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <regex>

#include "display-text.h"
#include "taint.h"
#include "utf8.h"
#include "workspace-path.h"

namespace chitin {

namespace {

using nlohmann::json;

// A MIME type from the file name, for platforms that show images and documents differently.
std::string mimeTypeFor(const std::string& name) {
  static const std::pair<const char*, const char*> types[] = {
      {".png", "image/png"},         {".jpg", "image/jpeg"},      {".jpeg", "image/jpeg"},
      {".gif", "image/gif"},         {".webp", "image/webp"},     {".pdf", "application/pdf"},
      {".txt", "text/plain"},        {".md", "text/markdown"},    {".csv", "text/csv"},
      {".json", "application/json"}, {".mp3", "audio/mpeg"},      {".ogg", "audio/ogg"},
      {".mp4", "video/mp4"},         {".zip", "application/zip"}, {".html", "text/html"},
  };
  std::string lower = name;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& [suffix, type] : types) {
    std::string s = suffix;
    if (lower.size() > s.size() && lower.compare(lower.size() - s.size(), s.size(), s) == 0)
      return type;
  }
  return "application/octet-stream";
}

}  // namespace

std::string parseRecipient(const std::string& to, std::string& channel, std::string& chatId) {
  static const std::regex channelPattern("[a-z0-9_-]{1,32}");
  size_t colon = to.find(':');
  if (colon == std::string::npos)
    return "argument \"to\" must be \"<channel>:<chat id>\", e.g. \"telegram:123456789\"";
  channel = to.substr(0, colon);
  chatId = to.substr(colon + 1);
  if (!std::regex_match(channel, channelPattern))
    return "argument \"to\": the channel must be 1-32 of a-z 0-9 _ - (e.g. telegram, irc)";
  if (chatId.empty() || chatId.size() > 256)
    return "argument \"to\": the chat id must be 1-256 bytes";
  if (!isValidUtf8(kj::ArrayPtr<const char>(chatId.data(), chatId.size())))
    return "argument \"to\": the chat id is not valid UTF-8";
  for (unsigned char c : chatId)
    if (c < 0x20 || c == 0x7f) return "argument \"to\": the chat id contains a control character";
  if (chatId.front() == ' ' || chatId.back() == ' ')
    return "argument \"to\": the chat id must not start or end with a space";
  return "";
}

std::string canonicalRecipient(const std::string& to) {
  std::string channel, chatId;
  if (!parseRecipient(to, channel, chatId).empty()) return to;
  if (channel == "whatsapp") {
    static const std::string phoneServer = "@s.whatsapp.net";
    std::string user = chatId;
    if (user.size() > phoneServer.size() &&
        user.compare(user.size() - phoneServer.size(), phoneServer.size(), phoneServer) == 0)
      user.resize(user.size() - phoneServer.size());
    else if (user.front() == '+')
      user.erase(0, 1);
    bool digits =
        !user.empty() && user.size() <= 20 &&
        std::all_of(user.begin(), user.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (digits) return channel + ":" + user;
  }
  return to;
}

std::string checkMessageArguments(const json& args) {
  auto action = args.find("action");
  if (action != args.end() && !action->is_null() &&
      !(action->is_string() && action->get<std::string>() == "send"))
    return "argument \"action\": only \"send\" is supported";
  auto to = args.find("to");
  if (to == args.end() || !to->is_string())
    return "missing required argument \"to\" (a string, \"<channel>:<chat id>\")";
  std::string channel, chatId;
  std::string problem = parseRecipient(to->get<std::string>(), channel, chatId);
  if (!problem.empty()) return problem;
  auto text = args.find("text");
  bool hasText = text != args.end() && !text->is_null();
  if (hasText) {
    if (!text->is_string()) return "argument \"text\" must be a string";
    const auto& t = text->get_ref<const std::string&>();
    if (t.size() > MAX_MESSAGE_TEXT_BYTES) return "argument \"text\" is longer than 64 KiB";
    if (t.find('\0') != std::string::npos) return "argument \"text\" contains a NUL byte";
  }
  auto media = args.find("media");
  size_t files = 0;
  if (media != args.end() && !media->is_null()) {
    // One path, or a list of them.
    if (media->is_string()) {
      files = 1;
    } else if (media->is_array()) {
      if (media->size() > MAX_MESSAGE_FILES)
        return "argument \"media\": at most " + std::to_string(MAX_MESSAGE_FILES) + " files";
      for (const auto& m : *media)
        if (!m.is_string()) return "argument \"media\" must be a path or a list of paths";
      files = media->size();
    } else {
      return "argument \"media\" must be a path or a list of paths";
    }
  }
  if ((!hasText || text->get_ref<const std::string&>().empty()) && files == 0)
    return "a message needs \"text\" or \"media\"";
  return "";
}

std::string readMessageFiles(const std::string& workspaceDir, const std::vector<std::string>& media,
                             std::vector<OutgoingFile>& out) {
  int root = ::open(workspaceDir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) return "the workspace cannot be opened";
  KJ_DEFER(::close(root));
  size_t total = 0;
  for (const auto& raw : media) {
    auto checked = checkWorkspacePath(raw.c_str());
    if (checked.is<PathRejection>()) return checked.get<PathRejection>().message.cStr();
    std::string rel = checked.get<kj::String>().cStr();
    std::string shown = displayPath(rel.c_str()).cStr();
    long fd = openBeneath(root, rel.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return "cannot open " + shown + ": " + std::strerror(errno);
    KJ_DEFER(::close(static_cast<int>(fd)));
    struct stat st {};
    if (::fstat(static_cast<int>(fd), &st) != 0 || !S_ISREG(st.st_mode))
      return shown + " is not a regular file";
    if (static_cast<uint64_t>(st.st_size) > MAX_MESSAGE_FILE_BYTES)
      return shown + " is larger than 20 MiB";
    total += static_cast<size_t>(st.st_size);
    if (total > MAX_MESSAGE_TOTAL_BYTES) return "the files together are larger than 50 MiB";
    OutgoingFile file;
    file.name = rel.substr(rel.rfind('/') + 1);
    file.mimeType = mimeTypeFor(file.name);
    file.data.resize(static_cast<size_t>(st.st_size));
    size_t got = 0;
    while (got < file.data.size()) {
      ssize_t n = ::read(static_cast<int>(fd), file.data.data() + got, file.data.size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    file.data.resize(got);  // a file that shrank meanwhile: what was there
    out.push_back(std::move(file));
  }
  return "";
}

kj::Promise<ToolOutcome> MessageTool::run(const std::string& tool, const std::string& argumentsJson,
                                          const std::string& workspaceDir,
                                          const std::vector<std::string>& hiddenDirs,
                                          CallScope* scope) {
  if (tool != "message") return inner_.run(tool, argumentsJson, workspaceDir, hiddenDirs, scope);

  json args =
      json::parse(argumentsJson.empty() ? std::string("{}") : argumentsJson, nullptr, false);
  std::string problem =
      args.is_object() ? checkMessageArguments(args) : "arguments must be a JSON object";
  if (!problem.empty()) return ToolOutcome{ToolOutcome::Status::ERROR, "error: " + problem};

  OutgoingMessage message;
  // Sent where the policy decided (guard.c++ decides on the same canonical recipient).
  parseRecipient(canonicalRecipient(args["to"].get<std::string>()), message.channel,
                 message.chatId);
  if (args.contains("text") && args["text"].is_string()) message.text = args["text"];
  std::vector<std::string> media;
  if (args.contains("media") && args["media"].is_string()) media.push_back(args["media"]);
  if (args.contains("media") && args["media"].is_array())
    for (const auto& m : args["media"]) media.push_back(m.get<std::string>());
  problem = readMessageFiles(workspaceDir, media, message.files);
  if (!problem.empty()) return ToolOutcome{ToolOutcome::Status::ERROR, "error: " + problem};
  if (sender_ == nullptr)
    return ToolOutcome{ToolOutcome::Status::ERROR,
                       "error: no chat channel is configured on this instance, so nothing was "
                       "sent"};

  std::string target = message.channel + ":" + message.chatId;
  size_t fileCount = message.files.size();
  return sender_->sendMessage(std::move(message))
      .then(
          [target, fileCount](std::vector<std::string> ids) {
            ToolOutcome outcome;
            outcome.status = ToolOutcome::Status::OK;
            outcome.content = "sent to " + target + " (" + std::to_string(ids.size()) +
                              (ids.size() == 1 ? " message" : " messages") +
                              (fileCount ? ", " + std::to_string(fileCount) + " file(s)" : "") +
                              ")";
            return outcome;
          },
          [target](kj::Exception&& e) {
            return ToolOutcome{ToolOutcome::Status::ERROR, "error: not sent to " + target + ": " +
                                                               std::string(e.getDescription())};
          });
}

}  // namespace chitin
