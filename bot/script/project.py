"""The script writers' Rasa project in dialogs/: its files and its content fingerprint."""

from __future__ import annotations

import hashlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

from bot.core.errors import UserError

# Bump when the way we build a model changes, so old cached models are not reused.
BUILD_RECIPE_VERSION = "1"
# Where the code of waihu's own pipeline components lives (named by module path in config.yml).
CODE_ROOT = Path(__file__).resolve().parents[2]
# Code our components build the model with, besides their own module.
COMPONENT_HELPERS = (CODE_ROOT / "intents" / "phone_speech.py",)


@dataclass(frozen=True)
class DialogsProject:
    root: Path

    @property
    def config_file(self) -> Path:
        return self.root / "config.yml"

    @property
    def domain_dir(self) -> Path:
        return self.root / "domain"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def tests_dir(self) -> Path:
        return self.root / "tests"

    @property
    def conversation_tests(self) -> list[Path]:
        return sorted(p for p in self.tests_dir.glob("test_*.yml"))

    @property
    def heldout_nlu_file(self) -> Path:
        """Replies written in the same hand as the training data, never trained on."""
        return self.tests_dir / "nlu_heldout.yml"

    @property
    def realistic_nlu_file(self) -> Path:
        """Phone-ASR replies written by someone who never saw the training data; never trained
        or tuned on (only evaluated)."""
        return self.tests_dir / "nlu_realistic.yml"

    @property
    def dev_nlu_file(self) -> Path:
        """Replies for tuning thresholds and augmentation (never trained on)."""
        return self.tests_dir / "nlu_dev.yml"

    @property
    def nlu_test_files(self) -> list[Path]:
        """The labelled files that must never share a line with the training data."""
        return [self.heldout_nlu_file, self.realistic_nlu_file, self.dev_nlu_file]

    def check_layout(self) -> None:
        missing = [p for p in (self.config_file, self.domain_dir, self.data_dir) if not p.exists()]
        if missing:
            names = ", ".join(str(p) for p in missing)
            raise UserError(
                f"{self.root}: not a waihu dialogs project (missing {names}). "
                "Point WAIHU_DIALOGS_DIR at the folder that holds config.yml, domain/ and data/."
            )

    def yaml_files(self, include_tests: bool = True) -> list[Path]:
        folders = [self.domain_dir, self.data_dir] + ([self.tests_dir] if include_tests else [])
        files = [self.config_file] + [p for d in folders for p in sorted(d.rglob("*.yml"))]
        return [p for p in files if p.is_file()]

    def model_inputs(self) -> list[Path]:
        """Every file a trained model depends on (tests are not among them), including the
        source of our own pipeline components (a code change must retrain)."""
        files = [self.config_file]
        for folder in (self.domain_dir, self.data_dir, self.root / "jieba"):
            files += [p for p in sorted(folder.rglob("*")) if p.is_file()]
        return files + self.component_sources()

    def component_sources(self) -> list[Path]:
        """Source files of the components config.yml names by module path (bot.conversation.x.Y),
        and the test files a component is told never to train on (exclude_texts_from)."""
        import yaml

        config = yaml.safe_load(self.config_file.read_text(encoding="utf-8")) or {}
        sources: list[Path] = []
        excluded: list[Path] = []
        for component in config.get("pipeline") or []:
            name = str(component.get("name") or "") if isinstance(component, dict) else ""
            if isinstance(component, dict):
                excluded += [self.root / str(p) for p in component.get("exclude_texts_from") or []]
            if "." in name:
                source = CODE_ROOT / (name.rsplit(".", 1)[0].replace(".", "/") + ".py")
                if source.is_file() and source not in sources:
                    sources.append(source)
        helpers = [p for p in COMPONENT_HELPERS if sources and p.is_file()]
        return sources + helpers + [p for p in excluded if p.is_file()]

    def fingerprint(self) -> str:
        """A hash of everything the model is trained from, including the jieba dictionary
        (Rasa's own cache does not notice dictionary edits)."""
        rasa_version = importlib.metadata.version("rasa")
        digest = hashlib.sha256(f"{BUILD_RECIPE_VERSION}|rasa {rasa_version}".encode())
        for path in self.model_inputs():
            name = path.relative_to(self.root) if self.root in path.parents else path.relative_to(CODE_ROOT)
            digest.update(str(name).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
        return digest.hexdigest()

    def relative(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root.parent))
        except ValueError:
            return str(path)
