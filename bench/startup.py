"""Time to result of the embedded runner against Optuna in one process, and CLI cold starts.

Whole processes, alternating, N runs each:
- `hpsearch run examples/quickstart.yaml` on a fresh temporary SQLite file each run;
- a plain script (`--optuna-side`, below) that runs the same 24 trials with Optuna's
  RandomSampler in one process, calling the same engine (`hpsearch.worker.engine.train`) as
  its objective.

Wall and CPU time (the process and every child it waited for) are compared by their medians
and by the ratio of each alternating pair; the time to the first finished trial is read from
the trials' own timestamps (hpsearch's database; the script's report) against the moment the
process was started. Target (issue 21): hpsearch at most 1.2x Optuna's wall time.

Then the cold start of commands that only talk to a server (`hpsearch --help`,
`hpsearch status --help`, `hpsearch trials --help`) beside `python -c "import optuna"`.

Every side runs with its modules' byte code cached, as an installed package (or any second run)
has it: in a cache of the bench's own (PYTHONPYCACHEPREFIX, written even where
PYTHONDONTWRITEBYTECODE is set), filled by one untimed run of each side first. Without it, a
checkout whose `__pycache__` is missing or stale compiles its changed modules from source on
every run (0.13 s for the 65 modules `hpsearch run` imports), and the figures measure that.

`--against OTHER/.venv/bin/hpsearch` times another installation (another checkout's venv, say
main's) in the same alternation, so that a change is judged at the same load as its baseline.

    .venv/bin/python bench/startup.py [--runs 5] [--study examples/quickstart.yaml] [--against X]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HPSEARCH = str(BIN / "hpsearch")


@dataclass
class Run:
    wall_s: float
    cpu_s: float
    first_trial_s: float | None = None


# Set by `main`: where every timed process reads and writes its byte code.
BYTECODE: dict[str, str] = {}


def timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[Run, float, str]:
    """Run `argv` to its end; its times, the wall-clock moment it started and its stdout."""
    env = {k: v for k, v in (env or os.environ).items() if k != "PYTHONDONTWRITEBYTECODE"}
    env |= BYTECODE
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started_at = time.time()
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(wall, cpu), started_at, done.stdout


def run_hpsearch(study: Path, hpsearch: str = HPSEARCH) -> Run:
    with tempfile.TemporaryDirectory() as folder:
        database = Path(folder) / "bench.db"
        run, started_at, _ = timed([hpsearch, "run", str(study), "--db", f"sqlite:///{database}"])
        with sqlite3.connect(database) as connection:
            (first,) = connection.execute("SELECT MIN(finished_at) FROM trials").fetchone()
    # Stored as naive UTC text by SQLAlchemy's SQLite dialect.
    finished = datetime.fromisoformat(first).replace(tzinfo=UTC).timestamp()
    run.first_trial_s = finished - started_at
    return run


def run_optuna(study: Path) -> Run:
    # BLAS pinned as hpsearch pins its trial processes (HPSEARCH_BLAS_THREADS=1): the same
    # engine on the same threads, or the comparison would measure BLAS's threading.
    pinned = os.environ | dict.fromkeys(
        ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), "1"
    )
    run, started_at, out = timed([sys.executable, __file__, "--optuna-side", str(study)], pinned)
    run.first_trial_s = json.loads(out.strip().splitlines()[-1])["first_trial_at"] - started_at
    return run


def optuna_side(study: Path) -> None:
    """The plain Optuna script: the study file's space with RandomSampler, the engine as the
    objective, in this one process. Prints when its first trial finished."""
    import optuna
    import yaml

    from hpsearch.worker.engine import TrainConfig, load_splits, train

    definition: dict[str, Any] = yaml.safe_load(study.read_text())
    base = {key: definition[key] for key in ("dataset", "model", "training")}
    metric = definition["objective"]["metric"]
    splits = None
    first_trial_at: list[float] = []

    def suggest(trial: optuna.Trial, name: str, spec: dict[str, Any]) -> Any:
        if spec["type"] == "categorical":
            choices = [json.dumps(choice) for choice in spec["choices"]]  # lists are not hashable
            return json.loads(trial.suggest_categorical(name, choices))
        if spec["type"] == "int":
            return trial.suggest_int(name, spec["low"], spec["high"], log=spec.get("log", False))
        return trial.suggest_float(name, spec["low"], spec["high"], log=spec.get("log", False))

    def objective(trial: optuna.Trial) -> float:
        nonlocal splits
        config = json.loads(json.dumps(base))
        for name, spec in definition["space"].items():
            section, key = name.split(".", 1)
            config[section][key] = suggest(trial, name, spec)
        parsed = TrainConfig.parse(config)
        splits = splits or load_splits(parsed.dataset)
        value = train(parsed, splits, lambda epoch, metrics: None).metrics[metric]
        if not first_trial_at:
            first_trial_at.append(time.time())
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.RandomSampler(seed=definition["strategy"].get("seed"))
    direction = definition["objective"]["direction"]
    optuna.create_study(sampler=sampler, direction=direction).optimize(
        objective, n_trials=definition["budget"]["trials"]
    )
    print(json.dumps({"first_trial_at": first_trial_at[0]}))


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} [{min(values):.2f}-{max(values):.2f}]"


def compare(study: Path, runs: int, against: str | None) -> None:
    sides: dict[str, list[Run]] = {"hpsearch run": [], "optuna, one process": []}
    if against:
        sides["--against's run"] = []
    # Untimed: each side's byte code is cached from here on.
    run_hpsearch(study)
    run_optuna(study)
    if against:
        run_hpsearch(study, against)
    for i in range(runs):  # alternating, so that a busy spell of the machine hits every side
        sides["hpsearch run"].append(run_hpsearch(study))
        sides["optuna, one process"].append(run_optuna(study))
        if against:
            sides["--against's run"].append(run_hpsearch(study, against))
        walls = ", ".join(f"{name} {side[-1].wall_s:.2f} s" for name, side in sides.items())
        print(f"run {i + 1}: {walls}; load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    print(f"\n{study.name}, {runs} runs each, alternating; median [min-max], seconds")
    print(f"{'':<22}{'wall':>22}{'cpu':>22}{'first trial':>22}")
    for name, side in sides.items():
        firsts = [r.first_trial_s or 0.0 for r in side]
        print(
            f"{name:<22}{spread([r.wall_s for r in side]):>22}"
            f"{spread([r.cpu_s for r in side]):>22}{spread(firsts):>22}"
        )
    theirs = sides["optuna, one process"]
    for name in [n for n in sides if n != "optuna, one process"]:
        wall = [a.wall_s / b.wall_s for a, b in zip(sides[name], theirs, strict=True)]
        cpu = [a.cpu_s / b.cpu_s for a, b in zip(sides[name], theirs, strict=True)]
        label = "ratio (per pair)" if name == "hpsearch run" else "--against's ratio"
        print(f"{label:<22}{spread(wall):>22}{spread(cpu):>22}   target wall <= 1.20")


COLD_STARTS = {
    "hpsearch --help": [HPSEARCH, "--help"],
    "hpsearch status --help": [HPSEARCH, "status", "--help"],
    "hpsearch trials --help": [HPSEARCH, "trials", "--help"],
    'python -c "import optuna"': [sys.executable, "-c", "import optuna"],
}


def cold_starts(runs: int) -> None:
    times: dict[str, list[Run]] = {name: [] for name in COLD_STARTS}
    for argv in COLD_STARTS.values():  # untimed, as in `compare`
        timed(argv)
    for _ in range(runs):
        for name, argv in COLD_STARTS.items():
            times[name].append(timed(argv)[0])
    print(f"\ncold starts, {runs} runs each, alternating; median [min-max], seconds")
    print(f"{'':<28}{'wall':>22}{'cpu':>22}")
    for name, side in times.items():
        print(f"{name:<28}{spread([r.wall_s for r in side]):>22}"
              f"{spread([r.cpu_s for r in side]):>22}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--study", type=Path, default=ROOT / "examples" / "quickstart.yaml")
    parser.add_argument("--optuna-side", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cold-only", action="store_true", help="Only the cold starts.")
    parser.add_argument(
        "--against", metavar="HPSEARCH", help="Another installation's hpsearch, also timed."
    )
    args = parser.parse_args()
    if args.optuna_side:
        optuna_side(args.optuna_side)
        return
    # HPSEARCH_BLAS_THREADS is left as the environment has it (1 when unset, the default): set,
    # every command reads it through pydantic-settings, a tenth of a second on each cold start.
    with tempfile.TemporaryDirectory(prefix="bench-pycache-") as cache:
        BYTECODE["PYTHONPYCACHEPREFIX"] = cache
        if not args.cold_only:
            compare(args.study.resolve(), args.runs, args.against)
        print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        cold_starts(args.runs)


if __name__ == "__main__":
    main()
