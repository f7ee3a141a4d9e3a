// claim.cpp — what superpose removes from a run directory, and how a run takes one
// (host/io/run_dir.hpp: survey, remove_holdings, claim_run_dir).
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "host/core/job.hpp"
#include "host/io/run_dir.hpp"

namespace sp {

namespace {

// Removes a lock file no process holds (flock taken, then unlinked while held); keeps it otherwise.
void remove_lock_file(int dir_fd, const std::string& name) {
  const int fd = ::openat(dir_fd, name.c_str(), O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1 && st.st_size <= 4096 &&
      ::flock(fd, LOCK_EX | LOCK_NB) == 0)
    ::unlinkat(dir_fd, name.c_str(), 0);
  ::close(fd);
}

}  // namespace

// ------------------------------------------------------------------------------- removal

bool superpose_writes(const std::string& path) {
  static const std::set<std::string> files = {
      "run.json",    "sweep.json",     "plan.json",          "manifest.json",
      "results.csv", "tms.json",       "experiments.csv",    "phase_diagram.csv",
      "data.npy",    "train_loss.npy", "eval_loss.npy",      "eval_steps.npy",
      "W.npy",       "b.npy",          "snapshot_steps.npy", "chunk.json"};
  const size_t slash = path.rfind('/');
  const std::string leaf = slash == std::string::npos ? path : path.substr(slash + 1);
  if (path == "chunks") return true;
  if (path.rfind("chunks/", 0) == 0 && path.find('/', 7) == std::string::npos &&
      leaf.size() == 12 && leaf.find_first_not_of("0123456789") == std::string::npos)
    return true;  // a chunk's directory
  return files.count(leaf) > 0;
}

namespace {

void survey_into(const RunDir& dir, const std::string& prefix, bool root,
                 const std::function<bool(const std::string&)>& reserved, Holdings& h) {
  const Ledger record = dir.ledger();
  for (const std::string& name : dir.list()) {
    const std::string under = prefix + name;
    if (name == kLedgerFile) continue;
    if (root && (name == kLockFile || name == kClaimFile)) continue;  // the caller holds them
    switch (dir.kind(name)) {
      case EntryKind::file: {
        if (record.lists_temporary(name) || record.lists_lock(name)) {
          h.removable.push_back(under);
        } else if (record.lists(name)) {
          if (record.lists(name, dir.digest(name)))
            h.removable.push_back(under);
          else if (reserved(under))
            h.blocking.push_back({under, "changed since superpose wrote it"});
          else
            h.kept.push_back(under);
        } else if (reserved(under)) {
          h.blocking.push_back({under, "superpose did not write it"});
        } else {
          h.kept.push_back(under);
        }
        break;
      }
      case EntryKind::directory:
        // Only a directory this record says superpose made: a run copied in, or anything else
        // of someone else's, is kept whole.
        if (record.lists_directory(name)) {
          survey_into(*dir.existing_subdir(name), under + "/", false, reserved, h);
        } else if (reserved(under)) {
          h.blocking.push_back({under + "/", "a directory superpose did not make"});
        } else {
          h.kept.push_back(under + "/");
        }
        break;
      case EntryKind::link:
        if (reserved(under))
          h.blocking.push_back({under, "a symbolic link where superpose writes its own"});
        else
          h.kept.push_back(under);
        break;
      default:
        if (reserved(under))
          h.blocking.push_back({under, "not a regular file"});
        else
          h.kept.push_back(under);
    }
  }
}

// Removes the listed files under `dir` (each checked again now: one changed since the survey
// stays), then the directories superpose made that are left empty but for their record.
void remove_into(const RunDir& dir, const std::string& prefix, bool root,
                 const std::set<std::string>& removable) {
  const Ledger record = dir.ledger();
  for (const std::string& name : dir.list()) {
    const std::string under = prefix + name;
    if (name == kLedgerFile) continue;
    if (root && (name == kLockFile || name == kClaimFile)) continue;
    const EntryKind kind = dir.kind(name);
    if (kind == EntryKind::file && removable.count(under)) {
      if (record.lists_lock(name))
        remove_lock_file(dir.descriptor(), name);
      else
        dir.remove_if_written(name);
    } else if (kind == EntryKind::directory && record.lists_directory(name)) {
      const std::optional<RunDir> sub = dir.existing_subdir(name);
      if (!sub) continue;
      remove_into(*sub, under + "/", false, removable);
      const std::vector<std::string> left = sub->list();
      if (left.empty() || (left.size() == 1 && left[0] == kLedgerFile)) {
        if (!left.empty()) ::unlinkat(sub->descriptor(), kLedgerFile, 0);
        dir.remove_empty_subdir(name);
      }
    }
  }
}

}  // namespace

Holdings survey(const RunDir& dir, const std::function<bool(const std::string&)>& reserved) {
  Holdings h;
  survey_into(dir, "", true, reserved, h);
  return h;
}

void remove_holdings(const RunDir& dir, const Holdings& holdings) {
  const std::set<std::string> removable(holdings.removable.begin(), holdings.removable.end());
  // The directory's own record stays: an --overwrite killed before the new run's identity is
  // written leaves a directory that is still superpose's, holding only what it kept.
  remove_into(dir, "", true, removable);
}

// ------------------------------------------------------------------------------- the claim

namespace {

bool superpose_command(const nlohmann::json& j) {
  static const std::set<std::string> commands = {"train", "experiments", "sweep", "phase-diagram",
                                                 "tms"};
  return j.is_object() && j.contains("command") && j["command"].is_string() &&
         commands.count(j["command"].get<std::string>()) > 0;
}

std::string list_text(const std::vector<std::string>& names, size_t most = 8) {
  std::string text;
  for (size_t k = 0; k < names.size() && k < most; ++k) text += (k ? ", " : "") + names[k];
  if (names.size() > most) text += fmt::format(" and {} more", names.size() - most);
  return text;
}

}  // namespace

namespace {

// What claim_run_dir finds in a directory, and does there, step by step.
class Claim {
 public:
  Claim(const RunDir& dir, bool overwrite) : dir_(dir), overwrite_(overwrite) {}

  // What the directory holds besides superpose's lock, its record and the temporaries it lists.
  // Listed first, the record read after: a temporary a shard makes meanwhile was recorded before
  // it existed, so it is never taken for someone else's file.
  std::vector<std::string> holdings() const {
    const std::vector<std::string> names = dir_.list();
    const Ledger record = dir_.ledger();
    std::vector<std::string> entries;
    for (const std::string& name : names)
      if (name != kLockFile && name != kClaimFile && name != kLedgerFile &&
          !record.lists_temporary(name))
        entries.push_back(name);
    return entries;
  }

  // The run the directory belongs to: its identity file, as superpose wrote it ("" if none).
  std::pair<std::string, nlohmann::json> identity_found() const {
    for (const char* name : {"run.json", "sweep.json"}) {
      if (!dir_.wrote(name)) continue;
      nlohmann::json j = dir_.read_json(name);
      if (superpose_command(j)) return {name, j};
    }
    return {"", nullptr};
  }

  // A directory superpose made or wrote in (its record is there) that holds no run, only what
  // others put beside (what an --overwrite kept): nothing in it sits where superpose writes.
  bool only_kept() const {
    if (!dir_.has_ledger()) return false;
    const Holdings found = survey(dir_, superpose_writes);
    return found.blocking.empty() &&
           std::all_of(found.removable.begin(), found.removable.end(), [](const std::string& p) {
             const std::string leaf = p.substr(p.rfind('/') + 1);  // npos + 1 = 0
             return temporary_shape(leaf) || leaf == kLockFile || leaf == kClaimFile ||
                    (leaf.size() > 5 && leaf.compare(leaf.size() - 5, 5, ".lock") == 0);
           });
  }

  // Files superpose did not write, and no run of its own: refused, naming one.
  void refuse_if_foreign(const std::vector<std::string>& entries) const {
    if (entries.empty() || !identity_found().first.empty() || only_kept()) return;
    for (const char* name : {"run.json", "sweep.json"})
      if (dir_.kind(name) == EntryKind::file && dir_.ledger().lists(name))
        throw UsageError(fmt::format(
            "--out: '{}' was changed since superpose wrote it, so superpose no longer knows "
            "which run '{}' holds; restore it, or choose another --out",
            dir_.path_of(name), dir_.path()));
    const std::string& first = entries.front();
    const EntryKind kind = dir_.kind(first);
    throw UsageError(fmt::format(
        "--out: '{}' holds files superpose did not write (such as '{}'{}); choose an empty or new "
        "directory{}",
        dir_.path(), kind == EntryKind::directory ? first + "/" : first,
        kind == EntryKind::link ? ", a symbolic link" : "",
        overwrite_ ? " (--overwrite replaces only superpose's own run directories)" : ""));
  }

  // The lock, taken at once or refused naming its holder; its holder's line then written, only
  // over a holder's line (or into an empty file), never over anything else found at that name.
  std::unique_ptr<RunClaim> lock(bool shared, const std::string& command) const {
    auto locked = dir_.lock(kLockFile, shared, false);
    std::unique_ptr<RunClaim> claim = std::move(locked.first);
    if (!locked.second) {
      char holder[256] = {};
      const ssize_t got = ::pread(claim->fd(), holder, sizeof holder - 1, 0);
      std::string who = got > 0 ? std::string(holder, static_cast<size_t>(got)) : "";
      while (!who.empty() && (who.back() == '\n' || who.back() == ' ')) who.pop_back();
      throw UsageError(fmt::format(
          "--out: '{}' is in use by another superpose ({}{}); wait for it to finish, or choose "
          "another --out",
          dir_.path(), who.empty() ? "its process id unknown" : who,
          shared ? ", which has it alone" : ""));
    }
    const std::string holder = fmt::format("pid {}, {}\n", ::getpid(), command);
    char held[64] = {};
    const ssize_t had = ::pread(claim->fd(), held, sizeof held, 0);
    if (had == 0 || (had > 4 && had < 64 && std::string(held, 4) == "pid ")) {
      if (::ftruncate(claim->fd(), 0) != 0 ||
          ::pwrite(claim->fd(), holder.data(), holder.size(), 0) < 0) {
        // The lock holds either way; the holder's description is a courtesy.
      }
    }
    return claim;
  }

  // --overwrite: exactly what superpose's records list, unchanged, is removed, and what is kept
  // named on stderr; nothing is removed where something else sits where the new run writes.
  void clear() const {
    const Holdings found = survey(dir_, superpose_writes);
    if (!found.blocking.empty()) {
      std::vector<std::string> reasons;
      for (const auto& [path, why] : found.blocking) reasons.push_back(path + " (" + why + ")");
      throw UsageError(fmt::format(
          "--overwrite: '{}' holds what superpose may not remove or replace: {}; superpose removes "
          "only the files its records list, as it wrote them. Move these away (or delete them "
          "yourself), then run again",
          dir_.path(), list_text(reasons, 5)));
    }
    remove_holdings(dir_, found);
    if (!found.kept.empty())
      print_err(
          "superpose: --overwrite removed the {} files the previous run wrote in '{}' and kept {} "
          "that superpose did not write: {}\n",
          found.removable.size(), dir_.path(), found.kept.size(), list_text(found.kept));
  }

 private:
  const RunDir& dir_;
  bool overwrite_;
};

}  // namespace

std::unique_ptr<RunClaim> claim_run_dir(
    const RunDir& dir, const std::string& identity_file, const nlohmann::json& identity,
    bool overwrite, const std::function<void(const nlohmann::json&)>& explain_other, bool shared,
    const std::function<void()>& while_claimed) {
  const Claim claiming(dir, overwrite);
  try {
    // Nothing is created in a directory that is not superpose's: checked before the lock file.
    claiming.refuse_if_foreign(claiming.holdings());
    if (shared && overwrite)
      throw UsageError(
          "--overwrite: not with --shard (shards share a directory; replace it first)");
    std::unique_ptr<RunClaim> claim = claiming.lock(shared, identity.value("command", ""));
    // Shards check and write the identity one at a time (a second lock, held only for that).
    std::unique_ptr<RunClaim> identity_lock;
    if (shared) identity_lock = dir.lock(kClaimFile, false, true).first;
    // Under the lock, what the directory holds is settled.
    claiming.refuse_if_foreign(claiming.holdings());
    const auto [existing_file, existing] = claiming.identity_found();
    if (!shared) dir.remove_recorded_temporaries();  // a superpose directory, or empty
    // The same run, without --overwrite: taken as it is (the caller resumes or rewrites it).
    // Another run: refused, or with --overwrite cleared (so is the same run with --overwrite:
    // everything is trained anew).
    const bool same_run = existing_file == identity_file && existing == identity;
    if (!existing_file.empty() && !same_run && !overwrite) {
      if (explain_other && existing_file == identity_file) explain_other(existing);
      throw UsageError(fmt::format(
          "--out: '{}' holds another run ({} of {}); choose another --out, or add --overwrite "
          "to replace it",
          dir.path(), existing_file, existing.value("command", "?")));
    }
    if (!existing_file.empty() && overwrite) claiming.clear();
    if (existing_file.empty() || overwrite)  // empty, kept files only, or cleared
      dir.write(identity_file, identity.dump(2) + "\n");
    if (while_claimed) while_claimed();
    return claim;
  } catch (const RunDirError& error) {
    throw UsageError(std::string("--out: ") + error.what());
  }
}

}  // namespace sp
