"""Every preset under configs/ loads, names a family (and version) that builds, keeps the reference preset's keys,
and comments every key; every registered family has a preset."""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml

from metarl.config import load_config
from metarl.families import list_families, make_family

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted((ROOT / "configs").rglob("*.yaml"))
REFERENCE = ROOT / "configs" / "maml_trpo" / "2d_navigation.yaml"
# Families whose optional dependency is not part of the default install have no preset yet.
OPTIONAL_FAMILIES = {"metaworld-ml1", "metaworld-ml10", "metaworld-ml45"}

# "key: value   # comment"; a section header ("key:" with nothing after it) needs no comment.
KEY_LINE = re.compile(r"^\s*(?P<key>[A-Za-z_][\w-]*)\s*:(?P<rest>.*)$")


def leaf_keys(data: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in data.items():
        if isinstance(value, dict) and key != "kwargs":
            keys |= leaf_keys(value, f"{prefix}{key}.")
        else:
            keys.add(f"{prefix}{key}")
    return keys


def uncommented_keys(path: Path) -> list[str]:
    """Lines that set a value without a trailing ``# comment`` (quoted '#' characters do not count)."""
    missing = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = KEY_LINE.match(line)
        assert match, f"{path.name}:{number}: not a 'key: value' line: {line!r}"
        rest = re.sub(r'"[^"]*"|\'[^\']*\'', '""', match["rest"])  # drop quoted text before looking for '#'
        value, _, comment = rest.partition("#")
        if value.strip() and not comment.strip():
            missing.append(f"{path.name}:{number}: {match['key']}")
    return missing


def test_presets_exist():
    assert REFERENCE in PRESETS
    assert len(PRESETS) >= 10


def test_every_registered_family_has_a_preset():
    covered = {yaml.safe_load(p.read_text())["family"]["name"] for p in PRESETS}
    plugins = {ep.name for ep in entry_points(group="metarl.families")}  # third-party families bring their own
    assert set(list_families()) - plugins - OPTIONAL_FAMILIES - covered == set()


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_preset_loads_and_family_builds(path):
    config = load_config(path)
    family = make_family(config.family.name, config.family.version, **config.family.kwargs)
    assert family.name == config.family.name
    if config.family.version is not None:
        assert family.version == config.family.version
    assert family.horizon >= 1


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_preset_has_the_reference_keys(path):
    reference = leaf_keys(yaml.safe_load(REFERENCE.read_text()))
    assert leaf_keys(yaml.safe_load(path.read_text())) == reference


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_every_key_is_commented(path):
    assert uncommented_keys(path) == []


def test_comment_check_catches_a_missing_comment(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text('seed: 0  # root seed\nfamily:\n  name: "a#b"\n  version: null # ok\n')
    assert uncommented_keys(bad) == ["bad.yaml:3: name"]
