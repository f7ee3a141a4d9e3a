#include "host/io/run_dir.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <streambuf>

#include "host/core/job.hpp"
#include "host/io/npy.hpp"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace sp {

namespace fs = std::filesystem;

namespace {

std::string hex64(uint64_t value) { return fmt::format("{:016x}", value); }

std::string error_text(int error) { return std::strerror(error); }

// One component of a path inside a run directory: not empty, no slash, not . or .. (superpose's
// own names; a caller passing anything else is a bug).
void check_component(const std::string& name) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      name.find('\0') != std::string::npos)
    throw std::logic_error("run directory: bad file name '" + name + "'");
}

std::vector<std::string> components(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t slash = std::min(path.find('/', start), path.size());
    parts.push_back(path.substr(start, slash - start));
    check_component(parts.back());
    start = slash + 1;
  }
  return parts;
}

// Reads a file descriptor it owns, for std::istream.
// Reads a file descriptor it owns, for std::istream; a read error is a RunDirError naming the
// file (the stream rethrows it: see DescriptorStream), never a silent end of file.
class DescriptorReader : public std::streambuf {
 public:
  DescriptorReader(int fd, std::string path) : fd_(fd), path_(std::move(path)), buffer_(1 << 16) {}
  ~DescriptorReader() override { ::close(fd_); }
  DescriptorReader(const DescriptorReader&) = delete;
  DescriptorReader& operator=(const DescriptorReader&) = delete;

 protected:
  int_type underflow() override {
    if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
    ssize_t got;
    do {
      got = ::read(fd_, buffer_.data(), buffer_.size());
    } while (got < 0 && errno == EINTR);
    if (got < 0)
      throw RunDirError(fmt::format("cannot read '{}' ({})", path_, std::strerror(errno)));
    if (got == 0) return traits_type::eof();
    setg(buffer_.data(), buffer_.data(), buffer_.data() + got);
    return traits_type::to_int_type(*gptr());
  }

 private:
  int fd_;
  std::string path_;
  std::vector<char> buffer_;
};

class DescriptorStream : public std::istream {
 public:
  DescriptorStream(int fd, std::string path) : std::istream(nullptr), reader_(fd, std::move(path)) {
    rdbuf(&reader_);
    exceptions(std::ios::badbit);  // the reader's error reaches the caller
  }

 private:
  DescriptorReader reader_;
};

// Writes to a descriptor (not owned), checksumming and counting what it writes; the first error's
// errno is kept for the message.
class DescriptorWriter : public std::streambuf {
 public:
  explicit DescriptorWriter(int fd) : fd_(fd), buffer_(1 << 16), state_(XXH3_createState()) {
    XXH3_64bits_reset(state_);
    setp(buffer_.data(), buffer_.data() + buffer_.size());
  }
  ~DescriptorWriter() override { XXH3_freeState(state_); }
  DescriptorWriter(const DescriptorWriter&) = delete;
  DescriptorWriter& operator=(const DescriptorWriter&) = delete;
  int error() const { return error_; }
  FileDigest digest() const { return {bytes_, hex64(XXH3_64bits_digest(state_))}; }

 protected:
  int_type overflow(int_type c) override {
    if (!drain()) return traits_type::eof();
    if (!traits_type::eq_int_type(c, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(c);
      pbump(1);
    }
    return traits_type::not_eof(c);
  }
  int sync() override { return drain() ? 0 : -1; }

 private:
  bool drain() {
    const char* data = pbase();
    size_t left = static_cast<size_t>(pptr() - pbase());
    XXH3_64bits_update(state_, data, left);
    bytes_ += left;
    while (left > 0 && error_ == 0) {
      const ssize_t put = ::write(fd_, data, left);
      if (put < 0) {
        if (errno != EINTR) error_ = errno;
        continue;
      }
      data += put;
      left -= static_cast<size_t>(put);
    }
    setp(buffer_.data(), buffer_.data() + buffer_.size());
    return error_ == 0;
  }
  int fd_;
  std::vector<char> buffer_;
  XXH3_state_t* state_;
  uint64_t bytes_ = 0;
  int error_ = 0;
};

// The temporary a write goes through: .<name>.tmp-<pid>-<8 hex digits>, the pid and a random part
// so that shards on different machines (or pid namespaces) never share one.
std::string temporary_name(const std::string& name) {
  static thread_local std::mt19937_64 random(std::random_device{}() ^
                                             static_cast<uint64_t>(::getpid()));
  return fmt::format(".{}.tmp-{}-{:08x}", name, ::getpid(), static_cast<uint32_t>(random()));
}

bool write_all(int fd, const std::string& bytes) {
  const char* data = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    const ssize_t put = ::write(fd, data, left);
    if (put < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += put;
    left -= static_cast<size_t>(put);
  }
  return true;
}

}  // namespace

// ------------------------------------------------------------------------------- the record

bool Ledger::lists(const std::string& name) const {
  return std::any_of(files.begin(), files.end(), [&](const auto& f) { return f.first == name; });
}

bool Ledger::lists(const std::string& name, const FileDigest& digest) const {
  return std::any_of(files.begin(), files.end(),
                     [&](const auto& f) { return f.first == name && f.second == digest; });
}

bool Ledger::lists_temporary(const std::string& name) const {
  return std::find(temporaries.begin(), temporaries.end(), name) != temporaries.end();
}
bool Ledger::lists_directory(const std::string& name) const {
  return std::find(directories.begin(), directories.end(), name) != directories.end();
}
bool Ledger::lists_lock(const std::string& name) const {
  return std::find(locks.begin(), locks.end(), name) != locks.end();
}

bool temporary_shape(const std::string& name) {
  const size_t at = name.rfind(".tmp-");
  if (name.size() < 2 || name[0] != '.' || at == std::string::npos || at < 2) return false;
  const std::string tail = name.substr(at + 5);
  const size_t dash = tail.find('-');
  return dash != std::string::npos && dash > 0 && tail.size() == dash + 9 &&
         tail.find_first_not_of("0123456789") == dash &&
         tail.find_first_not_of("0123456789abcdef", dash + 1) == std::string::npos;
}

Ledger parse_ledger(const std::string& text) {
  Ledger ledger;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = std::min(text.find('\n', start), text.size());
    const nlohmann::json line =
        nlohmann::json::parse(text.begin() + static_cast<std::ptrdiff_t>(start),
                              text.begin() + static_cast<std::ptrdiff_t>(end), nullptr, false);
    start = end + 1;
    if (!line.is_object()) continue;
    const auto name_of = [&](const char* key) -> std::string {
      const auto it = line.find(key);
      if (it == line.end() || !it->is_string()) return "";
      std::string name = it->get<std::string>();
      const bool ok = !name.empty() && name != "." && name != ".." &&
                      name.find('/') == std::string::npos && name.find('\0') == std::string::npos;
      return ok ? name : "";
    };
    if (const std::string file = name_of("file"); !file.empty()) {
      const auto bytes = line.find("bytes");
      const auto xxh3 = line.find("xxh3");
      if (bytes == line.end() || !bytes->is_number_unsigned() || xxh3 == line.end() ||
          !xxh3->is_string())
        continue;
      const std::string hex = xxh3->get<std::string>();
      if (hex.size() != 16 || hex.find_first_not_of("0123456789abcdef") != std::string::npos)
        continue;
      ledger.files.push_back({file, {bytes->get<uint64_t>(), hex}});
    } else if (const std::string temporary = name_of("temporary"); !temporary.empty()) {
      if (temporary_shape(temporary)) ledger.temporaries.push_back(temporary);
    } else if (const std::string directory = name_of("directory"); !directory.empty()) {
      ledger.directories.push_back(directory);
    } else if (const std::string lock = name_of("lock"); !lock.empty()) {
      ledger.locks.push_back(lock);
    }
  }
  return ledger;
}

std::string digest_text(const std::string& bytes) {
  return hex64(XXH3_64bits(bytes.data(), bytes.size()));
}

Digester::Digester() : state_(XXH3_createState()) {
  XXH3_64bits_reset(static_cast<XXH3_state_t*>(state_));
}
Digester::~Digester() { XXH3_freeState(static_cast<XXH3_state_t*>(state_)); }
void Digester::update(const char* data, size_t size) {
  XXH3_64bits_update(static_cast<XXH3_state_t*>(state_), data, size);
  bytes_ += size;
}
FileDigest Digester::result() const {
  return {bytes_, hex64(XXH3_64bits_digest(static_cast<XXH3_state_t*>(state_)))};
}

// ------------------------------------------------------------------------------- the directory

struct RunDir::Handle {
  explicit Handle(int descriptor) : fd(descriptor) {}
  ~Handle() { ::close(fd); }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  int fd;
};

RunDir::RunDir(std::string path, std::shared_ptr<const Handle> handle)
    : path_(std::move(path)), handle_(std::move(handle)) {}

RunDir::RunDir(std::string path, const std::string& option) : path_(std::move(path)) {
  if (path_.empty()) throw UsageError(fmt::format("{}: the directory name is empty", option));
  std::error_code error;
  fs::create_directories(path_, error);
  const int fd = ::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    throw UsageError(fmt::format("{}: cannot create directory '{}' ({})", option, path_,
                                 error ? error.message() : error_text(errno)));
  handle_ = std::make_shared<const Handle>(fd);
  if (::faccessat(fd, ".", W_OK | X_OK, 0) != 0)
    throw UsageError(
        fmt::format("{}: directory '{}' is not writable ({})", option, path_, error_text(errno)));
}

RunDir RunDir::existing(const std::string& path, const std::string& option) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    throw UsageError(
        fmt::format("{}: '{}' is not a directory ({})", option, path, error_text(errno)));
  return RunDir(path, std::make_shared<const Handle>(fd));
}

int RunDir::descriptor() const { return handle_->fd; }

std::string RunDir::path_of(const std::string& name) const {
  return (fs::path(path_) / name).string();
}

EntryKind RunDir::kind(const std::string& name) const {
  check_component(name);
  struct stat st {};
  if (::fstatat(handle_->fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return EntryKind::none;
    throw RunDirError(fmt::format("cannot look at '{}' ({})", path_of(name), error_text(errno)));
  }
  if (S_ISLNK(st.st_mode)) return EntryKind::link;
  if (S_ISREG(st.st_mode)) return EntryKind::file;
  if (S_ISDIR(st.st_mode)) return EntryKind::directory;
  return EntryKind::other;
}

std::vector<std::string> RunDir::list() const {
  const int fd = ::openat(handle_->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR* listing = fd < 0 ? nullptr : ::fdopendir(fd);
  if (!listing) {
    if (fd >= 0) ::close(fd);
    throw RunDirError(fmt::format("cannot list '{}' ({})", path_, error_text(errno)));
  }
  std::vector<std::string> names;
  while (const dirent* entry = ::readdir(listing)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(listing);
  std::sort(names.begin(), names.end());
  return names;
}

namespace {

// Opens a regular file of the directory for reading: never through a link, never blocking on a
// FIFO; RunDirError naming it otherwise.
int open_regular(int dir_fd, const std::string& name, const std::string& path) {
  check_component(name);
  const int fd =
      ::openat(dir_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ELOOP)
      throw RunDirError(fmt::format(
          "'{}' is a symbolic link: superpose never follows a link in a run directory; remove it",
          path));
    if (errno == ENOENT) throw RunDirError(fmt::format("'{}' is missing", path));
    throw RunDirError(fmt::format("cannot read '{}' ({})", path, error_text(errno)));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw RunDirError(fmt::format(
        "'{}' is not a regular file (a directory, FIFO or device), where superpose keeps a file",
        path));
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

}  // namespace

std::unique_ptr<std::istream> RunDir::open(const std::string& name) const {
  return std::make_unique<DescriptorStream>(open_regular(handle_->fd, name, path_of(name)),
                                            path_of(name));
}

std::string RunDir::read(const std::string& name) const {
  const int fd = open_regular(handle_->fd, name, path_of(name));
  std::string bytes;
  std::vector<char> buffer(1 << 16);
  while (true) {
    const ssize_t got = ::read(fd, buffer.data(), buffer.size());
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      const int error = errno;
      ::close(fd);
      throw RunDirError(fmt::format("cannot read '{}' ({})", path_of(name), error_text(error)));
    }
    if (got == 0) break;
    bytes.append(buffer.data(), static_cast<size_t>(got));
  }
  ::close(fd);
  return bytes;
}

nlohmann::json RunDir::read_json(const std::string& name) const {
  try {
    if (kind(name) != EntryKind::file) return nullptr;
    return nlohmann::json::parse(read(name), nullptr, false);  // discarded: null-like
  } catch (const RunDirError&) {
    return nullptr;
  }
}

FileDigest RunDir::digest(const std::string& name) const {
  const int fd = open_regular(handle_->fd, name, path_of(name));
  XXH3_state_t* state = XXH3_createState();
  XXH3_64bits_reset(state);
  std::vector<char> buffer(1 << 16);
  FileDigest digest;
  int error = 0;
  while (true) {
    const ssize_t got = ::read(fd, buffer.data(), buffer.size());
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) error = errno;
    if (got <= 0) break;
    XXH3_64bits_update(state, buffer.data(), static_cast<size_t>(got));
    digest.bytes += static_cast<uint64_t>(got);
  }
  digest.xxh3 = hex64(XXH3_64bits_digest(state));
  XXH3_freeState(state);
  ::close(fd);
  if (error)
    throw RunDirError(fmt::format("cannot read '{}' ({})", path_of(name), error_text(error)));
  return digest;
}

Ledger RunDir::ledger() const {
  if (kind(kLedgerFile) != EntryKind::file) return {};
  return parse_ledger(read(kLedgerFile));
}

bool RunDir::wrote(const std::string& name) const {
  if (kind(name) != EntryKind::file) return false;
  const Ledger record = ledger();
  return record.lists(name) && record.lists(name, digest(name));
}

void RunDir::append_record(const nlohmann::json& line) const {
  const int fd =
      ::openat(handle_->fd, kLedgerFile,
               O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
  if (fd < 0)
    throw RunDirError(
        errno == ELOOP
            ? fmt::format("'{}' is a symbolic link where superpose keeps its record of the files "
                          "it wrote: superpose never writes through a link; remove it",
                          path_of(kLedgerFile))
            : fmt::format("cannot write '{}' ({})", path_of(kLedgerFile), error_text(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
    ::close(fd);
    throw RunDirError(fmt::format(
        "'{}' is not superpose's record of its files (not a regular file, or a hard link to "
        "another); remove it",
        path_of(kLedgerFile)));
  }
  bool ok = write_all(fd, line.dump() + "\n");
  int error = ok ? 0 : errno;
  // A file's line reaches the disk before the file takes its name: after a crash, no file of
  // superpose's is there unrecorded.
  if (ok && line.contains("file") && ::fdatasync(fd) != 0) error = errno, ok = false;
  if (::close(fd) != 0 && ok) error = errno, ok = false;
  if (!ok)
    throw RunDirError(
        fmt::format("cannot write '{}' ({})", path_of(kLedgerFile), error_text(error)));
}

void RunDir::write(const std::string& name, const std::string& bytes) const {
  write_with(name, [&](std::ostream& out) {
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  });
}

void RunDir::write_with(const std::string& name,
                        const std::function<void(std::ostream&)>& fill) const {
  check_component(name);
  if (name == kLedgerFile || name == kLockFile || name == kClaimFile)
    throw std::logic_error("run directory: " + name + " is not written as a file");
  const int dir_fd = handle_->fd;
  const std::string temporary = temporary_name(name);
  append_record({{"temporary", temporary}});  // before it exists: a crash leaves it listed
  const int fd = ::openat(dir_fd, temporary.c_str(),
                          O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0)
    throw RunDirError(fmt::format("cannot write '{}' ({})", path_of(name), error_text(errno)));
  FileDigest digest;
  bool open = true;
  try {
    int error = 0;
    {
      DescriptorWriter writer(fd);
      std::ostream out(&writer);
      fill(out);
      out.flush();
      error = writer.error() ? writer.error() : (out ? 0 : EIO);
      digest = writer.digest();
    }
    // Its bytes reach the disk before it takes its name: whole or absent, after a crash too.
    if (error == 0 && ::fdatasync(fd) != 0) error = errno;
    open = false;
    if (::close(fd) != 0 && error == 0) error = errno;
    if (error)
      throw RunDirError(fmt::format("cannot write '{}' ({})", path_of(name), error_text(error)));
  } catch (...) {
    if (open) ::close(fd);
    ::unlinkat(dir_fd, temporary.c_str(), 0);
    throw;
  }
  // The name: absent, or superpose's own file as it wrote it — never a link, never a file it did
  // not write.
  std::string problem;
  switch (kind(name)) {
    case EntryKind::none:
      break;
    case EntryKind::file:
      if (!wrote(name))
        problem = fmt::format(
            "'{}' is not a file superpose wrote, or it was changed since: superpose does not "
            "replace it; move it away (or delete it), then run again",
            path_of(name));
      break;
    case EntryKind::link:
      problem = fmt::format(
          "'{}' is a symbolic link where superpose writes its own {}: superpose never writes "
          "through a link; remove it, then run again",
          path_of(name), name);
      break;
    default:
      problem = fmt::format(
          "'{}' is not a regular file, where superpose writes its own {}; remove it, then run "
          "again",
          path_of(name), name);
  }
  try {
    if (!problem.empty()) throw RunDirError(problem);
    append_record({{"file", name}, {"bytes", digest.bytes}, {"xxh3", digest.xxh3}});
    if (::renameat(dir_fd, temporary.c_str(), dir_fd, name.c_str()) != 0)
      throw RunDirError(fmt::format("cannot write '{}' ({})", path_of(name), error_text(errno)));
  } catch (...) {
    ::unlinkat(dir_fd, temporary.c_str(), 0);
    throw;
  }
}

namespace {

int open_subdirectory(int dir_fd, const std::string& name, const std::string& path) {
  const int fd = ::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) return fd;
  const int error = errno;
  struct stat st {};
  if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISLNK(st.st_mode))
      throw RunDirError(fmt::format(
          "'{}' is a symbolic link where superpose keeps its directory {}: superpose never "
          "follows a link in a run directory; remove it",
          path, name));
    if (!S_ISDIR(st.st_mode))
      throw RunDirError(fmt::format(
          "'{}' is not a directory, where superpose keeps its directory {}", path, name));
  }
  if (error == ENOENT) return -1;
  throw RunDirError(fmt::format("cannot open '{}' ({})", path, error_text(error)));
}

}  // namespace

RunDir RunDir::subdir(const std::string& name) const {
  RunDir dir = *this;
  for (const std::string& part : components(name)) {
    const std::string path = dir.path_of(part);
    // A directory superpose makes is listed in its parent's record first (as a temporary is): the
    // record says which subdirectories are superpose's, never the subdirectory itself.
    if (dir.kind(part) == EntryKind::none) {
      if (!dir.ledger().lists_directory(part)) dir.append_record({{"directory", part}});
      if (::mkdirat(dir.handle_->fd, part.c_str(), 0755) != 0 && errno != EEXIST)
        throw RunDirError(
            fmt::format("cannot create directory '{}' ({})", path, error_text(errno)));
    }
    const int fd = open_subdirectory(dir.handle_->fd, part, path);
    if (fd < 0) throw RunDirError(fmt::format("cannot open '{}' (it went away)", path));
    dir = RunDir(path, std::make_shared<const Handle>(fd));
  }
  return dir;
}

std::optional<RunDir> RunDir::existing_subdir(const std::string& name) const {
  RunDir dir = *this;
  for (const std::string& part : components(name)) {
    const std::string path = dir.path_of(part);
    const int fd = open_subdirectory(dir.handle_->fd, part, path);
    if (fd < 0) return std::nullopt;
    dir = RunDir(path, std::make_shared<const Handle>(fd));
  }
  return dir;
}

std::pair<std::unique_ptr<RunClaim>, bool> RunDir::lock(const std::string& name, bool shared,
                                                        bool wait) const {
  check_component(name);
  // A lock file superpose makes is listed in the record first, so that it is known as superpose's.
  if (kind(name) == EntryKind::none && !ledger().lists_lock(name)) append_record({{"lock", name}});
  const int fd = ::openat(handle_->fd, name.c_str(),
                          O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
  if (fd < 0)
    throw RunDirError(errno == ELOOP
                          ? fmt::format("'{}' is a symbolic link where superpose keeps its lock: "
                                        "superpose never writes through a link; remove it",
                                        path_of(name))
                          : fmt::format("cannot open '{}' ({})", path_of(name), error_text(errno)));
  auto claim = std::make_unique<RunClaim>(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1)
    throw RunDirError(fmt::format(
        "'{}' is not superpose's lock file (not a regular file, or a hard link to another); "
        "remove it",
        path_of(name)));
  while (::flock(fd, (shared ? LOCK_SH : LOCK_EX) | (wait ? 0 : LOCK_NB)) != 0) {
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK) return {std::move(claim), false};
    throw RunDirError(fmt::format(
        "cannot lock '{}' ({}): superpose needs flock, which this file system does not give",
        path_of(name), error_text(errno)));
  }
  return {std::move(claim), true};
}

std::unique_ptr<RunClaim> RunDir::try_lock(const std::string& name) const {
  auto [claim, taken] = lock(name, false, false);
  return taken ? std::move(claim) : nullptr;
}

bool RunDir::remove_if_written(const std::string& name) const {
  if (kind(name) != EntryKind::file) return false;
  const Ledger record = ledger();
  if (!record.lists_temporary(name) && !(record.lists(name) && record.lists(name, digest(name))))
    return false;
  return ::unlinkat(handle_->fd, name.c_str(), 0) == 0;
}

void RunDir::rename(const std::string& from, const std::string& to) const {
  check_component(from);
  check_component(to);
  if (::renameat(handle_->fd, from.c_str(), handle_->fd, to.c_str()) != 0)
    throw RunDirError(
        fmt::format("cannot rename '{}' to '{}' ({})", path_of(from), to, error_text(errno)));
}

void RunDir::remove_empty_subdir(const std::string& name) const {
  check_component(name);
  ::unlinkat(handle_->fd, name.c_str(), AT_REMOVEDIR);  // fails, harmlessly, when not empty
}

void RunDir::remove_recorded_temporaries() const {
  const Ledger record = ledger();
  for (const std::string& temporary : record.temporaries)
    if (kind(temporary) == EntryKind::file) ::unlinkat(handle_->fd, temporary.c_str(), 0);
  for (const std::string& name : record.directories)
    if (kind(name) == EntryKind::directory) {
      // Another run's directory inside this one (its own lock) is left to that run.
      const std::optional<RunDir> sub = existing_subdir(name);
      if (sub && sub->kind(kLockFile) == EntryKind::none) sub->remove_recorded_temporaries();
    }
}

void write_file_atomically(const std::string& path,
                           const std::function<void(std::ostream&)>& fill) {
  const fs::path final_path = fs::absolute(path);
  const int dir_fd = ::open(final_path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0)
    throw std::runtime_error(fmt::format("cannot write '{}' ({})", path, error_text(errno)));
  const std::string name = final_path.filename().string(), temporary = temporary_name(name);
  const int fd = ::openat(dir_fd, temporary.c_str(),
                          O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  int error = fd < 0 ? errno : 0;
  if (fd >= 0) {
    try {
      DescriptorWriter writer(fd);
      std::ostream out(&writer);
      fill(out);
      out.flush();
      error = writer.error() ? writer.error() : (out ? 0 : EIO);
    } catch (...) {
      ::close(fd);
      ::unlinkat(dir_fd, temporary.c_str(), 0);
      ::close(dir_fd);
      throw;
    }
    if (::close(fd) != 0 && error == 0) error = errno;
    if (error == 0 && ::renameat(dir_fd, temporary.c_str(), dir_fd, name.c_str()) != 0)
      error = errno;
    if (error) ::unlinkat(dir_fd, temporary.c_str(), 0);
  }
  ::close(dir_fd);
  if (error)
    throw std::runtime_error(fmt::format("cannot write '{}' ({})", path, error_text(error)));
}

RunClaim::~RunClaim() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

}  // namespace sp
