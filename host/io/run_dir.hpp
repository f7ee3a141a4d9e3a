// run_dir.hpp — the one mechanism by which superpose reads, writes, locks and removes anything in a
// run directory (docs/run-directory.md; what it writes there: host/io/results.hpp). A run directory
// may sit in a folder other users can write to (a cluster's /shared/sweeps), beside its owner's
// notes and notebooks, so:
//   - every file in it is reached relative to a directory descriptor opened once, never through a
//     symbolic link planted there (O_NOFOLLOW): a link where a superpose file belongs is an error
//     naming it; only the path the user gave (--out) is followed as given;
//   - every file is written beside its name (a new temporary, O_EXCL) and renamed into place, so
//     it is whole or absent, and replaces only a file this directory's record says superpose
//     wrote, as it wrote it;
//   - every directory superpose writes in keeps that record, .superpose.files: one JSON line per
//     file written (name, size, XXH3-64), per temporary, subdirectory and lock file about to be
//     made, appended before the file takes its name (and synced with it). What superpose removes
//     (--overwrite, a chunk trained again) is only what the record lists and the file still
//     matches, in the subdirectories the records list; everything else is left where it is;
//   - a file superpose reads is a regular file (a FIFO or device there is an error, never a hang).
#pragma once

#include <cstdint>
#include <functional>
#include <istream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "host/core/config.hpp"

namespace sp {

// Something in a run directory is not as superpose left it (a link, a FIFO, a file it did not
// write where it writes its own), or cannot be read or written: the message names the path and
// the reason (errno's text where the system gave one).
struct RunDirError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// What a name in a directory is, without following a link.
enum class EntryKind { none, file, directory, link, other };

// A file's size and XXH3-64 checksum (16 hex digits): what a record says of each file when it is
// written, and what superpose finds again before it trusts (or removes) it.
struct FileDigest {
  uint64_t bytes = 0;
  std::string xxh3;
  bool operator==(const FileDigest& other) const {
    return bytes == other.bytes && xxh3 == other.xxh3;
  }
};
std::string digest_text(const std::string& bytes);
// The digest of bytes as they go by: what RunDir::digest gives for a file of those bytes.
class Digester {
 public:
  Digester();
  ~Digester();
  Digester(const Digester&) = delete;
  Digester& operator=(const Digester&) = delete;
  void update(const char* data, size_t size);
  FileDigest result() const;

 private:
  void* state_;
  uint64_t bytes_ = 0;
};

// The record of what superpose wrote in one directory (.superpose.files), as read back: lines that
// do not parse (a line cut by a crash, or edited) are skipped, which can only make superpose trust
// less. Public for the fuzzer and the tests.
struct Ledger {
  std::vector<std::pair<std::string, FileDigest>> files;  // in the order written
  // Temporaries about to be made (only names of the shape .<name>.tmp-<pid>-<8 hex digits>), the
  // subdirectories superpose made here, and the lock files it created here.
  std::vector<std::string> temporaries, directories, locks;
  bool lists(const std::string& name) const;  // any line for this file name
  bool lists(const std::string& name, const FileDigest& digest) const;
  bool lists_temporary(const std::string& name) const;
  bool lists_directory(const std::string& name) const;
  bool lists_lock(const std::string& name) const;
};
bool temporary_shape(const std::string& name);  // .<name>.tmp-<pid>-<8 hex digits>
Ledger parse_ledger(const std::string& text);
constexpr const char* kLedgerFile = ".superpose.files";
constexpr const char* kLockFile = ".superpose.lock";
constexpr const char* kClaimFile = ".superpose.claim";

class RunClaim;

// A directory superpose reads and writes in, held open by descriptor (copies share it).
class RunDir {
 public:
  // DIR as the user gave it (links in this path are followed, as the user named them): created
  // with its parents where absent, opened, proved writable; UsageError naming `option` otherwise.
  explicit RunDir(std::string path, const std::string& option = "--out");
  // An existing directory as the user gave it, opened for reading and locking (merge): UsageError
  // naming `option` when it is not one.
  static RunDir existing(const std::string& path, const std::string& option);

  const std::string& path() const { return path_; }
  std::string path_of(const std::string& name) const;  // for messages: DIR/name

  // Writes `name` whole or not at all: `fill` writes a new temporary beside it (O_EXCL, never a
  // link), which is recorded and renamed into place. `name` must be absent or a file this
  // directory's record says superpose wrote, unchanged since (RunDirError otherwise, naming it).
  void write(const std::string& name, const std::string& bytes) const;
  void write_with(const std::string& name, const std::function<void(std::ostream&)>& fill) const;

  // The subdirectory `name` ("a/b" nests), created where absent (and recorded in its own record as
  // superpose's); a link or a file there is a RunDirError naming it.
  RunDir subdir(const std::string& name) const;
  // The existing subdirectory, or nothing where `name` is absent; a link or a file there is a
  // RunDirError.
  std::optional<RunDir> existing_subdir(const std::string& name) const;

  EntryKind kind(const std::string& name) const;
  std::vector<std::string> list() const;  // every name in it, sorted
  // A regular file's bytes (RunDirError when absent, a link, not a regular file, unreadable).
  std::string read(const std::string& name) const;
  // The same as a stream (for large files), read through the descriptor.
  std::unique_ptr<std::istream> open(const std::string& name) const;
  // A JSON file's value, or null when it is absent, not a regular file or not JSON.
  nlohmann::json read_json(const std::string& name) const;
  FileDigest digest(const std::string& name) const;  // RunDirError as read()

  Ledger ledger() const;                      // this directory's record (empty when absent)
  bool wrote(const std::string& name) const;  // listed in the record, and unchanged since
  bool has_ledger() const { return kind(kLedgerFile) == EntryKind::file; }

  // An exclusive, non-blocking flock on the regular file `name` (created where absent; a link,
  // a hard-linked file or anything else there is a RunDirError naming it), or null when another
  // process holds it.
  std::unique_ptr<RunClaim> try_lock(const std::string& name) const;
  // The same, shared or exclusive, blocking or not: the descriptor and whether it was taken.
  std::pair<std::unique_ptr<RunClaim>, bool> lock(const std::string& name, bool shared,
                                                  bool wait) const;

  // Removes `name` if it is a file this record lists unchanged (or a temporary it lists); returns
  // whether it did.
  bool remove_if_written(const std::string& name) const;
  void rename(const std::string& from, const std::string& to) const;  // within this directory
  void remove_empty_subdir(const std::string& name) const;            // rmdir; false if not empty
  void remove_recorded_temporaries() const;  // of interrupted writes: listed and still there

  int descriptor() const;

 private:
  struct Handle;
  RunDir(std::string path, std::shared_ptr<const Handle> handle);
  void append_record(const nlohmann::json& line) const;
  std::string path_;
  std::shared_ptr<const Handle> handle_;
};

// Writes the file at `path` (outside any run directory: a benchmark's JSON) whole or not at all,
// through a new temporary beside it that no link can redirect.
void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& fill);

// A held lock (flock), released when destroyed.
class RunClaim {
 public:
  explicit RunClaim(int fd) : fd_(fd) {}
  RunClaim(const RunClaim&) = delete;
  RunClaim& operator=(const RunClaim&) = delete;
  ~RunClaim();
  int fd() const { return fd_; }

 private:
  int fd_;
};

// What superpose finds in a directory it is about to clear (--overwrite) or to train a chunk in
// again: the files its records list unchanged (to remove), and everything else (to keep), each as
// a path under the directory; `blocking`: what keeps the new run from writing its own files (a
// file superpose wrote and someone changed since, a file superpose did not write, or a link, at a
// name superpose writes), each with why.
struct Holdings {
  std::vector<std::string> removable, kept;
  std::vector<std::pair<std::string, std::string>> blocking;
};
// `reserved`: whether superpose writes a file of this name in that directory (names under DIR:
// "results.csv", "chunks/000000000000/results.csv").
Holdings survey(const RunDir& dir, const std::function<bool(const std::string&)>& reserved);
// Removes exactly `holdings.removable`, then every directory superpose made that is left empty.
void remove_holdings(const RunDir& dir, const Holdings& holdings);
// The names superpose writes in a run directory and its subdirectories (survey's `reserved`).
bool superpose_writes(const std::string& path_under_dir);

// A run directory belongs to one run at a time (docs/run-directory.md). claim_run_dir takes it for
// this process: an advisory lock (flock) on DIR/.superpose.lock, held until the returned object is
// destroyed — another process holding it makes this a UsageError at once, naming --out —; then
// stale temporaries of interrupted writes are removed, and what DIR holds is checked against
// `identity` (the command and its configuration, kept in DIR/<identity_file>: run.json, or
// sweep.json for sweeps), which must be a file DIR's record says superpose wrote:
//   empty, or the same run          → taken (the caller resumes or rewrites it)
//   another superpose run           → UsageError naming --out and --overwrite; with `overwrite`,
//                                     exactly the files superpose's records list (unchanged) are
//                                     removed, everything else kept and named on stderr; refused
//                                     with nothing removed where a kept file sits where the new
//                                     run writes
//   files superpose did not write   → UsageError, even with `overwrite`
// `explain_other` may throw a more precise UsageError for another run's identity before the
// generic one. `shared`: shards of one sweep (run_sweep) hold the lock together — a shared flock,
// the identity checked under a second, brief exclusive lock (.superpose.claim), under which
// `while_claimed` also runs — while a process that wants DIR alone is refused, and is refused by
// them; stale temporaries are then left to whoever holds the chunk.
std::unique_ptr<RunClaim> claim_run_dir(
    const RunDir& dir, const std::string& identity_file, const nlohmann::json& identity,
    bool overwrite,
    const std::function<void(const nlohmann::json& existing)>& explain_other = nullptr,
    bool shared = false, const std::function<void()>& while_claimed = nullptr);

}  // namespace sp
