"""Unguessable one-time codes, generated and inserted in bulk.

A code is 12 Crockford base-32 characters of ``secrets`` randomness (60 bits) and one
Luhn mod-32 check character, which rejects any single mistyped character and most
swapped neighbours before the database is asked. Guessing one of a million live codes
takes about 2^40 tries. Generation is vectorised with numpy (1M codes in about a second)
and the insert uses ``COPY`` on PostgreSQL and ``executemany`` on SQLite.
"""

from __future__ import annotations

import io
import secrets

import numpy as np
from sqlalchemy import Connection, text

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_BYTES = np.frombuffer(ALPHABET.encode(), dtype=np.uint8)
_INDEX = {c: i for i, c in enumerate(ALPHABET)}
BODY = 12
N = 32


def _luhn_check(digits: np.ndarray) -> np.ndarray:
    """Luhn mod N check digit for each row of ``digits`` (n × BODY)."""
    factors = np.where((np.arange(BODY)[::-1] % 2) == 0, 2, 1)
    addend = digits.astype(np.int64) * factors
    addend = addend // N + addend % N
    total = addend.sum(axis=1)
    return ((N - total % N) % N).astype(np.uint8)


def generate(n: int) -> list[str]:
    """``n`` fresh random codes (duplicates within the batch removed, so maybe a few fewer)."""
    raw = np.frombuffer(secrets.token_bytes(8 * n), dtype=np.uint64)
    shifts = np.arange(BODY, dtype=np.uint64)[::-1] * np.uint64(5)
    digits = ((raw[:, None] >> shifts) & np.uint64(31)).astype(np.uint8)
    check = _luhn_check(digits)
    allchars = np.concatenate([digits, check[:, None]], axis=1)
    chars = _BYTES[allchars]
    codes = chars.view(f"S{BODY + 1}").ravel()
    return list(dict.fromkeys(c.decode() for c in codes))


def normalize(code: str) -> str:
    """Upper case, no separators; Crockford reading of the look-alikes O→0, I/L→1."""
    c = code.strip().upper().replace("-", "").replace(" ", "")
    return c.replace("O", "0").replace("I", "1").replace("L", "1")


def well_formed(code: str) -> bool:
    c = normalize(code)
    if len(c) != BODY + 1 or any(ch not in _INDEX for ch in c):
        return False
    digits = np.array([[_INDEX[ch] for ch in c[:BODY]]], dtype=np.uint8)
    return int(_luhn_check(digits)[0]) == _INDEX[c[BODY]]


def bulk_insert(conn: Connection, tool_id: str, codes: list[str]) -> int:
    """Insert codes for a tool, skipping any already present; returns how many were new."""
    if not codes:
        return 0
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur:  # type: ignore[attr-defined]
            cur.execute("CREATE TEMP TABLE IF NOT EXISTS _yy_codes (code varchar(32)) ON COMMIT DROP")
            buf = io.StringIO("\n".join(codes) + "\n")
            with cur.copy("COPY _yy_codes (code) FROM STDIN") as cp:
                while chunk := buf.read(1 << 20):
                    cp.write(chunk)
            cur.execute(
                "INSERT INTO engage_codes (code, tool_id) SELECT code, %s FROM _yy_codes "
                "ON CONFLICT (code) DO NOTHING",
                (tool_id,),
            )
            n = int(cur.rowcount)
            cur.execute("DROP TABLE _yy_codes")
            return n
    before = conn.execute(text("SELECT total_changes()")).scalar_one()
    conn.exec_driver_sql(
        "INSERT OR IGNORE INTO engage_codes (code, tool_id) VALUES (?, ?)",
        [(c, tool_id) for c in codes],
    )
    after = conn.execute(text("SELECT total_changes()")).scalar_one()
    return int(after - before)
