"""The script writers' files in the console: browse, check an edit, save safely, diff, publish.

* Editing works on WAIHU_DIALOGS_DIR itself, the same folder `waihu validate/train/shell`
  use, so the console and the command line never disagree about what the script is.
* A save is checked first on a private copy of the whole project with the new text in
  place: our lint (bot/script/lint.py) and, when that passes, Rasa's validation. Errors
  the edit would *introduce* (anywhere in the project) refuse the save and are shown at
  their line; errors that were already there do not block an unrelated fix.
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
import os
import re
import shutil
import tempfile
import threading
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.core.errors import UserError
from bot.script.lint import Problem, lint_project
from bot.script.project import DialogsProject
from bot.script.training import current_model
from bot.script.models import ScriptPublication

# What a writer may open: the Rasa project's YAML and the tokenizer dictionary.
EDITABLE_GLOBS = ("config.yml", "domain/**/*.yml", "data/**/*.yml", "tests/**/*.yml", "jieba/**/*.txt")
GROUPS = (("domain/", "话术与领域"), ("data/nlu/", "NLU 训练样例"), ("data/", "规则与故事"), ("tests/", "对话测试"),
          ("jieba/", "分词词典"), ("", "配置"))
MAX_FILE_BYTES = 2 * 1024 * 1024
_RASA_LOCATION = re.compile(r"in (?P<file>/[^:\n]+):(?P<line>\d+):\s*\n\s*(?P<message>[^\n]+)")

# Rasa's validator collects Python warnings process-wide and patches os.environ: one at a time.
_validation_lock = threading.Lock()


@dataclass(frozen=True)
class ScriptFile:
    path: str   # relative to the project root, e.g. "domain/responses.yml"
    group: str
    size: int


@dataclass(frozen=True)
class ProblemView:
    file: str          # relative to the project root ("" for the project as a whole)
    line: int | None
    message: str
    severity: str      # error | warning
    new: bool = False  # introduced by the edit being checked
    first_line: int | None = None  # where the broken construct starts, when it is a range

    def as_json(self) -> dict:
        return {"file": self.file, "line": self.line, "first_line": self.first_line or self.line,
                "message": self.message, "severity": self.severity, "new": self.new}


@dataclass
class CheckResult:
    path: str
    problems: list[ProblemView] = field(default_factory=list)

    @property
    def new_errors(self) -> list[ProblemView]:
        return [p for p in self.problems if p.new and p.severity == "error"]

    def as_json(self) -> dict:
        return {"path": self.path, "problems": [p.as_json() for p in self.problems],
                "new_errors": len(self.new_errors),
                "errors_in_file": sum(1 for p in self.problems if p.file == self.path and p.severity == "error")}


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
    return problem_file[len(prefix):] if problem_file.startswith(prefix) else problem_file


def _rasa_problems(project: DialogsProject) -> list[Problem]:
    from rasa.shared.exceptions import RasaException, YamlException

    from bot.script.rasa_validation import rasa_validate

    with _validation_lock:
        try:
            return rasa_validate(project)
        except YamlException as exc:
            # Rasa's schema check names "in /path/file.yml:LINE:" for each finding.
            found = [Problem(project.relative(Path(m["file"])), int(m["line"]), f"Rasa: {m['message'].strip()}")
                     for m in _RASA_LOCATION.finditer(str(exc))]
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
        return ProblemView(rel, line, f"YAML 格式错误（{where}）：{what}。请检查这里的缩进、引号和括号是否成对。",
                           "error", new=True, first_line=start if near else line)
    except YAMLError as exc:
        return ProblemView(rel, None, f"YAML 格式错误：{exc}", "error", new=True)
    return None


def check_edit(project: DialogsProject, rel: str, text: str) -> CheckResult:
    resolve(project, rel)
    text = normalise_text(text)
    if rel.endswith((".yml", ".yaml")):
        broken = yaml_problem(rel, text)
        if broken is not None:  # nothing else can be checked in a file that does not parse
            return CheckResult(rel, [broken])
    with _project_with(project, rel, text) as edited:
        after = check_project(edited)
    before_rasa = any(p.message.startswith("Rasa") and p.severity == "error" for p in after)
    before = Counter((p.file, p.message) for p in check_project(project, with_rasa=before_rasa)
                     if p.severity == "error")
    views: list[ProblemView] = []
    for problem in after:
        key = (problem.file, problem.message)
        is_new = problem.severity == "error" and before[key] <= 0
        if problem.severity == "error" and not is_new:
            before[key] -= 1
        views.append(ProblemView(_relative_to_root(project, problem.file), problem.line, problem.message,
                                 problem.severity, is_new))
    # This file's problems first, by line; then the rest of the project.
    views.sort(key=lambda p: (p.file != rel, p.severity != "error", p.file, p.line or 0))
    return CheckResult(rel, views)


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


def save_file(project: DialogsProject, rel: str, text: str, base_version: str, *, lock_dir: Path,
              allow_errors: bool = False) -> SaveResult:
    path = resolve(project, rel)
    text = normalise_text(text)
    data = text.encode("utf-8")
    if len(data) > MAX_FILE_BYTES:
        raise UserError(f"“{rel}”超过 {MAX_FILE_BYTES // (1024 * 1024)} MB，请拆分成多个文件")
    with edit_lock(lock_dir, project):
        current = path.read_bytes()
        if version_of(current) != base_version:
            raise VersionConflict(rel, current.decode("utf-8", errors="replace"), version_of(current))
        result = check_edit(project, rel, text)
        if result.new_errors and not allow_errors:
            raise InvalidEdit(result)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_bytes(data)
        os.replace(temporary, path)
    return SaveResult(rel, version_of(data), result)


# ---- publications -------------------------------------------------------------------------------

def snapshot_files(project: DialogsProject) -> dict[str, str]:
    return {f.path: (project.root / f.path).read_text(encoding="utf-8") for f in editable_files(project)}


def latest_publication(session: Session) -> ScriptPublication | None:
    return session.execute(select(ScriptPublication).order_by(ScriptPublication.id.desc()).limit(1)).scalar_one_or_none()


def list_publications(session: Session, limit: int = 50) -> list[ScriptPublication]:
    return list(session.execute(select(ScriptPublication).order_by(ScriptPublication.id.desc()).limit(limit)).scalars())


def published_variants(session: Session) -> dict[str, object]:
    """Variant → when it was last published."""
    rows = session.execute(select(ScriptPublication.variant, func.max(ScriptPublication.published_at))
                           .group_by(ScriptPublication.variant)).all()
    return {variant: at for variant, at in rows}


def publish_variant(session: Session, project: DialogsProject, models_dir: Path, variant: str, note: str,
                    published_by: str) -> ScriptPublication:
    from bot.script.script_lines import load_script_domain

    errors = [p for p in lint_project(project) if p.severity == "error"]
    if errors:
        raise UserError(f"话术还有 {len(errors)} 个错误，不能发布；请先在“话术编辑”页修正",
                        details=[str(p) for p in errors[:10]])
    variants = load_script_domain(project).variants()
    if variant not in variants:
        raise UserError(f"话术中没有版本“{variant}”；现有版本：{'、'.join(variants)}")
    model = current_model(project, models_dir)
    if model is None:
        raise UserError("当前话术还没有训练好的模型：请先在“训练与试聊”页训练，再发布")
    publication = ScriptPublication(variant=variant, fingerprint=project.fingerprint(), model_file=model.name,
                                    files=snapshot_files(project), note=note.strip()[:2000], published_by=published_by)
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
    published_at: object | None
    published_by: str | None
    lines: list[DiffLine]

    @property
    def changed(self) -> bool:
        return any(line.kind in ("add", "del") for line in self.lines)

    def as_json(self) -> dict:
        return {"path": self.path, "publication_id": self.publication_id,
                "published_at": self.published_at.isoformat() if self.published_at else None,
                "published_by": self.published_by, "changed": self.changed,
                "lines": [{"kind": line.kind, "text": line.text} for line in self.lines]}


def diff_against_published(session: Session, project: DialogsProject, rel: str) -> FileDiff:
    current, _ = read_file(project, rel)
    publication = latest_publication(session)
    if publication is None:
        return FileDiff(rel, None, None, None, [])
    published = (publication.files or {}).get(rel, "")
    lines: list[DiffLine] = []
    diff = difflib.unified_diff(published.splitlines(), current.splitlines(), fromfile=f"已发布 #{publication.id}",
                                tofile="当前", lineterm="", n=3)
    for line in list(diff)[2:]:  # the two header lines are shown by the page itself
        kind = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "ctx")
        lines.append(DiffLine(kind, line))
    return FileDiff(rel, publication.id, publication.published_at, publication.published_by, lines)
