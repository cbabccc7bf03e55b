from pathlib import Path

import pytest

from storyteller.config import load_config, parse_override
from storyteller.curate.config import CurateConfig
from storyteller.errors import ConfigError
from storyteller.evaluate.config import EvaluateConfig
from storyteller.serve.config import ServeConfig
from storyteller.studio.config import StudioConfig
from storyteller.finetune.config import FinetuneConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted((ROOT / "configs").rglob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    stage = path.parent.name
    if stage == "accelerate":  # read by `accelerate launch`: check them with its own loader
        from accelerate.commands.config.config_args import ClusterConfig

        cluster = ClusterConfig.from_yaml_file(path)
        assert cluster.num_processes >= 2 and cluster.distributed_type
        return
    classes = {"curate": CurateConfig, "finetune": FinetuneConfig, "evaluate": EvaluateConfig,
               "serve": ServeConfig, "studio": StudioConfig}
    assert stage in classes, f"{path} belongs to no known stage"
    config = load_config(classes[stage], path)
    assert isinstance(config, classes[stage])


def test_default_yaml_matches_dataclass_defaults():
    assert load_config(CurateConfig, ROOT / "configs/curate/default.yaml") == CurateConfig()
    assert load_config(FinetuneConfig, ROOT / "configs/finetune/default.yaml") == FinetuneConfig()
    assert load_config(EvaluateConfig, ROOT / "configs/evaluate/default.yaml") == EvaluateConfig()
    assert load_config(ServeConfig, ROOT / "configs/serve/default.yaml") == ServeConfig()


def test_unknown_key_names_key_file_and_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\ndedup:\n  treshold: 0.7\n")
    with pytest.raises(ConfigError) as info:
        load_config(CurateConfig, path)
    (problem,) = info.value.problems
    assert problem.where == f"{path}:3: dedup.treshold"
    assert "unknown key" in problem.message
    assert "dedup.threshold" in problem.hint


def test_wrong_type_is_reported_with_its_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 1\nfilters:\n  min_words: lots\n")
    with pytest.raises(ConfigError) as info:
        load_config(CurateConfig, path)
    assert str(info.value.problems[0]).startswith(f"{path}:3: filters.min_words: expected int")


def test_every_problem_is_reported_at_once(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("sed: 1\nsplit:\n  stratify: genres\n")
    with pytest.raises(ConfigError) as info:
        load_config(CurateConfig, path)
    wheres = [p.where for p in info.value.problems]
    assert wheres == [f"{path}:1: sed", f"{path}:3: split.stratify"]
    assert "did you mean 'genre'" in info.value.problems[1].hint


def test_value_check_names_the_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("split:\n  train: 0.9\n  val: 0.1\n  test: 0.1\n")
    with pytest.raises(ConfigError) as info:
        load_config(CurateConfig, path)
    assert "split.train" in info.value.problems[0].where
    assert "add up to 1" in info.value.problems[0].message


def test_overrides_are_typed_and_win_over_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("dedup:\n  threshold: 0.7\n")
    config = load_config(CurateConfig, path, ["dedup.threshold=0.8", "augment.methods=[rename]",
                                              "source.fields.text=body"])
    assert config.dedup.threshold == 0.8
    assert config.augment.methods == ["rename"]
    assert config.source.fields == {"text": "body"}


def test_bad_override_is_named_as_an_override():
    with pytest.raises(ConfigError) as info:
        load_config(CurateConfig, None, ["dedup.thresold=0.8"])
    assert info.value.problems[0].where == "--set dedup.thresold"


def test_override_syntax():
    assert parse_override("a.b=3") == (["a", "b"], 3)
    assert parse_override("a=[x, y]") == (["a"], ["x", "y"])
    with pytest.raises(ConfigError):
        parse_override("novalue")


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\nseed: [1,\n")
    with pytest.raises(ConfigError) as info:
        load_config(CurateConfig, path)
    assert info.value.problems[0].where.startswith(f"{path}:")


def test_exponent_without_a_dot_is_a_float():
    from storyteller.finetune.config import FinetuneConfig

    assert load_config(FinetuneConfig, None, ["train.lr=5e-3"]).train.lr == 0.005
