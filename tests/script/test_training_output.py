"""Training keeps Rasa's output in its log: the terminal gets one line or one clear error."""
from __future__ import annotations

import pytest

from bot.core.errors import UserError
from bot.script.training import train


def test_training_data_rasa_cannot_read_is_one_clear_error_with_the_log(dialogs_copy, tmp_path, capfd) -> None:
    bad = dialogs_copy.data_dir / "nlu" / "zz_misspelt.yml"
    bad.write_text('version: "3.1"\nnlu:\n- intent: busy\n  exampels: |\n    - 在忙\n', encoding="utf-8")
    with pytest.raises(UserError) as raised:
        train(dialogs_copy, tmp_path / "models")
    message = str(raised.value)
    assert "zz_misspelt.yml:3" in message and "exampels" in message
    log_path = next((tmp_path / "models" / "logs").glob("train-*.log"))
    assert f"Full log: {log_path}" in message
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "exampels" not in out + err

