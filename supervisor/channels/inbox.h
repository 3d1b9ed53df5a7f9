// SPDX-License-Identifier: Apache-2.0
// Inbound attachments into the agent's workspace `inbox/`: safe names, bounded, never through
// a symlink.
// Runs in: supervisor
//
// The workspace is writable by the model's tools, so everything in it may have been prepared
// by an attacker: `inbox` itself could be a symlink to the home, a name could be "../x". Files
// are therefore created with openat() beneath a descriptor of the workspace, the inbox opened
// with O_NOFOLLOW|O_DIRECTORY, the file with O_CREAT|O_EXCL|O_NOFOLLOW under a name made here
// (a unique prefix plus the platform's name reduced to a plain basename). `inbox/` is an
// untrusted directory (policy.untrusted_paths): reading a file from it taints the session.

#pragma once

#include <cstdint>
#include <string>

namespace chitin::channels {

// The platform's file name reduced to something safe to create and to show the model: its
// last path component, only A-Z a-z 0-9 . _ - (anything else, NUL and non-ASCII included,
// becomes '_'), no leading dots, at most 80 bytes (the extension kept), never empty
// ("attachment").
std::string safeAttachmentName(const std::string& platformName);

// A fresh name for an attachment in the inbox: "<yyyymmdd-hhmmss>-<8 hex>-<safe name>".
std::string inboxFileName(const std::string& platformName);

// Creates `workspaceDir`/inbox/`fileName` (0600) holding `data`; creates inbox/ (0700) when it
// is missing. `fileName` must be a plain name (inboxFileName's). Refuses, with a message saying
// why, when inbox is not a real directory (a symlink, a file), when the name
// exists already, or when writing fails (a partial file is removed). Returns "inbox/<name>".
std::string saveToInbox(const std::string& workspaceDir, const std::string& fileName,
                        const std::string& data);

}  // namespace chitin::channels
