"""config.py: presets load, --set overrides convert types, and every bad value is a one-line ConfigError that
names the key and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from metarl.config import Config, ConfigError, caveats, from_dict, load_config, save_config, to_dict

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted((ROOT / "configs").glob("*/*.yaml"))
NAV = ROOT / "configs" / "maml_trpo" / "2d_navigation.yaml"


def test_there_are_presets():
    assert NAV in PRESETS


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_presets_load(path, tmp_path):
    config = load_config(path)
    assert isinstance(config, Config)
    # resolved config round-trips through config.yaml
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config


def test_nav_preset_is_the_paper_setup():
    c = load_config(NAV)
    assert c.family.name == "2d-navigation" and c.algo.name == "maml-trpo"
    assert c.train.meta_batch_size == 20 and c.sampler.episodes_per_task == 20
    assert c.policy.hidden_sizes == (64, 64)


def test_set_overrides_convert_types():
    c = load_config(NAV, ["train.iterations=7", "algo.inner_lr=0.25", "algo.first_order=true",
                          "policy.hidden_sizes=[8, 4]", "family.version=null", "algo.max_kl=1",
                          "log.progress=false", "log.dir=/tmp/x", "ray.num_cpus=3", "seed=42"])
    assert c.train.iterations == 7 and type(c.train.iterations) is int
    assert c.algo.inner_lr == 0.25 and type(c.algo.inner_lr) is float
    assert c.algo.first_order is True and c.log.progress is False
    assert c.policy.hidden_sizes == (8, 4)
    assert c.family.version is None
    assert c.algo.max_kl == 1.0 and type(c.algo.max_kl) is float  # an int is accepted where a number is expected
    assert c.log.dir == "/tmp/x" and c.ray.num_cpus == 3 and c.seed == 42
    # later overrides win, untouched keys keep the preset's values
    c2 = load_config(NAV, ["train.iterations=3", "train.iterations=5"])
    assert c2.train.iterations == 5 and c2.train.meta_batch_size == 20


def test_to_dict_is_plain():
    d = to_dict(from_dict({}, ["policy.hidden_sizes=[3]"]))
    assert d["policy"]["hidden_sizes"] == [3]
    assert from_dict(d) == from_dict({}, ["policy.hidden_sizes=[3]"])


def _error(overrides, data=None) -> str:
    with pytest.raises(ConfigError) as info:
        from_dict(data if data is not None else {}, overrides)
    message = str(info.value)
    assert "\n" not in message and message.strip() == message and message
    return message


@pytest.mark.parametrize("override,key,allowed", [
    # unknown keys: the key and the allowed keys of its section
    ("train.iteratons=3", "train.iteratons", ["iterations", "meta_batch_size"]),
    ("nosuch.key=1", "nosuch", ["family", "algo", "train"]),
    ("algo.lr=0.1", "algo.lr", ["inner_lr", "inner_steps"]),
    # wrong types
    ("train.iterations=abc", "train.iterations", ["integer"]),
    ("train.iterations=2.5", "train.iterations", ["integer"]),
    ("train.iterations=true", "train.iterations", ["integer"]),
    ("algo.inner_lr=fast", "algo.inner_lr", ["number"]),
    ("algo.first_order=maybe", "algo.first_order", ["true/false"]),
    ("algo.first_order=1", "algo.first_order", ["true/false"]),
    ("policy.hidden_sizes=64", "policy.hidden_sizes", ["list"]),
    ("policy.hidden_sizes=[64, x]", "policy.hidden_sizes", ["integer"]),
    ("family.kwargs=3", "family.kwargs", ["mapping"]),
    # out of range
    ("algo.gamma=1.5", "algo.gamma", ["(0, 1]"]),
    ("train.iterations=0", "train.iterations", [">= 1"]),
    ("algo.inner_lr=-0.1", "algo.inner_lr", ["> 0"]),
    ("sampler.num_workers=-1", "sampler.num_workers", [">= 0"]),
    ("policy.activation=sigmoid", "policy.activation", ["tanh", "relu"]),
    ("algo.name=nope", "algo.name", ["maml-trpo"]),
    ("learner.device=tpu", "learner.device", ["auto", "cpu", "cuda"]),
    ("policy.hidden_sizes=[64, 0]", "policy.hidden_sizes", ["positive"]),
    ("algo.ls_backtrack_ratio=1", "algo.ls_backtrack_ratio", ["(0, 1)"]),
    ("eval.reference_return=[]", "eval.reference_return", ["non-empty", "finite"]),
    ("eval.reference_return=[-40.4, .nan]", "eval.reference_return", ["finite"]),
    ("eval.reference_return=high", "eval.reference_return", ["list"]),
])
def test_bad_values_raise_one_line_config_error(override, key, allowed):
    message = _error([override])
    assert f"'{key}'" in message
    for word in allowed:
        assert word in message, (word, message)


def test_bad_override_syntax_and_sections():
    assert "key=value" in _error(["train.iterations"])
    assert "seed" in _error(["seed.x=1"])
    message = _error([], {"train": 5})
    assert "'train" in message and "mapping" in message


def test_missing_and_invalid_config_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(info.value) and "\n" not in str(info.value)
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert "bad.yaml" in str(info.value) and "\n" not in str(info.value)


def test_one_episode_per_task_gets_a_caveat():
    """A per-task baseline fitted to one episode leaves almost no advantage signal: allowed, but warned about."""
    assert caveats(load_config(NAV)) == []
    lines = caveats(load_config(NAV, ["sampler.episodes_per_task=1", "eval.episodes=1"]))
    assert [line.split(" is 1:")[0] for line in lines] == ["sampler.episodes_per_task", "eval.episodes"]
    assert caveats(load_config(NAV, ["sampler.episodes_per_task=2"])) == []
