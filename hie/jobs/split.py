"""A stored upload into its items: NDJSON lines, or the entries of a zip of CDA documents.

Both read the body a chunk at a time and yield one item at a time, so a 100,000-line upload or
a zip of a gigabyte is split in bounded memory. Limits refuse what would not be taken
synchronously (an item over the request size limit) and what a zip bomb is made of.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from hie.outcome import OutcomeIssue, operation_outcome
from hie.storable import printable
from hie.storage.jobs import NewItem, Refusal

# Rule ids of the refusals made while splitting.
TOO_LARGE = "bulk.item.too-large"
ZIP_ENTRY = "bulk.zip.entry"
ZIP_BOMB = "bulk.zip.ratio"
TOO_MANY = "bulk.items.too-many"

# A CDA document compresses some 5 to 15 times; far beyond that is a bomb, not a document.
MAX_RATIO = 200
# Entries smaller than this are never a threat, whatever their ratio.
RATIO_FLOOR = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    item_bytes: int  # the synchronous endpoints' body limit
    total_bytes: int  # what all the entries of a zip may unpack to
    items: int  # the most items in one job


def _refusal(status: int, code: str, message: str, location: str) -> Refusal:
    kind = "too-long" if status == 413 else "invalid"
    issue = OutcomeIssue("error", kind, message, location=location, rule=code)
    return Refusal(status, code, operation_outcome([issue]))


def ndjson_items(body: Iterable[bytes], limits: Limits) -> Iterator[NewItem]:
    """One item per non-empty line, named by its line number (from 1)."""
    line = 0
    seq = 0
    current = bytearray()
    oversized = False

    def finish() -> NewItem | None:
        nonlocal seq
        if not oversized and not current.strip():
            return None
        seq += 1
        name = str(line)
        if seq > limits.items:
            return NewItem(
                seq,
                name,
                None,
                _refusal(
                    413, TOO_MANY, f"a job holds at most {limits.items} items", f"line {line}"
                ),
            )
        if oversized:
            message = f"line {line} is longer than the limit of {limits.item_bytes} bytes"
            return NewItem(seq, name, None, _refusal(413, TOO_LARGE, message, f"line {line}"))
        return NewItem(seq, name, bytes(current).strip())

    for chunk in body:
        start = 0
        while start < len(chunk):
            end = chunk.find(b"\n", start)
            piece = chunk[start:] if end < 0 else chunk[start:end]
            if not oversized:
                if len(current) + len(piece) > limits.item_bytes:
                    oversized, current = True, bytearray()
                else:
                    current += piece
            if end < 0:
                break
            line += 1
            item = finish()
            if item is not None:
                yield item
            current, oversized = bytearray(), False
            start = end + 1
    line += 1
    item = finish()
    if item is not None:
        yield item


class ChunkReader(io.RawIOBase):
    """A seekable file over a stored body, fetching one chunk at a time (zipfile reads the
    central directory at the end first, then each entry where it starts)."""

    def __init__(self, size: int, chunk_bytes: int, fetch: Callable[[int], bytes]) -> None:
        self._size = size
        self._chunk_bytes = chunk_bytes
        self._fetch = fetch
        self._pos = 0
        self._cached: tuple[int, bytes] | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        if self._pos >= self._size:
            return 0
        index, offset = divmod(self._pos, self._chunk_bytes)
        if self._cached is None or self._cached[0] != index:
            self._cached = (index, self._fetch(index))
        data = self._cached[1][offset : offset + len(buffer)]
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


def zip_items(reader: io.RawIOBase, limits: Limits) -> Iterator[NewItem]:
    """One item per file entry of the zip, named by the entry's name; raises
    ``zipfile.BadZipFile`` when the body is no zip at all."""
    archive = zipfile.ZipFile(io.BufferedReader(reader, buffer_size=256 * 1024))
    unpacked = 0
    seq = 0
    for info in archive.infolist():
        if info.is_dir():
            continue
        seq += 1
        name = printable(info.filename)[:500]
        if seq > limits.items:
            message = f"a job holds at most {limits.items} items"
            yield NewItem(seq, name, None, _refusal(413, TOO_MANY, message, name))
            continue
        refusal = _entry_problem(info, name, limits, unpacked)
        if refusal is not None:
            yield NewItem(seq, name, None, refusal)
            continue
        try:
            with archive.open(info) as entry:
                # The header's size can lie: read one byte past the limit to know.
                data = entry.read(limits.item_bytes + 1)
        except (zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError, OSError) as exc:
            message = f"entry {name!r} cannot be read: {type(exc).__name__}"
            yield NewItem(seq, name, None, _refusal(400, ZIP_ENTRY, message, name))
            continue
        if len(data) > limits.item_bytes:
            message = f"entry {name!r} unpacks to more than {limits.item_bytes} bytes"
            yield NewItem(seq, name, None, _refusal(413, TOO_LARGE, message, name))
            continue
        unpacked += len(data)
        yield NewItem(seq, name, data)


def _entry_problem(
    info: zipfile.ZipInfo, name: str, limits: Limits, unpacked: int
) -> Refusal | None:
    if info.flag_bits & 0x1:
        return _refusal(400, ZIP_ENTRY, f"entry {name!r} is encrypted", name)
    if info.file_size > limits.item_bytes:
        message = f"entry {name!r} unpacks to {info.file_size} bytes, over {limits.item_bytes}"
        return _refusal(413, TOO_LARGE, message, name)
    if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(1, info.compress_size):
        message = f"entry {name!r} is compressed over {MAX_RATIO} times: refused as a zip bomb"
        return _refusal(413, ZIP_BOMB, message, name)
    if unpacked + info.file_size > limits.total_bytes:
        message = f"the entries unpack to more than {limits.total_bytes} bytes in all"
        return _refusal(413, ZIP_BOMB, message, name)
    return None
