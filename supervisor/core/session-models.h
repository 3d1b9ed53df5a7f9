// SPDX-License-Identifier: Apache-2.0
// The model each session switched to with `/model NAME`, kept across restarts.
// Runs in: supervisor
//
// One small JSON file, $CHITIN_HOME/state/session-models.json ({"version": 1, "sessions":
// {"<session key>": "<model>"}}), written whole (temporary file, fsync, rename), so a crash
// leaves the old choice or the new one. Only names the config offers are ever stored; a name
// the config no longer offers is ignored when read (the session is back on the default).

#pragma once

#include <map>
#include <string>

namespace chitin {

class SessionModels {
 public:
  // Loads `path`. A missing file is an empty store; one that does not parse is logged and
  // ignored (every session uses the default model) and replaced at the next change.
  explicit SessionModels(std::string path);

  // The session's chosen model, "" for the default.
  std::string get(const std::string& sessionKey) const;
  // Records a choice ("" goes back to the default). Throws std::runtime_error, naming the
  // file, when it cannot be written; the choice is then not made.
  void set(const std::string& sessionKey, const std::string& model);

 private:
  std::string path_;
  std::map<std::string, std::string> models_;
};

}  // namespace chitin
