"""Command-line interface: `metarlkit tasks | agents | evaluate | compare | reproduce`.

Thin by design: parse, validate (bad input -> one line naming the fix, exit 2, no file
written), call the library, print.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tomllib
from typing import Any, Sequence

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input from the user; printed as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not usage + message
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None


def _check_output(path: str | None, flag: str) -> None:
    if path is None:
        return
    if os.path.isdir(path):
        raise UsageError(f"{flag} {path!r} is a directory; give a file name such as {os.path.join(path, 'out')}")


def _load_config(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f) if path.endswith(".toml") else json.load(f)
    except FileNotFoundError:
        raise UsageError(f"config file {path!r} not found; check the path") from None
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"config file {path!r} is not valid {'TOML' if path.endswith('.toml') else 'JSON'}: {err}") from None
    if not isinstance(data, dict):
        raise UsageError(f"config file {path!r} must hold a table/object of option names")
    return {k.replace("-", "_"): v for k, v in data.items()}


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

    rows = []
    for name in tasks.names():
        family = tasks.make(name)
        rows.append(
            {
                "name": name,
                "version": family.version,
                "options": options_of(family),
                "actions": family.num_actions,
                "horizon": family.horizon,
                "description": family.description,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        opts = ",".join(f"{k}={v}" for k, v in r["options"].items()) or "-"
        print(f"{r['name']:18s} v{r['version']}  {r['description']}")
        print(f"{'':18s}     options (defaults): {opts}")
    return 0


def cmd_agents(args) -> int:
    from metarlkit import baselines

    for name in baselines.names():
        b = baselines.get(name)
        alias = f" (alias {', '.join(b.aliases)})" if b.aliases else ""
        print(f"{name:14s} {b.description}{alias}")
        for knob, spec in b.knobs.items():
            print(f"{'':14s}   {knob}: {spec.doc}; tuned over {list(spec.grid)} unless given")
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


def _check_tasks(split: str, num_tasks: int, tune_tasks: int) -> None:
    from metarlkit.tasks.tasksets import check_split

    try:
        check_split(split, num_tasks)
        check_split("validation", tune_tasks)
    except ValueError as err:
        raise UsageError(str(err)) from None


def _resolve(spec: str, family, episodes: int, args):
    from metarlkit import baselines

    return baselines.resolve(spec, family, episodes, tune_tasks=args.tune_tasks, seed=args.seed)


def _run_agents(specs: Sequence[str], args):
    from metarlkit.evaluation import evaluate

    if not args.task:
        raise UsageError("give --task NAME[:key=value,...] (see 'metarlkit tasks')")
    if not specs:
        raise UsageError("give --agent NAME[:key=value,...] (see 'metarlkit agents')")
    family, episodes = _family_and_episodes(args.task, args.episodes)
    _check_tasks(args.split, args.num_tasks, args.tune_tasks)
    _check_output(args.json, "--json")
    _check_output(args.plot, "--plot")
    # Check every agent before running any, so bad specs fail fast, and start compiling their
    # programs on worker threads: the next agent's compile overlaps this one's run.
    from metarlkit import baselines
    from metarlkit.evaluation import compile_in_background

    for prepared in [baselines.prepare(spec, family, episodes) for spec in specs]:
        compile_in_background(prepared.agent, family, prepared.template_params, num_episodes=episodes,
                              chunk_size=getattr(args, "chunk_size", None))
    results = []
    for spec in specs:
        start = time.perf_counter()
        resolved = _resolve(spec, family, episodes, args)
        result = evaluate(
            resolved.agent, family, resolved.params, num_episodes=episodes, num_tasks=args.num_tasks,
            split=args.split, seed=args.seed, name=resolved.spec,
            hyperparameters=resolved.hyperparameters, chunk_size=getattr(args, "chunk_size", None),
        )
        if resolved.tuning:
            result.extra["tuning"] = resolved.tuning
        result.wall_time_s = time.perf_counter() - start
        results.append(result)
        print(f"  evaluated {resolved.spec} in {result.wall_time_s:.1f}s", file=sys.stderr)
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
    print(f"task           {family.spec()} (v{family.version}), {episodes} episodes x {family.horizon} steps")
    print(f"tasks          {result.num_tasks} {result.split} tasks, agent seed {result.seed}")
    print(f"total reward   {_fmt(summary['total_reward'])}   (optimal {summary['optimal_total_reward']['mean']:.2f})")
    print(f"regret         {_fmt(summary['regret'])}")
    print(f"pseudo-regret  {_fmt(summary['pseudo_regret'])}")
    print(f"wall time      {result.wall_time_s:.1f}s")
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
        print(
            f"{res.agent_name:26s} {_fmt(s['total_reward']):>16s} {_fmt(s['regret']):>16s} "
            f"{_fmt(s['pseudo_regret']):>16s} {diff:>22s}"
        )
    if args.json:
        write_json(args.json, {"task": family.spec(), "episodes": episodes, "results": [r.summary() for r in results]})
        print(f"wrote {args.json}")
    if args.plot:
        plot_results(results, args.plot)
        print(f"wrote {args.plot}")
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
    start = time.perf_counter()
    print(f"{exp.description}; {args.num_tasks} test tasks per cell, knobs tuned on {args.tune_tasks} validation tasks", file=sys.stderr)
    rows = rl2.run(
        args.experiment, num_tasks=args.num_tasks, tune_tasks=args.tune_tasks, seed=args.seed,
        agents=agents, ns=args.n or None, ks=args.k or None,
        progress=lambda line: print("  " + line, file=sys.stderr, flush=True),
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


# --- parser ---------------------------------------------------------------------------------


def _add_eval_options(p: argparse.ArgumentParser, multi: bool) -> None:
    p.add_argument("--config", help="JSON or TOML file of option defaults (keys are option names)")
    p.add_argument("--agent", action="append", metavar="SPEC",
                   help="agent spec NAME[:key=value,...], e.g. ucb1 or ucb1:c=0.2 (see 'metarlkit agents')"
                   + ("; repeat for several" if multi else ""))
    p.add_argument("--task", metavar="SPEC", help="task spec NAME[:key=value,...], e.g. bernoulli-bandit:arms=5")
    p.add_argument("--episodes", type=_positive_int, metavar="N", help="episodes per trial")
    p.add_argument("--num-tasks", type=_positive_int, default=1000, metavar="M", help="test tasks (default 1000)")
    p.add_argument("--split", default="test", choices=("test", "validation", "train"), help="task split (default test)")
    p.add_argument("--seed", type=int, default=0, help="the agent's random seed (tasks are fixed by family and split)")
    p.add_argument("--tune-tasks", type=_positive_int, default=500, metavar="M",
                   help="validation tasks for tuning knobs not given in the agent spec (default 500)")
    p.add_argument("--chunk-size", type=_positive_int, default=None, metavar="M", help="tasks per compiled call")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    p.add_argument("--plot", metavar="FILE", help="write a plot (PNG/PDF/SVG by extension)")


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

    from metarlkit.reproduce.rl2 import EXPERIMENTS

    p = sub.add_parser("reproduce", help="reproduce a published table (" + ", ".join(EXPERIMENTS) + ")")
    p.add_argument("experiment", choices=tuple(EXPERIMENTS), help="which table")
    p.add_argument("--num-tasks", type=_positive_int, default=1000, metavar="M", help="test tasks per cell (default 1000)")
    p.add_argument("--tune-tasks", type=_positive_int, default=200, metavar="M", help="validation tasks for tuning (default 200)")
    p.add_argument("--seed", type=int, default=0, help="agent seed")
    p.add_argument("--n", type=_int_list, metavar="N,N", help="only these n (pulls or episodes)")
    p.add_argument("--k", type=_int_list, metavar="K,K", help="only these k (arms; bandits)")
    p.add_argument("--agents", metavar="A,B", help="only these agents")
    p.add_argument("--json", metavar="FILE", help="write the rows as JSON")
    p.set_defaults(func=cmd_reproduce)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from metarlkit.specs import SpecError

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
    except (UsageError, SpecError) as err:
        print(f"metarlkit: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("metarlkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
