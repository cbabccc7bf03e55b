"""Which stories verify a merge: a preference run's data are pairs of answers, so its merge is
verified on the stories of the run it continued."""

import json
from pathlib import Path

from storyteller.merge import stories_trained_on


def write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def run_dir(root: Path, name: str, data: Path, started_from: Path | None = None) -> Path:
    run = root / "runs" / name
    write(run / "run.json", {"data": {"dir": str(data)}})
    write(run / "final" / "storyteller.json",
          {"from": {"path": str(started_from)}} if started_from else {})
    return run


def test_a_preference_run_is_verified_on_the_stories_of_the_run_it_continued(tmp_path):
    stories = tmp_path / "data" / "starter"
    write(stories / "manifest.json", {"counts": {}})
    prefs = tmp_path / "data" / "prefs"
    write(prefs / "manifest.json", {"kind": "preference"})
    sft = run_dir(tmp_path, "quickstart", stories)
    dpo = run_dir(tmp_path, "quickstart-dpo", prefs, sft)
    again = run_dir(tmp_path, "quickstart-dpo-dpo", prefs, dpo)
    assert stories_trained_on(sft) == stories
    assert stories_trained_on(dpo) == stories
    assert stories_trained_on(again) == stories  # along the whole chain
    # a preference run that continued nothing has only its own data to offer
    alone = run_dir(tmp_path, "alone", prefs)
    assert stories_trained_on(alone) == prefs
    assert stories_trained_on(tmp_path / "runs" / "missing") is None
