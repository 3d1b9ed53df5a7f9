// SPDX-License-Identifier: Apache-2.0
// libgit2 loaded on first use (see libgit2-loader.h).
// Runs in: supervisor

#include "libgit2-loader.h"

#include <git2.h>
#include <stdarg.h>

#include <stdexcept>
#include <type_traits>

#include "lazy-library.h"

// Every libgit2 function chitin calls but git_libgit2_opts (variadic) and git_error_last
// (written out below): return type, name, parameters, arguments. A function used and not listed
// here does not link.
#define CHITIN_LIBGIT2_FUNCTIONS(X)                                                               \
  X(int, git_libgit2_init, (void), ())                                                            \
  X(int, git_libgit2_shutdown, (void), ())                                                        \
  X(int, git_blob_create_from_buffer,                                                             \
    (git_oid * id, git_repository * repo, const void* buffer, size_t len),                        \
    (id, repo, buffer, len))                                                                      \
  X(void, git_blob_free, (git_blob * blob), (blob))                                               \
  X(int, git_blob_lookup, (git_blob * *blob, git_repository * repo, const git_oid* id),           \
    (blob, repo, id))                                                                             \
  X(const void*, git_blob_rawcontent, (const git_blob* blob), (blob))                             \
  X(git_object_size_t, git_blob_rawsize, (const git_blob* blob), (blob))                          \
  X(int, git_commit_create,                                                                       \
    (git_oid * id, git_repository * repo, const char* update_ref, const git_signature* author,    \
     const git_signature* committer, const char* message_encoding, const char* message,           \
     const git_tree* tree, size_t parent_count, const git_commit* parents[]),                     \
    (id, repo, update_ref, author, committer, message_encoding, message, tree, parent_count,      \
     parents))                                                                                    \
  X(void, git_commit_free, (git_commit * commit), (commit))                                       \
  X(int, git_commit_lookup, (git_commit * *commit, git_repository * repo, const git_oid* id),     \
    (commit, repo, id))                                                                           \
  X(git_time_t, git_commit_time, (const git_commit* commit), (commit))                            \
  X(int, git_commit_tree, (git_tree * *tree_out, const git_commit* commit), (tree_out, commit))   \
  X(const git_oid*, git_commit_tree_id, (const git_commit* commit), (commit))                     \
  X(void, git_object_free, (git_object * object), (object))                                       \
  X(int, git_object_peel,                                                                         \
    (git_object * *peeled, const git_object* object, git_object_t target_type),                   \
    (peeled, object, target_type))                                                                \
  X(int, git_odb_exists, (git_odb * db, const git_oid* id), (db, id))                             \
  X(void, git_odb_free, (git_odb * db), (db))                                                     \
  X(int, git_odb_open_wstream,                                                                    \
    (git_odb_stream * *out, git_odb * db, git_object_size_t size, git_object_t type),             \
    (out, db, size, type))                                                                        \
  X(int, git_odb_stream_finalize_write, (git_oid * out, git_odb_stream * stream), (out, stream))  \
  X(void, git_odb_stream_free, (git_odb_stream * stream), (stream))                               \
  X(int, git_odb_stream_write, (git_odb_stream * stream, const char* buffer, size_t len),         \
    (stream, buffer, len))                                                                        \
  X(int, git_odb_write,                                                                           \
    (git_oid * out, git_odb * odb, const void* data, size_t len, git_object_t type),              \
    (out, odb, data, len, type))                                                                  \
  X(int, git_oid_equal, (const git_oid* a, const git_oid* b), (a, b))                             \
  X(char*, git_oid_tostr, (char* out, size_t n, const git_oid* id), (out, n, id))                 \
  X(void, git_packbuilder_free, (git_packbuilder * pb), (pb))                                     \
  X(int, git_packbuilder_insert_walk, (git_packbuilder * pb, git_revwalk * walk), (pb, walk))     \
  X(const char*, git_packbuilder_name, (git_packbuilder * pb), (pb))                              \
  X(int, git_packbuilder_new, (git_packbuilder * *out, git_repository * repo), (out, repo))       \
  X(unsigned int, git_packbuilder_set_threads, (git_packbuilder * pb, unsigned int n), (pb, n))   \
  X(int, git_packbuilder_write,                                                                   \
    (git_packbuilder * pb, const char* path, unsigned int mode,                                   \
     git_indexer_progress_cb progress_cb, void* progress_cb_payload),                             \
    (pb, path, mode, progress_cb, progress_cb_payload))                                           \
  X(int, git_reference_create,                                                                    \
    (git_reference * *out, git_repository * repo, const char* name, const git_oid* id, int force, \
     const char* log_message),                                                                    \
    (out, repo, name, id, force, log_message))                                                    \
  X(int, git_reference_delete, (git_reference * ref), (ref))                                      \
  X(void, git_reference_free, (git_reference * ref), (ref))                                       \
  X(void, git_reference_iterator_free, (git_reference_iterator * iter), (iter))                   \
  X(int, git_reference_iterator_glob_new,                                                         \
    (git_reference_iterator * *out, git_repository * repo, const char* glob), (out, repo, glob))  \
  X(int, git_reference_lookup, (git_reference * *out, git_repository * repo, const char* name),   \
    (out, repo, name))                                                                            \
  X(const char*, git_reference_name, (const git_reference* ref), (ref))                           \
  X(int, git_reference_name_to_id, (git_oid * out, git_repository * repo, const char* name),      \
    (out, repo, name))                                                                            \
  X(int, git_reference_next, (git_reference * *out, git_reference_iterator * iter), (out, iter))  \
  X(int, git_reference_next_name, (const char** out, git_reference_iterator* iter), (out, iter))  \
  X(const git_oid*, git_reference_target, (const git_reference* ref), (ref))                      \
  X(void, git_repository_free, (git_repository * repo), (repo))                                   \
  X(int, git_repository_init_ext,                                                                 \
    (git_repository * *out, const char* repo_path, git_repository_init_options* opts),            \
    (out, repo_path, opts))                                                                       \
  X(int, git_repository_odb, (git_odb * *out, git_repository * repo), (out, repo))                \
  X(int, git_repository_open_bare, (git_repository * *out, const char* bare_path),                \
    (out, bare_path))                                                                             \
  X(int, git_revparse_single, (git_object * *out, git_repository * repo, const char* spec),       \
    (out, repo, spec))                                                                            \
  X(void, git_revwalk_free, (git_revwalk * walk), (walk))                                         \
  X(int, git_revwalk_hide, (git_revwalk * walk, const git_oid* commit_id), (walk, commit_id))     \
  X(int, git_revwalk_new, (git_revwalk * *out, git_repository * repo), (out, repo))               \
  X(int, git_revwalk_next, (git_oid * out, git_revwalk * walk), (out, walk))                      \
  X(int, git_revwalk_push, (git_revwalk * walk, const git_oid* id), (walk, id))                   \
  X(void, git_signature_free, (git_signature * sig), (sig))                                       \
  X(int, git_signature_now, (git_signature * *out, const char* name, const char* email),          \
    (out, name, email))                                                                           \
  X(const git_tree_entry*, git_tree_entry_byname, (const git_tree* tree, const char* filename),   \
    (tree, filename))                                                                             \
  X(git_filemode_t, git_tree_entry_filemode, (const git_tree_entry* entry), (entry))              \
  X(const git_oid*, git_tree_entry_id, (const git_tree_entry* entry), (entry))                    \
  X(const char*, git_tree_entry_name, (const git_tree_entry* entry), (entry))                     \
  X(void, git_tree_free, (git_tree * tree), (tree))                                               \
  X(int, git_tree_lookup, (git_tree * *out, git_repository * repo, const git_oid* id),            \
    (out, repo, id))                                                                              \
  X(int, git_tree_walk,                                                                           \
    (const git_tree* tree, git_treewalk_mode mode, git_treewalk_cb callback, void* payload),      \
    (tree, mode, callback, payload))                                                              \
  X(void, git_treebuilder_free, (git_treebuilder * bld), (bld))                                   \
  X(int, git_treebuilder_insert,                                                                  \
    (const git_tree_entry** out, git_treebuilder* bld, const char* filename, const git_oid* id,   \
     git_filemode_t filemode),                                                                    \
    (out, bld, filename, id, filemode))                                                           \
  X(int, git_treebuilder_new,                                                                     \
    (git_treebuilder * *out, git_repository * repo, const git_tree* source), (out, repo, source)) \
  X(int, git_treebuilder_write, (git_oid * id, git_treebuilder * bld), (id, bld))

// The two written out below go through the same table.
#define CHITIN_LIBGIT2_SPECIAL(X) \
  X(git_libgit2_opts)             \
  X(git_error_last)

namespace chitin::audit {

// A namespace of its own: this file shares a unity file with others (meson.build).
namespace libgit2_table {

enum class Fn : size_t {
#define CHITIN_ENUM(ret, name, params, args) name,
  CHITIN_LIBGIT2_FUNCTIONS(CHITIN_ENUM)
#undef CHITIN_ENUM
#define CHITIN_ENUM(name) name,
      CHITIN_LIBGIT2_SPECIAL(CHITIN_ENUM)
#undef CHITIN_ENUM
};

LazyLibrary& library() {
  static LazyLibrary lib("libgit2.so." LIBGIT2_SOVERSION,
                         {
#define CHITIN_NAME(ret, name, params, args) #name,
                             CHITIN_LIBGIT2_FUNCTIONS(CHITIN_NAME)
#undef CHITIN_NAME
#define CHITIN_NAME(name) #name,
                                 CHITIN_LIBGIT2_SPECIAL(CHITIN_NAME)
#undef CHITIN_NAME
                         });
  return lib;
}

void* resolved(Fn fn) { return library().resolved(static_cast<size_t>(fn)); }

template <typename F>
F function(Fn fn, const char* name) {
  void* p = resolved(fn);
  if (p == nullptr) lazyUnavailable<int>(libgit2Soname(), name);
  return reinterpret_cast<F>(p);
}

}  // namespace libgit2_table

const char* libgit2Soname() { return libgit2_table::library().soname(); }

bool libgit2Loaded() { return libgit2_table::library().loaded(); }

std::string loadLibgit2() { return loadLibgit2From(libgit2Soname()); }

std::string loadLibgit2From(const char* soname) {
  std::string problem = libgit2_table::library().loadFrom(soname);
  if (problem.empty()) return "";
  return problem + " (chitin was built against libgit2 " LIBGIT2_VERSION ")";
}

}  // namespace chitin::audit

// The definitions the snapshot code links against. Each declaration is git2's own, so a
// parameter list here that differs from the library's does not compile.
#define CHITIN_FORWARD(ret, name, params, args)                                               \
  CHITIN_LAZY_FORWARD(chitin::audit::libgit2_table::library(),                                \
                      static_cast<size_t>(chitin::audit::libgit2_table::Fn::name), ret, name, \
                      params, args)
CHITIN_LIBGIT2_FUNCTIONS(CHITIN_FORWARD)
#undef CHITIN_FORWARD

extern "C" const git_error* git_error_last(void) {
  void* p =
      chitin::audit::libgit2_table::resolved(chitin::audit::libgit2_table::Fn::git_error_last);
  return p == nullptr ? nullptr : reinterpret_cast<decltype(&::git_error_last)>(p)();
}

// Variadic: the options chitin sets are forwarded with their own argument lists; any other
// is refused rather than passed on with arguments it did not get.
extern "C" int git_libgit2_opts(int option, ...) {
  auto opts = chitin::audit::libgit2_table::function<int (*)(int, ...)>(
      chitin::audit::libgit2_table::Fn::git_libgit2_opts, "git_libgit2_opts");
  va_list ap;
  va_start(ap, option);
  int rc;
  switch (option) {
    case GIT_OPT_SET_SEARCH_PATH: {
      int level = va_arg(ap, int);
      const char* path = va_arg(ap, const char*);
      rc = opts(option, level, path);
      break;
    }
    case GIT_OPT_SET_SSL_CERT_LOCATIONS: {
      const char* file = va_arg(ap, const char*);
      const char* path = va_arg(ap, const char*);
      rc = opts(option, file, path);
      break;
    }
    default:
      va_end(ap);
      throw std::logic_error("git_libgit2_opts: option " + std::to_string(option) +
                             " is not forwarded to libgit2 (libgit2-loader.c++)");
  }
  va_end(ap);
  return rc;
}
