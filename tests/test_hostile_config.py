"""Property-based: random config documents and random ``--set`` strings give either a valid config or one clean
config error — one line, exit code 2, nothing written — never a traceback."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import tempfile
import typing
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metarl.cli import main
from metarl.config import Config, ConfigError, load_config


def _keys(cls: type, prefix: str = "") -> list[str]:
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out += _keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            out.append(f"{prefix}{f.name}")
    return out


KEYS = _keys(Config)
SECTIONS = sorted({k.split(".")[0] for k in KEYS if "." in k})

scalars = (st.none() | st.booleans() | st.integers() | st.integers(-3, 3) | st.floats(allow_nan=True)
           | st.text(max_size=12) | st.sampled_from(["maml-trpo", "promp", "2d-navigation", "auto", "actor", "cuda:x"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=6) | st.integers(), inner, max_size=3), max_leaves=8)
key_text = st.sampled_from(KEYS) | st.sampled_from(SECTIONS) | st.text(max_size=12)


@st.composite
def documents(draw) -> bytes:
    """Config files: mostly near-misses of real configs (real keys, random values), some arbitrary YAML or bytes."""
    kind = draw(st.sampled_from(["keys", "keys", "yaml", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    if kind == "yaml":
        return yaml.safe_dump(draw(values)).encode()
    doc: dict = {}
    for key in draw(st.lists(key_text, max_size=5)):
        node = doc
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            node = child if isinstance(child, dict) else {}
        node[parts[-1]] = draw(values)
    return yaml.safe_dump(doc, allow_unicode=True).encode()


set_strings = st.lists(
    st.text(max_size=20) | st.builds(lambda k, v: f"{k}={v}", key_text, st.text(max_size=12))
    | st.builds(lambda k, v: f"{k}={yaml.safe_dump(v, default_flow_style=True).strip()}", key_text, values),
    max_size=3)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=documents(), sets=set_strings)
def test_load_config_gives_a_config_or_one_config_error(document, sets):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_bytes(document)
        try:
            config = load_config(path, sets)
        except ConfigError as exc:
            assert str(exc) and "\n" not in str(exc), repr(str(exc))
        else:
            assert isinstance(config, Config)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=documents(), sets=set_strings)
def test_train_with_a_bad_config_exits_2_with_one_line_and_writes_nothing(document, sets):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_bytes(document)
        log_dir = Path(tmp) / "runs"
        overrides = [*sets, f"log.dir={log_dir}"]
        args = ["train", str(path), *[f"--set={s}" for s in overrides]]
        try:
            load_config(path, overrides)
        except ConfigError:
            pass
        else:
            return  # a valid config would train: not this test's business
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(args)
        lines = err.getvalue().splitlines()
        assert code == 2
        assert len(lines) == 1 and lines[0].startswith("metarl: error: "), err.getvalue()
        assert sorted(p.name for p in Path(tmp).iterdir()) == ["c.yaml"]
