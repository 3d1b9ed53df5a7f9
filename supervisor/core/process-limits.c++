// SPDX-License-Identifier: Apache-2.0
// The supervisor's own resource limits (process-limits.h).
// Runs in: supervisor

#include "process-limits.h"

#include <algorithm>

namespace chitin {

rlim_t raiseOpenFileLimit(rlim_t wanted) {
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  rlim_t target = limit.rlim_max == RLIM_INFINITY ? wanted : std::min(limit.rlim_max, wanted);
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < target) {
    struct rlimit raised = limit;
    raised.rlim_cur = target;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  return limit.rlim_cur;
}

}  // namespace chitin
