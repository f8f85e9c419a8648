"""Upload of a generated 1,000,000-row GBK lead pack on SQLite and on PostgreSQL.

Realistic mix: ~5% invalid rows (Excel 1.38E+10, short numbers, empty phone, no consent),
~3% duplicates, ~1% numbers on the do-not-call list. Each upload runs in its own process
(fresh database) so its peak RSS is its own.
Targets (this machine): ≤ 60 s on SQLite, ≤ 40 s on PostgreSQL, peak RSS ≤ 600 MB.
Usage: python -m bench.bench_upload [--rows 1000000] [--backends sqlite,postgresql]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

OUT_DIR = Path(__file__).resolve().parent / "out"
POSTGRES_URL = os.environ.get("WAIHU_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
SECRET = "bench-secret-key-0123456789abcdef"
TARGET_SECONDS = {"sqlite": 60, "postgresql": 40}
TARGET_RSS_MB = 600


def phone_of(i: int) -> str:
    # Distinct for every i < 10^9 (7919 is coprime with 10^9), spread over the real prefixes.
    return f"1{'3456789'[i % 7]}{(i * 7919 + 12345) % 10**9:09d}"


def generate(path: Path, rows: int, seed: int = 7) -> dict:
    """The pack file, plus which numbers the DNC list must hold (~1% of rows)."""
    rng = random.Random(seed)
    surnames = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
    audiences = ["车主-华东", "宝妈-一线", "银行-代发", "单身-白领", "养老-退休"]
    counts = {"invalid": 0, "duplicates": 0, "dnc": 0}
    dnc_phones: list[str] = []
    with path.open("w", encoding="gbk", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["手机号", "姓名", "性别", "人群", "渠道", "同意时间", "城市"])
        for i in range(rows):
            roll = rng.random()
            phone = phone_of(i)
            consent = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} {rng.randint(8, 21):02d}:{rng.randint(0, 59):02d}"
            if roll < 0.05:
                counts["invalid"] += 1
                kind = i % 4
                phone = ("1.38E+10", f"{rng.randint(10000, 99999)}", "", phone)[kind]
                if kind == 3:
                    consent = ""
            elif roll < 0.08 and i > 0:
                counts["duplicates"] += 1
                phone = phone_of(rng.randrange(0, i))
            elif roll < 0.09:
                counts["dnc"] += 1
                dnc_phones.append(phone)
            writer.writerow([phone, rng.choice(surnames) + "先生", rng.choice("男女"), rng.choice(audiences),
                             rng.choice(["官网", "抖音", "合作方A"]), consent, rng.choice(["上海", "杭州", "南京"])])
    return {"counts": counts, "dnc_phones": dnc_phones}


def run_one(backend: str, file: Path, dnc_file: Path) -> dict:
    """In a child process: fresh database, DNC list loaded, then the timed upload."""

    from sqlalchemy import create_engine, text

    from bot.core.db.base import utc_now
    from bot.core.db.bulk import bulk_insert
    from bot.core.db.engine import create_database_engine
    from bot.core.db.migrate import upgrade
    from bot.core.keys import adopt_key
    from bot.dnc.models import DoNotCall
    from bot.leads.service import UploadRequest, upload_lead_pack
    from bot.core.pii import PhoneKeyring

    schema = None
    if backend == "sqlite":
        tmp = Path(tempfile.mkdtemp(prefix="waihu-bench-"))
        url = f"sqlite:///{tmp / 'bench.db'}"
    else:
        schema = f"waihu_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(POSTGRES_URL, future=True)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    engine = create_database_engine(url)
    try:
        upgrade(engine)
        keyring = PhoneKeyring.from_secret(SECRET.encode())
        # The DNC rows below are only hashes, which cannot prove which key wrote them:
        # record this key's fingerprint first, as `waihu keys adopt` does.
        adopt_key(engine, keyring)
        now = utc_now()
        dnc_rows = [(keyring.hash_phone(p), "opt_out", "bench", "bench", now, None)
                    for p in dnc_file.read_text().split()]
        with engine.begin() as conn:
            bulk_insert(conn, DoNotCall.__table__, ("phone_hash", "scope", "reason", "source", "created_at",
                                                    "expires_at"), dnc_rows)
        server_started = _server_cpu(engine)
        started, cpu_started = time.perf_counter(), time.process_time()
        summary = upload_lead_pack(engine, keyring, UploadRequest(path=file, pack_name="bench", uploaded_by="bench"))
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        server_cpu = _server_cpu(engine)
        server_cpu_seconds = None if None in (server_cpu, server_started) else server_cpu - server_started
        load = os.getloadavg()[0]
        again_started = time.perf_counter()
        again = upload_lead_pack(engine, keyring, UploadRequest(path=file, pack_name="bench2", uploaded_by="bench"))
        reupload_seconds = time.perf_counter() - again_started
        assert again.already_uploaded
    finally:
        engine.dispose()
        if schema:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": round(seconds, 2), "rows_per_second": round(summary.rows / seconds),
            # CPU of this process (both upload threads) and of its PostgreSQL backend: with other work on
            # the machine, wall time alone says little; load1 says how busy the machine was at the end.
            "cpu_seconds": round(cpu_seconds, 1),
            "server_cpu_seconds": None if server_cpu_seconds is None else round(server_cpu_seconds, 1),
            "load1_after": round(load, 2),
            "peak_rss_mb": round(peak_mb, 1), "rows": summary.rows, "accepted": summary.accepted,
            "rejected": summary.rejected, "duplicates": summary.duplicates, "dnc": summary.dnc,
            "reupload_seconds": round(reupload_seconds, 2),
            "meets_target": seconds <= TARGET_SECONDS[backend] and peak_mb <= TARGET_RSS_MB}


def _server_cpu(engine) -> float | None:
    """CPU seconds used so far by the PostgreSQL backend behind the engine's pooled connection
    (the one the upload uses), when the server runs on this machine; None otherwise."""
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--child", nargs=3, metavar=("BACKEND", "FILE", "DNC_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        backend, file, dnc_file = args.child
        print(json.dumps(run_one(backend, Path(file), Path(dnc_file))))
        return 0
    OUT_DIR.mkdir(exist_ok=True)
    file = OUT_DIR / f"leads_{args.rows}_gbk.csv"
    dnc_file = OUT_DIR / f"dnc_{args.rows}.txt"
    started = time.perf_counter()
    generated = generate(file, args.rows)
    dnc_file.write_text("\n".join(generated["dnc_phones"]))
    result = {"benchmark": "upload", "rows": args.rows, "file_mb": round(file.stat().st_size / 2**20, 1),
              "encoding": "gbk", "generated_mix": generated["counts"],
              "generate_seconds": round(time.perf_counter() - started, 1),
              "targets": {"sqlite_seconds": 60, "postgresql_seconds": 40, "peak_rss_mb": TARGET_RSS_MB}}
    ok = True
    for backend in args.backends.split(","):
        child = subprocess.run([sys.executable, "-m", "bench.bench_upload", "--child", backend, str(file),
                                str(dnc_file)], capture_output=True, text=True)
        if child.returncode != 0:
            result[backend] = {"error": (child.stderr.strip().splitlines() or ["failed"])[-1]}
            ok = False
            continue
        result[backend] = json.loads(child.stdout.strip().splitlines()[-1])
        ok = ok and result[backend]["meets_target"]
    print(json.dumps(result, ensure_ascii=False))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
