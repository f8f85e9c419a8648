"""The script writers' Rasa project in dialogs/: its files and its content fingerprint."""
from __future__ import annotations

import hashlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

from bot.core.errors import UserError

# Bump when the way we build a model changes, so old cached models are not reused.
BUILD_RECIPE_VERSION = "1"


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
        return self.tests_dir / "nlu_heldout.yml"

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
        """Every file a trained model depends on (tests are not among them)."""
        files = [self.config_file]
        for folder in (self.domain_dir, self.data_dir, self.root / "jieba"):
            files += [p for p in sorted(folder.rglob("*")) if p.is_file()]
        return files

    def fingerprint(self) -> str:
        """A hash of everything the model is trained from, including the jieba dictionary
        (Rasa's own cache does not notice dictionary edits)."""
        rasa_version = importlib.metadata.version("rasa")
        digest = hashlib.sha256(f"{BUILD_RECIPE_VERSION}|rasa {rasa_version}".encode())
        for path in self.model_inputs():
            digest.update(str(path.relative_to(self.root)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
        return digest.hexdigest()

    def relative(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root.parent))
        except ValueError:
            return str(path)
