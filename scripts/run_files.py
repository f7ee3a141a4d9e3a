"""run_files.py — how superpose's Python scripts (plots.py, report.py) read and write run
directories, by the engine's rules (docs/run-directory.md, host/io/run_dir.hpp):

- a file is written beside its name (a new temporary, O_EXCL) and renamed into place, so it is
  whole or absent; it is reached relative to its directory's descriptor, never through a symbolic
  link planted there (O_NOFOLLOW); it replaces only a file the directory's record says superpose
  wrote, unchanged since;
- every file written, and every temporary and subdirectory about to be made, is listed first in
  the directory's record, .superpose.files (a JSON line each: name, size, XXH3-64), so that
  `superpose ... --overwrite` removes the pictures superpose drew and keeps the ones a user put
  beside them;
- a file read is a regular file (a FIFO there is an error, never a hang);
- an axis of a manifest keeps its generator ("logspace(-2,0,12)") instead of its values where a
  function generated them: axis_values expands it with the engine's formula.
"""
import json
import os
import random
import stat

import xxhash

LEDGER = ".superpose.files"


class RunFilesError(Exception):
    """Something in a run directory is not as superpose left it: the message names the path."""


def _read_regular(fd, path):
    """The bytes of the file open at `fd` (closed after), which must be a regular file."""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise RunFilesError(f"'{path}' is not a regular file (a FIFO, device or directory)")
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


_READ = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC


def read_bytes(path):
    """A regular file's bytes: never blocking on a FIFO, never through a link at its name."""
    try:
        fd = os.open(path, _READ)
    except OSError as error:
        if error.errno == 40:  # ELOOP
            raise RunFilesError(f"'{path}' is a symbolic link: superpose never follows a link in "
                                "a run directory") from None
        raise
    return _read_regular(fd, path)


def load_json(path):
    return json.loads(read_bytes(path))


def axis_values(axis):
    """An axis's values, from its list or its generator, as the engine computes them (the same
    double operations in the same order: the same bits)."""
    if "values" in axis:
        return list(axis["values"])
    text = axis["generator"]
    name, args = text[:text.index("(")], text[text.index("(") + 1:-1].split(",")
    if name == "range":
        start, stop, step = (int(a) for a in args)
        return [float(v) for v in range(start, stop, step)]
    a, b, k = float(args[0]), float(args[1]), int(args[2])
    xs = [a if k == 1 else (b if i == k - 1 else a + float(i) * (b - a) / float(k - 1))
          for i in range(k)]
    return xs if name == "linspace" else [10.0 ** x for x in xs]


def load_manifest(path):
    """manifest.json with every axis's values listed (axis["values"])."""
    manifest = load_json(path)
    for axis in manifest.get("axes", []):
        axis["values"] = axis_values(axis)
    return manifest


def _digest(data):
    return {"bytes": len(data), "xxh3": xxhash.xxh3_64_hexdigest(data)}


class RunFiles:
    """A directory held open by descriptor; files in it written by the rules above."""

    def __init__(self, path, fd):
        self.path, self.fd = path, fd

    @classmethod
    def at(cls, path):
        """The directory as the user named it (links in that path followed), created if absent."""
        os.makedirs(path, exist_ok=True)
        return cls(path, os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))

    def close(self):
        os.close(self.fd)

    def subdir(self, name):
        """The subdirectory `name`, made if absent (listed in this directory's record first, as
        superpose's); a link or a file there is an error."""
        path = os.path.join(self.path, name)
        try:
            os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            if name not in self._recorded("directory"):
                self._record({"directory": name})
            try:
                os.mkdir(name, 0o755, dir_fd=self.fd)
            except FileExistsError:
                pass
        try:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         dir_fd=self.fd)
        except OSError:
            if stat.S_ISLNK(os.stat(name, dir_fd=self.fd, follow_symlinks=False).st_mode):
                raise RunFilesError(f"'{path}' is a symbolic link where superpose keeps its "
                                    f"directory {name}: superpose never follows a link in a run "
                                    "directory; remove it") from None
            raise RunFilesError(f"'{path}' is not a directory, where superpose keeps its "
                                f"directory {name}") from None
        return RunFiles(path, fd)

    def _record(self, line):
        fd = os.open(LEDGER, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW |
                     os.O_NONBLOCK | os.O_CLOEXEC, 0o644, dir_fd=self.fd)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
                raise RunFilesError(f"'{os.path.join(self.path, LEDGER)}' is not superpose's "
                                    "record of its files; remove it")
            os.write(fd, (json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n").encode())
        finally:
            os.close(fd)

    def _read(self, name):
        """A regular file of this directory, by descriptor: never through a link, never blocking."""
        return _read_regular(os.open(name, _READ, dir_fd=self.fd), os.path.join(self.path, name))

    def _recorded(self, kind="file"):
        """The record's entries of one kind: (name, bytes, xxh3) for files, names for the rest."""
        try:
            text = self._read(LEDGER).decode(errors="replace")
        except FileNotFoundError:
            return []
        entries = []
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if not isinstance(entry, dict) or kind not in entry:
                continue
            entries.append((entry.get("file"), entry.get("bytes"), entry.get("xxh3"))
                           if kind == "file" else entry[kind])
        return entries

    def wrote(self, name):
        """Whether `name` is a file this directory's record lists, unchanged since."""
        try:
            data = self._read(name)
        except (OSError, RunFilesError):
            return False
        digest = _digest(data)
        return (name, digest["bytes"], digest["xxh3"]) in self._recorded()

    def write_bytes(self, name, data):
        """Writes `name` whole or not at all; returns its path."""
        path = os.path.join(self.path, name)
        temporary = f".{name}.tmp-{os.getpid()}-{random.getrandbits(32):08x}"
        self._record({"temporary": temporary})
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW |
                     os.O_CLOEXEC, 0o644, dir_fd=self.fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.close(fd)
            fd = -1
            try:
                mode = os.stat(name, dir_fd=self.fd, follow_symlinks=False).st_mode
            except FileNotFoundError:
                mode = None
            if mode is not None and stat.S_ISLNK(mode):
                raise RunFilesError(f"'{path}' is a symbolic link where superpose writes its own "
                                    f"{name}: superpose never writes through a link; remove it")
            if mode is not None and not stat.S_ISREG(mode):
                raise RunFilesError(f"'{path}' is not a regular file, where superpose writes its "
                                    f"own {name}")
            if mode is not None and not self.wrote(name):
                raise RunFilesError(f"'{path}' is not a file superpose wrote, or it was changed "
                                    "since: superpose does not replace it; move it away (or "
                                    "delete it), then run again")
            self._record(dict(file=name, **_digest(bytes(data))))
            os.replace(temporary, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            try:
                os.unlink(temporary, dir_fd=self.fd)
            except FileNotFoundError:
                pass
            raise
        return path

    def write_text(self, name, text):
        return self.write_bytes(name, text.encode())
