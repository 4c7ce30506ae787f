"""SIGTERM (kill, systemd, a container's stop) and SIGHUP (a closed terminal) end `hpsearch run`
as Ctrl-C does: its trials queued again, the command that resumes it printed, and every process
it started gone with it."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.servers import pid_alive
from tests.test_cli import _run_grid_study_until_mid_way, _states


def descendants(pid: int) -> set[int]:
    """Every live process under `pid`, read from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # ended meanwhile
            continue
        # The command name may hold spaces and parentheses: the fields follow the last ')'.
        parents[int(stat.parent.name)] = int(text.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_ends_the_run_like_ctrl_c_with_no_process_left(
    tmp_path: Path, stop: signal.Signals
) -> None:
    run = _run_grid_study_until_mid_way(tmp_path)
    children = descendants(run.pid)
    assert children, "the run started no trial process"
    run.send_signal(stop)  # to the runner alone, as `kill PID` does
    out, err = run.communicate(timeout=60)
    assert run.returncode == 128 + stop, out + err
    assert "Traceback" not in out + err
    assert "hpsearch run --resume 1" in out
    stopped = _states(tmp_path / "hpsearch.db")
    assert "running" not in stopped and "queued" in stopped
    assert [pid for pid in children if pid_alive(pid)] == []
