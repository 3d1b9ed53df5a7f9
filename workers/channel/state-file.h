// SPDX-License-Identifier: Apache-2.0
// Small files in the account's state directory (/state): poll offsets, UIDs, chat migrations.
// Runs in: worker (sandboxed)
//
// A platform persists its progress only after Host::deliver() returned, so the file must never
// be half written: each write goes to a temporary file, is synced, and replaces the old one by
// rename, and the directory is synced too. After a crash the file holds the old value or the
// new one; the old one only redelivers what the supervisor then drops as a duplicate.

#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace chitin::channel {

// Throws ChannelError naming `dir` unless it is a directory this process may write.
void requireStateDir(const std::string& dir);

// The file's content, or nullopt when it does not exist. Throws ChannelError on other errors
// and when the file is larger than `maxBytes`.
std::optional<std::string> readStateFile(const std::string& dir, const std::string& name,
                                         size_t maxBytes = 1u << 20);

// Replaces the file atomically and durably (mode 0600). Throws ChannelError on failure.
void writeStateFile(const std::string& dir, const std::string& name, std::string_view content);

}  // namespace chitin::channel
