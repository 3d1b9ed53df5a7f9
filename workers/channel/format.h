// SPDX-License-Identifier: Apache-2.0
// The assistant's Markdown in each platform's own format, cut into messages the platform
// accepts.
// Runs in: worker (sandboxed)
//
// The model writes CommonMark-ish Markdown (emphasis, `code`, fenced blocks, links, lists,
// headings). Each platform gets what it renders: Telegram HTML (escaped <, >, &), Discord
// Markdown (as is), Slack mrkdwn (*bold*, _italic_, <url|text>), plain text for IRC, Signal and
// email (markers dropped, links as "text (url)"). Chunks never split a UTF-8 sequence, prefer
// paragraph, then line, then word boundaries, and close and reopen a code block they cut.

#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace chitin::channel {

enum class Format { TELEGRAM_HTML, DISCORD_MARKDOWN, SLACK_MRKDWN, PLAIN };

std::string convertMarkdown(std::string_view markdown, Format format);

// Pieces of at most `limit` units each: UTF-16 code units for Telegram (its 4096 counts them),
// Unicode code points for Discord and Slack, bytes for IRC (its caller passes the byte budget
// left after the line prefix). A converted chunk must still fit, so chunk before converting
// (convert each chunk) where the format adds characters.
enum class Unit { BYTES, CODE_POINTS, UTF16 };
std::vector<std::string> chunkText(std::string_view text, size_t limit, Unit unit);

// A Markdown line without up to `max` leading spaces (a block marker may be indented by three).
std::string_view stripIndent(std::string_view line, size_t max = 3);

}  // namespace chitin::channel
