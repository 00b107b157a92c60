#include "nn/atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <random>
#include <system_error>

#include <fmt/format.h>

#include "nn/data.hpp"  // DataError

namespace nn {
namespace {

std::string error_text(int error) { return std::system_category().message(error); }

[[noreturn]] void fail(const std::string& path, std::string_view what, const std::string& reason) {
  throw DataError(fmt::format("{}: cannot write {}: {}", path, what, reason));
}

std::string directory_of(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

// The process's umask, read without changing it (umask(2) would, for every thread).
mode_t current_umask() {
  mode_t mask = 022;
  if (std::FILE* status = std::fopen("/proc/self/status", "re")) {
    char line[256];
    while (std::fgets(line, sizeof line, status)) {
      unsigned value = 0;
      if (std::sscanf(line, "Umask: %o", &value) == 1) {
        mask = static_cast<mode_t>(value & 0777);
        break;
      }
    }
    std::fclose(status);
  }
  return mask;
}

// Throws unless `path` can be replaced by a regular file; returns the new file's permissions.
mode_t check_target(const std::string& path, std::string_view what) {
  if (path.empty()) throw DataError(fmt::format("cannot write {}: the path is empty", what));
  if (std::filesystem::path(path).filename().empty())
    fail(path, what, "the path names a directory");
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) fail(path, what, "it is a directory");
    if (S_ISREG(st.st_mode)) return st.st_mode & 0777;  // keep the replaced file's permissions
    if (!S_ISLNK(st.st_mode)) fail(path, what, "it exists and is not a regular file");
    // A symlink is replaced by the new file, never written through.
  } else if (const int error = errno; error != ENOENT) {
    fail(path, what, error_text(error));  // e.g. a parent that is a regular file
  }
  return 0666 & ~current_umask();
}

// Whether open(O_TMPFILE) failing with `error` means "not supported here" (use a named file).
bool unnamed_unsupported(int error) {
  return error == EOPNOTSUPP || error == EISDIR || error == EINVAL;
}

// The temporary file, beside the target. Either unnamed (O_TMPFILE: it gets a name only once
// its bytes are on disk, so a process killed while writing leaves nothing behind) or named
// `<target>.tmp.XXXXXX` by mkstemp. Both are created exclusively: never an existing file, never
// through a symlink. Closed and removed when destroyed, unless renamed over the target.
class TemporaryFile {
 public:
  enum Kind { Unnamed, Named };

  // An Unnamed one falls back to Named where the filesystem has no O_TMPFILE.
  TemporaryFile(const std::string& target, std::string_view what, Kind kind)
      : target_(target), what_(what), directory_(directory_of(target)) {
    if (kind == Unnamed) {
      fd_ = ::open(directory_.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
      if (fd_ >= 0) return;
      const int error = errno;
      if (!unnamed_unsupported(error)) fail_to_create(error);
    }
    name_ = target + ".tmp.XXXXXX";
    fd_ = ::mkostemp(name_.data(), O_CLOEXEC);
    if (fd_ < 0) {
      const int error = errno;
      name_.clear();
      fail_to_create(error);
    }
  }
  TemporaryFile(const TemporaryFile&) = delete;
  TemporaryFile& operator=(const TemporaryFile&) = delete;
  ~TemporaryFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!name_.empty()) ::unlink(name_.c_str());
  }

  bool named() const { return !name_.empty(); }

  void write_all(std::string_view bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
      const int error = n < 0 ? errno : EIO;
      if (n < 0 && error == EINTR) continue;
      if (n <= 0)
        fail_with(fmt::format("writing {} of {} bytes failed", bytes.size() - done, bytes.size()),
                  error);
      done += static_cast<std::size_t>(n);
    }
  }

  void set_permissions(mode_t mode) {
    if (::fchmod(fd_, mode) != 0) {
      const int error = errno;
      fail_with("cannot set the permissions", error);
    }
  }

  void sync() {
    if (::fsync(fd_) != 0) {
      const int error = errno;
      fail_with("fsync failed", error);
    }
  }

  // Links an unnamed file at a fresh `<target>.tmp.XXXXXX`. False if this system cannot (no
  // CAP_DAC_READ_SEARCH for AT_EMPTY_PATH and no /proc): then the caller starts over, named.
  bool give_name() {
    std::random_device random;
    constexpr char kLetters[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const std::string by_proc = fmt::format("/proc/self/fd/{}", fd_);
    for (int attempt = 0; attempt < 100; ++attempt) {
      std::string name = target_ + ".tmp.";
      for (int i = 0; i < 6; ++i) name += kLetters[random() % (sizeof kLetters - 1)];
      // linkat never follows or replaces what is at the new name: EEXIST, and another name.
      int linked = ::linkat(fd_, "", AT_FDCWD, name.c_str(), AT_EMPTY_PATH);
      if (linked != 0 && errno != EEXIST)
        linked = ::linkat(AT_FDCWD, by_proc.c_str(), AT_FDCWD, name.c_str(), AT_SYMLINK_FOLLOW);
      if (linked == 0) {
        name_ = std::move(name);
        return true;
      }
      if (errno != EEXIST) return false;
    }
    fail_with("no free temporary name after 100 attempts", EEXIST);
  }

  void close() {
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) {
      const int error = errno;
      fail_with("close failed", error);
    }
  }

  void rename_over_target() {
    if (::rename(name_.c_str(), target_.c_str()) != 0) {
      const int error = errno;
      fail_with(fmt::format("cannot rename {} over it", name_), error);
    }
    name_.clear();  // it is the target now
  }

 private:
  [[noreturn]] void fail_to_create(int error) {
    fail(target_, what_,
         fmt::format("cannot create a temporary file in {} ({})", directory_, error_text(error)));
  }
  [[noreturn]] void fail_with(const std::string& step, int error) {
    fail(target_, what_, fmt::format("{} ({}); the file is unchanged", step, error_text(error)));
  }

  std::string target_;
  std::string_view what_;
  std::string directory_;
  std::string name_;  // empty while unnamed, and once removed or renamed
  int fd_ = -1;
};

// Makes the rename durable.
void sync_directory(const std::string& path, std::string_view what) {
  const std::string directory = directory_of(path);
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    fail(path, what,
         fmt::format("written, but its directory {} cannot be opened to sync it ({})", directory,
                     error_text(error)));
  }
  const bool synced = ::fsync(fd) == 0 || errno == EINVAL;  // EINVAL: syncing not supported
  const int error = errno;
  ::close(fd);
  if (!synced)
    fail(path, what,
         fmt::format("written, but syncing its directory {} failed ({})", directory,
                     error_text(error)));
}

}  // namespace

namespace detail {

void write_file_atomically(const std::string& path, std::string_view bytes, std::string_view what,
                           bool unnamed_first) {
  const mode_t mode = check_target(path, what);
  {
    TemporaryFile temporary(path, what,
                            unnamed_first ? TemporaryFile::Unnamed : TemporaryFile::Named);
    temporary.write_all(bytes);
    temporary.set_permissions(mode);
    temporary.sync();
    if (temporary.named() || temporary.give_name()) {
      temporary.close();
      temporary.rename_over_target();
      sync_directory(path, what);
      return;
    }
  }
  // An unnamed file that could not be linked: once more, through a named one.
  write_file_atomically(path, bytes, what, false);
}

}  // namespace detail

void write_file_atomically(const std::string& path, std::string_view bytes, std::string_view what) {
  detail::write_file_atomically(path, bytes, what, true);
}

void check_writable(const std::string& path, std::string_view what) {
  check_target(path, what);
  TemporaryFile probe(path, what, TemporaryFile::Unnamed);  // made, closed and removed
}

}  // namespace nn
