"""`metarl bench`: which algorithm adapts best on a family, and did meta-learning beat the baselines?

Every (algorithm, seed) and (baseline, seed) is one Ray Tune trial, so a grid spreads over a cluster (``--address``)
and runs one trial after another on a laptop, each trial holding the CPUs of its learner and rollout workers. A
trial trains (where it trains) and meta-tests with the config's ``eval:`` protocol on the same held-out tasks; its
run directory sits under DIR/runs, so ``tensorboard --logdir DIR`` compares all of them. An interrupted bench
continues with ``--resume DIR`` (Tune's own restore): finished trials are not run again. At the end DIR holds
bench.json, bench.md, adaptation.png and learning.png (when a trial trains).
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from metarl.algorithms.registry import ALGORITHMS
from metarl.baselines import BASELINES, run_baseline
from metarl.config import Config, ConfigError, from_dict

if TYPE_CHECKING:  # matplotlib is imported only where a figure is drawn
    from metarl.plots import Reference

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
SPEC_FILE = "bench_spec.json"


@dataclass(frozen=True)
class BenchSpec:
    """What a bench runs; saved as DIR/bench_spec.json so that ``--resume DIR`` needs nothing else."""

    family: str
    version: str | None
    algos: tuple[str, ...]
    baselines: tuple[str, ...]
    seeds: int
    iterations: int
    overrides: tuple[str, ...] = ()
    eval_steps: int | None = None
    preset: str | None = None  # --config: the preset file (absolute path) every trial starts from

    def trials(self) -> list[dict[str, Any]]:
        kinds = [("algo", a) for a in self.algos] + [("baseline", b) for b in self.baselines]
        return [{"kind": kind, "name": name, "seed": seed, "label": f"{name}__s{seed}"}
                for kind, name in kinds for seed in range(1, self.seeds + 1)]

    def config(self, trial: dict[str, Any]) -> Config:
        """The trial's config: ``--config``'s preset, else the family's MAML-TRPO preset (or the defaults for a
        family without one); the algorithm's ``algo:`` section from that preset where it names the algorithm (the
        baselines' is MAML-TRPO's), else from the algorithm's preset for this family (else its 2D-navigation
        preset); then the bench's settings and ``--set`` overrides."""
        stem = self.family.replace("-", "_").replace(":", "_").replace(".", "_")
        base = read_preset(self.preset) if self.preset else _preset(CONFIGS / "maml_trpo" / f"{stem}.yaml")
        algo = trial["name"] if trial["kind"] == "algo" else "maml-trpo"
        algo_dir = CONFIGS / algo.replace("-", "_")
        algo_preset = base if (base.get("algo") or {}).get("name", "maml-trpo") == algo else \
            _preset(algo_dir / f"{stem}.yaml") or _preset(algo_dir / "2d_navigation.yaml")
        data = {**base, "algo": algo_preset.get("algo", {"name": algo})}
        data["family"] = {**base.get("family", {}), "name": self.family}
        if self.version is not None or not base:
            data["family"]["version"] = self.version
        if not base:
            data["family"]["kwargs"] = {}
        sets = [f"seed={trial['seed']}", f"train.iterations={self.iterations}", "log.progress=false",
                *self.overrides]
        if self.eval_steps is not None:
            sets.append(f"eval.steps={self.eval_steps}")
        return from_dict(data, sets)


def _preset(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) if path.is_file() else {}


def read_preset(path: str) -> dict:
    """``--config``'s preset, or a one-line ConfigError naming what is wrong with it."""
    if not Path(path).is_file():
        raise ConfigError(f"bench --config {path}: no such file; give a preset YAML such as "
                          "configs/paper/maml_2d_navigation.yaml")
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"bench --config {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"bench --config {path}: a preset is a YAML mapping of sections (seed, family, algo, ...)")
    return data


def validate(spec: BenchSpec) -> None:
    """Bad input fails here, with one line, before Ray or any file."""
    from metarl.families import make_family

    unknown = [a for a in spec.algos if a not in ALGORITHMS]
    if unknown:
        raise ConfigError(f"bench --algos: unknown {', '.join(unknown)}; allowed: {', '.join(ALGORITHMS)}")
    unknown = [b for b in spec.baselines if b not in BASELINES]
    if unknown:
        raise ConfigError(f"bench --baselines: unknown {', '.join(unknown)}; allowed: {', '.join(BASELINES)}")
    if not spec.algos and not spec.baselines:
        raise ConfigError("bench: give at least one of --algos and --baselines")
    if spec.seeds < 1 or spec.iterations < 1 or (spec.eval_steps is not None and spec.eval_steps < 0):
        raise ConfigError("bench: --seeds and --iterations must be >= 1, --eval-steps >= 0")
    make_family(spec.family, spec.version)
    for trial in spec.trials():
        spec.config(trial)


def _trial(params: dict[str, Any]) -> None:
    """One Tune trial: train (algorithms, pretrained, oracle) and meta-test into DIR/runs/<label>."""
    from ray import tune

    from metarl.trainer import Trainer

    trial, out = params["trial"], Path(params["out"])
    spec = from_plain(params["spec"])
    config = spec.config(trial)
    config = replace(config, sampler=replace(config.sampler, num_workers=params["workers"]))
    run_dir = out / "runs" / trial["label"]
    if trial["kind"] == "baseline":
        result = run_baseline(trial["name"], config, run_dir)
    else:
        from metarl.components import build
        from metarl.evaluation import meta_test

        start = time.perf_counter()
        trainer = Trainer(config, run_dir)
        trainer.train()
        parts = build(trainer.config, theta=trainer.learner.theta)
        try:
            evaluation = meta_test(parts.pool, parts.learner, parts.family, trainer.config)
        finally:
            parts.close()
        (run_dir / "eval.json").write_text(json.dumps(evaluation) + "\n")
        result = {"eval": evaluation, "env_steps": trainer.env_steps, "seconds": time.perf_counter() - start}
    record = {**trial, "env_steps": result["env_steps"], "seconds": result["seconds"], "eval": result["eval"],
              "run_dir": str(run_dir.relative_to(out))}
    (run_dir / "trial.json").write_text(json.dumps(record) + "\n")
    tune.report({"final_return": result["eval"]["mean_return"][-1], "env_steps": result["env_steps"]})


def run(spec: BenchSpec, out: Path, address: str | None = None, resume: bool = False) -> Path:
    """Run (or continue) the grid under ``out`` and write the four outputs."""
    import ray
    from ray import tune

    from metarl.rollout import init_ray

    out = out.absolute()
    if not resume:
        out.mkdir(parents=True, exist_ok=True)
        (out / SPEC_FILE).write_text(json.dumps(to_plain(spec), indent=2) + "\n")
    init_ray(address, None)
    # Each trial holds its learner's CPU and one per rollout worker, in a placement group that captures the actors
    # it starts: as many workers as the presets ask for, but no more than the cluster has beside the learner.
    # Trials that do not fit wait for a finished one.
    wanted = max(spec.config(t).sampler.num_workers for t in spec.trials())
    workers = min(wanted, int(ray.cluster_resources().get("CPU", 1)) - 1)
    resources = tune.PlacementGroupFactory([{"CPU": 1}] + [{"CPU": 1}] * workers)
    trainable = tune.with_resources(_trial, resources)
    experiment = out / "tune"
    if resume and tune.Tuner.can_restore(str(experiment)):
        tuner = tune.Tuner.restore(str(experiment), trainable, resume_errored=True)
    else:
        params = {"trial": tune.grid_search(spec.trials()), "spec": to_plain(spec), "out": str(out),
                  "workers": workers}
        tuner = tune.Tuner(trainable, param_space=params,
                           run_config=tune.RunConfig(name="tune", storage_path=str(out), verbose=0))
    tuner.fit()
    write_outputs(spec, out)
    return out


def to_plain(spec: BenchSpec) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in spec.__dict__.items()}


def from_plain(data: dict[str, Any]) -> BenchSpec:
    return BenchSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def load_spec(out: Path) -> BenchSpec:
    path = out / SPEC_FILE
    if not path.is_file():
        raise ConfigError(f"bench --resume {out}: not a bench directory (no {SPEC_FILE})")
    return from_plain(json.loads(path.read_text()))


# ---- outputs -----------------------------------------------------------------------------------------------------


def write_outputs(spec: BenchSpec, out: Path) -> None:
    """bench.json, bench.md, adaptation.png and learning.png from the finished trials' trial.json files."""
    from metarl import plots

    records = []
    for trial in spec.trials():
        path = out / "runs" / trial["label"] / "trial.json"
        if path.is_file():
            records.append(json.loads(path.read_text()))
    (out / "bench.json").write_text(json.dumps({"spec": to_plain(spec), "trials": records}, indent=1) + "\n")
    rows = _aggregate(records)
    reference = spec.config(spec.trials()[0]).eval.reference() if spec.trials() else None
    (out / "bench.md").write_text(_markdown(spec, rows, reference))
    title = f"{spec.family} ({rows[0]['version'] if rows else ''}), {spec.seeds} seed(s)"
    plots.save(plots.adaptation_figure({r["name"]: r for r in rows}, title, reference), out / "adaptation.png")
    curves = {}
    for name in dict.fromkeys(r["name"] for r in records):  # a trial that trained metarl's way left metrics.jsonl
        runs = [path for r in records if r["name"] == name if (path := out / r["run_dir"] / "metrics.jsonl").is_file()]
        if runs:
            curves[name] = _learning_curve(runs)
    if curves:  # no empty figure for a bench that trains nothing
        plots.save(plots.learning_figure(curves, title), out / "learning.png")


def _aggregate(records: list[dict]) -> list[dict[str, Any]]:
    """Per algorithm or baseline: the adaptation curve as mean ± std over seeds (of each seed's mean over tasks)."""
    rows = []
    for name in dict.fromkeys(r["name"] for r in records):
        group = [r for r in records if r["name"] == name]
        curves = [r["eval"]["mean_return"] for r in group]
        steps = group[0]["eval"]["steps"]
        mean = [statistics.fmean(c[k] for c in curves) for k in range(len(steps))]
        std = [statistics.pstdev(c[k] for c in curves) for k in range(len(steps))]
        ci = [1.96 * s / len(curves) ** 0.5 for s in std] if len(curves) > 1 else group[0]["eval"]["ci95_return"]
        rows.append({"name": name, "kind": group[0]["kind"], "version": group[0]["eval"]["version"],
                     "seeds": len(group), "steps": steps, "mean_return": mean, "std_return": std,
                     "ci95_return": ci, "env_steps": statistics.fmean(r["env_steps"] for r in group),
                     "minutes": statistics.fmean(r["seconds"] for r in group) / 60})
    return rows


def _markdown(spec: BenchSpec, rows: list[dict[str, Any]], reference: Reference | None = None) -> str:
    steps = rows[0]["steps"] if rows else []
    head = "| | " + " | ".join(f"step {k}" for k in steps) + " | env steps | minutes |\n"
    head += "|---|" + "---|" * (len(steps) + 2) + "\n"
    body = "".join(
        f"| {r['name']}{' (baseline)' if r['kind'] == 'baseline' else ''} | "
        + " | ".join(f"{m:.1f} ± {s:.1f}" for m, s in zip(r["mean_return"], r["std_return"]))
        + f" | {r['env_steps']:,.0f} | {r['minutes']:.1f} |\n" for r in rows)
    if reference is not None and steps:
        label, values = reference
        cells = [f"{values[k]:.1f}" if k < len(values) else "" for k in range(len(steps))]
        body += f"| {label} (reference) | " + " | ".join(cells) + " | | |\n"
    preset = f" Every trial starts from the preset {Path(spec.preset).name}." if spec.preset else ""
    trains = spec.algos or set(spec.baselines) - {"random"}
    training = f"{spec.iterations} training iterations per trial" if trains else "no training (random policies)"
    return (f"# metarl bench: {spec.family}\n\nReturn after k inner steps on the held-out test tasks, mean ± std over "
            f"{spec.seeds} seed(s); {training}; env steps and minutes per trial.{preset}\n\n{head}{body}")


def _learning_curve(paths: list[Path]) -> tuple[list[float], list[float]]:
    """Training return after the last inner step (return_step_K; K = 0 for the pretrained baseline) against env
    steps, averaged over seeds per iteration."""
    runs = [[json.loads(line) for line in p.read_text().splitlines() if line.strip()] for p in paths]
    if not runs:
        return [], []
    length = min(len(r) for r in runs)
    last = max(int(k.rsplit("_", 1)[1]) for k in runs[0][0] if k.startswith("return_step_"))
    steps = [statistics.fmean(r[i]["env_steps"] for r in runs) for i in range(length)]
    returns = [statistics.fmean(r[i][f"return_step_{last}"] for r in runs) for i in range(length)]
    return steps, returns
