// SPDX-License-Identifier: Apache-2.0
// Helpers for profile variables, shared by profile loading and argv compilation.
// Runs in: supervisor

#pragma once

#include <set>
#include <string>
#include <vector>

namespace chitin::spawn {

// The variables a mount src may use; the spawner fills them in per spawn.
extern const std::set<std::string> KNOWN_VARIABLES;

// A variable the spawner sets itself and a spawn request never can: the directory the worker's
// executable was found in (build/workers/channel, or libexecdir/chitin), for what is installed
// beside a worker (the WhatsApp bridge, `${WORKER_DIR}/whatsapp-bridge`).
inline constexpr const char* WORKER_DIR_VARIABLE = "WORKER_DIR";

// The names of the ${NAME} tokens in `text`; sets `error` (and returns {}) on a stray '$' or a
// missing '}'.
std::vector<std::string> variablesIn(const std::string& text, std::string& error);

// `text` with every ${name} replaced by `value`.
std::string substitute(const std::string& text, const std::string& name, const std::string& value);

}  // namespace chitin::spawn
