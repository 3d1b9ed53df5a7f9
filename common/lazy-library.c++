// SPDX-License-Identifier: Apache-2.0
// A shared library opened on first use (see lazy-library.h).
// Runs in: supervisor

#include "lazy-library.h"

#include <dlfcn.h>

namespace chitin {

LazyLibrary::LazyLibrary(const char* soname, std::initializer_list<const char*> names)
    : soname_(soname), names_(names) {}

std::string LazyLibrary::load() {
  if (loaded()) return "";
  return loadFrom(soname_);
}

std::string LazyLibrary::loadFrom(const char* soname) {
  std::lock_guard<std::mutex> g(mutex_);
  if (loaded_.load(std::memory_order_relaxed)) return "";
  // Local: nothing else in the process binds to its symbols by accident. Now: a function it
  // lacks is found here, not at its first call.
  void* lib = ::dlopen(soname, RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = ::dlerror();
    return std::string("cannot load ") + soname + ": " + (why ? why : "dlopen failed");
  }
  std::vector<void*> found(names_.size());
  for (size_t i = 0; i < names_.size(); ++i) {
    found[i] = ::dlsym(lib, names_[i]);
    if (found[i] == nullptr) {
      ::dlclose(lib);
      return std::string(soname) + " has no " + names_[i];
    }
  }
  symbols_ = std::move(found);
  loaded_.store(true, std::memory_order_release);
  return "";
}

}  // namespace chitin
