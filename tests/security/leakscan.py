"""Search everywhere a secret could leak to: "did any of these values end up anywhere?"

A *needle* is a secret value; each is searched in several encodings, because a plain grep misses
most real leaks:

- plain UTF-8, and the JSON-escaped form (``\\u00e9``, ``\\"`` ...);
- base64 (standard and URL-safe, all three byte alignments, so a secret *inside* a longer
  encoded blob is found too) - Prefect result files hold base64(cloudpickle(value));
- URL-encoded (query strings, form bodies);
- UTF-16-LE (Windows-y serializers) - cheap to include.

*Haystacks*: every row of every table of a SQLite database (and the raw ``-wal`` file), every file
below a directory (raw bytes; JSON files additionally with every base64-looking string decoded),
captured stdout/stderr text, and ``/proc/<pid>/cmdline`` + ``environ`` of live processes.

The scanner reports *where* (table/column/rowid, file path, pid) and *which* needle (by label,
never the value), so a failing assertion does not print the secret.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sqlite3
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

_B64_RUN = re.compile(rb"[A-Za-z0-9+/_-]{16,}={0,2}")


@dataclass(frozen=True)
class Leak:
    needle: str  # the label, never the secret
    location: str
    encoding: str

    def __str__(self) -> str:
        return f"{self.needle} found in {self.location} ({self.encoding})"


def _b64_variants(raw: bytes) -> Iterator[tuple[str, bytes]]:
    """Base64 forms of ``raw`` that appear whatever the offset inside a larger encoded blob.

    For each byte alignment, keep only the characters fully determined by ``raw`` itself.
    """
    for offset in range(3):
        padded = b"\x00" * offset + raw
        n = len(padded)
        start = {0: 0, 1: 2, 2: 3}[offset]
        end = 4 * (n // 3) + (n % 3)
        for name, enc in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
            core = enc(padded)[start:end]
            if len(core) >= 8:
                yield (f"{name}@{offset}", core)


@dataclass
class Needle:
    label: str
    value: str
    forms: list[tuple[str, bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.value) < 6:
            raise ValueError(f"needle {self.label!r} too short to search reliably")
        raw = self.value.encode("utf-8")
        forms = {("plain", raw)}
        forms.add(("json", json.dumps(self.value)[1:-1].encode("utf-8")))
        forms.add(("json-ascii", json.dumps(self.value, ensure_ascii=True)[1:-1].encode()))
        forms.add(("urlencoded", urllib.parse.quote(self.value, safe="").encode()))
        forms.add(("urlencoded-plus", urllib.parse.quote_plus(self.value).encode()))
        forms.add(("utf-16-le", self.value.encode("utf-16-le")))
        forms.update(_b64_variants(raw))
        self.forms = sorted(forms)


class Scanner:
    """Collects leaks of the needles; ``scanned`` counts the locations looked at, by kind."""

    def __init__(self, secrets: dict[str, str]) -> None:
        self.needles = [Needle(label, value) for label, value in secrets.items() if value]
        self.leaks: list[Leak] = []
        self.scanned: dict[str, int] = {}

    # --- primitives ------------------------------------------------------------------------
    def _count(self, kind: str) -> None:
        self.scanned[kind] = self.scanned.get(kind, 0) + 1

    def scan_bytes(self, data: bytes, location: str) -> None:
        for needle in self.needles:
            for encoding, form in needle.forms:
                if form in data:
                    self.leaks.append(Leak(needle.label, location, encoding))
                    break
        # Secrets inside base64 blobs that are themselves inside the data (result files,
        # pickled payloads inside JSON): decode every long base64 run once and look inside.
        for match in _B64_RUN.finditer(data):
            blob = match.group(0)
            decoded = _try_b64(blob)
            if decoded is None or len(decoded) < 6:
                continue
            for needle in self.needles:
                if needle.value.encode("utf-8") in decoded:
                    self.leaks.append(Leak(needle.label, location, "inside decoded base64"))

    def scan_text(self, text: str, location: str, kind: str = "text") -> None:
        self._count(kind)
        self.scan_bytes(text.encode("utf-8", "surrogateescape"), location)

    # --- haystacks -------------------------------------------------------------------------
    def scan_sqlite(self, db_path: Path) -> None:
        """Every row of every table (including events, log, artifact, flow_run parameters,
        block_document data, flow_run_input), plus the raw database and WAL files."""
        uri = f"file:{db_path}?mode=ro"
        con = sqlite3.connect(uri, uri=True, timeout=30)
        try:
            tables = [
                r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            ]
            for table in tables:
                self._count("sqlite table")
                cursor = con.execute(f'SELECT rowid, * FROM "{table}"')
                columns = [d[0] for d in cursor.description]
                for row in cursor:
                    for column, value in zip(columns[1:], row[1:], strict=True):
                        if value is None or isinstance(value, int | float):
                            continue
                        data = value if isinstance(value, bytes) else str(value).encode("utf-8")
                        self.scan_bytes(data, f"db {table}.{column} rowid={row[0]}")
        finally:
            con.close()
        for suffix in ("", "-wal", "-journal"):
            raw = Path(str(db_path) + suffix)
            if raw.exists():
                self._count("sqlite file")
                self.scan_bytes(raw.read_bytes(), f"file {raw.name}")

    def table_names(self, db_path: Path) -> list[str]:
        con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
        try:
            return [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        finally:
            con.close()

    def scan_tree(self, root: Path, kind: str = "file") -> None:
        """Every regular file below ``root`` (result storage, logs, temp dirs)."""
        if not root.exists():
            return
        for path in sorted(root.rglob("*")):
            if not path.is_file() or path.is_symlink():
                continue
            try:
                data = path.read_bytes()
            except OSError:
                continue
            self._count(kind)
            self.scan_bytes(data, f"{kind} {path}")
            if path.suffix in ("", ".json") and data[:1] == b"{":
                self._scan_result_json(data, f"{kind} {path}")

    def _scan_result_json(self, data: bytes, location: str) -> None:
        """Prefect result files: ``{"metadata": ..., "result": "<base64 of cloudpickle>"}``."""
        try:
            doc = json.loads(data)
        except ValueError:
            return
        for value in _strings(doc):
            decoded = _try_b64(value.encode("ascii", "ignore"))
            if decoded:
                self.scan_bytes(decoded, f"{location} (decoded result)")

    def scan_process(
        self, pid: int, label: str, parts: tuple[str, ...] = ("cmdline", "environ")
    ) -> None:
        """Command line (what ``ps`` shows everyone) and environment of a live process."""
        for part in parts:
            path = Path(f"/proc/{pid}/{part}")
            try:
                data = path.read_bytes()
            except OSError:
                continue
            self._count(f"process {part}")
            self.scan_bytes(data.replace(b"\x00", b" "), f"{label} pid {pid} {part}")

    def scan_processes(self, pids: Iterable[tuple[int, str]]) -> None:
        for pid, label in pids:
            self.scan_process(pid, label)

    # --- results ---------------------------------------------------------------------------
    def unique_leaks(self) -> list[str]:
        return sorted({str(leak) for leak in self.leaks})

    def total_scanned(self) -> int:
        return sum(self.scanned.values())


def _try_b64(blob: bytes) -> bytes | None:
    text = blob.strip()
    if len(text) < 8:
        return None
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            return decode(text + b"=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            continue
    return None


def _strings(doc: object) -> Iterator[str]:
    if isinstance(doc, str):
        yield doc
    elif isinstance(doc, dict):
        for v in doc.values():
            yield from _strings(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from _strings(v)
