"""Progress on stderr: a notice for a step that is only sometimes slow (a first compile)."""

import time

import numpy as np
import pytest

from imgclf import _progress
from imgclf.neighbors.pruning import pruner as pruning


@pytest.mark.parametrize(("setting", "sleep", "said"), [("1", 0.3, True), ("1", 0.0, False),
                                                         ("0", 0.3, False)])  # fmt: skip
def test_a_slow_step_says_what_it_does_and_how_long_it_took(monkeypatch, capsys, setting,
                                                            sleep, said):  # fmt: skip
    monkeypatch.setenv("IMGCLF_PROGRESS", setting)
    with _progress.notice_if_slow("warming up", after_s=0.05):
        time.sleep(sleep)
    err = capsys.readouterr().err
    if said:
        assert err.splitlines() == ["warming up ...", "warming up: done in 0 s"]
    else:
        assert err == ""


def test_an_error_in_a_slow_step_still_ends_its_notice(monkeypatch, capsys):
    monkeypatch.setenv("IMGCLF_PROGRESS", "1")
    with pytest.raises(KeyError), _progress.notice_if_slow("loading", after_s=0.01):
        time.sleep(0.1)
        raise KeyError("x")
    assert capsys.readouterr().err.splitlines() == ["loading ...", "loading: done in 0 s"]


def test_a_notice_inside_another_is_silent(monkeypatch, capsys):
    """A search method that calls another (a two-thread search for classes searches, then
    looks for the classes) says it is compiling once, not once per method."""
    monkeypatch.setenv("IMGCLF_PROGRESS", "1")
    with _progress.notice_if_slow("outer", after_s=0.01):
        with _progress.notice_if_slow("inner", after_s=0.01):
            time.sleep(0.1)
        with _progress.notice_if_slow("inner again", after_s=0.01):
            time.sleep(0.05)
    assert capsys.readouterr().err.splitlines() == ["outer ...", "outer: done in 0 s"]
    with _progress.notice_if_slow("after", after_s=0.01):  # the outer one has ended
        time.sleep(0.05)
    assert capsys.readouterr().err.splitlines() == ["after ...", "after: done in 0 s"]


def test_the_first_search_of_each_kind_is_watched_for_compiling(monkeypatch):
    """A fresh installation compiles the cascade on the first search (~45 s): each search
    method's first call in a process runs inside the notice, later ones do not."""
    watched = []
    monkeypatch.setattr(pruning, "_CALLED", set())
    monkeypatch.setattr(pruning, "notice_if_slow", lambda what: _Recorder(watched, what))
    rng = np.random.default_rng(0)
    database = rng.integers(0, 256, (pruning.CASCADE_MIN_ROWS, 32), dtype=np.uint8)
    pruner = pruning.LowerBoundPruner(database, "l2")
    labels = np.arange(len(database)) % 3
    for _ in range(2):
        pruner.search(database[0], 3)
        pruner.search_ranges(database[1], 3, np.array([[0, 500]], np.int64))
        pruner.search_classes(database[2], 3, labels, 2)
    assert watched == [pruning._COMPILING] * 3


class _Recorder:
    def __init__(self, log, what):
        self.log, self.what = log, what

    def __enter__(self):
        self.log.append(self.what)

    def __exit__(self, *exc):
        return False
