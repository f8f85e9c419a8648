"""Writer regexes that could hang the robot: catastrophic backtracking in `dialogs/data`.

Rasa's RegexFeaturizer runs every regex feature (`- regex: name` / `examples: | - pattern`)
and every lookup table (turned into one alternation) with `re.finditer` over each caller
turn. A pattern such as `([0-9]+)+x` backtracks exponentially on a reply like "1111…1!":
one ASR line would hold a dialogue worker for minutes while the call waits.

Each pattern is run against adversarial inputs built from its own structure: for every
repeated part, that part's text pumped many times (30 times, and up to a long caller turn of
`MAX_TURN_CHARS`), after whatever must precede it, followed by characters that make the
match fail. The runs happen in a child process (`python -I -S`, the standard library's
`re` only) under a CPU limit per pattern (RLIMIT_CPU, `cpu_seconds`): a pattern whose child
runs out of CPU is reported at its `file:line`. Invalid patterns are reported too (Rasa
refuses them only when training).

`check_project_regexes(project)` is what the lint calls; it returns `RegexProblem`s.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from intents.yaml_source import YamlError, line_of, load_yaml

try:  # Python 3.11 renamed the parser module; 3.10 has it as sre_parse
    import re._constants as _sre  # type: ignore[import-not-found]
    import re._parser as _sre_parse  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - depends on the Python version
    import sre_constants as _sre  # type: ignore[no-redef]
    import sre_parse as _sre_parse  # type: ignore[no-redef]

# A caller's turn (ASR text) is short; inputs up to this long are what a writer's regex must survive.
MAX_TURN_CHARS = 500
PUMP_COUNTS = (30,)
DEFAULT_CPU_SECONDS = 1
# Real-time backstop per pattern when the child is stalled rather than busy (e.g. a loaded machine).
WALL_SECONDS_PER_PATTERN = 30.0
MAX_INPUTS_PER_PATTERN = 80
# Characters after the pumped text that should make the match fail somewhere deep.
FAILING_SUFFIXES = ("!", "\x00", "\n", " ", "a", "1", "中", "")
_GENERIC_PUMPS = ("a", "1", " ", "中", "ab", "12")


@dataclass(frozen=True)
class WriterRegex:
    file: Path
    line: int | None
    name: str
    pattern: str
    kind: str = "regex"  # "regex" | "lookup"


@dataclass(frozen=True)
class RegexProblem:
    file: Path
    line: int | None
    message: str


# ---- the writers' regexes -------------------------------------------------------------------------


def writer_regexes(data_dir: Path) -> list[WriterRegex]:
    """Every regex feature example and lookup table under `data_dir` (Rasa's NLU data), with its
    line; files that do not read as YAML are left to the lint, which reports them."""
    found: list[WriterRegex] = []
    for path in sorted(data_dir.rglob("*.yml")) + sorted(data_dir.rglob("*.yaml")):
        try:
            if not re.search(r"^\s*-?\s*(regex|lookup)\s*:", path.read_text(encoding="utf-8"), re.MULTILINE):
                continue  # most NLU files hold intents only: not parsed a second time here
            doc = load_yaml(path)
        except (YamlError, OSError, UnicodeDecodeError):
            continue
        nlu = doc.get("nlu") if hasattr(doc, "get") else None
        if not isinstance(nlu, list):
            continue
        for index, block in enumerate(nlu):
            if not hasattr(block, "get"):
                continue
            kind = "regex" if "regex" in block else "lookup" if "lookup" in block else None
            if kind is None:
                continue
            examples = block.get("examples")
            if not isinstance(examples, str):
                continue
            name = str(block.get(kind))
            first = line_of(block, "examples") or line_of(nlu, index)
            items = [
                (offset, line.strip()[2:].strip())
                for offset, line in enumerate(examples.splitlines())
                if line.strip().startswith("- ")
            ]
            if kind == "regex":
                found += [
                    WriterRegex(path, first + 1 + offset if first else None, name, text, "regex")
                    for offset, text in items
                    if text
                ]
            elif items:
                # As Rasa builds it (pattern_utils._generate_lookup_regex), with word boundaries.
                escaped = [re.escape(text) for _, text in items if text]
                pattern = "(\\b" + "\\b|\\b".join(escaped) + "\\b)"
                found.append(WriterRegex(path, line_of(block, kind) or first, name, pattern, "lookup"))
    return found


# ---- adversarial inputs ---------------------------------------------------------------------------

_ANY_SAMPLE = "a"
_CATEGORY_SAMPLES = {
    _sre.CATEGORY_DIGIT: "1",
    _sre.CATEGORY_NOT_DIGIT: "a",
    _sre.CATEGORY_SPACE: " ",
    _sre.CATEGORY_NOT_SPACE: "a",
    _sre.CATEGORY_WORD: "a",
    _sre.CATEGORY_NOT_WORD: "!",
}


def _class_sample(items: list) -> str:
    negated = any(op is _sre.NEGATE for op, _ in items)
    chars: list[str] = []
    for op, value in items:
        if op is _sre.LITERAL:
            chars.append(chr(value))
        elif op is _sre.RANGE:
            chars.append(chr(value[0]))
        elif op is _sre.CATEGORY:
            chars.append(_CATEGORY_SAMPLES.get(value, "a"))
    if negated:
        return next(c for c in ("a", "1", " ", "中", "!", "Z") if c not in chars)
    return chars[0] if chars else "a"


def _sample(pattern: Any, depth: int = 0) -> str:
    """A short text the (parsed) pattern matches, or nearly: one pass through it."""
    if depth > 50:
        return ""
    out: list[str] = []
    for op, value in pattern:
        if op is _sre.LITERAL:
            out.append(chr(value))
        elif op is _sre.NOT_LITERAL:
            out.append("a" if chr(value) != "a" else "b")
        elif op is _sre.ANY:
            out.append(_ANY_SAMPLE)
        elif op is _sre.IN:
            out.append(_class_sample(value))
        elif op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT, getattr(_sre, "POSSESSIVE_REPEAT", None)):
            low, _high, body = value
            out.append(_sample(body, depth + 1) * max(1, min(low, 3)))
        elif op is _sre.SUBPATTERN:
            out.append(_sample(value[-1], depth + 1))
        elif op is _sre.BRANCH:
            out.append(_sample(value[1][0], depth + 1) if value[1] else "")
        elif op is getattr(_sre, "ATOMIC_GROUP", None):
            out.append(_sample(value, depth + 1))
        # AT (anchors), ASSERT, ASSERT_NOT, GROUPREF, CATEGORY outside a class: nothing to add
    return "".join(out)


def _pumps(pattern: Any, prefix: str = "", depth: int = 0) -> Iterator[tuple[str, str]]:
    """(text before, text of one repetition) for every repeated part, at any depth."""
    if depth > 50:
        return
    for op, value in pattern:
        if op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT):
            low, high, body = value
            if high is _sre.MAXREPEAT or high > 1:
                yield prefix, _sample(body, depth + 1)
                for alternative in _branches(body):
                    yield prefix, _sample(alternative, depth + 1)
            yield from _pumps(body, prefix, depth + 1)
        elif op is _sre.SUBPATTERN:
            yield from _pumps(value[-1], prefix, depth + 1)
        elif op is _sre.BRANCH:
            for alternative in value[1]:
                yield from _pumps(alternative, prefix, depth + 1)
        elif op in (_sre.ASSERT, _sre.ASSERT_NOT):
            yield from _pumps(value[1], prefix, depth + 1)
        prefix += _sample([(op, value)], depth + 1)


def _branches(body: Any) -> list:
    """The alternatives of a repeated group `(a|b)`, each as a pattern."""
    items = list(body)
    if len(items) == 1 and items[0][0] is _sre.SUBPATTERN:
        items = list(items[0][1][-1])
    if len(items) == 1 and items[0][0] is _sre.BRANCH:
        return list(items[0][1][1])
    return []


def adversarial_inputs(pattern: str, flags: int = 0) -> list[str]:
    """Inputs likely to expose catastrophic backtracking in `pattern` (which must compile)."""
    parsed = _sre_parse.parse(pattern, flags)
    pumps: list[tuple[str, str]] = [(p, body) for p, body in _pumps(parsed) if body]
    pumps += [("", body) for body in _GENERIC_PUMPS]
    inputs: list[str] = []
    seen: set[str] = set()
    for prefix, body in pumps:
        counts = set(PUMP_COUNTS) | {max(1, (MAX_TURN_CHARS - len(prefix)) // max(1, len(body)))}
        for count in sorted(counts):
            core = (prefix + body * count)[:MAX_TURN_CHARS]
            for suffix in FAILING_SUFFIXES:
                text = core[: MAX_TURN_CHARS - len(suffix)] + suffix
                if text not in seen:
                    seen.add(text)
                    inputs.append(text)
    # Pumps of nested parts come first (the likeliest culprits); keep the run bounded.
    return inputs[:MAX_INPUTS_PER_PATTERN]


# ---- running them in a child under a CPU limit -----------------------------------------------------

# The child: standard library only (`-I -S`), reads one JSON job per line, says "start i" and
# "done i" around each, with RLIMIT_CPU raised to (CPU used so far + budget) before each one.
_CHILD = r"""
import json, re, resource, sys
def used():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime
budget = int(sys.argv[1])
_, hard = resource.getrlimit(resource.RLIMIT_CPU)
for line in sys.stdin:
    job = json.loads(line)
    soft = int(used()) + 1 + budget
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    sys.stdout.write("start %d\n" % job["i"]); sys.stdout.flush()
    compiled = re.compile(job["pattern"], job["flags"])
    for text in job["inputs"]:
        for _ in compiled.finditer(text):
            pass
    sys.stdout.write("done %d\n" % job["i"]); sys.stdout.flush()
"""

_verdicts: dict[tuple[str, int], bool] = {}  # (pattern, flags) → safe; patterns are deterministic
_MAX_REMEMBERED = 4096


def slow_patterns(patterns: list[tuple[str, int]], cpu_seconds: int = DEFAULT_CPU_SECONDS) -> set[int]:
    """Indexes of the (pattern, flags) pairs that ran out of `cpu_seconds` of CPU on their
    adversarial inputs (each pattern must compile)."""
    slow: set[int] = set()
    todo = [i for i, key in enumerate(patterns) if key not in _verdicts]
    for i, key in enumerate(patterns):
        if _verdicts.get(key) is False:
            slow.add(i)
    jobs = [
        {
            "i": i,
            "pattern": patterns[i][0],
            "flags": patterns[i][1],
            "inputs": adversarial_inputs(patterns[i][0], patterns[i][1]),
        }
        for i in todo
    ]
    while jobs:
        finished, culprit = _run_child(jobs, cpu_seconds)
        for i in finished:
            _remember(patterns[i], True)
        if culprit is None:
            break
        slow.add(culprit)
        _remember(patterns[culprit], False)
        jobs = [job for job in jobs if job["i"] not in finished and job["i"] != culprit]
    return slow


def _remember(key: tuple[str, int], safe: bool) -> None:
    if len(_verdicts) >= _MAX_REMEMBERED:
        _verdicts.clear()
    _verdicts[key] = safe


def _run_child(jobs: list[dict], cpu_seconds: int) -> tuple[set[int], int | None]:
    """Runs jobs in one child until one of them kills it; (finished indexes, the culprit or None)."""
    process = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _CHILD, str(cpu_seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        encoding="utf-8",
        env={"PATH": os.environ.get("PATH", "")},
    )
    finished: set[int] = set()
    current: int | None = None
    payload = "".join(json.dumps(job, ensure_ascii=False) + "\n" for job in jobs)
    assert process.stdin is not None and process.stdout is not None
    try:
        try:
            process.stdin.write(payload)
            process.stdin.close()
        except BrokenPipeError:
            pass
        selector = selectors.DefaultSelector()
        selector.register(process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + WALL_SECONDS_PER_PATTERN
        while True:
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                return finished, current  # stalled past the backstop: the current one is blamed
            line = process.stdout.readline()
            if not line:  # the child ended: all done, or killed by its CPU limit
                process.wait()
                return finished, (current if current is not None and current not in finished else None)
            word, _, number = line.strip().partition(" ")
            if word == "start":
                current = int(number)
                deadline = time.monotonic() + WALL_SECONDS_PER_PATTERN
            elif word == "done":
                finished.add(int(number))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()


# ---- what the lint calls ----------------------------------------------------------------------------


def find_problems(
    regexes: Iterable[WriterRegex], cpu_seconds: int = DEFAULT_CPU_SECONDS, flags: int = 0
) -> list[RegexProblem]:
    regexes = list(regexes)
    problems: list[RegexProblem] = []
    runnable: list[WriterRegex] = []
    for item in regexes:
        try:
            re.compile(item.pattern, flags)
        except (re.error, RecursionError, OverflowError) as exc:
            problems.append(
                RegexProblem(
                    item.file,
                    item.line,
                    f"{item.kind} '{item.name}': '{item.pattern}' is not a "
                    f"valid regular expression ({exc}); Rasa will refuse to train.",
                )
            )
            continue
        runnable.append(item)
    for index in sorted(slow_patterns([(item.pattern, flags) for item in runnable], cpu_seconds)):
        item = runnable[index]
        problems.append(
            RegexProblem(
                item.file,
                item.line,
                (
                    f"{item.kind} '{item.name}': '{_shown(item.pattern)}' can take minutes on some caller replies "
                    f"(catastrophic backtracking: it ran out of {cpu_seconds} s of CPU on replies of at most "
                    f"{MAX_TURN_CHARS} characters). Avoid a repeat inside a repeat such as ([0-9]+)+ or (a|a)* "
                    "and alternatives that match the same text; write e.g. [0-9]+ once."
                ),
            )
        )
    return sorted(problems, key=lambda p: (str(p.file), p.line or 0))


def _shown(pattern: str, limit: int = 80) -> str:
    return pattern if len(pattern) <= limit else pattern[:limit] + "…"


def check_project_regexes(project: Any, cpu_seconds: int = DEFAULT_CPU_SECONDS) -> list[RegexProblem]:
    """The regex features and lookup tables of a DialogsProject, checked; problems at file:line."""
    flags = 0 if _case_sensitive(project) else re.IGNORECASE
    return find_problems(writer_regexes(project.data_dir), cpu_seconds, flags)


def _case_sensitive(project: Any) -> bool:
    """RegexFeaturizer's `case_sensitive` in config.yml (Rasa's default: true)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        config = YAML(typ="safe").load(project.config_file.read_text(encoding="utf-8")) or {}
    except (YAMLError, OSError, UnicodeDecodeError):
        return True
    pipeline = config.get("pipeline") if isinstance(config, dict) else None
    for component in pipeline if isinstance(pipeline, list) else []:
        if isinstance(component, dict) and component.get("name") == "RegexFeaturizer":
            return bool(component.get("case_sensitive", True))
    return True
