"""Rejects files: the rows an import refused (line, the row as uploaded, the reason), in a
CSV file only its owner may read, and the rows naming a person taken out of one.

A rejected row may still name someone: the address is fine but the row has a field too
many, or the address sits in another column. So the files are 0600 whatever the umask,
like the uploads they come from, and `digest.privacy.forget` rewrites them without the
person's rows (`erase`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from email_validator import EmailNotValidError, validate_email

from digest.errors import InvalidInput
from subscribers.addresses import normalize
from subscribers.export import spreadsheet_safe

#: Read and written by the owner alone: the rows hold people's addresses.
PRIVATE = 0o600
HEADER = ["line", "row", "reason"]


def rejects_of(upload: Path) -> Path:
    """Where the rejects of the file `upload` go by default: `<stem>.rejects.csv` beside it.
    Beside the file itself for `/dev/stdin < people.csv` (or /dev/fd/N, /proc/self/fd/N),
    not in /dev."""
    if upload.is_absolute() and upload.parts[1] in ("dev", "proc"):
        upload = upload.resolve()
    return upload.with_name(upload.stem + ".rejects.csv")


def open_private(path: Path) -> TextIO:
    """`path` created or emptied for writing text, mode 0600 whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE)
    return _text(fd)


def require_writable_file(path: Path, hint: str, *, upload: Path | None = None) -> None:
    """InvalidInput when this process cannot create or write the rejects file `path`, or
    when `path` is the file `upload` being imported (its rows would be written over),
    checked before an import begins: finding out at the first refused row would stop an
    import halfway. The kernel answers (a probe, not the mode bits: ACLs, a read-only
    mount); a file made for the probe is removed again, so a clean import leaves none.

    An existing file must also be one this process may make 0600: a file of another
    user's (root's 0666 in root's folder) may be written but not chmod-ed, and rejects
    left readable by all would show the addresses in them. That is refused, not written
    with a warning: the user deletes it or names another path."""
    if upload is not None and path.exists() and os.path.samefile(path, upload):
        raise InvalidInput(f"the rejects file {path} is the file being imported, which "
                           f"would be written over; {hint}; nothing was imported")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    except FileExistsError:
        try:
            fd = os.open(path, os.O_WRONLY)  # opened, not emptied: it is written later
        except OSError as exc:
            raise InvalidInput(_unwritable(path, exc, hint)) from None
        try:
            os.fchmod(fd, PRIVATE)  # as `_text` will: the rows hold addresses
        except OSError as exc:
            raise InvalidInput(
                f"cannot make the rejects file {path} private (mode 0600: {exc.strerror}; "
                "it belongs to another user), and the refused rows hold addresses; delete "
                f"it, or {hint}; nothing was imported") from None
        finally:
            os.close(fd)
        return
    except OSError as exc:
        raise InvalidInput(_unwritable(path, exc, hint)) from None
    os.close(fd)
    path.unlink()


def _unwritable(path: Path, exc: OSError, hint: str) -> str:
    return f"cannot write the rejects file {path} ({exc.strerror}); {hint}; nothing was imported"


def _text(fd: int) -> TextIO:
    try:
        os.fchmod(fd, PRIVATE)  # also an existing file's, and exact whatever the umask
        return open(fd, "w", encoding="utf-8", newline="")
    except BaseException:
        os.close(fd)
        raise


class Rejects:
    """The rejects CSV, opened at the first reject so a clean import leaves no file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO | None = None
        self._writer: Any = None

    def write(self, line: int, fields: Iterable[str], reason: str) -> None:
        if self._writer is None:
            self._file = open_private(self.path)
            self._writer = csv.writer(self._file, lineterminator="\n")
            self._writer.writerow(HEADER)
        raw = io.StringIO()
        csv.writer(raw, lineterminator="").writerow(fields)
        # The row as uploaded, for a person to open: a formula in it stays text.
        self._writer.writerow([line, spreadsheet_safe(raw.getvalue()),
                               spreadsheet_safe(reason)])

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def erase(path: Path, email: str | re.Pattern[str]) -> int:
    """Rewrite the rejects file `path` without the rows that name `email` (in any cell,
    in any case; or match the pattern `naming` made of it); how many went. The new file
    replaces the old at once (a temporary file beside it, then os.replace), so a reader
    sees one or the other, and is 0600 too. A file without such rows is left as it is."""
    pattern = naming(email) if isinstance(email, str) else email
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temporary = Path(name)
    erased = 0
    try:
        with _text(fd) as target, path.open(encoding="utf-8", newline="") as source:
            writer = csv.writer(target, lineterminator="\n")
            for index, row in enumerate(csv.reader(source)):
                if index and any(pattern.search(cell) for cell in row):
                    erased += 1
                else:
                    writer.writerow(row)
            if erased:
                target.flush()
                os.fsync(target.fileno())  # an erasure is not undone by a power cut
        if erased:
            os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    return erased


def naming(email: str) -> re.Pattern[str]:
    """A pattern finding the address in text, whole: not inside a longer address
    (`malice@` does not name `alice@`), in any case, its domain as Unicode or IDNA."""
    address = normalize(email)
    forms = {address}
    with contextlib.suppress(EmailNotValidError):
        ascii_form = validate_email(address, check_deliverability=False).ascii_email
        if ascii_form:
            forms.add(ascii_form)
    either = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
    # Before: no character an address's local part may hold; after: none its domain may.
    return re.compile(rf"(?<![\w.!#$%&'*+/=?^`{{|}}~-])(?:{either})(?![\w-]|\.[\w-])",
                      re.IGNORECASE)
