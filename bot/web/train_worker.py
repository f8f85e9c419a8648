"""`python -m bot.web.train_worker DIALOGS MODELS [--force]`: what the console's 训练 button runs.

A separate process, so TensorFlow's memory and CPU stay out of the web server, and a crash in
training cannot take the console down. It checks and trains exactly like `waihu train`
(lint errors refuse; `bot.script.training.train` skips work when dialogs/ is unchanged) and
prints one JSON object as its last line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    import bot.core.rasa_env  # noqa: F401  (quiet, offline Rasa defaults)
    from bot.core.errors import UserError
    from bot.script.lint import lint_project
    from bot.script.project import DialogsProject
    from bot.script.training import train

    project = DialogsProject(Path(argv[0]))
    models_dir = Path(argv[1])
    force = "--force" in argv[2:]
    try:
        errors = [p for p in lint_project(project) if p.severity == "error"]
        if errors:
            print(
                json.dumps(
                    {
                        "ok": False,
                        "error": f"{len(errors)} error(s) in dialogs/; fix them before training",
                        "problems": [str(p) for p in errors[:20]],
                    },
                    ensure_ascii=False,
                )
            )
            return 1
        result = train(project, models_dir, force=force)
    except UserError as exc:
        print(json.dumps({"ok": False, "error": str(exc), "problems": exc.details}, ensure_ascii=False))
        return 1
    print(
        json.dumps(
            {
                "ok": True,
                "model": result.model_path.name,
                "trained": result.trained,
                "seconds": round(result.seconds, 1),
            },
            ensure_ascii=False,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
