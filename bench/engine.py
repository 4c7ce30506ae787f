"""Training engine speed: an MLP's epoch against the BLAS bound for the same matrix products.

    .venv/bin/python bench/engine.py [--pairs 20] [--quick]

Measured in one run, on one BLAS thread, as pairs: each engine epoch right after one pass of
its BLAS bound, so that both see the same machine (this VM's speed drifts by 10-15% over
seconds, and a bound timed at another moment moved the ratio by as much):

- the engine's epoch of an MLP 64-128-128-10 (ReLU, cross-entropy, Adam, batch 64, float32) on
  20,000 synthetic training rows (64 features, 10 classes): its training pass (shuffle and the
  313 steps) and its validation on 2,000 rows, together what ``epoch_seconds`` reports;
- the BLAS bound for the same work: the step's 8 matrix products (3 forward, 3 dW, 2 dX; the
  input layer needs no dX) at the same shapes with ``np.dot(..., out=)``, timed alone in a
  tight loop over the steps of an epoch, and the validation's 3 forward products on its 2,000
  rows: the time no NumPy implementation of the same work can beat;
- the two ratios, each the median over the pairs: epoch / its bound, and the training pass /
  the steps' bound (the issue's own arithmetic: a step's time over its products' time); and,
  for reference, the epoch over the steps' bound alone (validation's products left out);
- the time per step at batch 1, and the same 8 products at batch 1 for reference;
- where a step's time goes: each part of the training loop timed in place, and the engine's
  own 8 products (its feature-major layout, bias rows included) alone in a tight loop;
- memory: tracemalloc's peak over a training run (Python/NumPy allocations) and the process's
  maximum resident set size.

Targets: ≤ 1.8 × the BLAS bound at batch 64 (both ratios), ≤ 60 µs per step at batch 1.
Timings are noisy on shared machines; the batch-1 figures are the best of several repeats.
Never part of the tests.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before NumPy loads its BLAS

import argparse  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hpsearch.worker.engine import Splits, TrainConfig, train  # noqa: E402
from hpsearch.worker.engine.training import Trainer  # noqa: E402

SIZES = [64, 128, 128, 10]
N_TRAIN, N_VAL, N_TEST = 20_000, 2_000, 2_000
BATCH = 64
RATIO_TARGET = 1.8
STEP_TARGET_US = 60.0


def best_seconds(call: Callable[[], object], loops: int, repeats: int) -> float:
    """Seconds per call of `call`: the best of `repeats` timings of `loops` calls in a row."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(loops):
            call()
        best = min(best, (time.perf_counter() - started) / loops)
    return best


def synthetic_splits(seed: int = 0) -> Splits:
    """Gaussian features; classes from a random two-layer teacher, so the task is learnable."""
    rng = np.random.default_rng(seed)
    n = N_TRAIN + N_VAL + N_TEST
    X = rng.normal(size=(n, SIZES[0]))
    hidden = np.tanh(X @ rng.normal(size=(SIZES[0], 32)) / 8)
    y = (hidden @ rng.normal(size=(32, SIZES[-1])) + 0.1 * rng.normal(size=(n, 10))).argmax(1)
    cuts = [N_TRAIN, N_TRAIN + N_VAL]
    (Xtr, Xva, Xte), (ytr, yva, yte) = np.split(X, cuts), np.split(y.astype(np.int64), cuts)
    return Splits(Xtr, ytr, Xva, yva, Xte, yte, n_classes=SIZES[-1])


def config(batch_size: int, epochs: int) -> TrainConfig:
    return TrainConfig.parse(
        {
            "dataset": {"name": "synthetic-bench"},
            "model": {"type": "mlp", "hidden": SIZES[1:-1], "activation": "relu", "init": "he"},
            "training": {
                "loss": "cross_entropy",
                "optimizer": "adam",
                "learning_rate": 0.001,
                "batch_size": batch_size,
                "epochs": epochs,
                "dtype": "float32",
            },
        }
    )


def products_loop(shapes: list[tuple[int, int]], backward: bool) -> Callable[[], None]:
    """One call runs the matrix products of a 64-128-128-10 MLP, float32, np.dot(out=), for
    each (batch, count) of ``shapes``: ``count`` steps of 8 products (``backward``) or
    ``count`` forward passes of 3."""
    rng = np.random.default_rng(1)
    f32 = np.float32
    Ws = [
        rng.normal(size=(a, b)).astype(f32) * 0.1
        for a, b in zip(SIZES[:-1], SIZES[1:], strict=True)
    ]
    dWs = [np.empty_like(W) for W in Ws]
    runs = []
    for batch, count in shapes:
        x = rng.normal(size=(batch, SIZES[0])).astype(f32)
        Hs = [np.empty((batch, n), f32) for n in SIZES[1:]]
        Gs = [rng.normal(size=(batch, n)).astype(f32) for n in SIZES[1:]]
        runs.append((count, [x, Hs[0], Hs[1]], Hs, Gs))

    def run() -> None:
        for count, inputs, Hs, Gs in runs:
            for _ in range(count):
                for i in range(3):
                    np.dot(inputs[i], Ws[i], out=Hs[i])
                if backward:
                    for i in (2, 1, 0):
                        np.dot(inputs[i].T, Gs[i], out=dWs[i])
                        if i:
                            np.dot(Gs[i], Ws[i].T, out=Gs[i - 1])

    return run


def blas_step_seconds(batch: int, repeats: int = 7) -> float:
    """The best mean time of the 8 products of one step at ``batch``, float32, np.dot(out=)."""
    return best_seconds(products_loop([(batch, 1)], True), max(200, 200_000 // batch), repeats)


@dataclass
class Pairs:
    """Per pair, seconds: the bound's steps and validation, the engine's pass and validation."""

    bound_steps: list[float] = field(default_factory=list)
    bound_val: list[float] = field(default_factory=list)
    steps: list[float] = field(default_factory=list)
    val: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    steps_per_epoch: int = 0

    def ratio(self, engine: list[list[float]], bound: list[list[float]]) -> float:
        """The median over the pairs of (sum of ``engine`` parts) / (sum of ``bound`` parts)."""
        engine_sums = [sum(parts) for parts in zip(*engine, strict=True)]
        bound_sums = [sum(parts) for parts in zip(*bound, strict=True)]
        return statistics.median(e / b for e, b in zip(engine_sums, bound_sums, strict=True))


def paired_epochs(data: Splits, pairs: int) -> Pairs:
    """``pairs`` engine epochs at batch 64, each right after its BLAS bound: one pass of the
    steps' products (313 steps make a tight loop) and the best of 5 passes of validation's.

    The engine's epoch is timed in the two calls `Trainer.epoch_metrics` makes: the training
    pass and the validation."""
    trainer = Trainer(config(BATCH, pairs + 1), data)
    full, rest = divmod(N_TRAIN, BATCH)
    bound_steps = products_loop([(BATCH, full), (rest, int(rest > 0))], True)
    bound_val = products_loop([(N_VAL, 1)], False)
    clock, out = time.perf_counter, Pairs(steps_per_epoch=len(trainer.batches))
    with np.errstate(all="ignore"):
        trainer.run_epoch(1)  # a process's first epoch pays for its page faults
        for epoch in range(2, pairs + 2):
            out.bound_steps.append(best_seconds(bound_steps, 1, 1))
            out.bound_val.append(best_seconds(bound_val, 1, 5))
            started = clock()
            trainer.run_epoch(epoch)
            middle = clock()
            _, accuracy = trainer.evaluate(trainer.val_split)
            out.steps.append(middle - started)
            out.val.append(clock() - middle)
            out.val_accuracy.append(accuracy)
    return out


def steps_only_seconds(data: Splits, batch: int, epochs: int) -> tuple[float, int]:
    """Best time of `Trainer.run_epoch` (shuffle + steps, no evaluation) and steps per epoch."""
    trainer = Trainer(config(batch, epochs), data)
    best = float("inf")
    with np.errstate(all="ignore"):
        for epoch in range(1, epochs + 1):
            started = time.perf_counter()
            trainer.run_epoch(epoch)
            best = min(best, time.perf_counter() - started)
    return best, len(trainer.batches)


def step_breakdown(data: Splits, batch: int, epochs: int = 3) -> dict[str, float]:
    """Microseconds per step of each part of `Trainer.run_epoch`'s loop, timed in place (best
    epoch of ``epochs``), and the engine's own 8 products at this batch size in a tight loop."""
    trainer = Trainer(config(batch, epochs), data)
    net, loss, optimizer, state = trainer.net, trainer.loss, trainer.optimizer, trainer.state
    parts = ("shuffle", "forward", "loss", "backward", "grad norm", "optimizer")
    best = dict.fromkeys(parts, float("inf"))
    clock = time.perf_counter
    for _ in range(epochs):
        spent = dict.fromkeys(parts, 0.0)
        started = clock()
        trainer._shuffle()
        spent["shuffle"] = clock() - started
        for x, t, work in trainer.batches:
            t0 = clock()
            logits = net.forward(x, work, "train")
            t1 = clock()
            loss.loss_and_grad(logits, t, logits)
            t2 = clock()
            net.backward(x, logits, work)
            t3 = clock()
            float(np.dot(net.grad, net.grad))
            t4 = clock()
            optimizer.step(trainer.weights, net.grad, state)
            trainer.steps += 1
            if trainer.steps % trainer.flush_every == 0:
                trainer._flush()
            t5 = clock()
            for part, seconds in zip(
                parts[1:], (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True
            ):
                spent[part] += seconds
        for part in parts:
            best[part] = min(best[part], spent[part] / len(trainer.batches) * 1e6)
    best["engine's 8 products alone"] = engine_products_seconds(trainer) * 1e6
    return best


def engine_products_seconds(trainer: Trainer, repeats: int = 7) -> float:
    """The Dense layers' forward and backward products alone, on a full batch, tight loop."""
    x, _, work = trainer.batches[0]
    net = trainer.net
    inputs = [x, *(w.h for w in work.blocks)]
    outputs = [*(w.a for w in work.blocks), work.logits]
    grads = [*(w.grad for w in work.blocks), work.logits]

    def products() -> None:
        for dense, x_in, out in zip(net.denses, inputs, outputs, strict=True):
            dense.forward(x_in, out)
        for i in range(len(net.denses) - 1, -1, -1):
            net.denses[i].backward(inputs[i], grads[i], grads[i - 1] if i else None)

    return best_seconds(products, max(200, 200_000 // work.batch), repeats)


def peak_memory(data: Splits) -> tuple[float, float]:
    """tracemalloc's peak over a 2-epoch batch-64 run, and the process's max RSS (MiB)."""
    tracemalloc.start()
    train(config(BATCH, 2), data)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    maxrss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20, maxrss_kib / 2**10


def row(name: str, value: str, target: str = "", verdict: str = "") -> None:
    print(f"{name:<46}{value:>16}  {target:<12}{verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=20, help="bound-then-epoch pairs at batch 64")
    parser.add_argument("--quick", action="store_true", help="fewer batch-1 epochs")
    args = parser.parse_args()
    data = synthetic_splits()

    pairs = paired_epochs(data, args.pairs)
    epoch_ratio = pairs.ratio([pairs.steps, pairs.val], [pairs.bound_steps, pairs.bound_val])
    steps_ratio = pairs.ratio([pairs.steps], [pairs.bound_steps])
    steps_bound_ratio = pairs.ratio([pairs.steps, pairs.val], [pairs.bound_steps])
    step1, n_steps1 = steps_only_seconds(data, 1, 1 if args.quick else 2)
    blas1 = blas_step_seconds(1)
    breakdown = {size: step_breakdown(data, size, 3 if size > 1 else 1) for size in (BATCH, 1)}
    traced, maxrss = peak_memory(data)

    per_step = step1 / n_steps1 * 1e6
    n_steps = pairs.steps_per_epoch
    print(f"MLP {'-'.join(map(str, SIZES))} relu, cross-entropy, Adam, float32, 1 BLAS thread")
    print(f"{N_TRAIN} training rows, {N_VAL} validation rows; batch {BATCH}: {n_steps} steps")
    accuracy = pairs.val_accuracy
    print(f"val_accuracy after the first and the last pair: {accuracy[0]:.3f}, {accuracy[-1]:.3f}")
    print(f"{args.pairs} pairs, each a bound pass then an engine epoch; min / median shown\n")
    row("measure", "value", "target", "")
    row("-" * 44, "-" * 16, "-" * 12, "-" * 4)

    def spread(seconds: list[float]) -> str:
        return f"{min(seconds) * 1e3:.2f} / {statistics.median(seconds) * 1e3:.2f} ms"

    row("BLAS bound: the steps' 8 products", spread(pairs.bound_steps))
    row("BLAS bound: validation's 3 products", spread(pairs.bound_val))
    row("engine training pass (shuffle + steps)", spread(pairs.steps))
    row("engine validation (2,000 rows)", spread(pairs.val))
    row(
        "epoch / its bound (median of pairs)",
        f"{epoch_ratio:.2f} x",
        f"<= {RATIO_TARGET}",
        _verdict(epoch_ratio <= RATIO_TARGET),
    )
    row(
        "training pass / steps' bound",
        f"{steps_ratio:.2f} x",
        f"<= {RATIO_TARGET}",
        _verdict(steps_ratio <= RATIO_TARGET),
    )
    row("(epoch / steps' bound alone, for reference)", f"{steps_bound_ratio:.2f} x")
    row("BLAS bound, one step at batch 1", f"{blas1 * 1e6:.1f} us")
    row(
        "engine step at batch 1",
        f"{per_step:.1f} us",
        f"<= {STEP_TARGET_US:.0f} us",
        _verdict(per_step <= STEP_TARGET_US),
    )
    print("\nWhere a step goes (us per step, each part timed in the training loop):")
    print(f"{'part':<28}{'batch 64':>10}{'batch 1':>10}")
    for part in breakdown[BATCH]:
        print(f"{part:<28}{breakdown[BATCH][part]:>10.1f}{breakdown[1][part]:>10.1f}")
    bound_step = min(pairs.bound_steps) / n_steps * 1e6
    print(f"{'BLAS bound (8 products)':<28}{bound_step:>10.1f}{blas1 * 1e6:>10.1f}\n")
    row("tracemalloc peak, 2-epoch run", f"{traced:.1f} MiB")
    row("max RSS of this process", f"{maxrss:.1f} MiB")
    row("(training data as float64)", f"{data.X_train.nbytes / 2**20:.1f} MiB")


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


if __name__ == "__main__":
    main()
