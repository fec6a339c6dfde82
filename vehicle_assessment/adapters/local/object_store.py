"""Filesystem object store: S3 semantics (flat keys, whole-object put/get) on a directory."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath

from vehicle_assessment.ports import ObjectHead, ObjectNotFound, ObjectTooLarge


class FilesystemObjectStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        # Keys come from our own code, but refuse anything that could escape the root.
        parts = PurePosixPath(key).parts
        if not key or key.startswith("/") or ".." in parts:
            raise ValueError(f"invalid object key: {key!r}")
        return self.root.joinpath(*parts)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a crash never leaves a half-written object under the real key.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)

    def get(self, key: str, version_id: str | None = None, max_bytes: int | None = None) -> bytes:
        if version_id is not None:
            # Local mode writes each photo once under its own key; a version id comes only from S3.
            raise ValueError(
                f"the filesystem store keeps no versions: cannot read {key!r} version {version_id!r}"
            )
        path = self._path(key)
        try:
            with path.open("rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if max_bytes is not None and size > max_bytes:
                    raise ObjectTooLarge(repr(key), size, max_bytes)
                return handle.read()
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"no object at {key!r}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def head(self, key: str, n_bytes: int, version_id: str | None = None) -> ObjectHead:
        """The ObjectProbe of the local upload trigger (`serve`): first bytes and size, no metadata."""
        if version_id is not None:
            raise ValueError(f"the filesystem store keeps no versions: cannot read {key!r} {version_id!r}")
        path = self._path(key)
        try:
            with path.open("rb") as handle:
                first = handle.read(n_bytes)
                size = path.stat().st_size
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"no object at {key!r}") from exc
        return ObjectHead(first_bytes=first, metadata={}, size=size)
