"""`waihu demo` end to end on a fresh data folder, scaled down: the funnel must add up."""
from __future__ import annotations

from pathlib import Path



def test_demo_week_is_consistent(tmp_path: Path, monkeypatch, model_path) -> None:
    monkeypatch.setenv("WAIHU_DATA_DIR", str(tmp_path / "data"))
    from bot.cli.demo import run_demo

    funnel = run_demo(leads_per_audience=40, days=2, seed=5)
    assert funnel["consistent"]
    assert funnel["dialled"] == funnel["connected"] + funnel["unconnected"] > 0
    assert funnel["connected"] == sum(funnel["grades"].values()) > 0
    assert {key.split("|")[0] for key in funnel["arms"]} == {"standard", "benefit_first"}
    assert {key.split("|")[1] for key in funnel["arms"]} == {"上午", "傍晚"}
    # the add-friend half: every A/B lead invited, a share added, each added one welcomed
    wecom = funnel["wecom"]["total"]
    assert funnel["wecom"]["consistent"]
    assert wecom["graded_ab"] > 0 and wecom["invited"] == wecom["sent"] == wecom["graded_ab"]
    assert 0 < wecom["added"] < wecom["sent"] and wecom["welcomed"] == wecom["added"]
    # every connected call recorded (the opening says 全程录音), each file by attempt id
    recordings = funnel["recordings"]
    assert recordings["connected"] > 0 and recordings["recorded"] == recordings["connected"]
    files = sorted((tmp_path / "data" / "recordings").rglob("*.wav"))
    assert len(files) == recordings["recorded"] and all(f.stem.isdigit() for f in files)
    # the demo's database holds every lead it uploaded, masked phone numbers only in output
    assert (tmp_path / "data" / "demo" / "waihu-demo.db").exists()


def test_demo_is_reproducible(tmp_path: Path, monkeypatch, model_path) -> None:
    from bot.cli.demo import run_demo

    monkeypatch.setenv("WAIHU_DATA_DIR", str(tmp_path / "a"))
    first = run_demo(leads_per_audience=20, days=1, seed=9)
    monkeypatch.setenv("WAIHU_DATA_DIR", str(tmp_path / "b"))
    second = run_demo(leads_per_audience=20, days=1, seed=9)
    assert first["arms"].keys() == second["arms"].keys()
    assert first["dialled"] == second["dialled"] and first["connected"] == second["connected"]
