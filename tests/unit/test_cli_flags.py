"""Command-line flags reach a stage's config typed and whole, through the same checks as the
YAML file, and a bad flag is named in the error."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from storyteller.cli import COMMANDS, app
from storyteller.config import load_config
from storyteller.errors import ConfigError
from storyteller.evaluate.config import EvaluateConfig
from storyteller.finetune.config import FinetuneConfig


def test_flag_values_are_not_reread_as_yaml():
    cfg = load_config(EvaluateConfig, None, [], {"model": ("--model", "no"),
                                                 "out": ("--out", "runs/a #2")})
    assert cfg.model == "no" and cfg.out == "runs/a #2"
    # The same text in a --set is YAML, where `no` is false: that is why flags skip YAML.
    with pytest.raises(ConfigError, match="--set model: expected str, got False"):
        load_config(EvaluateConfig, None, ["model=no"])


def test_flags_win_over_the_file_and_set(tmp_path):
    path = tmp_path / "eval.yaml"
    path.write_text("limit: 3\nout: reports/x\n")
    cfg = load_config(EvaluateConfig, path, ["limit=4"], {"limit": ("--limit", 5),
                                                          "out": ("--out", None)})
    assert cfg.limit == 5 and cfg.out == "reports/x"  # a flag not given changes nothing


def test_a_bad_flag_value_names_the_flag():
    with pytest.raises(ConfigError) as caught:
        load_config(FinetuneConfig, None, [], {"train.max_steps": ("--max-steps", -1)})
    assert str(caught.value.problems[0]).startswith("--max-steps: must not be negative")
    with pytest.raises(ConfigError) as caught:
        load_config(EvaluateConfig, None, [], {"limit": ("--limit", "three")})
    assert str(caught.value.problems[0]).startswith("--limit: expected int")


@pytest.fixture
def captured(monkeypatch):
    """Run a command for real up to its stage, and keep the config the stage was given."""
    import storyteller.evaluate.run
    import storyteller.finetune.run

    seen = {}

    class Done:
        out = final = __import__("pathlib").Path("done")

    def keep(cfg, **kwargs):
        seen["cfg"] = cfg
        return Done()

    monkeypatch.setattr(storyteller.evaluate.run, "run", keep)
    monkeypatch.setattr(storyteller.finetune.run, "run", keep)
    return seen


def test_evaluate_flags_arrive_intact(captured):
    result = CliRunner().invoke(app, ["evaluate", "--model", "no", "--out", "runs/a #2",
                                      "--endpoint", "http://127.0.0.1:9"])
    assert result.exit_code == 0, result.output
    cfg = captured["cfg"]
    assert (cfg.model, cfg.out) == ("no", "runs/a #2")
    assert (cfg.generation.engine, cfg.generation.endpoint) == ("endpoint", "http://127.0.0.1:9")


def test_finetune_flags_arrive_intact_and_a_bad_one_is_named(captured):
    runner = CliRunner()
    result = runner.invoke(app, ["finetune", "--out", "runs/a #2", "--max-steps", "7"])
    assert result.exit_code == 0, result.output
    assert captured["cfg"].out == "runs/a #2" and captured["cfg"].train.max_steps == 7
    result = runner.invoke(app, ["finetune", "--save-steps", "-2"])
    assert result.exit_code == 1
    assert "error: --save-steps: must not be negative" in result.output


def test_every_command_in_the_table_is_registered_once():
    names = [name for name, _, _ in COMMANDS]
    assert len(names) == len(set(names))
    registered = [c.name for c in app.registered_commands] + \
        [g.name for g in app.registered_groups]
    assert sorted(registered) == sorted(names)


def test_a_command_that_chooses_its_exit_code_keeps_it():
    """improve exits 3 when it evaluated and handed nothing over; merge 1 on a failed check:
    neither is an internal error."""
    import typer

    from storyteller.cli.guard import guarded

    @guarded
    def command():
        raise typer.Exit(3)

    with pytest.raises(typer.Exit) as raised:
        command()
    assert raised.value.exit_code == 3


def test_progress_lines_give_a_rate_or_the_time_each_slow_item_takes():
    from storyteller.console import progress_line

    assert progress_line(250, 1000, 10.0) == "250/1,000 (25%), 25.0/s, 0:30 left"
    # a batch of stories every 47 s: "0.0/s" would say nothing
    assert progress_line(3, 22, 141.9) == "3/22 (14%), 47.3 s each, 14:59 left"
    assert progress_line(5, None, 100.0) == "5 in 1:40, 20.0 s each"
