"""The ``metarl`` command: train, eval, bench, algos, envs, check-family, perf.

Bad input (config, family, flags) ends with one line on stderr naming what was wrong and what is allowed, and
exit code 2, before Ray starts or anything is written.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from metarl.checkpoint import CheckpointError
from metarl.config import Config, ConfigError, from_dict, load_config
from metarl.families import FamilyError, TaskFamily, make_family


class UsageError(Exception):
    """Bad command-line input; printed as one line, exit code 2."""


def _run_dir(config: Config, config_path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(config.log.dir) / f"{config_path.stem}__s{config.seed}__{stamp}"
    run_dir, i = base, 1
    while run_dir.exists():
        run_dir, i = Path(f"{base}-{i}"), i + 1
    return run_dir


def _prepare_resume(run_dir: Path, overrides: list[str]) -> tuple[Config, Path]:
    """Config and latest checkpoint of an earlier run, both checked before anything in the run is touched (the
    trainer cuts metrics.jsonl back to the checkpoint once the run is rebuilt)."""
    from metarl.checkpoint import latest_checkpoint, load_checkpoint

    if not (run_dir / "config.yaml").is_file():
        raise UsageError(f"--resume {run_dir}: not a run directory (no config.yaml)")
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise UsageError(f"--resume {run_dir}: no checkpoints/iter_*.pt to resume from")
    try:
        load_config(run_dir / "config.yaml")
    except ConfigError as exc:
        raise UsageError(f"--resume {run_dir}: its config.yaml does not fit this metarl version: {exc}") from None
    load_checkpoint(checkpoint)  # a truncated, corrupt or incompatible file is refused here, by name
    return load_config(run_dir / "config.yaml", overrides), checkpoint


def cmd_train(args: argparse.Namespace) -> int:
    overrides = list(args.set or [])
    if args.address:
        overrides.append(f"ray.address={args.address}")
    if args.resume:
        run_dir = Path(args.resume)
        config, checkpoint = _prepare_resume(run_dir, overrides)
    else:
        if args.config is None:
            raise UsageError("train needs a CONFIG file (e.g. configs/maml_trpo/2d_navigation.yaml) "
                             "or --resume RUN_DIR")
        config = load_config(args.config, overrides)
        run_dir, checkpoint = _run_dir(config, Path(args.config)), None

    from metarl.rollout import SamplingError
    from metarl.signals import Interrupted, stop_on_signals
    from metarl.trainer import Trainer

    with stop_on_signals() as arm:
        trainer = None
        try:
            trainer = Trainer(config, run_dir, resume_from=checkpoint)
            arm()  # again: Ray has just replaced the SIGTERM handler
            trainer.logger.print(f"run directory: {run_dir}\nTensorBoard:   tensorboard --logdir {run_dir}")
            trainer.train()
        except Interrupted as stop:
            return _stopped(stop, run_dir, trainer)
        except SamplingError as exc:
            print(f"metarl: error: {exc.summary}\n{exc.worker_traceback}{_resume_hint(run_dir, trainer)}",
                  file=sys.stderr)
            return 1
    print(f"done: {run_dir}\nopen the curves with: tensorboard --logdir {run_dir}")
    return 0


def _resume_hint(run_dir: Path, trainer) -> str:
    saved = trainer.save_completed() if trainer is not None else None
    if saved is None:
        return "nothing was saved (no iteration had completed)"
    return f"last checkpoint: {saved}; continue with: metarl train --resume {run_dir}"


def _stopped(stop, run_dir: Path, trainer) -> int:
    """After the first signal: the trainer has saved the last completed iteration; shut Ray down and say how to go
    on. A second signal (``Aborted``) at any point here ends it at once."""
    from metarl.signals import Aborted

    if isinstance(stop, Aborted):
        print(f"metarl: stopped by a second {stop.name}", file=sys.stderr)
        return stop.exit_code
    try:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        print(f"metarl: stopped by {stop.name}; {_resume_hint(run_dir, trainer)}", file=sys.stderr)
    except Aborted as again:
        print(f"metarl: stopped by a second {again.name}", file=sys.stderr)
        return again.exit_code
    return stop.exit_code


def _eval_protocol(config: Config, args: argparse.Namespace) -> Config:
    """The config's ``eval:`` section with the flags that were given."""
    changes = {}
    if args.num_tasks is not None:
        if args.num_tasks < 1:
            raise UsageError(f"eval: --num-tasks must be an integer >= 1, got {args.num_tasks}")
        changes["num_tasks"] = args.num_tasks
    if args.steps is not None:
        if args.steps < 0:
            raise UsageError(f"eval: --steps must be an integer >= 0, got {args.steps}")
        changes["steps"] = args.steps
    if args.episodes is not None:
        if args.episodes < 1:
            raise UsageError(f"eval: --episodes must be an integer >= 1, got {args.episodes}")
        changes["episodes"] = args.episodes
    if args.inner_lr is not None:
        try:
            lrs = tuple(float(x) for x in args.inner_lr.split(","))
        except ValueError:
            lrs = ()
        if not lrs or not all(x > 0 for x in lrs):
            raise UsageError(f"eval: --inner-lr must be numbers > 0 separated by commas (one per step, the last "
                             f"repeats), e.g. 0.5,0.25; got {args.inner_lr!r}")
        changes["inner_lr"] = lrs
    return replace(config, eval=replace(config.eval, **changes))


def _eval_tasks(path: str, family: TaskFamily) -> list[dict]:
    """``--tasks FILE``: a JSON list of task dicts with the keys of the family's own tasks."""
    import numpy as np

    where = f"eval --tasks {path}"
    try:
        tasks = json.loads(Path(path).read_text())
    except OSError as exc:
        raise UsageError(f"{where}: cannot read it ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    keys = sorted(family.sample_tasks(np.random.default_rng(0), 1)[0])
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, dict) and sorted(t) == keys for t in tasks):
        raise UsageError(f"{where}: give a non-empty JSON list of {family.name} tasks, each an object with the keys "
                         f"{', '.join(keys)}")
    return tasks


def cmd_eval(args: argparse.Namespace) -> int:
    import yaml

    from metarl.checkpoint import latest_checkpoint, load_checkpoint
    from metarl.components import build
    from metarl.evaluation import meta_test

    run_dir = Path(args.run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise UsageError(f"eval {run_dir}: not a run directory (no config.yaml)")
    checkpoint = Path(args.checkpoint) if args.checkpoint else latest_checkpoint(run_dir)
    if checkpoint is None or not checkpoint.is_file():
        raise UsageError(f"eval {run_dir}: checkpoint {args.checkpoint or 'checkpoints/iter_*.pt'} not found")
    config = _eval_protocol(from_dict(yaml.safe_load((run_dir / "config.yaml").read_text())), args)
    if args.tasks and args.num_tasks is not None:
        raise UsageError("eval: give --tasks FILE or --num-tasks N, not both (the file's tasks are all evaluated)")
    family = tasks = None
    if args.tasks:  # checked before build() starts Ray, so that a wrong file gets a one-line error
        family = make_family(config.family.name, config.family.version, **config.family.kwargs)
        tasks = _eval_tasks(args.tasks, family)
    if args.plot:
        import matplotlib  # noqa: F401  (fail before the evaluation if plotting cannot work)
    parts = build(config, theta=load_checkpoint(checkpoint)["theta"], family=family)
    try:
        result = meta_test(parts.pool, parts.learner, parts.family, config, tasks)
    finally:
        parts.close()
    if args.tasks:
        result["tasks_file"] = args.tasks  # which tasks were scored: the JSON alone must say
    text = json.dumps(result)
    if args.out:
        Path(args.out).write_text(text + "\n")
    if args.plot:
        from metarl import plots

        title = f"{result['family']} {result['version']}, {result['num_tasks']} test tasks"
        plots.save(plots.adaptation_figure({config.algo.name: result}, title, config.eval.reference()), args.plot)
    print(text)
    return 0


def cmd_envs(args: argparse.Namespace) -> int:
    from metarl.check import describe_families

    rows = describe_families()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            versions = ", ".join(f"{v}{' (default)' if v == row['default_version'] else ''}" for v in row["versions"])
            print(f"{row['name']:24s} {versions}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from metarl import bench

    if args.resume:
        out = Path(args.resume)
        spec = bench.load_spec(out)
    else:
        preset = bench.read_preset(args.config) if args.config else {}
        family = args.family or (preset.get("family") or {}).get("name")
        if not family:
            raise UsageError("bench needs --family F or --config PRESET (or --resume DIR)")
        iterations = args.iterations if args.iterations is not None else \
            (preset.get("train") or {}).get("iterations") or 100
        split = lambda text: tuple(x.strip() for x in (text or "").split(",") if x.strip())  # noqa: E731
        spec = bench.BenchSpec(family=family, version=args.version, algos=split(args.algos),
                               baselines=split(args.baselines), seeds=args.seeds, iterations=iterations,
                               overrides=tuple(args.set or ()), eval_steps=args.eval_steps,
                               preset=str(Path(args.config).absolute()) if args.config else None)
        name = Path(args.config).stem if args.config else Path(family).name.replace(":", "_")
        out = Path(args.out) if args.out else Path("runs") / f"bench__{name}__{time.strftime('%Y%m%d-%H%M%S')}"
        if (out / bench.SPEC_FILE).exists():
            raise UsageError(f"bench --out {out}: a bench is already there; continue it with --resume {out}")
    bench.validate(spec)
    bench.run(spec, out, address=args.address, resume=bool(args.resume))
    print(f"bench: {out}\n{(out / 'bench.md').read_text()}\ncompare the runs with: tensorboard --logdir {out}")
    return 0


def cmd_algos(args: argparse.Namespace) -> int:
    from metarl.algorithms.registry import ALGORITHMS

    rows = [a.describe() for a in ALGORITHMS.values()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        defaults = ", ".join(f"{k}={v}" for k, v in row["defaults"].items())
        adapts = row["adapts"] + (", learned step sizes" if row["learned_inner_lr"] else "")
        print(f"{row['name']}  ({row['paper']})\n    inner: {row['inner_objective']} on {adapts}; "
              f"outer: {row['outer_objective']}; step: {row['outer_step']}\n    defaults: {defaults}")
    return 0


def cmd_check_family(args: argparse.Namespace) -> int:
    from metarl.check import check_family

    make_family(args.family, args.version)  # an unknown family or version is bad input: one line, exit 2
    results = check_family(args.family, args.version)
    for r in results:
        print(f"{'PASS' if r.passed else 'FAIL'}  {r.name}" + (f": {r.message}" if r.message else ""))
    failed = [r for r in results if not r.passed]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def cmd_perf(args: argparse.Namespace) -> int:
    from metarl import perf

    if (args.workers is not None and args.workers < 0) or args.repeats < 1:
        raise UsageError("perf: --workers must be >= 0 and --repeats >= 1")
    if args.device is not None and args.what != "iteration":
        raise UsageError(f"perf: --device is for iteration (update measures the CPU and, where there is one, CUDA); "
                         f"leave it out of 'perf {args.what}'")
    result = perf.run(args.what, family=args.family, workers=args.workers, repeats=args.repeats, version=args.version,
                      device=args.device)
    print(json.dumps(result) if args.json else perf.format_result(args.what, result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metarl", description="Gradient-based meta-reinforcement learning.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="meta-train from a YAML config")
    p.add_argument("config", nargs="?", help="YAML preset, e.g. configs/maml_trpo/2d_navigation.yaml")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("--address", help="join an existing Ray cluster (default: RAY_ADDRESS or an embedded local Ray)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its latest checkpoint")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="meta-test a trained run on held-out tasks")
    p.add_argument("run_dir")
    p.add_argument("--checkpoint", metavar="FILE", help="checkpoint to evaluate (default: the run's latest)")
    p.add_argument("--num-tasks", type=int, help="held-out test tasks (default: the config's eval.num_tasks, 40)")
    p.add_argument("--tasks", metavar="FILE.json", help="evaluate on these tasks instead (a JSON list of the family's "
                   "task dicts, e.g. configs/paper/test_tasks/*.json: the MAML paper's own test goals)")
    p.add_argument("--steps", type=int, help="inner steps K of the adaptation curve (default: eval.steps, 3)")
    p.add_argument("--episodes", type=int,
                   help="episodes per task and step (default: eval.episodes, else sampler.episodes_per_task)")
    p.add_argument("--inner-lr", metavar="A[,B,...]",
                   help="step size of each inner step, the last repeating (default: eval.inner_lr, else algo.inner_lr)")
    p.add_argument("--out", metavar="FILE.json", help="also write the JSON result to this file")
    p.add_argument("--plot", metavar="FILE.png", help="draw the adaptation curve (mean and 95%% band over tasks)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("envs", help="list task families and their versions")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_envs)

    p = sub.add_parser("bench", help="algorithms x seeds and baselines as Ray Tune trials -> table and plots")
    p.add_argument("--family", help="registered family or package.module:Class (default: --config's)")
    p.add_argument("--version", help="the family's version (default: --config's, else the family's default)")
    p.add_argument("--config", metavar="PRESET", help="start every trial from this preset, e.g. "
                   "configs/paper/maml_2d_navigation.yaml (default: the family's maml_trpo preset)")
    p.add_argument("--algos", default="", metavar="A,B", help="algorithms, e.g. maml-trpo,promp")
    p.add_argument("--baselines", default="", metavar="B,C", help="any of random,pretrained,oracle")
    p.add_argument("--seeds", type=int, default=3, help="seeds per algorithm and baseline (1..N)")
    p.add_argument("--iterations", type=int, help="training iterations per trial (default: --config's, else 100)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key in every trial")
    p.add_argument("--eval-steps", type=int, help="inner steps of the meta-test (default: the config's eval.steps)")
    p.add_argument("--address", help="run the trials on this Ray cluster (default: RAY_ADDRESS or embedded)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: runs/bench__<family>__<time>)")
    p.add_argument("--resume", metavar="DIR", help="continue an interrupted bench; finished trials are kept")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("algos", help="list the meta-RL algorithms with their paper, parts and defaults")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_algos)

    p = sub.add_parser("check-family", help="validate a task family (built-in name or package.module:Class)")
    p.add_argument("family")
    p.add_argument("--version")
    p.set_defaults(func=cmd_check_family)

    p = sub.add_parser("perf", help="measure sampler / update / iteration speed")
    p.add_argument("what", choices=["sampler", "update", "iteration"])
    p.add_argument("--family", default=None,
                   help="task family for sampler and update (default: halfcheetah-vel; update takes its spaces)")
    p.add_argument("--version", default=None, help="the sampler's family version (default: the family's default)")
    p.add_argument("--workers", type=int, default=None,
                   help="rollout actors (default: 1 for sampler, the preset's 2 for iteration)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats after one warm-up; the median is reported")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None,
                   help="the learner's device for iteration (default: the preset's, auto)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_perf)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, FamilyError, UsageError, CheckpointError) as exc:
        print(f"metarl: error: {' '.join(str(exc).split())}", file=sys.stderr)  # always one line
        return 2


if __name__ == "__main__":
    sys.exit(main())
