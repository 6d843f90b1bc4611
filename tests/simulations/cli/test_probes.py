"""A careful user's probes of the ``tradeoffs`` command: bad output folders, unbounded
resource arguments, misleading messages, Ctrl-C and closed pipes. Each ends in one line
``tradeoffs: error: ...`` (exit 2), a one-line interrupt notice (exit 130) or a quiet exit,
never a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from invariance_tradeoffs.simulations.cli import main


def one_line_error(capsys, argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, (argv, code, err)
    assert err.startswith("tradeoffs: error:") and err.count("\n") == 1, (argv, err)
    return err


# ------------------------------------------------------------------ --out is checked first
@pytest.mark.parametrize("out, message", [
    ("", "--out must name"),
    ("/etc/hostname/x", "is a file, not a folder"),
    ("/proc/no-such-folder/x", "cannot be created"),
])
def test_reproduce_refuses_a_bad_out_before_any_work(capsys, tmp_path, out, message):
    assert message in one_line_error(capsys, ["reproduce", "--quick", "--out", out])
    assert not (Path.cwd() / "REPORT.md").exists()  # `--out ''` once wrote into the cwd


@pytest.mark.parametrize("out, message", [
    ("", "--out must name a file"),
    ("/etc/hostname/study.sqlite", "folder /etc/hostname exists and is not a folder"),
    ("/proc/no-such-folder/study.sqlite", "cannot be created"),
])
def test_study_create_refuses_a_bad_out(capsys, out, message):
    err = one_line_error(capsys, ["study", "create", "--published", "linf/automated_eps03",
                                  "--participants", "2", "--out", out])
    assert message in err


def test_study_create_refuses_a_folder_as_the_study_file(capsys, tmp_path):
    err = one_line_error(capsys, ["study", "create", "--published", "linf/automated_eps03",
                                  "--participants", "2", "--out", str(tmp_path)])
    assert "is a folder; name a file" in err


# ------------------------------------------------------------- resource arguments bounded
@pytest.mark.parametrize("argv, message", [
    (["theory", "ceiling", "--family", "linear-gaussian", "--norm", "l2", "--eps", "0.1",
      "--param", "d=100000000000"], "d must be an integer in [1, 1000000]"),
    (["theory", "good-radius", "--family", "spheres", "--norm", "l2",
      "--param", "d=100000000000"], "d must be an integer in [1, 1000000]"),
    (["theory", "ceiling", "--family", "linear-gaussian", "--norm", "l2", "--eps", "0.1",
      "--estimate", "100000000000"], "argument --estimate"),
    (["mnist", "evaluate", "--model", "tiny-knn", "--threads", "0"], "argument --threads"),
    (["mnist", "evaluate", "--model", "tiny-knn", "--n-test", "99999999"],
     "argument --n-test"),
    (["mnist", "evaluate", "--model", "tiny-knn", "--eps", "1e308"], "argument --eps"),
    (["reproduce", "--quick", "--n-sources", "1000"], "argument --n-sources"),
    (["reproduce", "--n-jobs", "10000"], "argument --n-jobs"),
    (["reproduce", "--threads", "0"], "argument --threads"),
    (["toy", "all", "--n-jobs", "0"], "argument --n-jobs"),
    (["mnist", "attack", "l0", "--indices", "0:1", "--train-subset", "5", "--out", "x"],
     "argument --train-subset: expected an integer in [10, 60000], got 5"),
])
def test_resource_arguments_are_bounded(capsys, argv, message):
    assert message in one_line_error(capsys, argv)


# ------------------------------------------------------------------- messages that say it
def test_a_missing_model_file_is_not_an_unknown_model(capsys):
    err = one_line_error(capsys, ["mnist", "evaluate", "--model", "/no/such/model.pt"])
    assert "no such model file" in err and "unknown model" not in err
    err = one_line_error(capsys, ["mnist", "evaluate", "--model", "no-such-zoo-name"])
    assert "unknown model 'no-such-zoo-name'" in err


def test_data_and_published_folders_are_named_by_their_option(capsys, tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    err = one_line_error(capsys, ["mnist", "attack", "linf", "--eps", "0.3", "--indices",
                                  "0:2", "--data-dir", str(a_file), "--out",
                                  str(tmp_path / "o")])
    assert "(--data-dir) is a file, not a folder" in err
    err = one_line_error(capsys, ["mnist", "published", "--published-dir", str(a_file)])
    assert "published_dir (--published-dir)" in err
    err = one_line_error(capsys, ["mnist", "published", "--published-dir",
                                  str(tmp_path / "missing")])
    assert "(from the published_dir argument (--published-dir))" in err
    assert "data_dir argument" not in err


def test_l0_attack_names_the_training_images_it_needs(mnist_dir):
    from invariance_tradeoffs.simulations.attacks.l0.attack import L0InvarianceAttack

    with pytest.raises(ValueError, match="train_images must hold at least 10 images"):
        L0InvarianceAttack(np.zeros((5, 28, 28), np.uint8), np.arange(5))


# ----------------------------------------------------------- Ctrl-C and a closed pipe
def _tradeoffs(*argv: str, **kw) -> subprocess.Popen:
    # A new session, so the signal below reaches the command and its workers as a
    # terminal's Ctrl-C does (the whole process group), and nothing else.
    return subprocess.Popen([sys.executable, "-m", "invariance_tradeoffs.simulations", *argv],
                            start_new_session=True, text=True, **kw)


def test_ctrl_c_prints_one_line_and_the_rerun_resumes(tmp_path, mnist_dir):
    out = tmp_path / "run"
    argv = ["mnist", "attack", "linf", "--eps", "0.3", "--indices", "0:40", "--batch-size",
            "5", "--n-jobs", "1", "--data-dir", str(mnist_dir), "--no-progress",
            "--out", str(out)]
    p = _tradeoffs(*argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    parts = out / "linf_eps0.3.parts"
    deadline = time.monotonic() + 120
    while not (parts.exists() and any(parts.glob("part-*.npz"))):
        assert p.poll() is None and time.monotonic() < deadline, "no part written in time"
        time.sleep(0.2)
    os.killpg(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert err.strip().splitlines() == [
        "tradeoffs: interrupted; rerun the same command to resume (finished work is kept)"]
    rerun = _tradeoffs(*argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out_text, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    with np.load(out / "linf_eps0.3.npz", allow_pickle=False) as run:
        assert run["source_indices"].tolist() == list(range(40))


def test_a_closed_pipe_ends_quietly():
    p = _tradeoffs("theory", "families", "--json", stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE, bufsize=0)
    p.stdout.read(1)  # the reader takes one byte and goes away, as `| head -c 1` does
    p.stdout.close()
    err = p.stderr.read()
    p.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert p.returncode in (0, 141)


def test_scikit_learn_does_not_swallow_ctrl_c_in_toy_training(monkeypatch):
    # scikit-learn's MLP catches KeyboardInterrupt, warns and returns a half-trained model;
    # the toy training raises it again so an interrupted run stops instead of keeping it.
    from sklearn.neural_network import MLPClassifier

    from invariance_tradeoffs.simulations.experiments.toy.training import fit_adversarial_mlp

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(MLPClassifier, "_backprop", interrupted)
    X = np.random.default_rng(0).normal(size=(40, 2))
    with pytest.raises(KeyboardInterrupt):
        fit_adversarial_mlp(X, (X[:, 0] > 0).astype(int), eps=0.0, epochs=1)
