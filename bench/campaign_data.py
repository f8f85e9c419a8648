"""Data for the campaign benchmarks: a private PostgreSQL schema, a million leads in bulk,
and a realistic call history — without going through the CSV upload (bench_upload measures
that) or the ORM (~50 µs a row would make the set-up the slowest part).
"""
from __future__ import annotations

import os
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from bot.campaigns.models import CallAttempt
from bot.core.db.bulk import bulk_insert
from bot.dnc.models import SCOPE_OPT_OUT, SCOPE_SOFT_DECLINE, DoNotCall
from bot.leads.models import Lead, LeadPack
from bot.core.pii import PhoneKeyring

POSTGRES_URL = os.environ.get("WAIHU_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
BENCH_SECRET = "bench-secret-key-0123456789abcdef"
# Rows handed to COPY at a time: bounded memory, few round trips.
CHUNK_ROWS = 50_000
# What earlier calls ended as, roughly as the simulator's answer rates make them.
HISTORY_OUTCOMES = (["no_answer"] * 5 + ["answered"] * 3
                    + ["line_busy", "powered_off", "busy", "soft_decline", "vacant_number"])

LEAD_COLUMNS = ("pack_id", "row_number", "phone_ciphertext", "phone_hash", "phone_masked", "line_type",
                "name", "gender", "consent_source", "consent_at", "custom_fields", "status", "created_at")
ATTEMPT_COLUMNS = ("campaign_id", "lead_id", "attempt_no", "phone_hash", "arms", "status", "outcome",
                   "history_outcome", "followups", "scheduled_at", "dialed_at", "ended_at")
DNC_COLUMNS = ("phone_hash", "scope", "reason", "source", "created_at", "expires_at")


def phone_of(i: int) -> str:
    """Distinct for every i < 10^9 (7919 is coprime with 10^9), spread over real prefixes."""
    return f"1{'3456789'[i % 7]}{(i * 7919 + 12345) % 10**9:09d}"


@dataclass(frozen=True)
class BenchSchema:
    name: str
    url: str


def create_bench_schema(prefix: str = "waihu_bench") -> BenchSchema:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_URL, future=True)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    admin.dispose()
    separator = "&" if "?" in POSTGRES_URL else "?"
    return BenchSchema(name, f"{POSTGRES_URL}{separator}options=-csearch_path%3D{name}")


def drop_bench_schema(schema: BenchSchema) -> None:
    admin = create_engine(POSTGRES_URL, future=True)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema.name}" CASCADE'))
    admin.dispose()


def add_pack(engine: Engine, name: str) -> int:
    with engine.begin() as conn:
        return conn.execute(LeadPack.__table__.insert().values(
            name=name, file_name=f"{name}.csv", file_sha256=uuid.uuid4().hex.ljust(64, "0"),
            file_format="csv utf-8", first_party=0, column_map={}, uploaded_by="bench",
            rows=0, accepted=0, rejected=0, duplicates=0, dnc_hits=0, rejected_by_reason={},
        ).returning(LeadPack.id)).scalar_one()


def bulk_leads(engine: Engine, keyring: PhoneKeyring, pack_ids: list[int], count: int, first: int,
               created_at: datetime, seed: int = 3) -> list[tuple[int, str]]:
    """`count` leads spread round-robin over the packs; returns (lead id, phone hash) in id order."""
    rng = random.Random(seed)
    surnames = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
    consent_at = created_at - timedelta(days=5)
    for start in range(first, first + count, CHUNK_ROWS):
        rows = []
        for i in range(start, min(start + CHUNK_ROWS, first + count)):
            phone = phone_of(i)
            rows.append((pack_ids[i % len(pack_ids)], i + 2, keyring.encrypt_phone(phone), keyring.hash_phone(phone),
                         f"{phone[:3]}****{phone[-4:]}", "mobile", rng.choice(surnames) + "先生",
                         rng.choice("MF"), "landing page", consent_at, {}, "new", created_at))
        with engine.begin() as conn:
            bulk_insert(conn, Lead.__table__, LEAD_COLUMNS, rows)
    with engine.connect() as conn:
        return [(lead_id, phone_hash) for lead_id, phone_hash in conn.execute(text(
            "SELECT id, phone_hash FROM leads WHERE row_number >= :lo AND row_number < :hi ORDER BY id"),
            {"lo": first + 2, "hi": first + count + 2})]


def bulk_history(engine: Engine, leads: list[tuple[int, str]], campaign_ids: list[int], now: datetime,
                 share: float = 0.30, max_attempts: int = 3, days: int = 30, seed: int = 5) -> int:
    """Earlier finished attempts: `share` of the leads have 1–`max_attempts` over the last `days`
    days, each in one of `campaign_ids`. Returns how many rows were written."""
    rng = random.Random(seed)
    rows = []
    written = 0
    for lead_id, phone_hash in leads:
        if rng.random() >= share:
            continue
        times = sorted(now - timedelta(seconds=rng.randrange(3600, days * 86400))
                       for _ in range(rng.randint(1, max_attempts)))
        numbers: dict[int, int] = {}
        for at in times:
            campaign_id = rng.choice(campaign_ids)
            numbers[campaign_id] = numbers.get(campaign_id, 0) + 1
            outcome = rng.choice(HISTORY_OUTCOMES)
            rows.append((campaign_id, lead_id, numbers[campaign_id], phone_hash,
                         {"script": "standard", "time_slot": "any"}, "completed", outcome, outcome, [],
                         at, at + timedelta(seconds=2), at + timedelta(seconds=40)))
        if len(rows) >= CHUNK_ROWS:
            written += _write_attempts(engine, rows)
            rows = []
    return written + _write_attempts(engine, rows)


def _write_attempts(engine: Engine, rows: list[tuple]) -> int:
    with engine.begin() as conn:
        bulk_insert(conn, CallAttempt.__table__, ATTEMPT_COLUMNS, rows)
    return len(rows)


def bulk_do_not_call(engine: Engine, leads: list[tuple[int, str]], now: datetime, share: float = 0.01,
                     seed: int = 9) -> int:
    """`share` of the leads on the list: half hard opt-outs, half soft declines still running."""
    rng = random.Random(seed)
    rows = []
    for _, phone_hash in leads:
        if rng.random() >= share:
            continue
        if rng.random() < 0.5:
            rows.append((phone_hash, SCOPE_OPT_OUT, "别再打了", "call", now - timedelta(days=20), None))
        else:
            rows.append((phone_hash, SCOPE_SOFT_DECLINE, "不需要", "call", now - timedelta(days=20),
                         now + timedelta(days=160)))
    with engine.begin() as conn:
        bulk_insert(conn, DoNotCall.__table__, DNC_COLUMNS, rows)
    return len(rows)


def analyze(engine: Engine) -> None:
    """Fresh statistics, as autovacuum would have them after a real upload."""
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
