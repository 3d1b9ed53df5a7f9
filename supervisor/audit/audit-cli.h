// SPDX-License-Identifier: Apache-2.0
// `chitin audit verify|tail|show`: reads the audit log in a directory and prints it for people.
// Runs in: supervisor binary, as the `chitin audit` command (read-only; no gateway needed, the
// log is a file the owner can read)
//
//   chitin audit verify                      ok: N records, head seq S sha256 H       (exit 0)
//                                            audit log broken at line L (seq S): why  (exit 1)
//   chitin audit tail [-n N] [-f] [--json]   the last N records (default 20), one line each;
//                                            -f keeps printing new ones until SIGINT
//   chitin audit show SEQ | --session KEY | --since TIME [--json]
//                                            matching records in full (--session and --since
//                                            combine); TIME as in audit::Filter::since
//
// Without --json every field is display text (common/display-text.h): controls, bidi and
// invisible characters and long space runs in what a model or sender wrote are shown escaped.
// --json prints the log's own lines, byte for byte (so they can be piped to jq or re-hashed);
// they are inert on a terminal as they are, since protobuf's JSON writer escapes C0, DEL, C1,
// bidi and zero-width characters as \u escapes.
// Exit codes: 0 done, 1 the log is broken / unreadable / nothing matched, 2 bad arguments.

#pragma once

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "audit-log.h"

namespace chitin::audit {

// `args` are the words after "audit". With `tail -f`, stops on SIGINT (a handler is installed
// for the duration of the loop, and the previous one restored).
int auditCommand(const std::vector<std::string>& args, const std::string& auditDir,
                 std::ostream& out, std::ostream& err);

// The same, but `tail -f` polls (every `pollMillis`) until `stop()` returns true instead of
// waiting for SIGINT. `stop` is called after each poll, on the calling thread.
int auditCommand(const std::vector<std::string>& args, const std::string& auditDir,
                 std::ostream& out, std::ostream& err, const std::function<bool()>& stop,
                 int pollMillis = 200);

// One line for `tail`: seq time kind session principal tool outcome decision, then
// snapshot/approval/detail when set ("-" for an empty column).
std::string formatSummary(const Record& record);
// Every set field, one per line, for `show`.
std::string formatDetail(const Record& record);

}  // namespace chitin::audit
