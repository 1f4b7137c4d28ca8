"""The progress display: never wider than the terminal (checked in a real pseudo-terminal),
an ETA and a rate while an epoch runs, a visible validation phase, and one line per epoch
where the output is not a terminal."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import xpnn
from xpnn.progress import ProgressBar, format_duration, format_rate

#: A script that trains a two-output model with validation data (ten logs per epoch), its
#: progress redrawn at every step.
SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import xpnn

    xpnn.progress.REDRAW_INTERVAL = 0.0
    rng = np.random.default_rng(0)
    x = rng.standard_normal((600, 8))
    kind, big = (x[:, 0] > 0).astype(np.int64), (x[:, 1:2] > 0).astype(np.float64)
    inputs = xpnn.Input((8,))
    hidden = xpnn.Dense(16, activation="relu")(inputs)
    model = xpnn.Model(inputs, [xpnn.Dense(2, name="kind")(hidden),
                                xpnn.Dense(1, name="big")(hidden)],
                       device=sys.argv[1], seed=0)
    model.compile(["softmax_crossentropy", "binary_crossentropy_with_logits"], "adam",
                  metrics=["accuracy"])
    model.fit(x, [kind, big], epochs=3, batch_size=8, validation_data=(x, [kind, big]),
              verbose=int(sys.argv[2]))
""")


def _run_in_terminal(tmp_path, device: str, verbose: int, columns: int) -> str:
    """Run SCRIPT with its output in a pseudo-terminal of ``columns`` columns; return what
    it wrote there."""
    pty = pytest.importorskip("pty", reason="pseudo-terminals are POSIX")
    import fcntl
    import struct
    import termios

    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES")}
    process = subprocess.Popen([sys.executable, str(script), device, str(verbose)],
                               stdin=slave, stdout=slave, stderr=subprocess.PIPE, env=env)
    os.close(slave)
    output = b""
    while True:
        try:
            chunk = os.read(master, 1 << 16)
        except OSError:  # Linux: EIO once the child has closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(master)
    assert process.wait(timeout=120) == 0, process.stderr.read().decode()
    return output.decode()


def _screen_lines(text: str) -> list[str]:
    """Every stretch of text between two carriage returns or newlines: what a redraw or a
    line puts on one row of the terminal."""
    return re.split(r"\r\n|\r|\n", text)


@pytest.mark.parametrize("columns", [80, 40])
def test_no_line_is_wider_than_an_80_or_40_column_terminal(lane, tmp_path, columns):
    """Was: at 80 columns the line was wider than the terminal, so every redraw left a new
    line (35 lines for one 9-second epoch), with no ETA."""
    text = _run_in_terminal(tmp_path, lane.device, 1, columns)
    rows = _screen_lines(text)
    assert max(len(row) for row in rows) < columns, max(rows, key=len)
    assert text.count("\r") > 3 * 75  # redrawn in place at every one of the 75 steps
    ended = re.findall(r"([^\r\n]*)\r?\n", text)  # the rows a newline leaves behind
    assert len(ended) <= 3 * (5 if columns == 80 else 12)  # the final lines of 3 epochs
    assert not [row for row in ended if "ETA" in row or "validating" in row]
    assert re.search(r"Epoch 2/3 +\d+/75 .*ETA \d+:\d\d", text)
    assert re.search(r"\d steps/s|s/step", text)
    assert "validating..." in text
    last = list(re.finditer(r"Epoch 3/3 75/75 (\[=+\] )?\d+\.\ds", text))[-1]
    final = " ".join(row.strip() for row in _screen_lines(text[last.start():]))
    for key in ("loss", "kind_loss", "big_loss", "kind_accuracy", "big_accuracy",
                "val_loss", "val_kind_accuracy", "val_big_accuracy", "learning_rate"):
        assert f" {key}: " in f" {final}", key  # the final line keeps every log


def test_verbose_2_on_a_terminal_wraps_the_epoch_lines(lane, tmp_path):
    text = _run_in_terminal(tmp_path, lane.device, 2, 80)
    assert "\r" not in text.replace("\r\n", "")
    rows = [row for row in _screen_lines(text) if row]
    assert max(len(row) for row in rows) < 80
    assert sum(row.startswith("Epoch ") for row in rows) == 3
    assert all(row.startswith("  ") for row in rows if not row.startswith("Epoch "))


def test_one_line_per_epoch_where_the_output_is_no_terminal(lane, capsys):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 4)), rng.integers(0, 3, 64)
    model = xpnn.Sequential([xpnn.Dense(3)], device=lane.device, seed=0)
    model.compile("softmax_crossentropy", "adam", metrics=["accuracy"])
    for verbose in (1, 2):
        model.fit(x, y, epochs=3, batch_size=8, verbose=verbose, validation_data=(x, y))
        out = capsys.readouterr().out
        assert "\r" not in out and "ETA" not in out
        lines = out.splitlines()
        assert len(lines) == 3 and lines[2].startswith("Epoch 3/3 8/8 [")
        assert re.search(r"\] \d+\.\ds .* - loss: .* - val_accuracy: .* - learning_rate: ",
                         lines[2])
    model.fit(x, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""


class Terminal(io.StringIO):
    """A stream that says it is a terminal (its width comes from $COLUMNS)."""

    def isatty(self) -> bool:
        return True


class Clock:
    """``time.perf_counter`` of a machine where every reading comes 10 ms after the last."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 0.01
        return self.now


def test_the_live_line_keeps_the_counter_and_drops_whole_logs(monkeypatch):
    monkeypatch.setattr(xpnn.progress, "time", Clock())
    monkeypatch.setenv("COLUMNS", "72")
    stream = Terminal()
    reads = []
    bar = ProgressBar(400, "Epoch 10/10", verbose=1, stream=stream, interval=0.0)
    logs = {"loss": 0.123456, "accuracy": 0.5, "val_loss": 1.0}
    for step in range(1, 401):
        bar.update(step, lambda: reads.append(1) or logs)
    bar.validating()
    bar.finish({**logs, "learning_rate": 1e-4})
    rows = _screen_lines(stream.getvalue())
    assert len(reads) == 400 and max(len(row) for row in rows) <= 71
    assert rows[1].startswith("Epoch 10/10   1/400 [")
    assert re.fullmatch(r"Epoch 10/10 400/400 \[=+\] ETA 0:00 100\.0 steps/s - loss: 0\.1235 *",
                        rows[400])  # "accuracy: 0.5000" would not fit
    assert re.fullmatch(r"Epoch 10/10 400/400 \[=+\] validating\.\.\. - loss: 0\.1235 *",
                        rows[401])
    assert rows[402].startswith("Epoch 10/10 400/400 [") and rows[-2] == (
        "  learning_rate: 1.000e-04")
    monkeypatch.setenv("COLUMNS", "16")  # too narrow for anything but the counter
    narrow = Terminal()
    bar = ProgressBar(4, "Epoch 1/3", verbose=1, stream=narrow, interval=0.0)
    bar.update(1, lambda: logs)
    assert narrow.getvalue() == "\rEpoch 1/3 1/4"


def test_time_and_rate_formats():
    assert [format_duration(s) for s in (0.4, 7, 725, 3725)] == [
        "0:00", "0:07", "12:05", "1:02:05"]
    assert format_rate(50, 2.0) == "25.0 steps/s" and format_rate(2, 5.0) == "2.50 s/step"
    assert format_rate(0, 0.0) == "- steps/s"


def test_a_jupyter_kernel_stream_is_redrawn_in_place(monkeypatch):
    """ipykernel's stream reports no terminal but honours carriage returns (as Keras, the
    line is redrawn there; 80 columns unless $COLUMNS says otherwise)."""

    class OutStream(io.StringIO):
        pass

    OutStream.__module__ = "ipykernel.iostream"
    monkeypatch.setenv("COLUMNS", "80")
    stream = OutStream()
    bar = ProgressBar(3, "Epoch 1/1", verbose=1, stream=stream, interval=0.0)
    for step in (1, 2, 3):
        bar.update(step, lambda: {"loss": 1.0})
    bar.finish({"loss": 1.0})
    assert stream.getvalue().count("\r") == 4 and stream.getvalue().endswith("loss: 1.0000\n")
