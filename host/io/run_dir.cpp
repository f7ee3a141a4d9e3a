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
    if (!existing_file.empty()) {
      const bool same_run = existing_file == identity_file && existing == identity;
      if (!same_run && !overwrite) {
        if (explain_other && existing_file == identity_file) explain_other(existing);
        throw UsageError(fmt::format(
            "--out: '{}' holds another run ({} of {}); choose another --out, or add --overwrite "
            "to replace it",
            dir.path(), existing_file, existing.value("command", "?")));
      }
      if (!same_run) claiming.clear();
    }
    if (existing_file.empty() || existing != identity)  // empty, kept files only, or cleared
      dir.write(identity_file, identity.dump(2) + "\n");
    if (while_claimed) while_claimed();
    return claim;
  } catch (const RunDirError& error) {
    throw UsageError(std::string("--out: ") + error.what());
  }
}

// ------------------------------------------------------------------------------- results

std::string format_number(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  return fmt::format("{}", value);
}

std::string status_of(const ModelResult& result) { return result.finite ? "ok" : "diverged"; }

std::string results_header(int n, int m, const std::vector<std::string>& extra_names) {
  std::string out = "model_id,seed,model,n_features,n_hidden,data_mode,sparsity";
  for (int f = 0; f < n; ++f) out += fmt::format(",sparsity_{}", f);
  for (int f = 0; f < n; ++f) out += fmt::format(",importance_{}", f);
  out += ",lr,weight_decay,steps,train_loss,eval_loss";
  for (int j = 0; j < m; ++j)
    for (int f = 0; f < n; ++f) out += fmt::format(",W_{}_{}", j, f);
  for (int f = 0; f < n; ++f) out += fmt::format(",b_{}", f);
  out += ",status";
  for (const std::string& name : extra_names) out += "," + name;
  return out;
}

std::string results_csv(const std::vector<ResultRow>& rows) {
  if (rows.empty()) return "model_id\n";
  const int n = rows.front().group->n_features, m = rows.front().group->n_hidden;
  std::vector<std::string> extra_names;
  for (const auto& column : rows.front().extra) extra_names.push_back(column.first);
  std::string out = results_header(n, m, extra_names) + '\n';
  for (const ResultRow& row : rows) {
    const GroupSpec& g = *row.group;
    const ModelSpec& model = *row.model;
    const ModelResult& r = *row.result;
    if (g.n_features != n || g.n_hidden != m)
      throw std::logic_error("results_csv: rows of different shapes");
    double mean_sparsity = 0;
    for (double s : model.sparsity) mean_sparsity += s / n;
    out += fmt::format("{},{},{},{},{},{},{}", row.model_id, model.seed, to_string(model.kind), n,
                       m, to_string(g.mode), format_number(mean_sparsity));
    for (double s : model.sparsity) out += "," + format_number(s);
    for (double i : model.importance) out += "," + format_number(i);
    out +=
        fmt::format(",{},{},{},{},{}", format_number(model.lr), format_number(model.weight_decay),
                    g.steps, format_number(r.train_loss), format_number(r.eval_loss));
    for (double w : r.W) out += "," + format_number(w);
    for (double b : r.b) out += "," + format_number(b);
    out += "," + status_of(r);
    for (const auto& column : row.extra) out += "," + column.second;
    out += '\n';
  }
  return out;
}

namespace {

// Whether a row of the field table is kept in the records of this group (host/core/config.hpp:
// Kept).
bool kept(Kept rule, const GroupSpec& g) {
  switch (rule) {
    case Kept::always:
      return true;
    case Kept::fixed:
      return g.mode == DataMode::fixed;
    case Kept::fresh:
      return g.mode == DataMode::fresh;
    case Kept::groups:
      return g.groups.any();
    case Kept::never:
      return false;
  }
  return true;
}

nlohmann::json field_json(int value) { return value; }
nlohmann::json field_json(uint64_t value) { return value; }
nlohmann::json field_json(double value) { return value; }
nlohmann::json field_json(bool value) { return value; }
nlohmann::json field_json(DataMode value) { return to_string(value); }
nlohmann::json field_json(LrSchedule value) { return to_string(value); }
nlohmann::json field_json(const FeatureGroups& groups) {
  return {{"correlated", groups.correlated},
          {"anticorrelated", groups.anticorrelated},
          {"size", groups.size}};
}

}  // namespace

nlohmann::json group_json(const GroupSpec& g) {
  nlohmann::json j = nlohmann::json::object();
#define SP_FIELD_JSON(type, member, initial, option, lo, hi, key, rule, help) \
  if (kept(Kept::rule, g)) j[key] = field_json(g.member);
  SP_GROUP_FIELDS(SP_FIELD_JSON)
#undef SP_FIELD_JSON
  j["train_rows"] = g.train_rows();  // what follows from them, for readers of the manifest
  j["eval_rows"] = g.eval_rows();
  j["models"] = g.models.size();
  return j;
}

namespace {

// A field of a record superpose wrote, as its writer wrote it: present (unless optional), of the
// type, within the range; std::runtime_error naming it otherwise.
template <class T>
T field(const nlohmann::json& j, const char* key, double lo, double hi) {
  const auto it = j.find(key);
  if (it == j.end()) throw std::runtime_error(fmt::format("its field '{}' is missing", key));
  const bool integral = std::is_integral_v<T>;
  if (!it->is_number() || (integral && !it->is_number_integer() && !it->is_number_unsigned()))
    throw std::runtime_error(
        fmt::format("its field '{}' is not a {}", key, integral ? "whole number" : "number"));
  const double value = it->get<double>();
  if (!(value >= lo && value <= hi))
    throw std::runtime_error(fmt::format("its field '{}' is outside [{}, {}]", key, lo, hi));
  return it->get<T>();
}

std::string text_field(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_string())
    throw std::runtime_error(fmt::format("its field '{}' is missing or not text", key));
  return it->get<std::string>();
}

}  // namespace

namespace {

void field_from(const nlohmann::json& j, const char* key, int& out, long double lo,
                long double hi) {
  out = field<int>(j, key, static_cast<double>(lo), static_cast<double>(hi));
}
void field_from(const nlohmann::json& j, const char* key, uint64_t& out, long double lo,
                long double hi) {
  out = field<uint64_t>(j, key, static_cast<double>(lo), static_cast<double>(hi));
}
void field_from(const nlohmann::json& j, const char* key, double& out, long double lo,
                long double hi) {
  out = field<double>(j, key, static_cast<double>(lo), static_cast<double>(hi));
}
void field_from(const nlohmann::json& j, const char* key, bool& out, long double, long double) {
  const auto it = j.find(key);
  if (it == j.end() || !it->is_boolean())
    throw std::runtime_error(fmt::format("its field '{}' is missing or not true/false", key));
  out = it->get<bool>();
}
void field_from(const nlohmann::json& j, const char* key, DataMode& out, long double, long double) {
  try {
    out = parse_data_mode(text_field(j, key), key);
  } catch (const UsageError& error) {
    throw std::runtime_error(error.what());
  }
}
void field_from(const nlohmann::json& j, const char* key, LrSchedule& out, long double,
                long double) {
  try {
    out = parse_lr_schedule(text_field(j, key), key);
  } catch (const UsageError& error) {
    throw std::runtime_error(error.what());
  }
}
void field_from(const nlohmann::json& j, const char* key, FeatureGroups& out, long double lo,
                long double hi) {
  const nlohmann::json& groups = j.at(key);
  if (!groups.is_object() || groups.size() != 3)
    throw std::runtime_error(fmt::format("its field '{}' is damaged", key));
  out = FeatureGroups{
      field<int>(groups, "correlated", static_cast<double>(lo), static_cast<double>(hi)),
      field<int>(groups, "anticorrelated", static_cast<double>(lo), static_cast<double>(hi)),
      field<int>(groups, "size", 1, static_cast<double>(hi))};
  if (!out.any()) throw std::runtime_error(fmt::format("its field '{}' is damaged", key));
}

}  // namespace

GroupSpec group_from_json(const nlohmann::json& j, const std::set<std::string>& may_lack) {
  if (!j.is_object()) throw std::runtime_error("its group is not an object");
  std::set<std::string> known = {"train_rows", "eval_rows", "models"};
#define SP_FIELD_KEY(type, member, initial, option, lo, hi, key, rule, help) known.insert(key);
  SP_GROUP_FIELDS(SP_FIELD_KEY)
#undef SP_FIELD_KEY
  for (const auto& [key, value] : j.items())
    if (!known.count(key)) throw std::runtime_error(fmt::format("its group has a field '{}'", key));
  // Row by row, in the table's order (the data mode before the fields it decides on); a field kept
  // only with feature groups is there exactly when they are.
  GroupSpec g;
#define SP_FIELD_FROM(type, member, initial, option, lo, hi, key, rule, help)                \
  if (Kept::rule == Kept::groups ? j.contains(key) : kept(Kept::rule, g)) {                  \
    if (!j.contains(key) && may_lack.count(key) == 0)                                        \
      throw std::runtime_error(fmt::format("its field '{}' is missing", key));               \
    if (j.contains(key)) field_from(j, key, g.member, lo, hi);                               \
  } else if (j.contains(key)) {                                                              \
    throw std::runtime_error(                                                                \
        fmt::format("its group has '{}', which a run of these options does not keep", key)); \
  }
  SP_GROUP_FIELDS(SP_FIELD_FROM)
#undef SP_FIELD_FROM
  if (field<int64_t>(j, "train_rows", 0, 1 << 24) != g.train_rows() ||
      field<int64_t>(j, "eval_rows", 0, 1 << 24) != g.eval_rows())
    throw std::runtime_error("its fields 'train_rows' and 'eval_rows' do not follow from the rest");
  return g;
}

void write_trajectories(const RunDir& dir, const GroupSpec& g,
                        const std::vector<ModelResult>& results) {
  const size_t models = results.size(), n = g.n_features, m = g.n_hidden;
  const std::vector<int> eval_steps = g.eval_steps(), snapshot_steps = g.snapshot_steps();
  std::vector<float> loss, eval, W, b;
  for (const ModelResult& r : results) {
    loss.insert(loss.end(), r.loss_curve.begin(), r.loss_curve.end());
    eval.insert(eval.end(), r.eval_curve.begin(), r.eval_curve.end());
    W.insert(W.end(), r.W_snapshots.begin(), r.W_snapshots.end());
    b.insert(b.end(), r.b_snapshots.begin(), r.b_snapshots.end());
  }
  auto steps_array = [](const std::vector<int>& steps) {
    return npy::encode(std::vector<int64_t>(steps.begin(), steps.end()), {steps.size()});
  };
  dir.write("train_loss.npy", npy::encode(loss, {models, static_cast<size_t>(g.steps)}));
  dir.write("eval_steps.npy", steps_array(eval_steps));
  dir.write("snapshot_steps.npy", steps_array(snapshot_steps));
  if (g.eval_rows() > 0) dir.write("eval_loss.npy", npy::encode(eval, {models, eval_steps.size()}));
  dir.write("W.npy", npy::encode(W, {models, snapshot_steps.size(), m, n}));
  dir.write("b.npy", npy::encode(b, {models, snapshot_steps.size(), n}));
}

}  // namespace sp
