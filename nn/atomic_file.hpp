#pragma once
// Writing a file whole or not at all: the bytes go to a fresh temporary file beside the target,
// which is renamed over it once they are on disk.
//
//   nn::check_writable(path);                       // before a long computation
//   ...
//   nn::write_file_atomically(path, bytes, "the history");

#include <string>
#include <string_view>

namespace nn {

/// Writes `bytes` to `path` atomically: readers see the old file or the new one, never a part.
///
/// The bytes go to a temporary file in the target's directory, created exclusively (never an
/// existing file, never through a symlink planted at its name): an unnamed one (O_TMPFILE) where
/// the filesystem has them, so that a process killed while writing leaves nothing behind, else
/// `<path>.tmp.XXXXXX` made by mkstemp. Once written and fsync'd, it is linked at a fresh
/// `<path>.tmp.XXXXXX` (unnamed case), renamed over `path`, and the directory is fsync'd. A
/// symlink at `path` is replaced, not followed. The new file keeps the permissions of the file
/// it replaces, or gets 0666 less the umask (as fopen would make it).
///
/// Throws DataError naming `path` and `what` (e.g. "the history") when the target is a directory
/// or another non-regular file, its directory is missing or not writable, or any write, fsync or
/// rename fails. On every error the temporary file is removed and the old target left intact.
void write_file_atomically(const std::string& path, std::string_view bytes,
                           std::string_view what = "the file");

/// Checks now what write_file_atomically(path, …) will need later, and leaves nothing behind:
/// the path is not empty, not a directory or another non-regular file, and a temporary file can
/// be created in its directory (one is made and removed at once). Throws DataError as
/// write_file_atomically does. Meant for command lines: a bad output path is reported before the
/// work whose result it was to hold.
void check_writable(const std::string& path, std::string_view what = "the file");

namespace detail {
/// write_file_atomically, with `unnamed_first` false: straight to the named (mkstemp) temporary
/// that filesystems without O_TMPFILE get. For tests of that path.
void write_file_atomically(const std::string& path, std::string_view bytes, std::string_view what,
                           bool unnamed_first);
}  // namespace detail

}  // namespace nn
