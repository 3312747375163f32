"""Text input files before DuckDB reads them: encoding, dialect, header, broken quotes.

DuckDB reads UTF-8 only, so a file in another encoding (GB18030/GBK as Excel writes it in
China, UTF-16 with a byte-order mark) is first copied as UTF-8 into the import's spill
folder. The header is parsed here, with Python's ``csv`` module and the same dialect
DuckDB will use, so that every column keeps its real name (duplicates are refused, not
renamed) and DuckDB can read the data under positional internal names.
"""

from __future__ import annotations

import codecs
import csv
import io
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from yunying.errors import YunyingError

# Bytes sniffed to detect the encoding and the delimiter.
SNIFF_BYTES = 1 << 16
DELIMITERS = (",", "\t", ";", "|")
# Names accepted by --encoding besides any Python codec; "auto" detects.
AUTO = "auto"


@dataclass
class TextFile:
    """A text file ready for DuckDB: the UTF-8 path to read and what was found."""

    path: Path  # the file the user named
    read_path: Path  # UTF-8 file DuckDB reads (``path`` itself when it already is UTF-8)
    encoding: str  # the source's encoding: utf-8, utf-16, gb18030, or the one given
    delimiter: str = ","
    quote: str = '"'
    header: list[str] = field(default_factory=list)


def _codec(name: str) -> str:
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise YunyingError("importing.bad_encoding", encoding=name) from None


def detect_encoding(path: Path, given: str | None) -> str:
    """The file's encoding: the one given, else from a BOM, else UTF-8 or GB18030."""
    if given and given.lower() != AUTO:
        name = _codec(given)
        return "utf-8" if name in ("utf-8", "utf-8-sig") else name
    with path.open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8"
    # A multibyte character may be cut at the end of the sample: decode incrementally.
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    # Not UTF-8: GB18030 (a superset of GBK) when it explains the bytes better. A few bad
    # lines do not change the verdict; they go to quarantine as their bytes.
    bad_utf8 = head.decode("utf-8", errors="replace").count("\ufffd")
    bad_gb = codecs.getincrementaldecoder("gb18030")(errors="replace").decode(
        head, final=False
    ).count("\ufffd")
    return "gb18030" if bad_gb < bad_utf8 else "utf-8"


def as_utf8(path: Path, encoding: str, work_dir: Path, name: str) -> Path:
    """``path`` itself when UTF-8, else a UTF-8 copy in ``work_dir`` (streamed).

    In an encoding whose newline is the byte 0x0A (GB18030, GBK, Latin-1, …) the copy is
    made line by line, and a line that is not valid in it is copied as its original
    bytes: the reader then quarantines it (not valid text) with those bytes, for export.
    UTF-16 is decoded as a whole and must be valid.
    """
    if encoding == "utf-8":
        return path
    out = work_dir / f"{name}.utf8"
    if encoding.startswith(("utf-16", "utf_16", "utf-32", "utf_32")):
        try:
            with (
                path.open("r", encoding=encoding, errors="strict", newline="") as src,
                out.open("w", encoding="utf-8", newline="") as dst,
            ):
                shutil.copyfileobj(src, dst, 1 << 20)
        except UnicodeDecodeError as e:
            raise YunyingError(
                "importing.decode_failed", path=str(path), encoding=encoding, offset=e.start
            ) from None
        return out
    with path.open("rb") as src, out.open("wb") as dst:
        for line in src:
            try:
                dst.write(line.decode(encoding, errors="strict").encode("utf-8"))
            except UnicodeDecodeError:
                dst.write(line)
    return out


def sniff_delimiter(first_line: str) -> str:
    """The most frequent candidate outside quotes in the header line (default ``,``)."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for ch in first_line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def open_text(
    path: Path, encoding: str | None, delimiter: str | None, quote: str | None,
    work_dir: Path, name: str,
) -> TextFile:
    """Decode, choose the dialect (RFC 4180 unless given) and parse the header."""
    enc = detect_encoding(path, encoding)
    read_path = as_utf8(path, enc, work_dir, name)
    with read_path.open("rb") as fh:
        first_bytes = fh.read(1 << 20)
    # The header is the first line, whatever the line ending (\n, \r\n or an old \r).
    ends = [i for i in (first_bytes.find(b"\n"), first_bytes.find(b"\r")) if i >= 0]
    first_bytes = first_bytes[: min(ends)] if ends else first_bytes
    if first_bytes.startswith(codecs.BOM_UTF8):
        first_bytes = first_bytes[len(codecs.BOM_UTF8):]
    try:
        first = first_bytes.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise YunyingError("importing.header_encoding", path=str(path), encoding=enc) from None
    delim = delimiter if delimiter else sniff_delimiter(first)
    q = '"' if quote is None else quote
    try:
        if q:
            reader = csv.reader(io.StringIO(first), delimiter=delim, quotechar=q, strict=False)
        else:
            reader = csv.reader(io.StringIO(first), delimiter=delim, quoting=csv.QUOTE_NONE)
        header = next(reader, [])
    except csv.Error as e:
        raise YunyingError("importing.bad_header", path=str(path), reason=str(e)) from None
    header = [h.strip() or f"column{i}" for i, h in enumerate(header)]
    return TextFile(path, read_path, enc, delim, q, header)


def duplicate_names(names: list[str]) -> list[str]:
    """Names given more than once (exactly; ``e`` and ``E`` are two columns)."""
    seen: set[str] = set()
    dup: list[str] = []
    for n in names:
        if n in seen and n not in dup:
            dup.append(n)
        seen.add(n)
    return dup


def line_start(path: Path, offset: int) -> int:
    """The start of the physical line holding byte ``offset``.

    DuckDB's ``line_byte_position`` can point a byte into the line; the line starts after
    the newline before it.
    """
    lo = max(0, offset - (1 << 16))
    with path.open("rb") as fh:
        fh.seek(lo)
        before = fh.read(offset - lo)
    nl = before.rfind(b"\n")
    return lo + nl + 1 if nl >= 0 else lo


def line_at(path: Path, offset: int) -> bytes:
    """The bytes of the physical line holding byte ``offset`` (without its newline)."""
    with path.open("rb") as fh:
        fh.seek(line_start(path, offset))
        line = fh.readline(10_000_000)
    return line.rstrip(b"\r\n")


def blank_line(tf: TextFile, offset: int, work_dir: Path, name: str) -> bytes:
    """Overwrite the line at ``offset`` with a marker of the same length; its old bytes.

    The marker (one control character, then spaces) is a row with too few columns, so the
    next read rejects that line alone, and every later byte keeps its position.
    """
    if tf.read_path == tf.path:
        copy = work_dir / f"{name}.repaired"
        shutil.copyfile(tf.path, copy)
        tf.read_path = copy
    offset = line_start(tf.read_path, offset)
    old = line_at(tf.read_path, offset)
    with tf.read_path.open("r+b") as fh:
        fh.seek(offset)
        fh.write(b"\x01" + b" " * (len(old) - 1) if old else b"")
    return old


def text_of(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")
