"""What to do when most rows of an upload failed for one reason.

A 200-row export rejected as 197 × `consent_missing` needs one sentence, not 197 per-row
messages: which option fixes it (`--map consent_at=<column>`, `--first-party`, `--replace`)
and which header names the upload recognises. The hint is data (reason, rows, the options,
the headers, the column it concerns) so the CLI says it in English and the console in
Chinese from the same facts; `text` is the English sentence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.core.tabular_file import FIELD_ALIASES

# A hint when one reason covers at least this share of the rows, and at least this many rows.
HINT_SHARE = 0.5
HINT_MIN_ROWS = 5

CONSENT_TIME_HEADERS = ("留资时间", "同意时间", "授权时间", "注册时间")
CONSENT_FLAG_HEADERS = ("授权同意", "是否授权")
PHONE_HEADERS = FIELD_ALIASES["phone"][:6] + ("mobile", "phone")
_FIRST_PARTY = '--first-party --consent-basis "<how they agreed>"'


@dataclass(frozen=True)
class FixHint:
    reason: str
    rows: int  # rows rejected for this reason
    total: int  # data rows in the file
    text: str  # what to do, in English
    options: tuple[str, ...] = ()  # `waihu leads upload` options that fix it
    headers: tuple[str, ...] = ()  # header names the upload recognises for the missing column
    column: str | None = None  # the column the reason concerns, as mapped ("#4 同意时间"), if any
    file_columns: tuple[str, ...] = field(default_factory=tuple)  # the file's header, masked

    def as_json(self) -> dict:
        return {
            "reason": self.reason,
            "rows": self.rows,
            "total": self.total,
            "text": self.text,
            "options": list(self.options),
            "headers": list(self.headers),
            "column": self.column,
            "file_columns": list(self.file_columns),
        }


def fix_hints(rejected: dict[str, int], total: int, columns: dict[str, str], header: list[str]) -> list[FixHint]:
    """A hint for each reject reason that covers most rows (≥ HINT_SHARE, ≥ HINT_MIN_ROWS)."""
    hints = []
    for reason, rows in sorted(rejected.items(), key=lambda item: -item[1]):
        if rows < HINT_MIN_ROWS or rows < HINT_SHARE * total:
            continue
        hint = _hint(reason, rows, total, columns, tuple(header))
        if hint is not None:
            hints.append(hint)
    return hints


def _hint(reason: str, rows: int, total: int, columns: dict[str, str], header: tuple[str, ...]) -> FixHint | None:
    share = f"{rows} of {total} rows"
    shown_header = ", ".join(header[:12]) + (", …" if len(header) > 12 else "")
    if reason == "consent_missing":
        headers = CONSENT_TIME_HEADERS + CONSENT_FLAG_HEADERS
        consent = [columns[name] for name in ("consent_at", "consent_given") if name in columns]
        options = ("--map consent_at=<column>", "--map consent_given=<column>", _FIRST_PARTY)
        if consent:
            text = (
                f"{share} have no consent record: column {' and '.join(consent)} is empty there. Fill it in "
                f"(a time, or 是/否), or, if these are your own leads, upload with {_FIRST_PARTY}; "
                "then upload again with --replace."
            )
            return FixHint(reason, rows, total, text, options[2:], headers, consent[0], header)
        text = (
            f"{share} have no consent record: the file has no consent column (columns: {shown_header}). "
            f"Add one named {'/'.join(CONSENT_TIME_HEADERS)} (a time; 留资时间 = when they left their number on "
            f"your own form, taken as first-party consent) or {'/'.join(CONSENT_FLAG_HEADERS)} (是/否); if it has "
            "another name, say which: --map consent_at=<column> (a time) or --map consent_given=<column> (是/否); "
            f"if these are your own leads: {_FIRST_PARTY}. Then upload again with --replace."
        )
        return FixHint(reason, rows, total, text, options, headers, None, header)
    if reason in ("consent_invalid", "consent_declined"):
        column = columns.get("consent_given") if reason == "consent_declined" else columns.get("consent_at")
        column = column or columns.get("consent_at") or columns.get("consent_given")
        if reason == "consent_declined":
            text = (
                f"{share} say the person did not agree to be called (column {column}); they are kept as rejects "
                "and never called. If that column is not a consent answer, name the right one: "
                "--map consent_given=<column>."
            )
            return FixHint(reason, rows, total, text, ("--map consent_given=<column>",), CONSENT_FLAG_HEADERS, column)
        text = (
            f"{share} have a consent value that cannot be read (column {column}): write times like "
            "2024-05-01 10:30 (or 2024/5/1, 2024年5月1日, an Excel date) and answers as 是/否. If it is the wrong "
            "column, name the right one: --map consent_at=<column>. Then upload again with --replace."
        )
        return FixHint(reason, rows, total, text, ("--map consent_at=<column>",), CONSENT_TIME_HEADERS, column)
    if reason in ("phone_missing", "phone_invalid", "phone_multiple", "phone_foreign", "phone_service_number"):
        column = columns.get("phone")
        text = (
            f"{share} have no usable phone number in column {column}. If the numbers are in another column, "
            f"name it: --map phone=<column> (recognised: {'/'.join(PHONE_HEADERS)}). Then upload again with --replace."
        )
        return FixHint(reason, rows, total, text, ("--map phone=<column>",), PHONE_HEADERS, column)
    if reason in ("phone_scientific_notation", "phone_leading_zero_lost"):
        column = columns.get("phone")
        text = (
            f"{share} had their numbers changed by Excel (column {column}): format that column as Text (文本) "
            "before saving, or export 'CSV UTF-8' from the source system, then upload again with --replace."
        )
        return FixHint(reason, rows, total, text, ("--replace",), (), column)
    if reason == "extra_cells":
        text = (
            f"{share} have more cells than the header: a value contains an unquoted comma or tab. Export "
            "again with quoted values (or as XLSX), then upload again with --replace."
        )
        return FixHint(reason, rows, total, text, ("--replace",))
    if reason == "duplicate_existing":
        text = (
            f"{share} are already leads from an earlier pack (a number is called from one pack only). If this "
            "file replaces that upload: --replace --pack <earlier pack>, or delete it first with "
            "waihu leads delete-pack <pack> (both only while none of its leads was dialled)."
        )
        return FixHint(reason, rows, total, text, ("--replace --pack <earlier pack>", "waihu leads delete-pack"))
    if reason == "duplicate_in_file":
        text = f"{share} repeat a number of an earlier row of this file; only the first is kept. Nothing to fix."
        return FixHint(reason, rows, total, text)
    if reason in ("dnc_opt_out", "dnc_soft_decline"):
        text = f"{share} are on the do-not-call list and are never called. Nothing to fix."
        return FixHint(reason, rows, total, text)
    return None
