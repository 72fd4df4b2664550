"""Per-token rows that grow in an append-only scratch file instead of in RAM.

A compressed store's codes and residuals (:mod:`~late_interaction._index.token_store`) are
appended here with file writes and read through read-only memory maps. The file only grows, so
an array handed out before an append keeps viewing the same bytes: readers hold views of the
published prefix while the single writer appends past it, and nothing that exists is copied.
Written pages sit in the page cache (which the kernel may write back and drop), not in the
process's anonymous memory, so adding a corpus costs RAM for the chunk being encoded, not for
the corpus. The scratch file is unlinked from creation (:func:`tempfile.TemporaryFile`, under
``TMPDIR``): it disappears with the process, even after a crash.

Rows loaded from a saved ``.npy`` are mapped where they lie; the first append copies them into a
scratch file file-to-file (the saved folder is never written), so a loaded index is not read into
RAM either. :meth:`FileRows.save` writes an ``.npy`` the same way.
"""

from __future__ import annotations

import errno
import itertools
import mmap
import os
import tempfile
from typing import BinaryIO

import numpy as np

_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EBADF}
_COPY_BLOCK = 1 << 24  # bytes per read when copying or gathering through the file (16 MiB)


def _copy_range(src: BinaryIO, src_offset: int, dst: BinaryIO, dst_offset: int, n: int) -> None:
    """Copy ``n`` bytes between files in the kernel where possible (no user-space buffer)."""
    if hasattr(os, "copy_file_range"):
        done = 0
        while done < n:
            try:
                step = os.copy_file_range(
                    src.fileno(), dst.fileno(), n - done, src_offset + done, dst_offset + done
                )
            except OSError as exc:
                # Linux >= 5.19 refuses a copy between filesystems (EXDEV: a saved index on
                # disk, TMPDIR on tmpfs); older kernels or filesystems may not support it.
                if exc.errno not in _NO_KERNEL_COPY:
                    raise
                step = 0
            if step == 0:
                break  # a filesystem pair the kernel cannot copy between: finish below
            done += step
        if done == n:
            return
        src_offset, dst_offset, n = src_offset + done, dst_offset + done, n - done
    src.seek(src_offset)
    dst.seek(dst_offset)
    while n:
        block = src.read(min(n, _COPY_BLOCK))
        if not block:
            msg = "the source file ended before the rows it should hold"
            raise OSError(msg)
        dst.write(block)
        n -= len(block)
    dst.flush()


class FileRows:
    """Rows of one dtype and row shape, appended to a scratch file and read memory-mapped.

    Args:
        row_shape: Shape of one row (``()`` for scalars).
        dtype: Element dtype.
        saved: A read-only memory map of saved rows (``np.load(..., mmap_mode="r")``) to start
            from; it is read in place and copied file-to-file on the first write.
    """

    def __init__(
        self, row_shape: tuple[int, ...], dtype: np.dtype, saved: np.memmap | None = None
    ) -> None:
        self.row_shape, self.dtype = tuple(row_shape), np.dtype(dtype)
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
        self._saved = saved
        self._file: BinaryIO | None = None  # the scratch file, once written to
        self.n_written = 0 if saved is None else int(saved.shape[0])
        self._map = self._empty() if saved is None else saved

    def _empty(self) -> np.ndarray:
        return np.empty((0, *self.row_shape), self.dtype)

    def _scratch(self) -> BinaryIO:
        if self._file is None:
            file = tempfile.TemporaryFile(prefix="late-interaction-rows-")
            if self._saved is not None and self.n_written:
                with open(self._saved.filename, "rb") as src:
                    _copy_range(src, self._saved.offset, file, 0, self.n_written * self.row_bytes)
            self._file = file
        return self._file

    def write(self, start: int, rows: np.ndarray) -> None:
        """Write ``rows`` from row ``start`` on (past every published view; no gap allowed).

        Raises:
            ValueError: If ``start`` is past the rows written so far or ``rows`` has the wrong
                row shape.
        """
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if start > self.n_written or rows.shape[1:] != self.row_shape:
            msg = (
                f"cannot write rows of shape {rows.shape[1:]} at row {start} of a file of "
                f"{self.n_written} rows of shape {self.row_shape}."
            )
            raise ValueError(msg)
        file, data = self._scratch(), memoryview(rows.reshape(-1).view(np.uint8))
        done, offset = 0, start * self.row_bytes
        while done < len(data):  # a positional write may write less than asked
            if hasattr(os, "pwrite"):
                done += os.pwrite(file.fileno(), data[done:], offset + done)
            else:  # no pwrite (Windows): the single writer owns the file position
                file.seek(offset + done)
                done += file.write(data[done:])
                file.flush()
        self.n_written = max(self.n_written, start + rows.shape[0])

    def view(self, n: int) -> np.ndarray:
        """Read-only array of rows ``0 .. n - 1``.

        It stays valid and unchanged while those rows are not rewritten (appends only write
        past the published rows).
        """
        if n > self.n_written:
            msg = f"asked for {n} rows; {self.n_written} were written."
            raise ValueError(msg)
        if n > self._map.shape[0]:  # map the file as it is now (old maps stay valid)
            length = self.n_written * self.row_bytes
            mapped = mmap.mmap(self._scratch().fileno(), length, access=mmap.ACCESS_READ)
            count = length // self.dtype.itemsize
            rows = np.frombuffer(mapped, self.dtype, count)
            self._map = rows.reshape(self.n_written, *self.row_shape)
        return self._map[:n]

    def read(self, start: int, stop: int) -> np.ndarray:
        """A private in-RAM copy of rows ``start .. stop - 1``, read with file reads (no map)."""
        out = np.empty((stop - start, *self.row_shape), self.dtype)
        buffer = memoryview(out.reshape(-1).view(np.uint8))
        if self._file is None and self._saved is not None:
            with open(self._saved.filename, "rb") as src:
                self._pread_into(src, buffer, self._saved.offset + start * self.row_bytes)
        elif len(buffer):
            self._pread_into(self._scratch(), buffer, start * self.row_bytes)
        return out

    @staticmethod
    def _pread_into(file: BinaryIO, buffer: memoryview, offset: int) -> None:
        done = 0
        while done < len(buffer):
            if hasattr(os, "pread"):
                block = os.pread(file.fileno(), len(buffer) - done, offset + done)
            else:  # no pread (Windows): only the single writer reads this way
                file.seek(offset + done)
                block = file.read(len(buffer) - done)
            n = len(block)
            buffer[done : done + n] = block
            if n == 0:
                msg = "the rows file ended before the rows asked for"
                raise OSError(msg)
            done += n

    def gathered(self, rows: np.ndarray, n: int) -> FileRows:
        """A new file holding ``rows`` (ascending row numbers below ``n``) in that order.

        Read a window of the file at a time, so RAM holds one window, not the store.
        """
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and (np.any(np.diff(rows) < 0) or rows[-1] >= n or rows[0] < 0):
            msg = "gathered() takes ascending row numbers of written rows."
            raise ValueError(msg)
        new = FileRows(self.row_shape, self.dtype)
        window = max(1, _COPY_BLOCK // max(self.row_bytes, 1))
        cuts = np.searchsorted(rows, np.arange(0, n + window, window))
        for w, (lo, hi) in enumerate(itertools.pairwise(cuts)):
            if hi > lo:
                start = w * window
                block = self.read(start, min(start + window, n))
                new.write(new.n_written, block[rows[lo:hi] - start])
        return new

    def save(self, file: BinaryIO, n: int) -> None:
        """Write rows ``0 .. n - 1`` to ``file`` as an ``.npy`` (copied file-to-file)."""
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": (n, *self.row_shape),
        }
        np.lib.format.write_array_header_1_0(file, header)
        file.flush()
        nbytes = n * self.row_bytes
        if self._file is None and self._saved is not None:
            with open(self._saved.filename, "rb") as src:
                _copy_range(src, self._saved.offset, file, file.tell(), nbytes)
        elif nbytes:
            _copy_range(self._scratch(), 0, file, file.tell(), nbytes)
        file.seek(0, os.SEEK_END)
