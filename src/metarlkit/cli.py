"""Command-line interface: `metarlkit tasks | agents | algorithms | evaluate | compare | sweep | record | paths | reproduce |
train | plot`.

Thin by design: parse, validate (bad input -> one line naming the fix, exit 2, no file
written), call the library, print.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Sequence

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input from the user; printed as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not usage + message
        raise UsageError(f"{message} (see '{self.prog} --help')")


MAX_COUNT = 10**9  # no count on the command line is larger (finer bounds are checked where they apply)
MAX_CHUNK = 100_000  # tasks per compiled evaluation call (a split's size)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    if value > MAX_COUNT:
        raise argparse.ArgumentTypeError(f"expected a whole number <= {MAX_COUNT:,}, got {value:,}")
    return value


def _chunk_size(text: str) -> int:
    value = _positive_int(text)
    if value > MAX_CHUNK:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_CHUNK:,} tasks per compiled call, got {value:,}")
    return value


MAX_SEED = 2**31 - 1


def _seed(text: str) -> int:
    """An agent seed: a whole number in 0 .. 2^31 - 1 (the same range as a training run's seeds)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"expected a seed in 0 .. {MAX_SEED:,}, got {value:,}")
    return value


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None


def _check_output(path: str | None, flag: str, plot: bool = False, directory: bool = False) -> None:
    """Checks an output path before any work: not empty, not a directory (a file for --json and
    --plot), a supported figure format for plots, and a writable place (probed by creating a
    temporary file in the nearest existing directory above it, then removing it)."""
    if path is None:
        return
    if not path.strip():
        raise UsageError(f"{flag} needs a file name, got an empty one")
    if not directory and os.path.isdir(path):
        raise UsageError(f"{flag} {path!r} is a directory; give a file name such as {os.path.join(path, 'out')}")
    if plot:
        ext = os.path.splitext(path)[1].lstrip(".").lower()
        formats = _figure_formats()
        if ext and ext not in formats:
            raise UsageError(f"{flag} {path!r}: figures can be written as {', '.join(sorted(formats))}; "
                             f"change the extension")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise UsageError(f"{flag} {path!r}: {parent!r} is a file, not a directory; choose another path")
    import tempfile

    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=".metarlkit-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise UsageError(f"{flag} {path!r} cannot be written in {parent!r} ({err.strerror}); "
                         f"choose a writable directory") from None


def _figure_formats() -> set[str]:
    from matplotlib.backend_bases import FigureCanvasBase

    return set(FigureCanvasBase.get_supported_filetypes())


def _load_config(path: str) -> dict[str, Any]:
    from metarlkit.experiment.config import read_file

    try:
        return read_file(path)
    except ValueError as err:
        raise UsageError(str(err)) from None


def _apply_config(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """`--config FILE` sets defaults (option names as keys); flags on the command line win."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    if known.config:
        config = _load_config(known.config)
        valid = {a.dest for a in parser._actions}
        unknown = sorted(set(config) - valid)
        if unknown:
            raise UsageError(f"config file {known.config!r} has unknown option {unknown[0]!r}")
        parser.set_defaults(**config)


# --- commands -------------------------------------------------------------------------------


def cmd_tasks(args) -> int:
    from metarlkit import tasks
    from metarlkit.specs import options_of

    families = [tasks.make(name) for name in tasks.names()]
    rows = [
        {
            "name": family.name,
            "version": family.version,
            "options": options_of(family),
            "continuous": family.continuous,
            "actions": _action_space_json(family),
            "horizon": family.horizon,
            "description": family.description,
        }
        for family in families
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for family, r in zip(families, rows):
        opts = ",".join(f"{k}={v}" for k, v in r["options"].items()) or "-"
        print(f"{r['name']:18s} v{r['version']}  {r['description']}")
        print(f"{'':18s}     options (defaults): {opts}")
        print(f"{'':18s}     actions: {family.describe_actions()}; horizon {r['horizon']}")
    return 0


def _action_space_json(family):
    """A discrete family's number of actions; a continuous family's box {shape, low, high}."""
    if not family.continuous:
        return family.num_actions
    import numpy as np

    low, high = (np.asarray(b, np.float64).tolist() for b in family.action_bounds)
    return {"shape": list(family.action_shape), "low": low, "high": high}


def cmd_agents(args) -> int:
    from metarlkit import baselines

    for name in baselines.names():
        b = baselines.get(name)
        alias = f" (alias {', '.join(b.aliases)})" if b.aliases else ""
        print(f"{name:14s} {b.description}{alias}")
        for knob, spec in b.knobs.items():
            how = f"default {spec.grid[0]}" if len(spec.grid) == 1 else f"tuned over {list(spec.grid)} unless given"
            print(f"{'':14s}   {knob}: {spec.doc}; {how}")
    return 0


def _family_and_episodes(task_spec: str, episodes: int | None):
    from metarlkit import tasks

    family = tasks.from_spec(task_spec)
    if episodes is None:
        if family.default_episodes is None:
            raise UsageError(f"{family.name} needs --episodes N (episodes per trial)")
        episodes = family.default_episodes
    try:
        family.check_episodes(episodes)
    except ValueError as err:
        raise UsageError(str(err)) from None
    return family, episodes


def _check_tasks(split: str, num_tasks: int, tune_tasks: int, family=None) -> None:
    from metarlkit.tasks.tasksets import check_split, split_size

    try:
        check_split(split, num_tasks, family)
        if split_size("validation", family):  # a published task list may have no validation tasks
            check_split("validation", tune_tasks, family)
    except ValueError as err:
        raise UsageError(str(err)) from None


def _split_agent_spec(spec: str):
    """(run directory, seed, update, agent options) when `spec` names a training run
    (`RUN_DIR[:seed=N,update=U,OPTION=VALUE,...]`: a seed, a snapshot, the evaluation-only options
    its algorithm declares), else None."""
    from metarlkit.experiment import is_run_dir
    from metarlkit.specs import parse_spec

    path, _, rest = spec.partition(":")
    classic = "/" not in path and _is_classic_agent(path)
    if not is_run_dir(path):
        if os.path.isdir(path) and path not in ("", ".") and not classic:
            raise UsageError(f"{path!r} is a directory but not a training run (no run.json); give the --out of 'metarlkit train'")
        return None
    if classic:  # a run directory named like a classic agent: neither may silently win
        raise UsageError(f"{path!r} is both a run directory here and the classic agent {path!r}; "
                         f"write ./{path} for the run, or run from another directory for the agent")
    _, options = parse_spec("run:" + rest if rest else "run")
    numbers = {}
    for name in ("seed", "update"):
        raw = options.pop(name, None)
        try:
            numbers[name] = None if raw is None else int(raw)
        except ValueError:
            raise UsageError(f"{name} must be a whole number, got {raw!r}") from None
    return path, numbers["seed"] or 0, numbers["update"], options  # options: checked against the algorithm by load


def _is_classic_agent(name: str) -> bool:
    from metarlkit import baselines

    try:
        baselines.get(name)
    except ValueError:
        return False
    return True


def _load_run(spec: str):
    from metarlkit.experiment import load
    from metarlkit.experiment.runner import RunDirError

    path, seed, update, options = _split_agent_spec(spec)
    try:
        return load(path, seed=seed, agent_options=options, update=update)
    except RunDirError as err:
        raise UsageError(str(err)) from None


def _action_signature(family) -> tuple:
    """What a trained agent's outputs depend on: the number of discrete actions, or the shape of
    a continuous action (the box may differ: the family clips)."""
    if family.continuous:
        return ("continuous", family.action_shape)
    return ("discrete", family.num_actions)


class _Trained:
    """A run directory as an entry of `_run_agents`: no knobs to tune, one compiled program."""

    def __init__(self, trained, family, episodes):
        if _action_signature(trained.family) != _action_signature(family) or trained.family.obs_shape != family.obs_shape:
            raise UsageError(
                f"{trained.name} was trained on {trained.family.spec()} (actions {trained.family.describe_actions()}, "
                f"observations {trained.family.obs_shape}) and cannot act on {family.spec()} "
                f"(actions {family.describe_actions()}, observations {family.obs_shape}); drop --task to use the run's own"
            )
        self.trained, self.agent, self.template_params = trained, trained.agent, trained.params
        self.spec = trained.name
        parallel = trained.agent.parallel_episodes
        if episodes % parallel:
            raise UsageError(f"{trained.name} plays rounds of {parallel} parallel episodes (one adaptation step "
                             f"after each); give --episodes a multiple of {parallel}, e.g. {trained.num_episodes}")
        if family.horizon != trained.family.horizon or episodes != trained.num_episodes:
            print(f"  note: {trained.name} was trained on trials of {trained.num_episodes} episodes x "
                  f"{trained.family.horizon} steps; evaluating on {episodes} x {family.horizon}", file=sys.stderr)

    def resolve(self, args):
        t = self.trained
        return t.agent, t.params, t.name, {"training": t.hyperparameters, "trained_on": t.info["task"]}, None


class _Classic:
    def __init__(self, spec, family, episodes):
        from metarlkit import baselines

        self.family, self.episodes, self.spec = family, episodes, spec
        prepared = baselines.prepare(spec, family, episodes)
        self.agent, self.template_params = prepared.agent, prepared.template_params

    def resolve(self, args):
        from metarlkit import baselines

        r = baselines.resolve(self.spec, self.family, self.episodes, tune_tasks=args.tune_tasks, seed=args.seed)
        return r.agent, r.params, r.spec, r.hyperparameters, r.tuning


def _prepare_agents(specs: Sequence[str], args):
    """(family, episodes, entries): every agent spec checked against the task before any runs,
    with its program compiling on a worker thread (the next agent's compile overlaps this one's run)."""
    from metarlkit.evaluation import compile_in_background

    if not specs:
        raise UsageError("give --agent NAME[:key=value,...] (see 'metarlkit agents') or a run directory")
    runs = {spec: _load_run(spec) for spec in specs if _split_agent_spec(spec)}
    task, episodes = args.task, args.episodes
    if not task:
        if not runs:
            raise UsageError("give --task NAME[:key=value,...] (see 'metarlkit tasks')")
        first = next(iter(runs.values()))
        task, episodes = first.info["task"], episodes or first.num_episodes
    elif episodes is None and runs:  # --task without --episodes: a run of the same family gives its trial length
        from metarlkit import tasks as task_registry
        from metarlkit.specs import SpecError

        try:
            given = task_registry.from_spec(task)
        except (SpecError, ValueError):
            given = None  # reported below by _family_and_episodes
        same = [r for r in runs.values() if given is not None and r.family.name == given.name]
        if same:
            episodes = same[0].num_episodes
    family, episodes = _family_and_episodes(task, episodes)
    if getattr(args, "actions", 0) and family.continuous:
        raise UsageError(f"--actions needs discrete actions; {family.name} has continuous actions")
    if getattr(args, "per_step", False) and not args.json:
        raise UsageError("--per-step adds per_step_reward to the JSON; give --json FILE too")
    if getattr(args, "step_range", None) is not None:
        from metarlkit.evaluation import check_step_range

        try:
            check_step_range(args.step_range, family)
        except ValueError as err:
            raise UsageError(str(err)) from None
    _check_tasks(args.split, args.num_tasks, args.tune_tasks, family)
    args.distribution = _physics(family, getattr(args, "physics", None))
    _check_output(args.json, "--json")
    _check_output(args.plot, "--plot", plot=True)
    entries = [_Trained(runs[s], family, episodes) if s in runs else _Classic(s, family, episodes) for s in specs]
    return family, episodes, entries


def _physics(family, text: str | None):
    """`--physics NAME=VALUE,...`: the family's task distribution with the named physical parameters
    fixed at those values (the others keep their distribution), or None when not given."""
    import math

    from metarlkit.specs import parse_spec

    if text is None:
        return None
    default = getattr(family, "default_distribution", None)
    if default is None or family.task_list() is not None:
        raise UsageError(f"{family.name} has no physical parameters to set; --physics goes with a family whose "
                         "dynamics vary (pendulum, cartpole, point-robot-wind)")
    _, given = parse_spec("physics:" + text)
    if not given:
        raise UsageError("--physics takes NAME=VALUE[,NAME=VALUE...], e.g. mass=1.4,length=0.8")
    base = default()
    fixed = {}
    for name, value in given.items():
        if name not in base.params:
            raise UsageError(f"{family.name} has no parameter {name!r}; its parameters: {', '.join(sorted(base.params))}")
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not math.isfinite(number):
            raise UsageError(f"--physics {name}={value}: give a finite number")
        fixed[name] = number
    return base.fix(**fixed)


def _start_compiles(entries, family, episodes, args) -> None:
    from metarlkit.evaluation import compile_in_background

    for entry in entries:
        compile_in_background(entry.agent, family, entry.template_params, num_episodes=episodes,
                              chunk_size=getattr(args, "chunk_size", None), per_step=getattr(args, "per_step", False),
                              step_range=getattr(args, "step_range", None))


def _evaluate_entry(entry, resolved, family, episodes, args, distribution=None):
    """One evaluation of a prepared agent (`resolved`: its `entry.resolve(args)`), with the
    training budget of a run and the tuning of a classic agent recorded."""
    from metarlkit.evaluation import evaluate

    start = time.perf_counter()
    agent, params, name, hyperparameters, tuning = resolved
    result = evaluate(
        agent, family, params, num_episodes=episodes, num_tasks=args.num_tasks,
        split=args.split, seed=args.seed, name=name,
        hyperparameters=hyperparameters, chunk_size=getattr(args, "chunk_size", None), distribution=distribution,
        per_step=getattr(args, "per_step", False), step_range=getattr(args, "step_range", None),
    )
    if tuning:
        result.extra["tuning"] = tuning
    if isinstance(entry, _Trained):
        from metarlkit.experiment.runner import budget_text

        result.extra["training_budget"] = budget_text(entry.trained.run_dir, entry.trained.status)
        result.extra["training_status"] = entry.trained.status
    result.wall_time_s = time.perf_counter() - start
    return result


def _run_agents(specs: Sequence[str], args):
    family, episodes, entries = _prepare_agents(specs, args)
    _start_compiles(entries, family, episodes, args)
    results = []
    for entry in entries:
        start = time.perf_counter()
        result = _evaluate_entry(entry, entry.resolve(args), family, episodes, args, args.distribution)
        result.wall_time_s = time.perf_counter() - start
        results.append(result)
        print(f"  evaluated {result.agent_name} in {result.wall_time_s:.1f}s", file=sys.stderr)
    return family, episodes, results


def _fmt(stat) -> str:
    if stat is None:
        return "-"
    half = "nan" if stat["ci95"] is None else f"{stat['ci95']:.2f}"
    return f"{stat['mean']:.2f} ± {half}"


def cmd_evaluate(args) -> int:
    from metarlkit.plotting import plot_results
    from metarlkit.utils import write_json

    if not args.agent:
        raise UsageError("give --agent NAME[:key=value,...] (see 'metarlkit agents')")
    if len(args.agent) != 1:
        raise UsageError("evaluate takes exactly one --agent (use 'metarlkit compare' for several)")
    family, episodes, (result,) = _run_agents(args.agent, args)
    summary = result.summary()
    tuning = summary.get("tuning")
    print(f"agent          {result.agent_name}")
    if tuning:
        chosen = ", ".join(f"{k}={v}" for k, v in tuning["chosen"].items())
        print(f"               ({chosen} tuned on {tuning['num_tasks']} validation tasks)")
    if summary.get("training_budget"):
        print(f"               (trained: {summary['training_budget']})")
    print(f"task           {family.spec()} (v{family.version}), {episodes} episodes x {family.horizon} steps")
    print(f"tasks          {result.num_tasks} {result.split} tasks, agent seed {result.seed}")
    optimal = summary["optimal_total_reward"]
    print(f"total reward   {_fmt(summary['total_reward'])}" + (f"   (optimal {optimal['mean']:.2f})" if optimal else ""))
    undefined = summary.get("not_defined", {})
    for key, label in (("regret", "regret"), ("pseudo_regret", "pseudo-regret")):
        value = f"not defined ({undefined[key]})" if key in undefined else _fmt(summary[key])
        print(f"{label:15s}{value}")
    if summary.get("per_episode_success"):
        rates = [s["mean"] for s in summary["per_episode_success"]]
        print(f"success        {sum(rates) / len(rates):.3f} of episodes (first {rates[0]:.3f}, last {rates[-1]:.3f})")
    if summary.get("step_range_reward"):
        start, stop = summary["step_range_reward"]["steps"]
        first = summary["step_range_reward"]["per_episode"][0]
        shown = _fmt(first) if first["mean"] is not None else "no valid step"
        print(f"steps {start}-{stop - 1:<7d} {shown} per step (episode 1)")
    if summary.get("return_after_steps"):
        print(f"per episode after k adaptation steps ({summary['parallel_episodes']} episodes per step):")
        for k, stat in enumerate(summary["return_after_steps"]):
            print(f"  k={k:<11d}{_fmt(stat)}")
    print(f"wall time      {result.wall_time_s:.1f}s")
    if args.actions:
        freq = result.action_frequencies()
        summary["action_frequencies"] = freq.round(6).tolist()
        shown = [(e, t) for e in range(freq.shape[0]) for t in range(freq.shape[1])][:args.actions]
        print("actions        fraction of tasks taking each action (columns) at each step of the trial")
        print(f"{'episode step':>14s} " + " ".join(f"{a:>5d}" for a in range(freq.shape[2])))
        for e, t in shown:
            print(f"{e:>8d} {t:>5d} " + " ".join(f"{x:5.2f}" for x in freq[e, t]))
    if args.json:
        write_json(args.json, summary)
        print(f"wrote {args.json}")
    if args.plot:
        plot_results([result], args.plot)
        print(f"wrote {args.plot}")
    return 0


def cmd_compare(args) -> int:
    from metarlkit.evaluation import mean_ci
    from metarlkit.plotting import plot_results
    from metarlkit.utils import write_json

    names = [spec.split(":")[0] for spec in args.agent or []]
    ref_index = 0
    if args.reference:
        if args.reference.split(":")[0] not in names:
            raise UsageError(f"--reference {args.reference!r} is not one of the --agent values")
        ref_index = names.index(args.reference.split(":")[0])
    family, episodes, results = _run_agents(args.agent or [], args)
    ref = results[ref_index]
    print(
        f"{family.spec()} (v{family.version}): {episodes} episodes, {ref.num_tasks} {ref.split} tasks, "
        f"agent seed {ref.seed}; ± is the 95% half-width"
    )
    header = f"{'agent':26s} {'total reward':>16s} {'regret':>16s} {'pseudo-regret':>16s} {'vs ' + ref.agent_name.split(':')[0] + ' (paired)':>22s}"
    print(header)
    print("-" * len(header))
    for res in results:
        s = res.summary(provenance=False)
        diff_mean, diff_half = mean_ci(res.total_reward - ref.total_reward)
        diff = "-" if res is ref else f"{diff_mean:+.2f} ± {diff_half:.2f}"
        budget = f"   trained: {s['training_budget']}" if s.get("training_budget") else ""
        print(
            f"{res.agent_name:26s} {_fmt(s['total_reward']):>16s} {_fmt(s['regret']):>16s} "
            f"{_fmt(s['pseudo_regret']):>16s} {diff:>22s}{budget}"
        )
    if args.json:
        write_json(args.json, {"task": family.spec(), "episodes": episodes, "results": [r.summary() for r in results]})
        print(f"wrote {args.json}")
    if args.plot:
        plot_results(results, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _sweep_values(text: str) -> list[float]:
    """A:B:N -> N values evenly spaced from A to B (both included)."""
    import math

    import numpy as np

    parts = text.split(":")
    try:
        low, high, num = float(parts[0]), float(parts[1]), int(parts[2])
        if len(parts) != 3:
            raise ValueError
    except (ValueError, IndexError):
        raise UsageError(f"--values takes A:B:N (N values from A to B, e.g. 0.5:2.5:9), got {text!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or not 1 <= num <= 1000:
        raise UsageError(f"--values A:B:N needs finite A and B and 1 <= N <= 1000, got {text!r}")
    return [float(v) for v in np.linspace(low, high, num)]


def _parameter_range(described: dict) -> list[float]:
    """The support [low, high] of one described distribution (`distributions.describe`)."""
    kind = described["kind"]
    if kind == "log_uniform":
        return [described["nominal"] * described["base"] ** described["low"],
                described["nominal"] * described["base"] ** described["high"]]
    if kind == "choice":
        return [min(described["values"]), max(described["values"])]
    return [described["low"], described["high"]]


def cmd_sweep(args) -> int:
    from metarlkit.plotting import plot_sweep
    from metarlkit.specs import parse_spec
    from metarlkit.utils import software_provenance, write_json

    values = _sweep_values(args.values)
    family, episodes, entries = _prepare_agents(args.agent or [], args)
    default = getattr(family, "default_distribution", None)
    if default is None or family.task_list() is not None:
        raise UsageError(f"{family.name} has no physical parameters to sweep; sweep a family with a task "
                         "distribution (pendulum, cartpole, point-robot-wind)")
    base = args.distribution or default()
    if args.param not in base.params:
        raise UsageError(f"{family.name} has no parameter {args.param!r}; its parameters: {', '.join(sorted(base.params))}")
    if args.physics and args.param in parse_spec("physics:" + args.physics)[1]:
        raise UsageError(f"--physics sets {args.param}, the parameter --param sweeps; drop it from --physics")
    _start_compiles(entries, family, episodes, args)
    out = {"task": family.spec(), "param": args.param, "values": values, "episodes": episodes,
           "num_tasks": args.num_tasks, "split": args.split, "seed": args.seed,
           "default_range": _parameter_range(default().describe()[args.param]), "agents": []}
    if args.physics:
        out["physics"] = args.physics
    print(f"{family.spec()}: {args.param} from {values[0]:g} to {values[-1]:g} ({len(values)} values; default range "
          f"{out['default_range'][0]:g} to {out['default_range'][1]:g}), {args.num_tasks} {args.split} tasks per value; "
          "mean total reward ± 95% half-width, then the mean of the worst 10% of tasks")
    for entry in entries:
        resolved = entry.resolve(args)
        start = time.perf_counter()
        points = []
        for value in values:
            dist = base.fix(**{args.param: value})
            s = _evaluate_entry(entry, resolved, family, episodes, args, distribution=dist).summary(provenance=False)
            points.append({"value": value, "in_default_range": out["default_range"][0] <= value <= out["default_range"][1],
                           **{k: s[k] for k in ("total_reward", "cvar", "return_percentiles")}})
            print(f"  {resolved[2]:40s} {args.param}={value:<10.4g} {_fmt(s['total_reward']):>18s}   "
                  f"worst 10%: {s['cvar']['value']:.2f}", flush=True)
        agent = {"agent": resolved[2], "points": points}
        if isinstance(entry, _Trained):
            trained_on = entry.trained.info.get("train_tasks", {}).get("distribution", {}).get(args.param)
            if trained_on:
                agent["training_range"] = _parameter_range(trained_on)
        out["agents"].append(agent)
        print(f"  swept {resolved[2]} in {time.perf_counter() - start:.1f}s", file=sys.stderr)
    out["provenance"] = software_provenance()
    if args.json:
        write_json(args.json, out)
        print(f"wrote {args.json}")
    if args.plot:
        plot_sweep(out, args.plot)
        print(f"wrote {args.plot}")
    return 0


def cmd_record(args) -> int:
    import jax
    import numpy as np

    from metarlkit import recording
    from metarlkit.trial import run_trials
    from metarlkit.utils import software_provenance

    if not args.agent or len(args.agent) != 1:
        raise UsageError("record takes exactly one --agent (a classic agent or a run directory)")
    if not args.out.endswith(".npz"):
        raise UsageError(f"--out {args.out!r}: a recording is a NumPy archive; give a name ending in .npz")
    _check_output(args.out, "--out")
    if args.train_tasks and args.physics:
        raise UsageError("--physics sets one task's parameters; --train-tasks records the family's training tasks: "
                         "give one of them")
    args.split, args.num_tasks, args.json, args.plot, args.chunk_size = "test", 1, None, None, None
    family, episodes, (entry,) = _prepare_agents(args.agent, args)
    agent, params, name, _, _ = entry.resolve(args)
    key_task, key_env, key_agent = jax.random.split(jax.random.PRNGKey(args.seed), 3)
    if args.train_tasks:
        return _record_train_tasks(args, family, episodes, agent, params, name, key_env, key_agent)
    if args.distribution is not None:
        task = family.sample_task(key_task, args.distribution)
    else:
        task = family.sample_task(key_task)
    play = jax.jit(lambda p, t: run_trials(family, agent, p, t, key_env[None], key_agent[None], episodes,
                                           transitions=True))
    rec = jax.tree_util.tree_map(lambda x: np.asarray(x[0]), play(params, jax.tree_util.tree_map(lambda x: x[None], task)))
    parameters = family.parameters(task) if hasattr(family, "parameters") else None
    meta = {"task": family.spec(), "task_version": family.version, "episodes": episodes, "agent": name,
            "seed": args.seed, "provenance": software_provenance()}
    if args.physics:
        meta["physics"] = args.physics
    if parameters is not None:
        meta["parameters"] = {k: float(f"{float(v):.7g}") for k, v in parameters.items()}
    action = rec.action.astype(np.float32 if family.continuous else np.int32)
    recording.save(args.out, recording.Recording(rec.obs, action, rec.next_obs, rec.reward, rec.valid, meta))
    returns = (rec.reward * rec.valid).sum(-1)
    print(f"recorded {episodes} episodes of {name} on {family.spec()}"
          + (f" ({', '.join(f'{k}={v:.4g}' for k, v in meta['parameters'].items())})" if parameters else ""))
    print(f"returns        {', '.join(f'{r:.1f}' for r in returns)}; {int(rec.valid.sum())} transitions")
    print(f"wrote {args.out}")
    return 0


def _record_train_tasks(args, family, episodes, agent, params, name, key_env, key_agent) -> int:
    """`record --train-tasks N`: one trial on each of the first N training tasks, one file."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from metarlkit import recording
    from metarlkit.tasks.tasksets import check_split, split_tasks
    from metarlkit.trial import run_trials
    from metarlkit.utils import software_provenance

    n = args.train_tasks
    try:
        check_split("train", n, family)
    except ValueError as err:
        raise UsageError(str(err)) from None
    tasks = split_tasks(family, "train", jnp.arange(n, dtype=jnp.uint32))
    play = jax.jit(lambda p, t: run_trials(family, agent, p, t, jax.random.split(key_env, n),
                                           jax.random.split(key_agent, n), episodes, transitions=True))
    rec = jax.tree_util.tree_map(np.asarray, play(params, tasks))
    meta = {"task": family.spec(), "task_version": family.version, "episodes": episodes, "agent": name,
            "seed": args.seed, "train_tasks": n, "provenance": software_provenance()}
    action = rec.action.astype(np.float32 if family.continuous else np.int32)
    recording.save(args.out, recording.Recording(rec.obs, action, rec.next_obs, rec.reward, rec.valid, meta))
    returns = (rec.reward * rec.valid).sum(-1)
    print(f"recorded {episodes} episodes of {name} on each of the first {n} training tasks of {family.spec()}")
    print(f"returns        mean {returns.mean():.2f} (per task {returns.mean(-1).min():.2f} .. "
          f"{returns.mean(-1).max():.2f}); {int(rec.valid.sum())} transitions")
    print(f"wrote {args.out}")
    return 0


def cmd_paths(args) -> int:
    import jax
    import numpy as np

    from metarlkit.plotting import plot_paths
    from metarlkit.tasks.tasksets import task_set
    from metarlkit.trial import run_trials
    from metarlkit.utils import write_json

    if not args.agent or len(args.agent) != 1:
        raise UsageError("paths takes exactly one --agent (a classic agent or a run directory)")
    _check_output(args.out, "--out", plot=True)
    args.plot, args.chunk_size = None, None
    family, episodes, (entry,) = _prepare_agents(args.agent, args)
    if not hasattr(family, "goal_position"):
        raise UsageError(f"{family.name} is not a point-robot family; paths draws positions in the plane "
                         f"(point-navigation, point-robot-wind)")
    agent, params, name, _, _ = entry.resolve(args)
    chosen = task_set(family, args.split, args.num_tasks)
    keys = jax.random.split(jax.random.PRNGKey(args.seed), 2 * args.num_tasks)
    rec = jax.jit(lambda p, t: run_trials(family, agent, p, t, keys[:args.num_tasks], keys[args.num_tasks:], episodes,
                                          transitions=True))(params, chosen)
    obs, next_obs, valid = (np.asarray(x) for x in (rec.obs, rec.next_obs, rec.valid))
    success = np.asarray(rec.success).any(-1) if rec.success is not None else None
    out = {"agent": name, "task": family.spec(), "split": args.split, "episodes": episodes, "seed": args.seed,
           "goal_circle": 0.2 if family.name == "point-navigation" and getattr(family, "variant", "") == "sparse" else None,
           "tasks": []}
    for i in range(args.num_tasks):
        goal = np.asarray(family.goal_position(jax.tree_util.tree_map(lambda x: x[i], chosen))).tolist()
        positions = [np.concatenate([obs[i, e, :1, :2], next_obs[i, e, valid[i, e], :2]]).tolist() for e in range(episodes)]
        first = None
        if success is not None and success[i].any():
            first = int(np.argmax(success[i])) + 1
        out["tasks"].append({"index": i, "goal": goal, "positions": positions, "success": first})
    plot_paths(out, args.out)
    print(f"wrote {args.out}")
    if args.json:
        write_json(args.json, out)
        print(f"wrote {args.json}")
    return 0


def cmd_reproduce(args) -> int:
    from metarlkit.reproduce import rl2
    from metarlkit.utils import write_json

    exp = rl2.EXPERIMENTS[args.experiment]
    _check_output(args.json, "--json")
    _check_tasks("test", args.num_tasks, args.tune_tasks)
    if args.n:
        bad = [n for n in args.n if n < 1]
        if bad:
            raise UsageError(f"--n values must be >= 1, got {bad[0]}")
    if args.k:
        if exp.ks == (None,):
            raise UsageError(f"{args.experiment} has no k (arms); drop --k")
        bad = [k for k in args.k if k < 2]
        if bad:
            raise UsageError(f"--k values must be >= 2 (arms), got {bad[0]}")
    agents = tuple(a for a in (args.agents or "").split(",") if a) or None
    if agents:
        from metarlkit import baselines

        for a in agents:
            baselines.get(a)
    runs = tuple(args.runs or ())
    for run_dir in runs:
        if _split_agent_spec(run_dir) is None:
            raise UsageError(f"--runs {run_dir!r} is not a training run (no run.json); give the --out of 'metarlkit train'")
    if runs:
        cells = [(n, k) for n in (args.n or exp.ns) for k in (args.k or exp.ks)]
        try:
            rl2.place_runs(args.experiment, runs, cells)
        except ValueError as err:
            raise UsageError(str(err)) from None
    start = time.perf_counter()
    print(f"{exp.description}; {args.num_tasks} test tasks per cell, knobs tuned on {args.tune_tasks} validation tasks", file=sys.stderr)
    rows = rl2.run(
        args.experiment, num_tasks=args.num_tasks, tune_tasks=args.tune_tasks, seed=args.seed,
        agents=agents, ns=args.n or None, ks=args.k or None,
        progress=lambda line: print("  " + line, file=sys.stderr, flush=True), runs=runs,
    )
    wall = time.perf_counter() - start
    print(rl2.format_table(rows))
    checked = [r for r in rows if r["agrees"] is not None]
    failed = [r for r in checked if not r["agrees"]]
    print(f"agreement with the paper (random, ts; |ours-paper| <= 3 combined SE + 0.05): "
          f"{len(checked) - len(failed)}/{len(checked)} cells" + (" -- '!' marks a miss" if failed else ""))
    violations = rl2.oracle_violations(rows)
    print("oracle check: " + ("no agent exceeds the oracle's expected total reward" if not violations else "; ".join(violations)))
    print(f"wall time {wall:.0f}s")
    if args.json:
        write_json(args.json, rows)
        print(f"wrote {args.json}")
    return 1 if violations else 0


def cmd_train(args) -> int:
    from metarlkit import algos
    from metarlkit.experiment import TrainingDiverged, train
    from metarlkit.experiment.config import build
    from metarlkit.experiment.runner import RunDirError, budget_text, read_run

    algo = algos.get(args.algorithm)
    overrides = {k[len("cfg_"):]: v for k, v in vars(args).items() if k.startswith("cfg_") and v is not None}
    if args.snapshots and args.resume:
        raise UsageError("--snapshots is chosen when a run starts (a resumed run keeps its choice); drop it")
    if args.accept_config_change and not args.resume:
        raise UsageError("--accept-config-change goes with --resume RUN_DIR")
    if args.adapt_to and not args.init_from:
        raise UsageError("--adapt-to goes with --init-from RUN_DIR (the run whose train state is adapted)")
    if args.init_from and args.resume:
        raise UsageError("--init-from starts a new run (--out); --resume continues a run from its own checkpoint")
    if args.init_from:
        given = [f for f in ("task", "episodes", "preset") if getattr(args, f)]
        if given:
            raise UsageError(f"a run started from --init-from keeps that run's task, episodes and options; drop --{given[0]}")
        if not args.out:
            raise UsageError("give --out RUN_DIR (a new directory for the run started from --init-from)")
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            raise UsageError(f"--out {args.out!r} is a file; give a directory")
        _check_output(args.out, "--out", directory=True)
        if _split_agent_spec(args.init_from) is None:
            raise UsageError(f"--init-from {args.init_from!r} is not a training run (no run.json); give the --out of "
                             f"'metarlkit train'")
        from metarlkit import tasks

        try:
            source = read_run(args.init_from)
        except RunDirError as err:
            raise UsageError(str(err)) from None
        if source["algorithm_name"] != algo.name:
            raise UsageError(f"{args.init_from} is a {source['algorithm_name']} run; a {algo.name} run can only start "
                             f"from a {algo.name} run")
        layers = [source["config"]] + ([_load_config(args.config)] if args.config else []) + [overrides]
        config = build(algo.config, *layers, source=f"{algo.name} config")
        family, episodes = tasks.from_spec(source["task"]), source["episodes"]
        preset, run_dir = source.get("preset"), args.out
    elif args.resume:
        given = sorted(overrides) + [f for f in ("task", "episodes", "out", "preset", "config") if getattr(args, f)]
        if given:
            raise UsageError(f"--resume continues a run with its saved config; drop --{given[0].replace('_', '-')}")
        run_dir = args.resume
        try:
            info = read_run(run_dir)
        except RunDirError as err:
            raise UsageError(str(err)) from None
        if info["algorithm_name"] != algo.name:
            raise UsageError(f"{run_dir} is a {info['algorithm_name']} run; use 'metarlkit train {info['algorithm_name']} --resume {run_dir}'")
        config = family = episodes = preset = None
    else:
        if not args.out:
            raise UsageError("give --out RUN_DIR (a new directory for checkpoints, logs and the config)")
        if not args.task:
            raise UsageError("give --task NAME[:key=value,...] (see 'metarlkit tasks')")
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            raise UsageError(f"--out {args.out!r} is a file; give a directory")
        _check_output(args.out, "--out", directory=True)
        from metarlkit import tasks

        preset = args.preset or algo.default_preset(tasks.from_spec(args.task))
        if preset not in algo.presets:
            raise UsageError(f"unknown preset {preset!r}; choose one of {', '.join(algo.presets)}")
        layers = [algo.presets[preset]]
        if args.config:
            layers.append(_load_config(args.config))
        layers.append(overrides)
        config = build(algo.config, *layers, source=f"{algo.name} config")
        episodes = args.episodes
        if episodes is None:  # the algorithm's evaluation trial, else the family's
            episodes = algo.default_episodes(config)
        family, episodes = _family_and_episodes(args.task, episodes)
        try:  # what the config cannot check alone: its fit to the task and trial
            algo.check_run(config, family, episodes)
        except ValueError as err:
            raise UsageError(str(err)) from None
        run_dir = args.out
    try:
        status = train(algo, config, family, episodes, run_dir, resume=bool(args.resume),
                       progress=not args.no_progress, tensorboard=not args.no_tensorboard,
                       preset=None if args.resume else preset, accept_config_change=args.accept_config_change,
                       init_from=args.init_from, adapt_to=args.adapt_to, snapshots=args.snapshots)
    except ValueError as err:  # RunDirError, or a run that cannot fit (checked before any work)
        raise UsageError(str(err)) from None
    except TrainingDiverged as err:
        print(f"metarlkit: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"metarlkit: interrupted; continue with 'metarlkit train {algo.name} --resume {run_dir}'", file=sys.stderr)
        return 130
    print(f"trained {run_dir}: {budget_text(run_dir)}")
    print(f"evaluate it with: metarlkit evaluate --agent {run_dir}")
    return 0 if status.get("state") == "complete" else 1


def cmd_algorithms(args) -> int:
    from metarlkit import algos
    from metarlkit.experiment.config import options_table

    records = [algos.get(name) for name in algos.names()]
    if args.markdown:
        for algo in records:
            print(f"### `{algo.name}` options\n")
            print(options_table(algo.config))
            print()
        return 0
    for algo in records:
        print(f"{algo.name:10s} {algo.description}")
        print(f"{'':10s}   presets: {', '.join(algo.presets)}; actions: {', '.join(algo.action_spaces)}; "
              f"options: 'metarlkit train {algo.name} --help'")
    return 0


def cmd_plot(args) -> int:
    from metarlkit.plotting import plot_run

    for path in args.run_dir:
        if _split_agent_spec(path) is None:
            raise UsageError(f"{path!r} is not a training run (no run.json); give the --out of 'metarlkit train'")
    _check_output(args.out, "--out", plot=True)
    chosen = None
    if args.baselines is not None:
        from metarlkit import baselines

        chosen = [] if args.baselines == "none" else [b for b in args.baselines.split(",") if b]
        for b in chosen:
            baselines.get(b)
    try:
        written = plot_run(args.run_dir, out=args.out, num_tasks=args.num_tasks, baselines=chosen,
                           tune_tasks=args.tune_tasks)
    except ValueError as err:
        raise UsageError(str(err)) from None
    for path in written:
        print(f"wrote {path}")
    return 0


def _add_config_options(p: argparse.ArgumentParser, cls) -> None:
    """One --option per config field, documented by the field's docstring; unset options stay None."""
    import dataclasses

    from metarlkit.experiment.config import field_docs

    docs = field_docs(cls)
    group = p.add_argument_group(f"{cls.__name__} options (also settable in --config FILE)")
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        kwargs: dict[str, Any] = {"dest": "cfg_" + f.name, "default": None, "metavar": "VALUE",
                                  "help": f"{docs.get(f.name, '')} (default {f.default})".replace("%", "%%")}
        if f.type in (bool, "bool"):
            kwargs.update(nargs="?", const="true", metavar="BOOL")
        group.add_argument(flag, **kwargs)


# --- parser ---------------------------------------------------------------------------------


def _step_range(text: str) -> tuple[int, int]:
    start, sep, stop = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return int(start), int(stop)
    except ValueError:
        raise argparse.ArgumentTypeError(f"give START:STOP (whole steps), e.g. 125:175; got {text!r}") from None


def _add_eval_options(p: argparse.ArgumentParser, multi: bool, per_step: bool = True) -> None:
    p.add_argument("--config", help="JSON or TOML file of option defaults (keys are option names)")
    p.add_argument("--agent", action="append", metavar="SPEC",
                   help="agent spec NAME[:key=value,...], e.g. ucb1 or ucb1:c=0.2 (see 'metarlkit agents')"
                   + ("; repeat for several" if multi else ""))
    p.add_argument("--task", metavar="SPEC", help="task spec NAME[:key=value,...], e.g. bernoulli-bandit:arms=5")
    p.add_argument("--episodes", type=_positive_int, metavar="N", help="episodes per trial")
    p.add_argument("--num-tasks", type=_positive_int, default=1000, metavar="M", help="test tasks (default 1000)")
    p.add_argument("--split", default="test", choices=("test", "validation", "train"), help="task split (default test)")
    p.add_argument("--seed", type=_seed, default=0, help="the agent's random seed (tasks are fixed by family and split)")
    p.add_argument("--tune-tasks", type=_positive_int, default=500, metavar="M",
                   help="validation tasks for tuning knobs not given in the agent spec (default 500)")
    p.add_argument("--chunk-size", type=_chunk_size, default=None, metavar="M", help="tasks per compiled call")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    p.add_argument("--plot", metavar="FILE", help="write a plot (PNG/PDF/SVG by extension)")
    p.add_argument("--physics", metavar="NAME=VALUE,...",
                   help="fix physical parameters of the task family, e.g. mass=1.4,length=0.8 (the others keep "
                        "their distribution; families whose dynamics vary)")
    if per_step:
        p.add_argument("--per-step", action="store_true",
                       help="add per_step_reward to the JSON: the mean reward and its 95%% half-width over tasks "
                            "at every step of every episode, over the tasks where the step is valid (null where "
                            "none is: every episode had ended)")
        p.add_argument("--step-range", type=_step_range, metavar="START:STOP",
                       help="add step_range_reward to the output: per episode, the mean over tasks of each task's "
                            "mean reward over steps START <= t < STOP (e.g. 125:175, after a change at step 100)")
    if not multi:
        p.add_argument("--actions", type=_positive_int, nargs="?", const=10, default=0, metavar="STEPS",
                       help="print how often each action is taken at the first STEPS steps of the trial "
                            "(default 10; discrete actions only) and add action_frequencies to the JSON")


def _add_one_agent_options(p: argparse.ArgumentParser) -> None:
    """--agent (one), --task and --tune-tasks of the commands that play one agent (record, paths)."""
    p.add_argument("--agent", action="append", metavar="SPEC", help="a classic agent (e.g. random) or a run directory")
    p.add_argument("--task", metavar="SPEC", help="task spec NAME[:key=value,...] (default: the run's)")
    p.add_argument("--tune-tasks", type=_positive_int, default=500, metavar="M",
                   help="validation tasks for tuning a classic agent's knobs not given in its spec (default 500)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="metarlkit", description="Meta-reinforcement learning: tasks, agents, one evaluation protocol.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    p = sub.add_parser("tasks", help="list task families, their options and versions")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser("agents", help="list classic agents and their knobs")
    p.set_defaults(func=cmd_agents)

    p = sub.add_parser("evaluate", help="score one agent on held-out tasks")
    _add_eval_options(p, multi=False)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("compare", help="score several agents on the same held-out tasks (paired)")
    _add_eval_options(p, multi=True)
    p.add_argument("--reference", metavar="AGENT", help="agent the paired differences are taken against (default: the first)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("sweep", help="the return of agents against one physical parameter of a family, "
                                     "beyond its training range (JSON and a plot)")
    _add_eval_options(p, multi=True, per_step=False)
    p.add_argument("--param", required=True, metavar="NAME", help="the parameter to sweep, e.g. mass (see docs/tasks.md)")
    p.add_argument("--values", required=True, metavar="A:B:N", help="N values from A to B, e.g. 0.5:3:11")
    p.set_defaults(func=cmd_sweep, num_tasks=200)

    p = sub.add_parser("record", help="record an agent's trajectories on one task of a family (.npz: states, actions, "
                                      "next states), e.g. a target model for 'train epopt --adapt-to'")
    _add_one_agent_options(p)
    p.add_argument("--physics", metavar="NAME=VALUE,...",
                   help="the task's physical parameters, e.g. mass=1.4,length=0.8 (those not given are drawn "
                        "from the family's distribution with --seed)")
    p.add_argument("--episodes", type=_positive_int, default=5, metavar="N", help="episodes to record, one trial (default 5)")
    p.add_argument("--seed", type=_seed, default=0, help="draws the task's free parameters, the starts and the agent's noise")
    p.add_argument("--train-tasks", type=_positive_int, metavar="N",
                   help="record a trial on each of the first N tasks of the family's 'train' split instead of one "
                        "task (demonstrations, e.g. for 'train gmps --demos FILE')")
    p.add_argument("--out", required=True, metavar="FILE.npz", help="the recording to write")
    p.set_defaults(func=cmd_record)

    p = sub.add_parser("paths", help="draw an agent's paths on a point-robot family, episode by episode "
                                     "(exploration, then commitment)")
    _add_one_agent_options(p)
    p.add_argument("--episodes", type=_positive_int, metavar="N", help="episodes per trial")
    p.add_argument("--num-tasks", type=_positive_int, default=4, metavar="K", help="tasks drawn, one panel each (default 4)")
    p.add_argument("--split", default="test", choices=("test", "validation", "train"), help="task split (default test)")
    p.add_argument("--seed", type=_seed, default=0, help="the agent's random seed")
    p.add_argument("--out", required=True, metavar="FILE", help="the figure (PNG/PDF/SVG by extension)")
    p.add_argument("--json", metavar="FILE", help="also write the paths as JSON")
    p.set_defaults(func=cmd_paths)

    from metarlkit.reproduce.rl2 import EXPERIMENTS

    p = sub.add_parser("reproduce", help="reproduce a published table (" + ", ".join(EXPERIMENTS) + ")")
    p.add_argument("experiment", choices=tuple(EXPERIMENTS), help="which table")
    p.add_argument("--num-tasks", type=_positive_int, default=1000, metavar="M", help="test tasks per cell (default 1000)")
    p.add_argument("--tune-tasks", type=_positive_int, default=200, metavar="M", help="validation tasks for tuning (default 200)")
    p.add_argument("--seed", type=_seed, default=0, help="agent seed (0 .. 2^31 - 1)")
    p.add_argument("--n", type=_int_list, metavar="N,N", help="only these n (pulls or episodes)")
    p.add_argument("--k", type=_int_list, metavar="K,K", help="only these k (arms; bandits)")
    p.add_argument("--agents", metavar="A,B", help="only these agents")
    p.add_argument("--runs", nargs="+", metavar="RUN_DIR",
                   help="training runs (any algorithm) to add as their algorithm's column (each goes to the cell it was trained for)")
    p.add_argument("--json", metavar="FILE", help="write the rows as JSON")
    p.set_defaults(func=cmd_reproduce)

    from metarlkit import algos

    p = sub.add_parser("algorithms", help="list the training algorithms, their presets and action spaces")
    p.add_argument("--markdown", action="store_true", help="print every algorithm's options as Markdown tables")
    p.set_defaults(func=cmd_algorithms)

    p = sub.add_parser("train", help="train an algorithm on a task family (" + ", ".join(algos.names()) + ")")
    train_sub = p.add_subparsers(dest="algorithm", parser_class=_Parser, required=True)
    for name in algos.names():
        algo = algos.get(name)
        q = train_sub.add_parser(name, help=algo.description, description=algo.description)
        q.add_argument("--task", metavar="SPEC", help="task spec NAME[:key=value,...], e.g. bernoulli-bandit:arms=5")
        q.add_argument("--episodes", type=_positive_int, metavar="N", help="episodes per trial")
        q.add_argument("--out", metavar="RUN_DIR", help="new directory for the run (config, checkpoints, logs)")
        q.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run from its last checkpoint")
        q.add_argument("--accept-config-change", action="store_true",
                       help="with --resume: continue although run.json was edited since the checkpoint "
                            "(recorded in run.json's config_changes)")
        q.add_argument("--init-from", metavar="RUN_DIR",
                       help="start a new run (--out) from this run's last checkpoint and its options (flags "
                            "override them): train on, e.g. for more iterations")
        q.add_argument("--adapt-to", metavar="FILE",
                       help="with --init-from: first adapt the train state to the target recorded in FILE "
                            "('metarlkit record'); " + ("moves the source distribution" if algo.adapt else
                                                       f"{name} cannot (epopt can)"))
        q.add_argument("--preset", help="named set of options: " + ", ".join(algo.presets))
        q.add_argument("--config", metavar="FILE", help="JSON or TOML file of options (a run's run.json works too)")
        q.add_argument("--no-progress", action="store_true", help="no progress bar")
        q.add_argument("--no-tensorboard", action="store_true", help="no TensorBoard event files")
        q.add_argument("--snapshots", action="store_true",
                       help="also keep the trained parameters at the start and after every chunk (RUN_DIR/snapshots/), "
                            "to score any of them: --agent RUN_DIR:update=N")
        _add_config_options(q, algo.config)
        q.set_defaults(func=cmd_train)

    p = sub.add_parser("plot", help="plot training runs: training curve, adaptation curve and regret beside baselines")
    p.add_argument("run_dir", nargs="+", metavar="RUN_DIR", help="run directories (the --out of 'metarlkit train')")
    p.add_argument("--out", metavar="FILE", help="figure file (default RUN_DIR/plots/summary.png)")
    p.add_argument("--baselines", metavar="A,B", help="classic agents to plot beside ('none' for none; default: the family's usual set)")
    p.add_argument("--num-tasks", type=_positive_int, default=500, metavar="M", help="test tasks (default 500)")
    p.add_argument("--tune-tasks", type=_positive_int, default=200, metavar="M", help="validation tasks for tuning (default 200)")
    p.set_defaults(func=cmd_plot)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from metarlkit.specs import SpecError
    from metarlkit.tasks.base import ActionSpaceError

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        if argv and argv[0] in ("evaluate", "compare"):
            sub = parser._subparsers._group_actions[0].choices[argv[0]]
            _apply_config(sub, argv[1:])
        args = parser.parse_args(argv)
        if args.version:
            from metarlkit import __version__

            print(__version__)
            return 0
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_USAGE
        return args.func(args)
    except (UsageError, SpecError, ActionSpaceError) as err:
        # ActionSpaceError: code for discrete (or continuous) actions met the other kind, e.g.
        # training an algorithm that only has discrete policies on point-navigation.
        print(f"metarlkit: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("metarlkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
