"""Typed run configuration: YAML presets + ``--set a.b=v`` overrides -> frozen dataclasses, validated up front.

Every error is a ``ConfigError`` whose one-line message names the key and what is allowed; the CLI turns it
into exit code 2 before any work (Ray, files) starts.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from metarl.algorithms import registry as _registry


class ConfigError(ValueError):
    """Bad configuration: unknown key, wrong type or out-of-range value."""


@dataclass(frozen=True)
class FamilyConfig:
    name: str = "2d-navigation"
    """Registered family name or an import path "package.module:ClassName"."""
    version: str | None = None
    """Task-distribution version; null = the family's default (the MAML paper's where it defines one)."""
    kwargs: dict = field(default_factory=dict)
    """Extra keyword arguments for the family's constructor."""

    def spec(self) -> dict:
        """What a rollout worker needs to build the family in its own process."""
        return {"name": self.name, "version": self.version, "kwargs": dict(self.kwargs)}


@dataclass(frozen=True)
class AlgoConfig:
    name: str = "maml-trpo"
    """One of metarl.algorithms.registry.ALGORITHMS (`metarl algos`)."""
    inner_lr: float | tuple[float, ...] = 0.1
    """alpha: inner step size, one number or one per inner step (Meta-SGD: the learned step sizes' start)."""
    inner_steps: int = 1
    """K: inner adaptation steps per task."""
    first_order: bool | None = None
    """Drop the second-order terms of the meta-gradient (FOMAML); null = the algorithm's default."""
    outer_lr: float | None = None
    """Adam's learning rate (maml-vpg, maml-ppo, promp) or Reptile's ε; null = the algorithm's default."""
    outer_epochs: int | None = None
    """Adam steps per batch of rollouts (maml-vpg, maml-ppo, promp); null = the algorithm's default."""
    clip: float | None = None
    """Clip range ε of the clipped surrogate (maml-ppo, promp); null = the algorithm's default."""
    kl_coef: float | None = None
    """ProMP's coefficient of the KL penalty between pre-update policies; null = the algorithm's default."""
    gamma: float = 0.99
    gae_lambda: float = 1.0
    normalize_advantages: bool = True
    max_kl: float = 0.01
    cg_iters: int = 10
    cg_damping: float = 1e-5
    ls_max_steps: int = 15
    ls_backtrack_ratio: float = 0.8
    fvp_subsample: int = 1
    """KL Hessian-vector products (TRPO's conjugate gradient) on every n-th support and query sample (1 = all
    samples, exact; OpenAI Baselines' TRPO uses 5). maml-trpo's and fomaml's hand-derived path only; the adaptation,
    the meta-gradient and the line search's KL always use every sample."""

    @property
    def inner_lrs(self) -> tuple[float, ...]:
        """The inner step size of each step (a single number applies to every step)."""
        return self.inner_lr if isinstance(self.inner_lr, tuple) else (self.inner_lr,)


@dataclass(frozen=True)
class PolicyConfig:
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    init_log_std: float = 0.0

    def spec(self) -> dict:
        """Keyword arguments of ``policies.make_policy`` (also shipped to rollout workers)."""
        return {"hidden_sizes": self.hidden_sizes, "activation": self.activation, "init_log_std": self.init_log_std}


@dataclass(frozen=True)
class TrainConfig:
    iterations: int = 500
    meta_batch_size: int = 20
    eval_every: int = 0
    checkpoint_every: int = 50
    keep_checkpoints: int = 3
    """Newest checkpoints kept in the run directory (0 = keep every one)."""


@dataclass(frozen=True)
class SamplerConfig:
    num_workers: int = 2
    """Ray rollout actors; 0 samples in the driver process."""
    episodes_per_task: int = 20
    cpus_per_worker: float = 1.0
    """CPUs each rollout actor asks Ray for (fractions share a core)."""


@dataclass(frozen=True)
class LearnerConfig:
    device: str = "auto"
    task_chunk: int | None = None
    """Tasks per block in the outer objective; null = auto (all at once on CUDA, cache-sized blocks on CPU)."""
    placement: str = "driver"
    """Where the learner runs: in the driver process, or as a Ray actor (on a GPU node of a cluster)."""
    num_gpus: float | None = None
    """GPUs the learner actor asks for; null = 1 when the cluster has a GPU, else 0."""


@dataclass(frozen=True)
class EvalConfig:
    """The meta-test protocol: `metarl eval`'s defaults and the periodic meta-test during training."""

    num_tasks: int = 40
    """Held-out test tasks (from a seed stream that never produces a training task)."""
    steps: int = 3
    """Inner steps K of the adaptation curve (each on fresh rollouts of the policy adapted so far)."""
    episodes: int | None = None
    """Episodes per task and step; null = sampler.episodes_per_task."""
    inner_lr: float | tuple[float, ...] | None = None
    """Step size per inner step (the last one repeats); null = algo.inner_lr."""
    reference_return: tuple[float, ...] | None = None
    """A published adaptation curve to compare with (e.g. a paper's row): mean return after 0, 1, … inner steps.
    bench.md and the adaptation plots show it beside the measured curve; it changes nothing that is measured."""
    reference_label: str = "reference"
    """Where reference_return comes from (its legend and table label)."""

    def reference(self) -> tuple[str, tuple[float, ...]] | None:
        """(label, curve) for the plots and tables, or None."""
        return (self.reference_label, self.reference_return) if self.reference_return else None


@dataclass(frozen=True)
class RayConfig:
    address: str | None = None
    num_cpus: int | None = None


@dataclass(frozen=True)
class LogConfig:
    dir: str = "runs"
    progress: bool = True


@dataclass(frozen=True)
class Config:
    seed: int = 0
    family: FamilyConfig = field(default_factory=FamilyConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    ray: RayConfig = field(default_factory=RayConfig)
    log: LogConfig = field(default_factory=LogConfig)


ALGORITHMS = tuple(_registry.ALGORITHMS)
ACTIVATIONS = ("tanh", "relu")

# key -> (predicate, what is allowed)
_RANGES: dict[str, tuple[typing.Callable[[Any], bool], str]] = {
    "seed": (lambda v: v >= 0, "an integer >= 0"),
    "algo.name": (lambda v: v in ALGORITHMS, f"one of {', '.join(ALGORITHMS)}"),
    "algo.inner_lr": (lambda v: all(x > 0 for x in (v if isinstance(v, tuple) else (v,))) and v != (),
                      "a number > 0 or a list of numbers > 0, one per inner step"),
    "algo.outer_lr": (lambda v: v > 0, "null (the algorithm's default) or a number > 0"),
    "algo.outer_epochs": (lambda v: v >= 1, "null (the algorithm's default) or an integer >= 1"),
    "algo.clip": (lambda v: 0 < v < 1, "null (the algorithm's default) or a number in (0, 1)"),
    "algo.kl_coef": (lambda v: v >= 0, "null (the algorithm's default) or a number >= 0"),
    "algo.inner_steps": (lambda v: v >= 0, "an integer >= 1 (0 = train without adaptation, maml-trpo only)"),
    "algo.gamma": (lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "algo.gae_lambda": (lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "algo.max_kl": (lambda v: v > 0, "a number > 0"),
    "algo.cg_iters": (lambda v: v >= 1, "an integer >= 1"),
    "algo.cg_damping": (lambda v: v >= 0, "a number >= 0"),
    "algo.ls_max_steps": (lambda v: v >= 1, "an integer >= 1"),
    "algo.ls_backtrack_ratio": (lambda v: 0 < v < 1, "a number in (0, 1)"),
    "algo.fvp_subsample": (lambda v: v >= 1, "an integer >= 1 (1 = every sample)"),
    "policy.hidden_sizes": (lambda v: all(h >= 1 for h in v), "a list of positive integers"),
    "policy.activation": (lambda v: v in ACTIVATIONS, f"one of {', '.join(ACTIVATIONS)}"),
    "train.iterations": (lambda v: v >= 1, "an integer >= 1"),
    "train.meta_batch_size": (lambda v: v >= 1, "an integer >= 1"),
    "train.eval_every": (lambda v: v >= 0, "an integer >= 0 (0 = never)"),
    "eval.num_tasks": (lambda v: v >= 1, "an integer >= 1"),
    "eval.steps": (lambda v: v >= 0, "an integer >= 0"),
    "eval.episodes": (lambda v: v >= 1, "null (sampler.episodes_per_task) or an integer >= 1"),
    "eval.inner_lr": (lambda v: all(x > 0 for x in (v if isinstance(v, tuple) else (v,))) and v != (),
                      "null (algo.inner_lr), a number > 0 or a list of numbers > 0"),
    "eval.reference_return": (lambda v: len(v) >= 1 and all(math.isfinite(x) for x in v),
                              "null or a non-empty list of finite numbers (mean return after 0, 1, ... steps)"),
    "train.checkpoint_every": (lambda v: v >= 1, "an integer >= 1"),
    "train.keep_checkpoints": (lambda v: v >= 0, "an integer >= 0 (0 = keep every checkpoint)"),
    "sampler.cpus_per_worker": (lambda v: 0 < v < float("inf"), "a finite number > 0"),
    "learner.placement": (lambda v: v in ("driver", "actor"), "driver or actor"),
    "learner.num_gpus": (lambda v: 0 <= v < float("inf"), "null (1 if the cluster has a GPU) or a finite number >= 0"),
    "sampler.num_workers": (lambda v: v >= 0, "an integer >= 0 (0 = sample in the driver)"),
    "sampler.episodes_per_task": (lambda v: v >= 1, "an integer >= 1"),
    "learner.device": (lambda v: v in ("auto", "cpu", "cuda") or v.startswith("cuda:"),
                       "auto, cpu, cuda or cuda:N"),
    "ray.num_cpus": (lambda v: v is None or v >= 1, "null or an integer >= 1"),
    "learner.task_chunk": (lambda v: v >= 0, "null (auto) or an integer >= 0 (0 = all tasks at once)"),
}


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    return {int: "an integer", float: "a number", bool: "true/false", str: "a string", dict: "a mapping"}.get(
        tp, str(tp))


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted where floats are expected."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(tp):
            return None
        for arg in typing.get_args(tp):
            if arg is type(None):
                continue
            try:
                return _coerce(key, value, arg)
            except ConfigError:
                pass
    elif origin is tuple:
        if isinstance(value, (list, tuple)):
            return tuple(_coerce(key, v, typing.get_args(tp)[0]) for v in value)
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is dict:
        if isinstance(value, dict):
            return value
    raise ConfigError(f"config key '{key}' must be {_type_name(tp)}, got {value!r}")


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"config section '{prefix.rstrip('.') or 'root'}' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names), key=str)  # YAML keys need not be strings
    if unknown:
        key = f"{prefix}{unknown[0]}"
        section = prefix.rstrip(".") or "root"
        raise ConfigError(f"unknown config key {key!r}; allowed in '{section}': {', '.join(names)}")
    kwargs = {}
    for name in names:
        if name not in data:
            continue
        key, tp = f"{prefix}{name}", hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, data[name], f"{key}.")
        else:
            value = _coerce(key, data[name], tp)
            check = _RANGES.get(key)
            if check is not None and value is not None and not check[0](value):
                raise ConfigError(f"config key '{key}' must be {check[1]}, got {data[name]!r}")
            kwargs[name] = value
    return cls(**kwargs)


def _set_path(data: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: '{part}' is not a section")
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``a.b=v`` -> ("a.b", v) with v parsed as YAML (so 3 -> int, 0.1 -> float, true -> bool, [1,2] -> list)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects key=value (e.g. train.iterations=100), got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


PRETRAINABLE = ("maml-trpo", "maml-vpg")
"""The algorithms that train without adaptation (``algo.inner_steps: 0``): policy gradient with a trust region
(TRPO) or with Adam (the MAML paper's pretrained 2D-navigation policy)."""


def resolve_algo(algo: AlgoConfig) -> AlgoConfig:
    """Fill the keys left null with the algorithm's defaults, and refuse combinations that contradict it."""
    spec = _registry.ALGORITHMS[algo.name]
    if algo.inner_steps == 0 and algo.name not in PRETRAINABLE:
        raise ConfigError(f"config key 'algo.inner_steps' is 0 (training without adaptation, the pretrained "
                          f"baseline) which only {' and '.join(PRETRAINABLE)} support, not {algo.name}")
    if isinstance(algo.inner_lr, tuple) and algo.inner_steps and len(algo.inner_lr) != algo.inner_steps:
        raise ConfigError(f"config key 'algo.inner_lr' has {len(algo.inner_lr)} values for algo.inner_steps = "
                          f"{algo.inner_steps}; give one number or exactly one per inner step")
    if algo.name == "fomaml" and algo.first_order is False:
        raise ConfigError("config key 'algo.first_order' must be null or true for fomaml (first order by definition)")
    if algo.name == "reptile" and algo.inner_steps < 2:
        raise ConfigError("config key 'algo.inner_steps' must be >= 2 for reptile (with one step it is joint "
                          "training, not meta-learning)")
    filled = {k: v for k, v in spec.defaults.items() if getattr(algo, k) is None}
    return dataclasses.replace(algo, **filled)


def from_dict(data: dict, overrides: typing.Sequence[str] = ()) -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        sections = ", ".join(f.name for f in dataclasses.fields(Config))
        raise ConfigError(f"a config must be a mapping of sections ({sections}), got {type(data).__name__} "
                          f"{data!r:.80}")
    data = dict(data)
    for text in overrides:
        key, value = parse_override(text)
        _set_path(data, key, value)
    config = _build(Config, data, "")
    return dataclasses.replace(config, algo=resolve_algo(config.algo))


def caveats(config: Config) -> list[str]:
    """Allowed settings that are almost never what was meant, one line each (``metarl train`` prints them)."""
    out = []
    for key, episodes in (("sampler.episodes_per_task", config.sampler.episodes_per_task),
                          ("eval.episodes", config.eval.episodes)):
        if episodes == 1:
            out.append(f"{key} is 1: the linear baseline is fitted and the advantages standardised per task, here "
                       "to a single episode, which leaves almost no signal in them; use 2 or more "
                       "(docs/results.md, the pretrained cheetah baselines)")
    return out


def load_config(path: str | Path, overrides: typing.Sequence[str] = ()) -> Config:
    """Read a YAML preset and apply ``--set`` overrides."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file '{path}' not found; presets live under configs/<algo>/<family>.yaml")
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file '{path}' is not valid YAML: {str(exc).splitlines()[0]}") from None
    except (OSError, RecursionError) as exc:
        raise ConfigError(f"config file '{path}' cannot be read: {type(exc).__name__}") from None
    return from_dict(data, overrides)


def to_dict(config: Config) -> dict:
    """Plain dict (tuples as lists) for config.yaml, TensorBoard hparams and checkpoints."""
    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return {k: plain(v) for k, v in dataclasses.asdict(config).items()}


def save_config(config: Config, path: Path) -> None:
    path.write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
