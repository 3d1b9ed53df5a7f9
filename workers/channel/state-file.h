// SPDX-License-Identifier: Apache-2.0
// Small files in the account's state directory (/state): poll offsets, UIDs, chat migrations.
// Runs in: worker (sandboxed)
//
// A platform persists its progress only after Host::deliver() returned, so the file must never
// be half written: each write goes to a temporary file and replaces the old one by rename.
// Durable (the default), the temporary file is synced first and the directory after, and after a
// crash the file holds the old value or the new one. Lazy, nothing is synced: a progress marker
// whose loss only redelivers what the supervisor then drops as a duplicate (the seen-store,
// synced before deliver() returns, is the record that counts) need not make the disk wait on
// every message. After a crash a lazy file holds the old value, the new one, or (on a
// filesystem that does not order the data before the rename) nothing readable, which its
// reader must treat as "start over".

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

enum class StateSync { DURABLE, LAZY };

// Replaces the file by rename (mode 0600), synced as `sync` says. Throws ChannelError on failure.
void writeStateFile(const std::string& dir, const std::string& name, std::string_view content,
                    StateSync sync = StateSync::DURABLE);

}  // namespace chitin::channel
