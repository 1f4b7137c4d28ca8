"""Saving and loading: round trips across devices, exact resume (also in a new process),
atomic writes under SIGKILL, and refusal of truncated, corrupted, foreign, newer and
malicious files."""

from __future__ import annotations

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import xpnn


def _data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0).astype(np.int64)
    return x, y


def _model(device="cpu"):
    model = xpnn.Sequential([xpnn.Dense(16, weight_decay=1e-3), xpnn.BatchNorm(), xpnn.ReLU(),
                             xpnn.Dropout(0.25), xpnn.Dense(3)], device=device, seed=0)
    model.compile("softmax_crossentropy", xpnn.Adam(0.01, clip_norm=2.0), metrics=["accuracy"])
    return model


def _schedule():
    return [xpnn.LearningRateScheduler(xpnn.CosineDecay(4))]


def _assert_same_weights(a, b):
    for left, right in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(left, right)


# -- round trips -------------------------------------------------------------------------------

def test_a_model_saved_on_cpu_loads_on_every_lane_and_trains_on(lane, tmp_path):
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=0)
    path = tmp_path / "model.xpnn"
    model.save(path)
    loaded = xpnn.load(path, device=lane.device)
    assert loaded.device == xpnn.get_backend(lane.device).device
    assert loaded.get_config() == model.get_config()
    assert type(loaded.optimizer) is xpnn.Adam and loaded.optimizer.get_config() == \
        model.optimizer.get_config()
    assert [m.name for m in loaded.metrics] == ["accuracy"]
    _assert_same_weights(loaded, model)  # host copies in the model's dtype: exact
    np.testing.assert_allclose(loaded.predict(x), model.predict(x), rtol=1e-5, atol=1e-6)
    # the optimizer state came along: one more step agrees with the original's
    loaded.train_on_batch(x[:16], y[:16])
    model.train_on_batch(x[:16], y[:16])
    for left, right in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_allclose(left, right, rtol=1e-4, atol=1e-6)


def test_a_model_saved_on_a_lane_loads_on_the_cpu(lane, tmp_path):
    x, y = _data()
    model = _model(lane.device)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0, seed=0)
    model.save(tmp_path / "m.xpnn")
    loaded = xpnn.load(tmp_path / "m.xpnn", device="cpu")
    _assert_same_weights(loaded, model)


def test_save_without_optimizer_and_uncompiled_models(tmp_path):
    model = xpnn.Sequential([xpnn.Dense(3), xpnn.Tanh()], seed=1)
    model.build((4,))
    model.save(tmp_path / "plain.xpnn")
    loaded = xpnn.load(tmp_path / "plain.xpnn")
    assert loaded.loss is None and loaded.optimizer is None
    _assert_same_weights(loaded, model)
    compiled = _model()
    compiled.build((6,))
    compiled.save(tmp_path / "no_opt.xpnn", include_optimizer=False)
    assert xpnn.load(tmp_path / "no_opt.xpnn").optimizer is None


def test_weights_round_trip_by_position_and_refuse_other_architectures(tmp_path):
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=1, verbose=0)
    model.save_weights(tmp_path / "w.xpnn")
    fresh = _model()
    fresh.load_weights(tmp_path / "w.xpnn")  # builds from the file's input shape
    _assert_same_weights(fresh, model)
    other = xpnn.Sequential([xpnn.Dense(17), xpnn.Dense(3)])
    other.build((6,))
    with pytest.raises(xpnn.ShapeError, match=r"w\.xpnn.*does not fit.*holds 8 parameter "
                                               r"arrays, the model has 4"):
        other.load_weights(tmp_path / "w.xpnn")
    wider = xpnn.Sequential([xpnn.Dense(16, name="wide"), xpnn.BatchNorm(), xpnn.ReLU(),
                             xpnn.Dropout(0.25), xpnn.Dense(3)])
    wider.build((7,))
    kernel = model.layers[0].kernel.name
    with pytest.raises(xpnn.ShapeError, match=rf"'{kernel}' has shape \(6, 16\) in the file, "
                                              r"but .* \(7, 16\) for 'wide/kernel'"):
        wider.load_weights(tmp_path / "w.xpnn")


def test_the_file_is_an_npz_that_numpy_reads_without_pickle(tmp_path):
    model = _model()
    model.build((6,))
    model.save(tmp_path / "m.xpnn")
    with np.load(tmp_path / "m.xpnn", allow_pickle=False) as archive:
        assert "xpnn.json" in archive.files
        kernel = archive["arrays/0"]
    np.testing.assert_array_equal(kernel, model.get_weights()[0])
    manifest = json.loads(zipfile.ZipFile(tmp_path / "m.xpnn").read("xpnn.json"))
    assert manifest["format"] == "xpnn" and manifest["format_version"] == 1
    assert manifest["xpnn_version"] == xpnn.__version__ and manifest["kind"] == "model"
    assert manifest["arrays"][0] == {"name": f"weights/{model.layers[0].name}/kernel",
                                     "shape": [6, 16], "dtype": "float32"}


# -- resuming ----------------------------------------------------------------------------------

def test_resume_after_an_epoch_is_bit_identical(tmp_path):
    x, y = _data()
    straight = _model()
    expected = straight.fit(x, y, epochs=4, batch_size=16, verbose=0, seed=3,
                            callbacks=_schedule())
    first = _model()
    first.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=3, callbacks=_schedule(),
              checkpoint=tmp_path / "c.xpnn")
    resumed = _model()
    history = resumed.fit(x, y, epochs=4, batch_size=16, verbose=0, seed=999,
                          callbacks=_schedule(), resume_from=tmp_path / "c.xpnn")
    _assert_same_weights(resumed, straight)
    assert history.epoch == [0, 1, 2, 3] and history.logs == expected.logs


def test_resume_in_the_middle_of_an_epoch_is_bit_identical(tmp_path):
    x, y = _data()
    straight = _model()
    expected = straight.fit(x, y, epochs=3, batch_size=16, verbose=0, seed=3)

    class Interrupt(xpnn.Callback):
        def on_batch_end(self, batch, logs):
            if self.model.fit_position.epoch == 1 and batch == 5:
                self.model.stop_training = True

    interrupted = _model()
    interrupted.fit(x, y, epochs=3, batch_size=16, verbose=0, seed=3, callbacks=[
        xpnn.ModelCheckpoint(tmp_path / "c.xpnn", every_batches=4), Interrupt()])
    manifest = json.loads(zipfile.ZipFile(tmp_path / "c.xpnn").read("xpnn.json"))
    position = manifest["training"]["position"]
    assert (position["epoch"], position["batch"]) == (1, 4)  # the epoch-1 save was not made
    assert manifest["training"]["history"]["epoch"] == [0]
    resumed = _model()
    history = resumed.fit(x, y, epochs=3, batch_size=16, verbose=0,
                          resume_from=tmp_path / "c.xpnn")
    _assert_same_weights(resumed, straight)
    assert history.logs == expected.logs
    with pytest.raises(ValueError, match=r"batch_size=16.*needs the same"):
        _model().fit(x, y, epochs=3, batch_size=32, verbose=0, resume_from=tmp_path / "c.xpnn")


_RESUME_SCRIPT = textwrap.dedent("""
    import numpy as np
    import xpnn
    from xpnn.tests.test_saving import _data, _model, _schedule
    x, y = _data()
    model = _model()
    kwargs = dict(epochs={epochs}, batch_size=16, verbose=0, seed=3, callbacks=_schedule())
    if {resume!r}:
        kwargs["resume_from"] = {path!r}
    else:
        kwargs["checkpoint"] = {path!r}
    model.fit(x, y, **kwargs)
    np.savez({out!r}, *model.get_weights())
""")


@pytest.mark.slow
def test_resume_in_a_new_process_is_bit_identical(tmp_path):
    """4 epochs straight == 2 epochs, save, then 2 more in a fresh interpreter."""
    x, y = _data()
    straight = _model()
    straight.fit(x, y, epochs=4, batch_size=16, verbose=0, seed=3, callbacks=_schedule())
    path, out = str(tmp_path / "c.xpnn"), str(tmp_path / "w.npz")
    for epochs, resume in ((2, False), (4, True)):
        script = _RESUME_SCRIPT.format(epochs=epochs, resume=resume, path=path, out=out)
        subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path, timeout=120)
    with np.load(out) as saved:
        resumed = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    for left, right in zip(resumed, straight.get_weights(), strict=True):
        np.testing.assert_array_equal(left, right)


def test_resume_needs_the_same_optimizer_and_a_checkpoint(tmp_path):
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=1, verbose=0, checkpoint=tmp_path / "c.xpnn")
    other = _model()
    other.compile("softmax_crossentropy", xpnn.SGD(0.1))
    with pytest.raises(ValueError, match=r"trained with Adam.*compiled with SGD"):
        other.fit(x, y, epochs=2, verbose=0, resume_from=tmp_path / "c.xpnn")
    model.save(tmp_path / "m.xpnn")
    with pytest.raises(xpnn.FileFormatError, match="holds a model, expected checkpoint"):
        _model().fit(x, y, epochs=2, verbose=0, resume_from=tmp_path / "m.xpnn")
    untrained = _model()
    untrained.build((6,))
    with pytest.raises(xpnn.NotReadyError, match="not been trained with fit"):
        untrained.save_checkpoint(tmp_path / "x.xpnn")


# -- atomic writes -----------------------------------------------------------------------------

_WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    import xpnn
    model = xpnn.Sequential([xpnn.Dense(600), xpnn.Dense(600)], seed=0)
    model.build((600,))
    weights = model.get_weights()
    version = {start}
    while True:
        version += 1
        model.set_weights([np.full_like(w, version) for w in weights])
        model.save({path!r})
        print(version, flush=True)
""")


def _version(path) -> int:
    weights = xpnn.load(path).get_weights()
    values = {float(w.flat[0]) for w in weights} | {float(w.flat[-1]) for w in weights}
    assert len(values) == 1, f"a file mixing versions {values}"
    return int(values.pop())


@pytest.mark.slow
def test_sigkill_during_save_never_corrupts_the_previous_file(tmp_path):
    """Kill a process that saves a 2.9 MB model in a loop at random moments; each time the
    file on disk must be complete and hold the last version written or the one after it."""
    path = tmp_path / "model.xpnn"
    subprocess.run([sys.executable, "-c", _WRITER.replace("while True", "for _ in [0]")
                    .format(start=0, path=str(path))], check=True, capture_output=True)
    trials, mid_write_kills = 25, 0
    rng = random.Random(0)
    for _ in range(trials):
        before = _version(path)
        writer = subprocess.Popen(
            [sys.executable, "-c", _WRITER.format(start=before, path=str(path))],
            stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline()  # at least one save completed: the loop runs
        time.sleep(rng.uniform(0.0, 0.2))
        writer.send_signal(signal.SIGKILL)
        printed = [int(line) for line in writer.stdout.read().split()]
        writer.wait()
        last_printed = printed[-1] if printed else before + 1
        version = _version(path)  # loads: never truncated, never mixed
        assert version in (last_printed, last_printed + 1)
        leftovers = [p for p in tmp_path.iterdir() if p.name != path.name]
        mid_write_kills += bool(leftovers)
        for leftover in leftovers:  # what a kill leaves: a temporary, never the target
            assert leftover.name.startswith(".model.xpnn.tmp-")
            leftover.unlink()
    print(f"{trials} kills, {mid_write_kills} of them during a write")


def test_a_failing_save_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    model = _model()
    model.build((6,))
    path = tmp_path / "m.xpnn"
    model.save(path)
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np.lib.format, "write_array", broken)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]


# -- refusing bad files ------------------------------------------------------------------------

@pytest.fixture
def saved(tmp_path):
    model = _model()
    model.build((6,))
    path = tmp_path / "m.xpnn"
    model.save(path)
    return path


def _rewrite_manifest(path, change):
    with zipfile.ZipFile(path) as source:
        members = {name: source.read(name) for name in source.namelist()}
    manifest = json.loads(members["xpnn.json"])
    change(manifest)
    members["xpnn.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(path, "w") as target:
        for name, data in members.items():
            target.writestr(name, data)


def test_a_truncated_file_is_refused_with_its_name(saved):
    data = saved.read_bytes()
    for keep in (len(data) // 2, len(data) - 30, 100):
        saved.write_bytes(data[:keep])
        with pytest.raises(xpnn.FileFormatError, match=r"m\.xpnn.*(not a ZIP|truncated)"):
            xpnn.load(saved)


def test_a_flipped_byte_fails_the_checksum(saved):
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as archive:
        info = archive.getinfo("arrays/0.npy")
    data[info.header_offset + 30 + len(info.filename) + 200] ^= 0xFF  # inside the kernel data
    saved.write_bytes(bytes(data))
    with pytest.raises(xpnn.FileFormatError,
                       match=r"corrupted.*arrays/0\.npy.*dense(_\d+)?/kernel"):
        xpnn.load(saved)


def test_foreign_files_are_refused(tmp_path):
    (tmp_path / "noise.bin").write_bytes(os.urandom(2000))
    np.savez(tmp_path / "plain.npz", a=np.ones(3))
    (tmp_path / "other.zip").write_bytes(b"")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("xpnn.json", json.dumps({"format": "keras"}))
    for name, reason in (("noise.bin", "not a ZIP"), ("plain.npz", "no xpnn.json"),
                         ("other.zip", "format 'xpnn'")):
        with pytest.raises(xpnn.FileFormatError, match=f"{name}.*{reason}"):
            xpnn.load(tmp_path / name)


def test_a_newer_format_version_asks_for_an_upgrade(saved):
    _rewrite_manifest(saved, lambda m: m.update(format_version=99, xpnn_version="9.0"))
    with pytest.raises(xpnn.FileFormatError, match=r"format version 99.*9\.0.*upgrade xpnn"):
        xpnn.load(saved)


def test_an_unknown_layer_class_is_not_imported(saved):
    def change(manifest):
        manifest["model"]["layers"][0]["class"] = "os.system"

    _rewrite_manifest(saved, change)
    with pytest.raises(xpnn.FileFormatError, match=r"'os\.system' is not known; known: .*Dense"):
        xpnn.load(saved)


class _Exploit:
    """Unpickling this creates a marker file: the proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_file_crafted_to_run_code_does_not_run_it(saved, tmp_path):
    marker = tmp_path / "pwned"
    payload = np.empty(1, dtype=object)
    payload[0] = _Exploit(str(marker))
    pickle.loads(pickle.dumps(payload))  # the payload works: unpickling it creates the marker
    assert marker.exists()
    marker.unlink()
    with zipfile.ZipFile(saved) as source:
        members = {name: source.read(name) for name in source.namelist()}
    with zipfile.ZipFile(saved, "w") as target:
        for name, data in members.items():
            if name == "arrays/0.npy":
                with target.open(name, "w") as member:
                    np.lib.format.write_array(member, payload, allow_pickle=True)
            else:
                target.writestr(name, data)
    with pytest.raises(xpnn.FileFormatError, match="pickled Python objects"):
        xpnn.load(saved)
    _rewrite_manifest(saved, lambda m: m["arrays"][0].update(dtype="object"))
    with pytest.raises(xpnn.FileFormatError, match="dtype 'object'"):
        xpnn.load(saved)
    assert not marker.exists()
