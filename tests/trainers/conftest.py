"""Trainer plugins made for the tests, registered the way a pip-installed package is: a
``*.dist-info`` folder with its ``entry_points.txt`` beside the module, on the import path."""

from __future__ import annotations

import textwrap
from pathlib import Path

# Each trainer fails (or not) in one way the runner must turn into a result.
FAULTY = '''
import json, math, os, signal, time
from pydantic import BaseModel, ConfigDict, Field
from hpsearch.trainer import Diverged, Trainer

class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: float = Field(0.5, ge=0, le=1)
    steps: int = Field(5, ge=1, le=1000)

class _Base(Trainer):
    version = "1"
    Config = Config
    step_metrics = ("loss",)
    final_metrics = ("loss", "score")

class Quadratic(_Base):
    """loss = (x - 0.3)^2 at every step; a study should find x = 0.3."""
    name = "quadratic"
    def train(self, config, context):
        loss = (config.x - 0.3) ** 2
        for step in range(1, config.steps + 1):
            if context.report(step, {"loss": loss + 1.0 / step}):
                break
        return {"loss": loss, "score": float(context.seed)}

class Raises(_Base):
    name = "raises"
    def train(self, config, context):
        context.report(1, {"loss": 1.0})
        return helper(config.x)

def helper(x):
    raise ValueError(f"cannot train at x={x}")

class RaisesHuge(_Base):
    """Raises a megabyte of message, in lines and in one line, from deep recursion."""
    name = "raises-huge"
    def train(self, config, context):
        return deep(50)

def deep(n):
    if n:
        return deep(n - 1)
    raise RuntimeError("x" * 1_000_000 + "\\nsecond line" * 1000)

class ReportsNan(_Base):
    name = "reports-nan"
    def train(self, config, context):
        context.report(1, {"loss": 1.0})
        stop = context.report(2, {"loss": math.nan})
        return {"loss": 0.0 if stop else 1.0, "score": 0.0}

class ReturnsInf(_Base):
    name = "returns-inf"
    def train(self, config, context):
        return {"loss": math.inf, "score": 1.0}

class RaisesDiverged(_Base):
    name = "raises-diverged"
    def train(self, config, context):
        context.report(1, {"loss": 2.0})
        raise Diverged("loss exploded", {"loss": 2.0})

class ReadsDataset(_Base):
    name = "reads-dataset"
    def train(self, config, context):
        found = context.dataset(os.environ["HPSEARCH_TEST_DATASET"])
        return {"loss": float(len(found.content)), "score": 0.0}

class Crashes(_Base):
    """Takes its whole process down, as a segfault in native code would."""
    name = "crashes"
    def train(self, config, context):
        context.report(1, {"loss": 1.0})
        os._exit(3)

class Sleeps(_Base):
    """Never reports and never returns by itself, as a hung data loader would."""
    name = "sleeps"
    def train(self, config, context):
        while True:
            time.sleep(3600)

class IgnoresStop(_Base):
    """Reports every step, but trains on whatever `report` answers."""
    name = "ignores-stop"
    def train(self, config, context):
        step = 0
        while True:
            step += 1
            context.report(step, {"loss": 1.0})
            time.sleep(0.05)

class Stuck(_Base):
    """Never returns to Python, as native code stuck in a loop would: every signal that can be
    is blocked, and nothing it runs can be interrupted."""
    name = "stuck"
    def train(self, config, context):
        signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        open(os.environ["HPSEARCH_TEST_STUCK"], "w").close()  # out of reach from now on
        time.sleep(3600)

class CountConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rate: float = Field(0.1, gt=0, le=1)
    steps: int = Field(6, ge=1, le=1000)

class Counter(Trainer):
    """x grows by `rate` a step, on from where its saved state left it; loss = 10 - x."""
    name = "counter"
    version = "1"
    Config = CountConfig
    step_metrics = ("loss",)
    final_metrics = ("loss",)
    resumable = True
    def train(self, config, context):
        start, x = json.loads(context.resume) if context.resume else (0, 0.0)
        for step in range(start + 1, config.steps + 1):
            x += config.rate
            if context.report(step, {"loss": 10 - x}):
                break
            context.checkpoint(step, lambda: json.dumps([step, x]).encode())
        return {"loss": 10 - x}

class NotATrainer:
    name = "not-a-trainer"
'''

ENTRY_POINTS = """
[hpsearch.trainers]
quadratic = faulty_trainers:Quadratic
raises = faulty_trainers:Raises
raises-huge = faulty_trainers:RaisesHuge
reports-nan = faulty_trainers:ReportsNan
returns-inf = faulty_trainers:ReturnsInf
raises-diverged = faulty_trainers:RaisesDiverged
reads-dataset = faulty_trainers:ReadsDataset
crashes = faulty_trainers:Crashes
sleeps = faulty_trainers:Sleeps
ignores-stop = faulty_trainers:IgnoresStop
stuck = faulty_trainers:Stuck
counter = faulty_trainers:Counter
not-a-trainer = faulty_trainers:NotATrainer
missing-module = no_such_module:Trainer
"""


def install_test_trainers(folder: Path) -> Path:
    """Write the test trainers' package and its distribution metadata into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "faulty_trainers.py").write_text(textwrap.dedent(FAULTY))
    info = folder / "faulty_trainers-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: faulty-trainers\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    return folder
