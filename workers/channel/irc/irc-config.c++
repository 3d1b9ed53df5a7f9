// SPDX-License-Identifier: Apache-2.0
// The IRC channel's options, checked (see irc-platform.h; README "Channels" lists them).
// Runs in: worker (sandboxed)

#include "irc-platform.h"

namespace chitin::channel::irc {

using std::chrono::milliseconds;

IrcConfig ircConfigFromSettings(Settings& settings) {
  IrcConfig c;
  c.server = settings.take("server");
  if (c.server.empty() || c.server.find_first_of(" /:\r\n") != std::string::npos) {
    throw ChannelError("irc option \"server\": expected a host name, e.g. irc.libera.chat");
  }
  c.tls = settings.takeBool("tls", true);
  // The default port is the TLS one whatever `tls` says: the supervisor allows egress to the
  // same default (supervisor/channels), so plain text must name its port (usually 6667).
  if (!c.tls && settings.options.count("port") == 0) {
    throw ChannelError(
        "irc option \"port\": needed with tls=false (plain-text IRC is usually 6667)");
  }
  c.port = static_cast<uint16_t>(settings.takeInt("port", 6697, 1, 65535));
  c.caFile = settings.take("caFile");
  c.nick = settings.take("nick");
  if (!validNick(c.nick)) {
    throw ChannelError(
        "irc option \"nick\": expected a nick (letters, digits, []\\`_^{|}-, not "
        "starting with a digit or '-'), got '" +
        c.nick + "'");
  }
  c.username = settings.take("username", c.nick);
  if (c.username.empty() ||
      c.username.find_first_of(std::string(" @!\r\n\0", 6)) != std::string::npos) {
    throw ChannelError("irc option \"username\": expected one word without '@' or '!'");
  }
  c.realname = settings.take("realname", "chitin");
  if (c.realname.find_first_of(std::string("\r\n\0", 3)) != std::string::npos) {
    throw ChannelError("irc option \"realname\": must be one line");
  }
  for (const std::string& channel : splitList(settings.take("channels"), ',')) {
    if (!validTarget(channel) || !plainAscii(channel) ||
        std::string_view("#&+!").find(channel.front()) == std::string::npos) {
      throw ChannelError("irc option \"channels\": '" + channel +
                         "' is not a channel name (expected e.g. #chitin,#ops)");
    }
    c.channels.push_back(channel);
  }
  c.sasl = settings.takeBool("sasl", true);
  c.saslUser = settings.take("saslUser", c.nick);
  c.floodBurst = static_cast<size_t>(settings.takeInt("floodBurst", 4, 1, 100));
  c.floodInterval = milliseconds(settings.takeInt("floodIntervalMs", 2000, 0, 60000));
  c.maxLines = static_cast<size_t>(settings.takeInt("maxLines", 20, 1, 1000));
  c.pingInterval = std::chrono::seconds(settings.takeInt("pingIntervalSeconds", 120, 1, 3600));
  c.pingTimeout = std::chrono::seconds(settings.takeInt("pingTimeoutSeconds", 60, 1, 3600));
  settings.finish();
  return c;
}

std::unique_ptr<Platform> makeIrcPlatform(Settings& settings, Host& host) {
  IrcConfig config = ircConfigFromSettings(settings);
  return std::make_unique<IrcPlatform>(std::move(config), settings.credential,
                                       settings.egressSocket, host);
}

}  // namespace chitin::channel::irc
