// SPDX-License-Identifier: Apache-2.0
// doctest's main(), shared by the unit test executables.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
