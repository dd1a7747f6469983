"""Small shared helpers: atomic writes, logging set-up and numba threads."""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it onto ``path`` only if the block succeeds.

    A failed job therefore never leaves a partial output under the final name.
    With ``directory=True`` the temporary is a directory. Temporaries of the same output left
    by a killed job (SIGKILL skips the clean-up) are removed first: one job writes an output.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{final.name}."
    for stale in final.parent.glob(f"{glob.escape(prefix)}*.tmp*"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=final.parent))
    else:
        fd, name = tempfile.mkstemp(
            prefix=prefix, suffix=".tmp" + "".join(final.suffixes), dir=final.parent
        )
        os.close(fd)
        tmp = Path(name)
        # mkstemp creates 0600; outputs should get the usual permissions of a new file.
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)
    try:
        yield tmp
        if final.is_dir() and directory:
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def setup_logging(
    log_file: str | os.PathLike | None = None, level: int = logging.INFO
) -> logging.Logger:
    """Route the package's log records to ``log_file`` (and stderr) and return the package logger."""
    logger = logging.getLogger("seedsoil")
    logger.setLevel(level)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file is not None:
        handlers.append(logging.FileHandler(log_file, mode="w"))
    for handler in handlers:
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    return logger


#: Suffix of the file beside a job's log that records its input error for the job's retries.
INPUT_ERROR_SUFFIX = ".input_error"


@contextlib.contextmanager
def rule_logging(log_file: str | os.PathLike, attempt: int = 1) -> Iterator[logging.Logger]:
    """Run a workflow step: log to ``log_file``; a bad input ends the process with its message.

    An :class:`~seedsoil.errors.InputError` is written to the log and to stderr without a
    traceback and the process exits with status 1, so the user reads what to fix. It is also
    recorded beside the log (:data:`INPUT_ERROR_SUFFIX`): a bad input does not change on a
    retry, and Snakemake retries every failure, so a retry (``attempt`` > 1) of a job whose
    previous attempt recorded one ends at once with that message instead of downloading or
    reading the data again. Memory and transient failures record nothing and are retried.
    """
    from .errors import InputError

    logger = setup_logging(log_file)
    logging.captureWarnings(True)
    use_system_allocator()
    record = Path(f"{log_file}{INPUT_ERROR_SUFFIX}")
    if attempt > 1 and record.is_file():
        logger.error(
            "not retried: attempt %d failed on an input error, which a retry cannot change: %s",
            attempt - 1, record.read_text(),
        )  # fmt: skip
        raise SystemExit(1)
    record.unlink(missing_ok=True)
    try:
        yield logger
    except InputError as error:
        logger.error("%s", error)
        record.write_text(str(error))
        raise SystemExit(1) from None
    except Exception:
        logger.exception("unexpected failure; please report it with this log")
        raise


def use_system_allocator() -> None:
    """Route Arrow's allocations (Parquet reads and writes) through the C library's allocator.
    pyarrow's default, mimalloc, keeps freed blocks for reuse, so a job that reads a
    million-cell table and converts it to pandas holds both copies to its end: gathering the
    1,000,000-cell atlas's score tables peaked at 2,224 MB with it and 1,772 MB without."""
    import pyarrow

    pyarrow.set_memory_pool(pyarrow.system_memory_pool())


def return_freed_memory() -> None:
    """Give the heap memory the C library holds free back to the system (glibc's
    ``malloc_trim(0)``; nothing where the C library has none).

    Arrays below glibc's memory-map threshold (up to 32 MB) come from the heap; a streamed pass
    that frees its blocks' temporaries between the small arrays it keeps leaves the freed
    memory mapped, and it counts in the job's resident memory until the end: after ingest's
    pass over 200,000 cells, 1,113 MB resident before trimming, 707 MB after."""
    import ctypes

    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own C library
    except (OSError, AttributeError):
        return
    trim(0)


@contextlib.contextmanager
def numba_threads(n_threads: int | None) -> Iterator[None]:
    """Run the block with ``n_threads`` numba threads (capped at numba's maximum), then restore."""
    import numba

    from .errors import InputError

    if n_threads is None:
        yield
        return
    if n_threads < 1:
        raise InputError(f"n_threads must be at least 1, got {n_threads}")
    previous = numba.get_num_threads()
    numba.set_num_threads(min(int(n_threads), numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


#: Name of the cell-id column of every per-cell Parquet table (``pd.read_parquet`` makes it the
#: index again; other readers, e.g. polars or R's arrow, see it as an ordinary column).
CELL_ID_COLUMN = "cell"


def write_cell_table(frame, path: str | os.PathLike, metadata: dict | None = None) -> None:
    """Write the cells × columns ``frame`` as Parquet with the cell ids as the named column
    :data:`CELL_ID_COLUMN`, and the frame's ``attrs`` plus the seedsoil version and ``metadata``
    (method, seeds) in the file's pandas metadata (``attrs`` of the frame ``pd.read_parquet``
    returns)."""
    from seedsoil import __version__

    out = frame.copy(deep=False)
    out.index = out.index.rename(CELL_ID_COLUMN)
    out.attrs = {**frame.attrs, "seedsoil_version": __version__, **(metadata or {})}
    out.to_parquet(path)
