// The deterministic apply of one transition to the store (store-internal; DESIGN.md §6).
//
// POSIX-like errno semantics, decided from the state and the transition only. Checks in
// this order: EINVAL (path not valid_path), ENAMETOOLONG (any component of path/path2
// longer than Limits::max_name), the path lookups (ENOENT, ENOTDIR), then the condition
// (kIfInode / kIfVersion, validate() allows them only on the ops that honour them):
// ENOENT if path names nothing (write and create then create nothing), ESTALE unless the
// entry's ino (kIfInode) or version (kIfVersion) == t.expect; then EACCES for a create,
// write or mkdir inside a lock directory (below /priv/lock/NAME: a lock holds nothing, so
// nobody but its holder re-stamps it); then EACCES for a create, write or mkdir at a
// reserved path (is_reserved_path: the tree's virtual files), and a rename onto one (or
// from one with kExchange); then the op's own rules:
//   create    "/": EEXIST with kExclusive else EISDIR; existing: EEXIST with kExclusive,
//             EISDIR for a directory, else truncated to 0; new: mode 0644 unless kSetMode
//   write     EISDIR, EFBIG (> max_file_size), ENOSPC; creates a missing file like create
//   truncate  ENOENT, EISDIR, EFBIG, ENOSPC; grows with zeros
//   mkdir     EEXIST (also "/"), ENOSPC
//   rmdir     EBUSY for "/", ENOENT, ENOTDIR, ENOTEMPTY
//   unlink    EISDIR (also "/"), ENOENT
//   rename    EINVAL for kNoReplace|kExchange together, EBUSY if either path is "/",
//             EACCES if either path is /priv, /priv/lock or below it (a lock directory
//             is never moved or replaced, nor what holds it), ENOENT (source; target with
//             kExchange), same path: EEXIST with kNoReplace else a no-op success, EINVAL
//             moving a directory into its own subtree (either side with kExchange), EEXIST
//             with kNoReplace, ENOTDIR dir over file, EISDIR file over dir, ENOTEMPTY over
//             a non-empty dir, ENOSPC (a longer name)
//   set_mtime ENOENT; on a lock directory (a directory at an is_lock_dir_path()) EACCES
//             unless it is its holder's renewal: t.origin == its writer and
//             0 < t.size >= its mtime; mtime = t.size
//   set_mode  ENOENT; mode = t.mode & kModeMask (mtime unchanged, as chmod)
//   genesis / node ops: apply_node_op() on the meta; a successful genesis stamps the root
// ENOSPC: the total (file bytes + name bytes of every entry) would grow past
// max_total_size; shrinking is always allowed.
// Every entry changed gets version = the transition's version and writer = t.origin;
// its mtime = t.timestamp_us, except rename (keeps the moved entry's mtime) and set_mode.
// A directory whose children change (create, remove, rename in or out) gets the same
// mtime/version/writer stamp. New entries get inode numbers from State::next_ino.
#pragma once

#include "store/db.h"

namespace conclave::store {

// 0 or the errno the transition failed with; on an errno nothing changed (every check
// runs before the first write). LMDB failures show in !txn.ok() (the caller aborts).
// `touched` (if given): what it changed (store.h), on success.
int apply_transition(db::Txn& txn, db::State& st, const Transition& t, std::uint64_t version,
                     Touched* touched = nullptr);

}  // namespace conclave::store
