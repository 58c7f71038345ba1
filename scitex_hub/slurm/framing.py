"""squeue output that no job name or comment can forge (see :class:`SqueueFraming`)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


class FramingError(ValueError):
    """squeue printed something that is not a whole record."""


@dataclass(frozen=True)
class SqueueFraming:
    """Marks that end squeue's fields and records, unknown to anyone who names a job.

    SLURM prints job names and comments as given, newlines and control characters
    included, and users choose them (``sbatch --job-name``, ``scontrol update``). No
    fixed separator is safe: a name holding it and a newline could end its record and
    write one more, claiming any job id, user, state or node. So each ``squeue`` gets
    fresh random marks, in its environment (``SQUEUE_FORMAT``/``SQUEUE_FORMAT2``, not
    argv, which other local users can read): field content cannot end a field or a
    record because nobody who chose it knew the marks.
    """

    field_mark: str
    record_mark: str

    @classmethod
    def fresh(cls) -> SqueueFraming:
        return cls(f"~f{secrets.token_hex(16)}~", f"~r{secrets.token_hex(16)}~")

    def format(self, fields: Sequence[str]) -> str:
        """``--format`` (``%`` letters): every record ends with the record mark."""
        return self.field_mark.join(fields) + self.record_mark

    def long_format(self, fields: Sequence[str]) -> str:
        """``--Format`` (names, ``:0`` = unpadded and uncut): marks as field suffixes."""
        marks = [self.field_mark] * (len(fields) - 1) + [self.record_mark]
        return ",".join(f"{name}:0{mark}" for name, mark in zip(fields, marks, strict=True))

    def records(self, output: str, count: int) -> list[tuple[str, ...]]:
        """squeue's output -> one tuple of ``count`` fields per record.

        Anything that is not a whole record (which squeue never prints) raises
        :class:`FramingError` (the client: a SLURM error, so jobs stay unknown, not gone).
        """
        pieces = output.split(self.record_mark)
        tail = pieces.pop()
        if tail.strip():
            raise FramingError(f"squeue output ends outside a record: {tail[:100]!r}")
        records = []
        for i, piece in enumerate(pieces):
            # squeue ends each record with a newline after the mark.
            fields = (piece.removeprefix("\n") if i else piece).split(self.field_mark)
            if len(fields) != count:
                raise FramingError(f"squeue printed a record of {len(fields)} fields, not {count}")
            records.append(tuple(field.strip() for field in fields))
        return records

    def render(self, rows: Sequence[Sequence[str]]) -> str:
        """What squeue prints for ``rows`` in this framing (for test doubles)."""
        return "".join(self.field_mark.join(row) + self.record_mark + "\n" for row in rows)

    @classmethod
    def of_env(cls, env: Mapping[str, str]) -> SqueueFraming:
        """The framing of an squeue environment (for test doubles that answer squeue)."""
        text = env.get("SQUEUE_FORMAT") or env.get("SQUEUE_FORMAT2") or ""
        field = re.search(r"~f[0-9a-f]{32}~", text)
        record = re.search(r"~r[0-9a-f]{32}~", text)
        if not record:
            raise ValueError("no squeue framing in this environment")
        return cls(field.group(0) if field else "~f-~", record.group(0))


def exit_code_text(value: str) -> str:
    """squeue's ``exit_code`` (a wait status: ``768``) as scontrol writes it (``3:0``)."""
    if not value.isdigit():
        return value
    status = int(value)
    return f"{(status >> 8) & 0xFF}:{status & 0x7F}"
