"""The leak scanner finds secrets in every encoding it claims to cover (so a clean scan counts)."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
import urllib.parse

import cloudpickle
import pytest

from .leakscan import Scanner

SECRET = "Zq7-Hunter2$pa55:w0rd"


@pytest.mark.parametrize(
    "encode",
    [
        lambda s: s.encode(),
        lambda s: json.dumps({"m": s + "\u00e9"}).encode(),
        lambda s: urllib.parse.quote(s, safe="").encode(),
        lambda s: s.encode("utf-16-le"),
        lambda s: base64.b64encode(s.encode()),
        lambda s: base64.b64encode(b"x" + s.encode() + b"yz"),
        lambda s: base64.b64encode(b"xy" + s.encode()),
        lambda s: base64.urlsafe_b64encode(b"?>" + s.encode()),
        lambda s: json.dumps(
            {"result": base64.b64encode(cloudpickle.dumps({"pw": s})).decode()}
        ).encode(),
    ],
    ids=["plain", "json", "url", "utf16", "b64", "b64-off1", "b64-off2", "b64url", "pickle"],
)
def test_every_encoding_is_found(tmp_path, encode):
    path = tmp_path / "blob"
    path.write_bytes(b"prefix " + encode(SECRET) + b" suffix")
    scanner = Scanner({"password": SECRET})
    scanner.scan_tree(tmp_path)
    assert scanner.leaks, "the scanner missed an encoding it claims to cover"
    assert all(SECRET not in str(leak) for leak in scanner.leaks)


def test_sqlite_rows_and_wal_are_scanned(tmp_path):
    db = tmp_path / "x.db"
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE log (id INTEGER PRIMARY KEY, message TEXT, data BLOB)")
    con.execute("INSERT INTO log (message, data) VALUES (?, ?)", ("clean", b"clean"))
    con.commit()
    clean = Scanner({"password": SECRET})
    clean.scan_sqlite(db)
    assert clean.leaks == [] and clean.scanned["sqlite table"] == 1
    con.execute(
        "INSERT INTO log (message, data) VALUES (?, ?)", ("x", base64.b64encode(SECRET.encode()))
    )
    con.commit()
    dirty = Scanner({"password": SECRET})
    dirty.scan_sqlite(db)
    con.close()
    assert any("db log.data" in leak.location for leak in dirty.leaks)


def test_process_command_line_and_environment_are_scanned():
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(30)", SECRET],
        env={**os.environ, "SOME_VAR": "x" + SECRET},
    )
    try:
        from pathlib import Path

        from tests.reliability.realserver import wait_for

        cmdline = Path(f"/proc/{proc.pid}/cmdline")
        wait_for(lambda: b"time.sleep" in cmdline.read_bytes(), 10, "exec")
        scanner = Scanner({"password": SECRET})
        scanner.scan_process(proc.pid, "sleeper")
        where = {leak.location.split()[-1] for leak in scanner.leaks}
        assert where == {"cmdline", "environ"}
    finally:
        proc.kill()
        proc.wait()
