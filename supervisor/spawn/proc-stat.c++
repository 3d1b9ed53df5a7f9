// SPDX-License-Identifier: Apache-2.0
// Runs in: supervisor, and in the spawner's clone children (async-signal-safe)

#include "proc-stat.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

namespace chitin::spawn {

pid_t parentInProcStat(const char* statPath) {
  int fd = open(statPath, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[512];  // the fields up to the parent's fit: the name in parentheses is <= 16 bytes
  ssize_t n = read(fd, buf, sizeof(buf));
  int readErrno = errno;
  close(fd);
  if (n < 0) {
    errno = readErrno;
    return -1;
  }
  ssize_t i = n - 1;
  while (i >= 0 && buf[i] != ')') --i;  // the last ')' ends the name
  // ") S 123": a space, the one-letter state, a space, then the parent's digits.
  if (i < 0 || i + 4 >= n || buf[i + 1] != ' ' || buf[i + 3] != ' ' || buf[i + 4] < '0' ||
      buf[i + 4] > '9') {
    errno = EINVAL;
    return -1;
  }
  pid_t parent = 0;
  for (i += 4; i < n && buf[i] >= '0' && buf[i] <= '9'; ++i) {
    if (parent > 99'999'999) {  // pid_max is at most 2^22
      errno = EINVAL;
      return -1;
    }
    parent = parent * 10 + (buf[i] - '0');
  }
  return parent;
}

}  // namespace chitin::spawn
