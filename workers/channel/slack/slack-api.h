// SPDX-License-Identifier: Apache-2.0
// Slack's Web API for one thread: the two tokens, 429 Retry-After waited out, `ok: false`
// errors in Slack's words, and file bytes in and out.
// Runs in: worker (sandboxed)
//
// Slack answers errors as HTTP 200 {"ok": false, "error": "channel_not_found"}; those become
// ApiError (AuthError when retrying cannot help: a revoked or wrong token, a missing scope).
// A 429 says how long to wait in Retry-After; it is waited out and the call repeated, within
// one minute per call. The bot token is sent to Slack's API and, for downloads, only to a host
// of Slack's (*.slack.com) or the API root's own host: a file URL in an event must not be able
// to send the token elsewhere.

#pragma once

#include <string>

#include "http-client.h"
#include "json-fields.h"
#include "platform.h"

namespace chitin::channel::slack {

class ApiError : public ChannelError {
 public:
  ApiError(const std::string& method, std::string code, const std::string& detail);
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

// invalid_auth, not_authed, token_revoked, account_inactive, missing_scope, ...: the owner
// must act; the worker reports FAILED.
class AuthError : public ApiError {
 public:
  using ApiError::ApiError;
};

struct Tokens {
  std::string app;  // xapp-: apps.connections.open only
  std::string bot;  // xoxb-: everything else
};

// Parses the credential: the two tokens on two lines, in either order. Throws ChannelError
// naming what is missing (never quoting the credential).
Tokens parseTokens(const std::string& credential);

class Api {
 public:
  Api(std::string apiRoot, Tokens tokens, const std::string& egressSocket, Host& host);

  // POST apiRoot/method with JSON arguments (or form-encoded ones: the file methods), with the
  // bot token, or the app token when `app`. Returns the whole answer (ok is true).
  Json call(const std::string& method, const Json& args, bool form = false, bool app = false);

  // The bytes of an uploaded file (url_private) with the bot token; ChannelError when the host
  // is not Slack's, the size is over `maxBytes` or Slack does not answer 200.
  std::string download(const std::string& url, size_t maxBytes);

  // POSTs bytes to an upload URL from files.getUploadURLExternal (no token: the URL is signed).
  void upload(const std::string& url, const std::string& bytes, const std::string& fileName);

  bool trustedHost(const std::string& url) const;
  void interrupt();

 private:
  HttpResponse perform(HttpRequest& request, const std::string& what);

  std::string apiRoot_, apiHost_;
  Tokens tokens_;
  Host& host_;
  HttpClient http_;
};

}  // namespace chitin::channel::slack
