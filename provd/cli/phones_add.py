"""``provd phones add``: provision phones without the Users service.

One phone (``MAC --user SIP --category C [--hwid H]``) or many (``--csv FILE``, columns
``mac,user,category[,hwid][,password]``, an optional header line naming them in any
order, with a ``mac`` cell). The running daemon does the work (a code from Devices, the
user from the PBX, the usual provisioning path); this module reads the input, asks for
passwords and reports.

The SIP password is never an argument (argv is visible to every local user in ``ps``;
the parser takes no abbreviations, so ``--password X`` is refused rather than read as
``--password-file X``): it is prompted for (``getpass``, no echo) or read from
``--password-file`` (first line), or from the CSV's ``password`` column. It goes to the
daemon over the control socket (mode 0600) and is never printed.

A bad CSV row gets an error naming its line and column and does not stop the others.
"""

from __future__ import annotations

import argparse
import csv
import getpass
import io
import os
import stat
import sys
from collections.abc import Callable

import attrs

from ..actors import control
from ..actors.devices_api import QUERY_TIMEOUT
from ..protocol import ProtocolError, normalize_mac
from .common import load_config, table
from .devices import when

#: CSV columns in positional order; the first three are required.
COLUMNS = ("mac", "user", "category", "hwid", "password")
REQUIRED = COLUMNS[:3]


@attrs.frozen
class Row:
    """One phone to add; ``line`` is where it is in the CSV file (0 on the command line)."""

    line: int
    mac: str
    user: str
    category: str
    hwid: str = ""
    password: str = attrs.field(default="", repr=False)


@attrs.frozen
class RowError:
    line: int
    column: str | None
    message: str
    #: The MAC as written, when the row had one (for the summary).
    mac: str = ""
    user: str = ""

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.message}"


def parse_csv(text: str) -> tuple[list[Row], list[RowError]]:
    """The rows of a phones CSV, and an error for each bad one (the good ones still count).

    Blank lines and lines starting with ``#`` are skipped. A first line with a cell
    ``mac`` is a header: it names the columns (any order, ``mac``, ``user`` and
    ``category`` required). Without one the columns are positional.
    """
    rows: list[Row] = []
    errors: list[RowError] = []
    header: list[str] | None = None
    seen: dict[str, int] = {}
    reader = csv.reader(io.StringIO(text, newline=""))
    first = True
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(RowError(reader.line_num, None, f"not CSV: {exc}"))
            continue
        line = reader.line_num
        cells = [c.strip() for c in cells]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if first:
            first = False
            if "mac" in (c.lower() for c in cells):
                names = [c.lower() for c in cells]
                problem = _header_problem(names)
                if problem is not None:
                    return [], [RowError(line, problem[0], problem[1])]
                header = names
                continue
        parsed = _row(line, cells, header, seen)
        if isinstance(parsed, RowError):
            errors.append(parsed)
        else:
            rows.append(parsed)
            seen[parsed.mac] = line
    return rows, errors


def _header_problem(names: list[str]) -> tuple[str | None, str] | None:
    for name in names:
        if name not in COLUMNS:
            return name, f"unknown column (expected {', '.join(COLUMNS)})"
        if names.count(name) > 1:
            return name, "named twice in the header"
    for name in REQUIRED:
        if name not in names:
            return name, "missing from the header"
    return None


def _row(
    line: int, cells: list[str], header: list[str] | None, seen: dict[str, int]
) -> Row | RowError:
    names = header or list(COLUMNS[: len(cells)])
    at = header.index("mac") if header else 0
    raw_mac = cells[at] if at < len(cells) else ""
    if header is not None and len(cells) != len(header):
        return RowError(
            line, None, f"{len(cells)} columns, the header has {len(header)}", mac=raw_mac
        )
    if header is None and not len(REQUIRED) <= len(cells) <= len(COLUMNS):
        return RowError(
            line,
            None,
            f"{len(cells)} columns, expected 3 to 5 (mac,user,category[,hwid][,password])",
            mac=raw_mac,
        )
    values = dict(zip(names, cells, strict=True))
    user = values.get("user", "")
    for name in REQUIRED:
        if not values.get(name):
            return RowError(line, name, "empty", mac=raw_mac, user=user)
    try:
        mac = normalize_mac(values["mac"])
    except ProtocolError:
        return RowError(line, "mac", f"{values['mac']!r} is not a MAC address", raw_mac, user)
    if mac in seen:
        return RowError(line, "mac", f"{mac} already on line {seen[mac]}", raw_mac, user)
    return Row(
        line=line,
        mac=mac,
        user=user,
        category=values["category"],
        hwid=values.get("hwid", ""),
        password=values.get("password", ""),
    )


def read_password_file(path: str) -> str:
    """The first line of ``path`` (without its line end).

    Raises:
        ValueError: unreadable or empty, naming the file.
    """
    try:
        with open(path, encoding="utf-8") as f:
            password = f.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ValueError(f"--password-file {path}: {reason}") from None
    if not password:
        raise ValueError(f"--password-file {path}: the first line is empty")
    return password


def _warn_if_readable(path: str, what: str) -> None:
    """Passwords in a file others may read: say so (not an error)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        print(
            f"provd: warning: {what} {path} holds passwords and is readable by others "
            f"(chmod 600 {path})",
            file=sys.stderr,
        )


class _Progress:
    """One status line on stderr: rewritten in place on a terminal, a line per row
    otherwise (logs, CI)."""

    def __init__(self, total: int, stream=None) -> None:
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()

    def show(self, text: str) -> None:
        width = len(str(self.total))
        bar_len = 20
        filled = bar_len * self.done // max(self.total, 1)
        bar = "#" * filled + "." * (bar_len - filled)
        line = f"[{bar}] {self.done:>{width}}/{self.total} {text}"
        if self.tty:
            self.stream.write("\r\x1b[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def cmd_add(args: argparse.Namespace) -> int:
    config = load_config(args)
    if config is None:
        return 2
    file_password = ""
    if args.password_file:
        _warn_if_readable(args.password_file, "--password-file")
        try:
            file_password = read_password_file(args.password_file)
        except ValueError as exc:
            print(f"provd: {exc}", file=sys.stderr)
            return 2
    timeout = config.provisioning.timeout + 3 * QUERY_TIMEOUT + 10

    def send(row: Row, password: str) -> dict | None:
        return control.request(
            config.control_socket,
            "phones_add",
            timeout=timeout,
            mac=row.mac,
            user=row.user,
            category=row.category,
            hwid=row.hwid or None,
            password=password,
        )

    no_daemon = (
        f"no daemon answers on the control socket {config.control_socket}: start "
        "`provd run` with this config (it holds the PBX and Devices sessions)"
    )
    if args.csv:
        if args.mac or args.user or args.category or args.hwid:
            print(
                "provd: give MAC --user SIP --category C, or --csv FILE, not both",
                file=sys.stderr,
            )
            return 2
        return _add_csv(args.csv, file_password, send, no_daemon)
    if not (args.mac and args.user and args.category):
        print("provd: phones add needs MAC --user SIP --category C, or --csv FILE", file=sys.stderr)
        return 2
    rows, errors = parse_csv(_csv_line(args.mac, args.user, args.category, args.hwid or ""))
    if errors:
        print(f"provd: {errors[0].message}", file=sys.stderr)
        return 2
    row = attrs.evolve(rows[0], line=0)
    password = file_password or _prompt(row)
    if not password:
        print("provd: no password given (prompt or --password-file)", file=sys.stderr)
        return 2
    answer = send(row, password)
    if answer is None:
        print(f"provd: {no_daemon}", file=sys.stderr)
        return 1
    if not answer.get("ok"):
        print(f"provd: {row.mac}: {answer.get('error') or 'failed'}", file=sys.stderr)
        return 1
    print(f"{row.mac}: provisioned for {row.user} (code {answer.get('code')})")
    print(f"code valid until {when(answer.get('valid_until'))}")
    return 0


def _csv_line(*cells: str) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(cells)
    return out.getvalue()


def _prompt(row: Row) -> str:
    where = f" (line {row.line})" if row.line else ""
    try:
        return getpass.getpass(f"SIP password for {row.user} on {row.mac}{where}: ")
    except (EOFError, KeyboardInterrupt):
        return ""


def _add_csv(
    path: str, file_password: str, send: Callable[[Row, str], dict | None], no_daemon: str
) -> int:
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        print(f"provd: {path}: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
        return 2
    rows, errors = parse_csv(text)
    if any(r.password for r in rows):
        _warn_if_readable(path, "CSV file")
    interactive = sys.stdin.isatty()
    results: list[tuple[int, str, str, str, str]] = [
        (
            e.line,
            e.mac or "-",
            e.user or "-",
            "failed",
            f"column {e.column}: {e.message}" if e.column else e.message,
        )
        for e in errors
    ]
    for error in errors:
        print(f"provd: {path}: {error}", file=sys.stderr)
    # Every prompt before the first request: the progress line then runs undisturbed.
    passwords = [
        row.password or file_password or (_prompt(row) if interactive else "") for row in rows
    ]
    progress = _Progress(len(rows))
    try:
        for row, password in zip(rows, passwords, strict=True):
            progress.show(f"{row.mac} {row.user}")
            if not password:
                detail = "no password: give a password column or --password-file"
                results.append((row.line, row.mac, row.user, "failed", detail))
            else:
                answer = send(row, password)
                if answer is None:
                    results.append((row.line, row.mac, row.user, "failed", no_daemon))
                elif answer.get("ok"):
                    results.append((row.line, row.mac, row.user, "ok", ""))
                else:
                    detail = answer.get("error") or "failed"
                    results.append((row.line, row.mac, row.user, "failed", detail))
            progress.done += 1
        progress.show("done")
    finally:
        progress.close()
    results.sort(key=lambda r: r[0])
    header = ["LINE", "MAC", "USER", "RESULT", "REASON"]
    print(table([[str(c) for c in r] for r in results], header))
    ok = sum(1 for r in results if r[3] == "ok")
    print(f"{ok} ok, {len(results) - ok} failed")
    return 0 if ok == len(results) and results else 1
