// SPDX-License-Identifier: Apache-2.0
// A shared library opened when the process first needs it, not when it starts.
// Runs in: supervisor
//
// Every library a program links is mapped and relocated by the loader before `main`; on a small
// VM, where a page fault costs ~25 us, that is 0.2-0.5 ms for a small library and ~3.6 ms for
// libgit2 with its dependencies. A library that only a rare or later path uses (snapshots, an
// internationalized host name, a QR code, a skill's front matter) is therefore opened here, by its
// soname, as the loader would have found it (ld.so.cache, the system's directories), and never
// closed. Its functions are reached through `function<F>()`, typed by the library's own
// declarations (`decltype(&::name)`), so a call does not compile unless it matches the header
// chitin was built against.

#pragma once

#include <atomic>
#include <initializer_list>
#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace chitin {

class LazyLibrary {
 public:
  // `names`: every function used, resolved all at once when the library is opened.
  LazyLibrary(const char* soname, std::initializer_list<const char*> names);

  // Opens the library and resolves every name (once; a failure is tried again on the next call).
  // "" when it is loaded; otherwise why not, naming the library or the function.
  std::string load();
  // The same with another library: for the test of what a missing or wrong one says.
  std::string loadFrom(const char* soname);

  bool loaded() const { return loaded_.load(std::memory_order_acquire); }
  const char* soname() const { return soname_; }

  // The function at `index` of the constructor's list once loaded, else nullptr.
  void* resolved(size_t index) const { return loaded() ? symbols_[index] : nullptr; }

  // The same, typed: `F` is the library's own `decltype(&::name)`.
  template <typename F>
  F resolvedAs(size_t index) const {
    return reinterpret_cast<F>(resolved(index));
  }

  // Loads if needed; the function, or nullptr with `why` set.
  template <typename F>
  F function(size_t index, std::string& why) {
    why = load();
    return resolvedAs<F>(index);
  }

 private:
  const char* soname_;
  std::vector<const char*> names_;
  std::vector<void*> symbols_;  // written under mutex_ before loaded_ is set (release)
  std::atomic<bool> loaded_{false};
  std::mutex mutex_;
};

// What a forwarder (below) does when called before its library is loaded: a function returning
// nothing does nothing (they free or tear down what the library made, and nothing it made can
// exist yet); any other throws std::logic_error naming it.
template <typename R>
R lazyUnavailable(const char* soname, const char* name) {
  if constexpr (std::is_void_v<R>) {
    return;
  } else {
    throw std::logic_error(std::string(name) + " was called but " + soname + " is not loaded");
  }
}

}  // namespace chitin

// Defines the library function `name` (declared by the library's header, so parameters that
// differ do not compile) as a call through the function at `index` of `library`: callers keep
// calling it by its name, and the program needs no link to the library.
#define CHITIN_LAZY_FORWARD(library, index, ret, name, params, args)    \
  extern "C" ret name params {                                          \
    void* chitin_lazy_fn = (library).resolved(index);                   \
    if (chitin_lazy_fn == nullptr)                                      \
      return ::chitin::lazyUnavailable<ret>((library).soname(), #name); \
    return reinterpret_cast<decltype(&::name)>(chitin_lazy_fn) args;    \
  }
