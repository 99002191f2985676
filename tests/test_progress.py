"""progress: a bar only inside reporting(), only on a terminal, only in the thread that asked for it."""

import io
import os
import sys
import threading

from sgdlab import progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_advance_without_a_reporter_does_nothing():
    progress.advance(5, 10)  # no error, no output anywhere


def test_a_bar_on_a_terminal_counts_epochs_and_restarts_per_training():
    term = Terminal()
    with progress.reporting("toy-noisy", file=term, delay=0, mininterval=0):
        progress.advance(256, 1000)
        progress.advance(1000, 1000)
        progress.advance(10, 20)  # the experiment's second train() call
    text = term.getvalue()
    assert "toy-noisy" in text and "1000/1000" in text and "training 2" in text


def test_silent_when_not_a_terminal():
    quiet = io.StringIO()
    with progress.reporting("toy-noisy", file=quiet, delay=0, mininterval=0):
        progress.advance(1, 2)
    assert quiet.getvalue() == ""


def test_another_thread_does_not_see_the_bar():
    term = Terminal()
    with progress.reporting("x", file=term, delay=0, mininterval=0):
        thread = threading.Thread(target=progress.advance, args=(7, 9))
        thread.start()
        thread.join()
        assert "7/9" not in term.getvalue()
        progress.advance(3, 9)
    assert "3/9" in term.getvalue()


def test_a_fresh_pseudo_terminal_of_no_size_still_shows_the_bar(monkeypatch):
    """A new pty reports 0 × 0. tqdm reads the size of stderr itself, and given 0 × 0 draws nothing (no
    columns, and no line for a bar at position 0): the bar on stderr must still show."""
    master, slave = os.openpty()
    with os.fdopen(slave, "w") as term:
        assert os.get_terminal_size(term.fileno()) == (0, 0)
        monkeypatch.setattr(sys, "stderr", term)
        with progress.reporting("toy-noisy", delay=0, mininterval=0):
            progress.advance(5, 10)
    shown = os.read(master, 65536).decode()
    os.close(master)
    assert "toy-noisy" in shown and "5/10" in shown
