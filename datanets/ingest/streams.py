"""Bounded byte streams: counted raw reads, guarded gzip decompression, length-limited line splitting.

Everything here works chunk by chunk so that memory stays bounded by the chunk size and the line
limit, whatever the file contains.
"""

from __future__ import annotations

import os
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from .errors import IngestError
from .limits import IngestLimits, describe_bytes
from .sniff import SNIFF_BYTES

READ_CHUNK = 256 * 1024
# Upper bound on the output of one decompress call: how far past a limit decompression can get
# before the counters notice.
INFLATE_CHUNK = 256 * 1024


def _seekable(fileobj: BinaryIO) -> bool:
    try:
        return bool(fileobj.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _detect_size(fileobj: BinaryIO) -> int | None:
    size = getattr(fileobj, "size", None)  # Django's UploadedFile knows its size
    if isinstance(size, int):
        return size
    if not _seekable(fileobj):
        return None
    position = fileobj.tell()
    end = fileobj.seek(0, os.SEEK_END)
    fileobj.seek(position)
    return end - position


class ByteSource:
    """The raw upload, read once, in chunks, counting bytes for progress and the upload-size limit.

    The first bytes are read ahead for sniffing and replayed by :meth:`chunks`.
    """

    def __init__(self, fileobj: BinaryIO, limits: IngestLimits, total_bytes: int | None = None) -> None:
        self._fileobj = fileobj
        self._limits = limits
        self.total_bytes = total_bytes if total_bytes is not None else _detect_size(fileobj)
        self.start_position = fileobj.tell() if _seekable(fileobj) else 0
        self.bytes_read = 0
        # Readers that do not consume the stream sequentially (Parquet) report progress as a fraction.
        self.reported_fraction: float | None = None
        if self.total_bytes is not None and self.total_bytes > limits.max_upload_bytes:
            raise self._too_large()
        self.head = self._read(SNIFF_BYTES)

    def _too_large(self) -> IngestError:
        return IngestError(
            "file_too_large",
            f"This file is larger than the {describe_bytes(self._limits.max_upload_bytes)} upload limit. "
            "Split it into smaller files or compress it with gzip.",
        )

    @property
    def seekable(self) -> bool:
        return _seekable(self._fileobj)

    def _read(self, size: int) -> bytes:
        data = self._fileobj.read(size)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError("iter_rows needs a file opened in binary mode")
        self.bytes_read += len(data)
        if self.bytes_read > self._limits.max_upload_bytes:
            raise self._too_large()
        return bytes(data)

    @property
    def progress_bytes(self) -> int:
        if self.reported_fraction is not None and self.total_bytes is not None:
            return int(self.reported_fraction * self.total_bytes)
        return self.bytes_read

    def report_fraction(self, fraction: float) -> None:
        self.reported_fraction = fraction

    def chunks(self) -> Iterator[bytes]:
        if self.head:
            yield self.head
        while chunk := self._read(READ_CHUNK):
            yield chunk


def iter_gunzipped(chunks: Iterable[bytes], limits: IngestLimits) -> Iterator[bytes]:
    """Decompress a (possibly multi-member) gzip stream, refusing bombs before they inflate.

    Output is produced at most :data:`INFLATE_CHUNK` bytes at a time and counted; the total and the
    compression ratio are checked after every piece, so a bomb is stopped after about one piece past
    the limit, with nothing but that piece ever held in memory.
    """
    decompressor = zlib.decompressobj(wbits=31)
    member_input = 0  # bytes fed to the current gzip member
    fed = 0
    produced = 0
    for chunk in chunks:
        data = chunk
        while data:
            try:
                out = decompressor.decompress(data, INFLATE_CHUNK)
            except zlib.error:
                raise IngestError(
                    "bad_gzip", "The gzip data in this file is corrupt. Re-compress the original file."
                ) from None
            consumed = len(data) - len(decompressor.unconsumed_tail) - len(decompressor.unused_data)
            fed += consumed
            member_input += consumed
            produced += len(out)
            _check_inflation(produced, fed, limits)
            if out:
                yield out
            if decompressor.eof:
                data = decompressor.unused_data
                decompressor = zlib.decompressobj(wbits=31)
                member_input = 0
            else:
                data = decompressor.unconsumed_tail
    if member_input and not decompressor.eof:
        raise IngestError(
            "truncated_gzip",
            "This gzip file is truncated (it ends in the middle of the compressed data). "
            "The upload may have been interrupted: compress and upload it again.",
        )


def _check_inflation(produced: int, consumed: int, limits: IngestLimits) -> None:
    if produced > limits.max_decompressed_bytes:
        raise IngestError(
            "decompressed_too_large",
            f"This file is gzip-compressed but its decompressed size passes the "
            f"{describe_bytes(limits.max_decompressed_bytes)} limit. Split it into smaller files.",
        )
    if produced > limits.gzip_ratio_grace_bytes and produced > limits.max_gzip_ratio * max(consumed, 1):
        raise IngestError(
            "gzip_ratio",
            f"This file decompresses more than {limits.max_gzip_ratio:g} times its compressed size, which "
            "real data sets never do (it looks like a decompression bomb). Upload the uncompressed data "
            "or split it into smaller files.",
        )


def iter_physical_lines(chunks: Iterable[bytes], max_line_bytes: int) -> Iterator[bytes | None]:
    """Split a byte stream at ``\\n`` (terminator removed), yielding ``None`` for an overlong line.

    An overlong line is never accumulated: once the pending part passes the limit it is dropped and
    the rest of that line is skipped up to its newline, so a 10 GB single line costs no memory.
    """
    pending = b""
    skipping = False
    for chunk in chunks:
        if skipping:
            newline = chunk.find(b"\n")
            if newline < 0:
                continue
            chunk = chunk[newline + 1 :]
            skipping = False
        lines = (pending + chunk if pending else chunk).split(b"\n")
        pending = lines.pop()
        for line in lines:
            yield None if len(line) > max_line_bytes else line
        if len(pending) > max_line_bytes:
            yield None
            pending = b""
            skipping = True
    if pending:
        yield None if len(pending) > max_line_bytes else pending


def spool(chunks: Iterable[bytes]) -> BinaryIO:
    """Copy a stream into an anonymous temporary file (for formats that need random access)."""
    spooled = tempfile.TemporaryFile()
    try:
        for chunk in chunks:
            spooled.write(chunk)
        spooled.seek(0)
    except BaseException:
        spooled.close()
        raise
    return spooled
