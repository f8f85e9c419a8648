"""The script writers' files in the console: browse, check an edit, save safely, diff, publish.

* Editing works on WAIHU_DIALOGS_DIR itself, the same folder `waihu validate/train/shell`
  use, so the console and the command line never disagree about what the script is.
* A save is checked first on a private copy of the whole project with the new text in
  place: our lint (bot/script/lint.py) and, when that passes, Rasa's validation. Errors
  the edit would *introduce* (anywhere in the project) refuse the save and are shown at
  their line; errors that were already there do not block an unrelated fix.
* The check runs in a child process (forked from a forkserver that has Rasa imported) with a
  CPU time limit (RLIMIT_CPU): whatever a file makes the YAML reader, our lint or Rasa do,
  the server gives it `check_cpu_seconds` of CPU and then answers with an error. Anchors and
  aliases (`&a` / `*a`) are refused in an edited file before anything reads it: an alias bomb
  (a few lines that expand to billions of nodes) cannot get as far as Rasa.
* Concurrent edits: a file's version is the SHA-256 of its bytes. A save names the version
  it was based on; if the file changed since (another writer, or git), the save is refused
  with the current text, and the writer's own text stays in their editor to merge.
* "Published version": publishing a variant stores a snapshot of every text file of the
  project in the database (`script_publications`), with the fingerprint and the model file
  trained from exactly that content. The newest publication is what diffs compare to.
"""

from __future__ import annotations

import difflib
import fcntl
import hashlib
import multiprocessing
import os
import re
import resource
import shutil
import signal
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.core.errors import UserError
from bot.script.lint import Problem, lint_project
from bot.script.models import ScriptPublication
from bot.script.project import DialogsProject
from bot.script.training import current_model

# What a writer may open: the Rasa project's YAML and the tokenizer dictionary.
EDITABLE_GLOBS = ("config.yml", "domain/**/*.yml", "data/**/*.yml", "tests/**/*.yml", "jieba/**/*.txt")
GROUPS = (
    ("domain/", "话术与领域"),
    ("data/nlu/", "NLU 训练样例"),
    ("data/", "规则与故事"),
    ("tests/", "对话测试"),
    ("jieba/", "分词词典"),
    ("", "配置"),
)
MAX_FILE_BYTES = 2 * 1024 * 1024
_RASA_LOCATION = re.compile(r"in (?P<file>/[^:\n]+):(?P<line>\d+):\s*\n\s*(?P<message>[^\n]+)")

# Rasa's validator collects Python warnings process-wide and patches os.environ: one at a time.
_validation_lock = threading.Lock()

# A script file is a few hundred lines: more YAML nodes than this is not a script.
MAX_YAML_NODES = 200_000
DEFAULT_CHECK_CPU_SECONDS = 60
# Checks running at once (each its own process, up to check_cpu_seconds of CPU).
MAX_CONCURRENT_CHECKS = 2
_check_slots = threading.BoundedSemaphore(MAX_CONCURRENT_CHECKS)


@dataclass(frozen=True)
class ScriptFile:
    path: str  # relative to the project root, e.g. "domain/responses.yml"
    group: str
    size: int


@dataclass(frozen=True)
class ProblemView:
    file: str  # relative to the project root ("" for the project as a whole)
    line: int | None
    message: str
    severity: str  # error | warning
    new: bool = False  # introduced by the edit being checked
    first_line: int | None = None  # where the broken construct starts, when it is a range
    blocking: bool = False  # never saved, not even with allow_errors (aliases, a check out of CPU)

    def as_json(self) -> dict:
        return {
            "file": self.file,
            "line": self.line,
            "first_line": self.first_line or self.line,
            "message": self.message,
            "severity": self.severity,
            "new": self.new,
        }


@dataclass
class CheckResult:
    path: str
    problems: list[ProblemView] = field(default_factory=list)

    @property
    def new_errors(self) -> list[ProblemView]:
        return [p for p in self.problems if p.new and p.severity == "error"]

    def as_json(self) -> dict:
        return {
            "path": self.path,
            "problems": [p.as_json() for p in self.problems],
            "new_errors": len(self.new_errors),
            "errors_in_file": sum(1 for p in self.problems if p.file == self.path and p.severity == "error"),
        }


class VersionConflict(Exception):
    """The file changed since the editor loaded it; nothing was written."""

    def __init__(self, path: str, current_text: str, current_version: str) -> None:
        super().__init__(path)
        self.path = path
        self.current_text = current_text
        self.current_version = current_version


class InvalidEdit(Exception):
    """The edit would introduce errors; nothing was written."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.path)
        self.result = result


def version_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def group_of(path: str) -> str:
    return next(label for prefix, label in GROUPS if path.startswith(prefix))


def editable_files(project: DialogsProject) -> list[ScriptFile]:
    project.check_layout()
    seen: dict[str, ScriptFile] = {}
    for pattern in EDITABLE_GLOBS:
        for path in sorted(project.root.glob(pattern)):
            if path.is_file() and not path.name.startswith("."):
                rel = path.relative_to(project.root).as_posix()
                seen.setdefault(rel, ScriptFile(rel, group_of(rel), path.stat().st_size))
    return sorted(seen.values(), key=lambda f: ([g for _, g in GROUPS].index(f.group), f.path))


def resolve(project: DialogsProject, rel: str) -> Path:
    """The file for `rel`, only if it is one of the editable files (no path tricks)."""
    allowed = {f.path for f in editable_files(project)}
    if rel not in allowed:
        raise UserError(f"“{rel}”不是可编辑的话术文件（只能编辑 dialogs/ 下的 YAML 文件和分词词典）")
    return project.root / rel


def read_file(project: DialogsProject, rel: str) -> tuple[str, str]:
    data = resolve(project, rel).read_bytes()
    try:
        return data.decode("utf-8"), version_of(data)
    except UnicodeDecodeError:
        raise UserError(f"“{rel}”不是 UTF-8 文本，无法在网页中编辑；请用编辑器另存为 UTF-8") from None


def normalise_text(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


# ---- checking an edit ---------------------------------------------------------------------------


def _relative_to_root(project: DialogsProject, problem_file: str) -> str:
    """Lint names files relative to the project's parent ("dialogs/domain/x.yml")."""
    prefix = project.root.name + "/"
    if problem_file == project.root.name:
        return ""
    return problem_file[len(prefix) :] if problem_file.startswith(prefix) else problem_file


def _rasa_problems(project: DialogsProject) -> list[Problem]:
    from rasa.shared.exceptions import RasaException, YamlException

    from bot.script.rasa_validation import rasa_validate

    with _validation_lock:
        try:
            return rasa_validate(project)
        except YamlException as exc:
            # Rasa's schema check names "in /path/file.yml:LINE:" for each finding.
            found = [
                Problem(project.relative(Path(m["file"])), int(m["line"]), f"Rasa: {m['message'].strip()}")
                for m in _RASA_LOCATION.finditer(str(exc))
            ]
            return found or [Problem(project.relative(project.root), None, f"Rasa: {exc}")]
        except (RasaException, ValueError, KeyError) as exc:
            return [Problem(project.relative(project.root), None, f"Rasa: {exc}")]
        except SystemExit:
            return [Problem(project.relative(project.root), None, "Rasa 拒绝了这些训练数据（见服务器日志）")]


def check_project(project: DialogsProject, with_rasa: bool = True) -> list[Problem]:
    problems = lint_project(project)
    if with_rasa and not any(p.severity == "error" for p in problems):
        problems += _rasa_problems(project)
    return problems


@contextmanager
def _project_with(project: DialogsProject, rel: str, text: str) -> Iterator[DialogsProject]:
    """A private copy of the project with `rel` replaced by `text` (named like the original, so
    messages read the same)."""
    folder = Path(tempfile.mkdtemp(prefix="waihu-edit-"))
    try:
        copy = folder / project.root.name
        shutil.copytree(project.root, copy, ignore=shutil.ignore_patterns(".*", "__pycache__"))
        (copy / rel).write_text(text, encoding="utf-8")
        yield DialogsProject(copy)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# A YAML construct that started this close above the parser's complaint is named as the range.
_NEAR_LINES = 10


def yaml_problem(rel: str, text: str) -> ProblemView | None:
    """Where the edited YAML does not parse, in words a writer can act on (None if it parses)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        start = exc.context_mark.line + 1 if exc.context_mark else None
        near = start is not None and line is not None and 0 < line - start <= _NEAR_LINES
        where = f"第 {start}–{line} 行" if near else f"第 {line} 行"
        what = (exc.problem or exc.context or "invalid YAML").strip()
        return ProblemView(
            rel,
            line,
            f"YAML 格式错误（{where}）：{what}。请检查这里的缩进、引号和括号是否成对。",
            "error",
            new=True,
            first_line=start if near else line,
        )
    except YAMLError as exc:
        return ProblemView(rel, None, f"YAML 格式错误：{exc}", "error", new=True)
    return None


def yaml_structure_problem(rel: str, text: str, max_nodes: int = MAX_YAML_NODES) -> ProblemView | None:
    """Anchors and aliases are refused (an alias bomb expands a few lines into billions of nodes
    in whatever walks the data), and so is a file of more than `max_nodes` nodes. Reads only
    the parser's event stream: nothing is built, so this costs what the text's length costs."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.events import AliasEvent, NodeEvent

    nodes = 0
    try:
        for event in YAML(typ="rt").parse(text):
            if not isinstance(event, NodeEvent):
                continue
            nodes += 1
            line = event.start_mark.line + 1 if event.start_mark else None
            if isinstance(event, AliasEvent) or event.anchor:
                kind = "别名（*）" if isinstance(event, AliasEvent) else "锚点（&）"
                return ProblemView(
                    rel,
                    line,
                    f"第 {line} 行用了 YAML {kind}：话术文件不能使用锚点和别名（&名字 / *名字），请把内容直接写出来。",
                    "error",
                    new=True,
                    blocking=True,
                )
            if nodes > max_nodes:
                return ProblemView(
                    rel,
                    line,
                    f"文件超过 {max_nodes} 个 YAML 节点，不像话术文件；请拆分或精简。",
                    "error",
                    new=True,
                    blocking=True,
                )
    except YAMLError:
        return None  # yaml_problem reports where it does not parse
    return None


def check_edit(project: DialogsProject, rel: str, text: str) -> CheckResult:
    """Checks an edit in this process (see `check_edit_isolated` for the server)."""
    resolve(project, rel)
    text = normalise_text(text)
    if rel.endswith((".yml", ".yaml")):
        broken = yaml_structure_problem(rel, text) or yaml_problem(rel, text)
        if broken is not None:  # nothing else can be checked in a file that does not parse
            return CheckResult(rel, [broken])
    with _project_with(project, rel, text) as edited:
        after = check_project(edited)
    before_rasa = any(p.message.startswith("Rasa") and p.severity == "error" for p in after)
    before = Counter(
        (p.file, p.message) for p in check_project(project, with_rasa=before_rasa) if p.severity == "error"
    )
    views: list[ProblemView] = []
    for problem in after:
        key = (problem.file, problem.message)
        is_new = problem.severity == "error" and before[key] <= 0
        if problem.severity == "error" and not is_new:
            before[key] -= 1
        views.append(
            ProblemView(
                _relative_to_root(project, problem.file), problem.line, problem.message, problem.severity, is_new
            )
        )
    # This file's problems first, by line; then the rest of the project.
    views.sort(key=lambda p: (p.file != rel, p.severity != "error", p.file, p.line or 0))
    return CheckResult(rel, views)


# ---- checks in a child process with a CPU limit ---------------------------------------------------


class CheckTooExpensive(Exception):
    """The child doing a check used up its CPU time (or died)."""


_PRELOAD = [
    "bot.core.rasa_env",
    "bot.web.script_workspace",
    "bot.script.rasa_validation",
    "rasa.validator",
    "rasa.shared.importers.importer",
]
_context_lock = threading.Lock()
_context: Any = None


def _check_context():
    """A forkserver context: the server process is started once, single-threaded, with Rasa's
    validator imported; every check is a cheap fork of it (never of this multi-threaded server)."""
    global _context
    with _context_lock:
        if _context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(_PRELOAD)
            _context = context
        return _context


def limit_cpu(cpu_seconds: int) -> None:
    """In a child: SIGXCPU (which ends it) after `cpu_seconds` of CPU, SIGKILL 5 s later."""
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    ceiling = cpu_seconds + 5
    if hard != resource.RLIM_INFINITY:
        ceiling = min(ceiling, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (min(cpu_seconds, ceiling), ceiling))


def _child_main(connection, cpu_seconds: int, function: Callable[..., Any], args: tuple) -> None:
    limit_cpu(cpu_seconds)
    try:
        connection.send(("ok", function(*args)))
    except UserError as exc:
        connection.send(("user_error", (str(exc), list(exc.details))))
    except Exception as exc:  # noqa: BLE001  (reported to the parent, which raises it as one error)
        connection.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        connection.close()


def run_cpu_limited(function: Callable[..., Any], args: tuple, cpu_seconds: int, wall_seconds: float | None = None):
    """`function(*args)` in a forked child limited to `cpu_seconds` of CPU (and, as a backstop,
    `wall_seconds` of real time); its result, or CheckTooExpensive. `function` and its result
    must pickle (a module-level function)."""
    context = _check_context()
    wall_seconds = wall_seconds if wall_seconds is not None else 3 * cpu_seconds + 30
    receiver, sender = context.Pipe(duplex=False)
    with _check_slots:
        process = context.Process(
            target=_child_main, args=(sender, cpu_seconds, function, args), name="waihu-script-check", daemon=True
        )
        process.start()
        sender.close()
        try:
            message = receiver.recv() if receiver.poll(wall_seconds) else None
        except EOFError:  # ended without an answer: killed by its CPU limit, or crashed
            message = None
        finally:
            receiver.close()
            if message is None and process.is_alive():
                process.kill()
            process.join(10)
    if message is None:
        code = process.exitcode
        killed_for_cpu = code in (-signal.SIGXCPU, -signal.SIGKILL) or code is None
        raise CheckTooExpensive(f"用完了 {cpu_seconds} 秒 CPU 时间" if killed_for_cpu else f"意外结束（退出码 {code}）")
    kind, payload = message
    if kind == "ok":
        return payload
    if kind == "user_error":
        raise UserError(payload[0], details=payload[1])
    raise RuntimeError(f"script check failed in its child process: {payload}")


def _too_expensive(rel: str, why: str, cpu_seconds: int) -> ProblemView:
    return ProblemView(
        rel,
        None,
        f"校验被中止：{why}（上限 {cpu_seconds} 秒）。文件可能含有过深的嵌套、过多的"
        "重复内容或过慢的正则表达式；请精简后再试。",
        "error",
        new=True,
        blocking=True,
    )


def check_edit_isolated(
    project: DialogsProject, rel: str, text: str, cpu_seconds: int = DEFAULT_CHECK_CPU_SECONDS
) -> CheckResult:
    """`check_edit` for the server: the cheap structural checks here, the rest in a child
    process with a CPU limit. An edit whose check runs out of CPU is refused (a new error)."""
    resolve(project, rel)
    text = normalise_text(text)
    if rel.endswith((".yml", ".yaml")):
        broken = yaml_structure_problem(rel, text)
        if broken is not None:
            return CheckResult(rel, [broken])
    try:
        return run_cpu_limited(check_edit, (project, rel, text), cpu_seconds)
    except CheckTooExpensive as exc:
        return CheckResult(rel, [_too_expensive(rel, str(exc), cpu_seconds)])


def check_project_isolated(project: DialogsProject, cpu_seconds: int = DEFAULT_CHECK_CPU_SECONDS) -> list[Problem]:
    """`check_project` (lint and Rasa on the files as they are) in a child with a CPU limit."""
    try:
        return run_cpu_limited(check_project, (project,), cpu_seconds)
    except CheckTooExpensive as exc:
        return [
            Problem(
                project.relative(project.root),
                None,
                f"校验被中止：{exc}（上限 {cpu_seconds} 秒）；请检查最近修改的文件是否过大或含有重复引用",
            )
        ]


# ---- saving -------------------------------------------------------------------------------------

_thread_locks: dict[str, threading.Lock] = {}


@contextmanager
def edit_lock(lock_dir: Path, project: DialogsProject) -> Iterator[None]:
    """One save at a time per project: a thread lock in this process, a file lock across processes."""
    key = str(project.root)
    lock = _thread_locks.setdefault(key, threading.Lock())
    lock_dir.mkdir(parents=True, exist_ok=True)
    lock_file = lock_dir / f"script-edit-{hashlib.sha256(key.encode()).hexdigest()[:12]}.lock"
    with lock, lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class SaveResult:
    path: str
    version: str
    check: CheckResult


def save_file(
    project: DialogsProject,
    rel: str,
    text: str,
    base_version: str,
    *,
    lock_dir: Path,
    allow_errors: bool = False,
    cpu_seconds: int | None = DEFAULT_CHECK_CPU_SECONDS,
) -> SaveResult:
    """Saves `text` if it introduces no errors. The check runs in a CPU-limited child
    (`cpu_seconds`; None: in this process, for the command line)."""
    path = resolve(project, rel)
    text = normalise_text(text)
    data = text.encode("utf-8")
    if len(data) > MAX_FILE_BYTES:
        raise UserError(f"“{rel}”超过 {MAX_FILE_BYTES // (1024 * 1024)} MB，请拆分成多个文件")
    with edit_lock(lock_dir, project):
        current = path.read_bytes()
        if version_of(current) != base_version:
            raise VersionConflict(rel, current.decode("utf-8", errors="replace"), version_of(current))
        result = (
            check_edit(project, rel, text)
            if cpu_seconds is None
            else check_edit_isolated(project, rel, text, cpu_seconds)
        )
        if any(p.blocking for p in result.problems) or (result.new_errors and not allow_errors):
            raise InvalidEdit(result)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_bytes(data)
        os.replace(temporary, path)
    return SaveResult(rel, version_of(data), result)


# ---- publications -------------------------------------------------------------------------------


def snapshot_files(project: DialogsProject) -> dict[str, str]:
    return {f.path: (project.root / f.path).read_text(encoding="utf-8") for f in editable_files(project)}


def latest_publication(session: Session) -> ScriptPublication | None:
    return session.execute(
        select(ScriptPublication).order_by(ScriptPublication.id.desc()).limit(1)
    ).scalar_one_or_none()


def list_publications(session: Session, limit: int = 50) -> list[ScriptPublication]:
    return list(session.execute(select(ScriptPublication).order_by(ScriptPublication.id.desc()).limit(limit)).scalars())


def published_variants(session: Session) -> dict[str, object]:
    """Variant → when it was last published."""
    rows = session.execute(
        select(ScriptPublication.variant, func.max(ScriptPublication.published_at)).group_by(ScriptPublication.variant)
    ).all()
    return {variant: at for variant, at in rows}


def publish_variant(
    session: Session, project: DialogsProject, models_dir: Path, variant: str, note: str, published_by: str
) -> ScriptPublication:
    from bot.script.script_lines import load_script_domain

    try:
        problems = run_cpu_limited(lint_project, (project,), DEFAULT_CHECK_CPU_SECONDS)
    except CheckTooExpensive as exc:
        raise UserError(f"话术检查被中止：{exc}；请检查最近修改的文件") from None
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise UserError(
            f"话术还有 {len(errors)} 个错误，不能发布；请先在“话术编辑”页修正", details=[str(p) for p in errors[:10]]
        )
    variants = load_script_domain(project).variants()
    if variant not in variants:
        raise UserError(f"话术中没有版本“{variant}”；现有版本：{'、'.join(variants)}")
    model = current_model(project, models_dir)
    if model is None:
        raise UserError("当前话术还没有训练好的模型：请先在“训练与试聊”页训练，再发布")
    publication = ScriptPublication(
        variant=variant,
        fingerprint=project.fingerprint(),
        model_file=model.name,
        files=snapshot_files(project),
        note=note.strip()[:2000],
        published_by=published_by,
    )
    session.add(publication)
    session.flush()
    return publication


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "add" | "del" | "ctx" | "hunk"
    text: str


@dataclass(frozen=True)
class FileDiff:
    path: str
    publication_id: int | None
    published_at: datetime | None
    published_by: str | None
    lines: list[DiffLine]

    @property
    def changed(self) -> bool:
        return any(line.kind in ("add", "del") for line in self.lines)

    def as_json(self) -> dict:
        return {
            "path": self.path,
            "publication_id": self.publication_id,
            "published_at": self.published_at.isoformat() if self.published_at else None,
            "published_by": self.published_by,
            "changed": self.changed,
            "lines": [{"kind": line.kind, "text": line.text} for line in self.lines],
        }


def diff_against_published(session: Session, project: DialogsProject, rel: str) -> FileDiff:
    current, _ = read_file(project, rel)
    publication = latest_publication(session)
    if publication is None:
        return FileDiff(rel, None, None, None, [])
    published = (publication.files or {}).get(rel, "")
    lines: list[DiffLine] = []
    diff = difflib.unified_diff(
        published.splitlines(),
        current.splitlines(),
        fromfile=f"已发布 #{publication.id}",
        tofile="当前",
        lineterm="",
        n=3,
    )
    for line in list(diff)[2:]:  # the two header lines are shown by the page itself
        kind = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "ctx")
        lines.append(DiffLine(kind, line))
    return FileDiff(rel, publication.id, publication.published_at, publication.published_by, lines)
