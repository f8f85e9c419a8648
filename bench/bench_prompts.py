"""Audio prompt rendering with espeak-ng: the whole standard script cold (empty cache)
and warm (every line cached), per-line averages, and what a new surname costs (one
slot segment synthesized, the fixed text taken from the cache).

The cache is a fresh temporary folder, so .waihu/prompts is never touched.
Usage: python -m bench.bench_prompts [--warm-passes 20]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bot.cli.prompt_commands import espeak_renderer, render_script, script_lines
from bot.script.project import DialogsProject
from bot.core.settings import get_settings

NEW_SURNAMES = ["李女士", "张先生", "刘女士", "陈先生", "杨女士", "赵先生", "黄女士", "周先生"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--warm-passes", type=int, default=20)
    args = parser.parse_args()

    lines, slots = script_lines(DialogsProject(get_settings().dialogs_dir), "standard")
    with tempfile.TemporaryDirectory(prefix="waihu-bench-prompts-") as folder:
        renderer = espeak_renderer(Path(folder))

        started = time.perf_counter()
        cold = render_script(renderer, lines, slots)
        cold_s = time.perf_counter() - started

        warm_runs = []
        for _ in range(args.warm_passes):
            started = time.perf_counter()
            warm = render_script(renderer, lines, slots)
            warm_runs.append(time.perf_counter() - started)
        assert all(prompt.cached for _, prompt in warm)

        opening = next(line for line in lines if line.response == "utter_opening")
        surname_runs = []
        for title in NEW_SURNAMES:
            started = time.perf_counter()
            renderer.render_line(opening.template, {**slots, "callee_title": title})
            surname_runs.append(time.perf_counter() - started)

    warm_s = statistics.median(warm_runs)
    audio_s = sum(prompt.duration_s for _, prompt in cold)
    version = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout.split("Data")[0].strip()
    print(json.dumps({
        "engine": version,
        "voice": renderer.provider.voice,
        "lines": len(lines),
        "audio_s": round(audio_s, 1),
        "longest_line_s": round(max(prompt.duration_s for _, prompt in cold), 2),
        "cold_render_s": round(cold_s, 3),
        "cold_per_line_ms": round(cold_s / len(lines) * 1000, 1),
        "cold_realtime_factor": round(cold_s / audio_s, 4),
        "warm_render_ms": round(warm_s * 1000, 2),
        "warm_per_line_ms": round(warm_s / len(lines) * 1000, 3),
        "new_surname_opening_ms": round(statistics.median(surname_runs) * 1000, 1),
    }))


if __name__ == "__main__":
    main()
