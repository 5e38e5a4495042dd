"""One root, one pyarrow filesystem: the only place the store touches storage.

A plain path is a local directory (resolved against the current directory when relative);
anything with ``scheme://`` goes through :meth:`pyarrow.fs.FileSystem.from_uri`, so a local
directory, ``file://`` and ``s3://`` share every code path below.
"""

from __future__ import annotations

import uuid
from functools import cached_property
from pathlib import Path

import pyarrow.fs as pafs


class Location:
    """The store's root: a filesystem, a path inside it and the URI to show for it.

    Nothing is resolved until first use: constructing one neither connects nor creates."""

    def __init__(self, uri: str) -> None:
        if not uri:
            raise ValueError("model store URI is empty")
        self.scheme: str | None
        if "://" in uri:
            self.scheme, _ = uri.split("://", 1)
            self._uri = uri.rstrip("/")
        else:
            self.scheme = None
            self._uri = str(Path(uri).expanduser().absolute())

    @cached_property
    def _resolved(self) -> tuple[pafs.FileSystem, str]:
        if self.scheme is None:
            return pafs.LocalFileSystem(), self._uri
        fs, path = pafs.FileSystem.from_uri(self._uri)
        return fs, str(path).rstrip("/")

    @property
    def fs(self) -> pafs.FileSystem:
        return self._resolved[0]

    @property
    def root(self) -> str:
        return self._resolved[1]

    @property
    def renames_directories(self) -> bool:
        """True where moving a directory is one atomic rename (the local filesystem)."""
        return isinstance(self.fs, pafs.LocalFileSystem)

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def uri(self, path: str) -> str:
        """How a path inside the filesystem is shown and passed on to others."""
        return path if self.scheme is None else f"{self.scheme}://{path}"

    def __repr__(self) -> str:
        return f"Location({self._uri!r})"

    # --- I/O; compression=None everywhere: pyarrow would otherwise gzip a '*.gz' name.

    def exists(self, path: str) -> bool:
        return bool(self.fs.get_file_info(path).type != pafs.FileType.NotFound)

    def read(self, path: str) -> bytes:
        with self.fs.open_input_stream(path, compression=None) as stream:
            return bytes(stream.read())

    def read_if_exists(self, path: str) -> bytes | None:
        try:
            return self.read(path)
        except OSError:
            if self.exists(path):
                raise
            return None

    def write(self, path: str, data: bytes) -> None:
        parent = path.rsplit("/", 1)[0]
        self.fs.create_dir(parent, recursive=True)
        with self.fs.open_output_stream(path, compression=None) as stream:
            stream.write(data)

    def replace(self, path: str, data: bytes) -> None:
        """Write a file whole: to a hidden temporary name first, then moved over ``path``."""
        directory, name = path.rsplit("/", 1)
        temp = f"{directory}/.{name}.{uuid.uuid4().hex}.tmp"
        self.write(temp, data)
        try:
            self.fs.move(temp, path)
        except BaseException:
            self.delete_quietly(temp)
            raise

    def directories(self, path: str) -> list[str]:
        """Names of the visible subdirectories of ``path`` (none start with '.' or '_')."""
        selector = pafs.FileSelector(path, allow_not_found=True, recursive=False)
        return sorted(
            info.base_name
            for info in self.fs.get_file_info(selector)
            if info.type == pafs.FileType.Directory and not info.base_name.startswith((".", "_"))
        )

    def delete_quietly(self, path: str) -> None:
        """Remove a file or directory if it is there; best effort, for cleaning up."""
        try:
            info = self.fs.get_file_info(path)
            if info.type == pafs.FileType.Directory:
                self.fs.delete_dir(path)
            elif info.type != pafs.FileType.NotFound:
                self.fs.delete_file(path)
        except OSError:
            pass
