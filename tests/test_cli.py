"""The command line end to end on small runs, its error messages and exit codes, and --resume."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import raise_keyboard_interrupt

import sae_utils
from sae_utils import cli
from sae_utils.pretrained import load_model

SMALL = ["--train-size", "2000", "--batch-size", "200", "--n-hidden", "32", "--no-progress"]


def run_main(argv, capsys):
    """Run ``main(argv)`` in this process; return (exit status, stdout, stderr)."""
    try:
        status = cli.main(argv)
    except SystemExit as stop:  # argparse exits by itself on malformed flags
        status = stop.code
    out, err = capsys.readouterr()
    return status, out, err


def test_train_end_to_end(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "sae_utils", "train", "--penalty", "l1", "--epochs", "2", "--train-size", "2000",
         "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (out / "l1.pt").is_file() and not (out / "checkpoint.pt").exists()
    for pattern in ("*loss_curve.png", "*reconstructions.png"):
        (figure,) = out.glob(pattern)
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = json.loads((out / "l1.json").read_text())
    assert card["config"]["penalty"] == "l1" and card["config"]["epochs"] == 2
    assert card["history"]["epoch"] == [1, 2]
    assert card["metrics"]["train"]["n_images"] == 2000 and card["metrics"]["test"]["n_images"] == 10_000
    # The weights on disk reproduce the card's test metrics.
    model, _ = load_model(out / "l1.json")
    fresh = sae_utils.evaluate(model, sae_utils.load_mnist("test")[0])
    assert fresh["bce"] == pytest.approx(card["metrics"]["test"]["bce"], rel=1e-6)
    # The table: our losses beside the published ones.
    assert "published" in done.stdout and "0.07757" in done.stdout and "0.08090" in done.stdout
    assert f"{card['metrics']['test']['bce']:9.5f}" in done.stdout
    assert "Traceback" not in done.stderr


BAD_FLAGS = [
    (["--penalty", "l2"], "invalid choice: 'l2'"),
    (["--rho", "0"], "rho must lie in (0, 1), got 0.0"),
    (["--rho", "1.5"], "rho must lie in (0, 1), got 1.5"),
    (["--rho", "nan"], "rho must lie in (0, 1), got nan"),
    (["--beta", "-1"], "beta must lie in [0, inf), got -1.0"),
    (["--lam", "-0.1"], "lam must lie in [0, inf), got -0.1"),
    (["--lr", "0"], "lr must lie in (0, inf), got 0.0"),
    (["--lr", "inf"], "lr must lie in (0, inf), got inf"),
    (["--epochs", "0"], "epochs must be an integer >= 1, got 0"),
    (["--epochs", "2.5"], "argument --epochs: invalid int value: '2.5'"),
    (["--batch-size", "0"], "batch_size must be an integer >= 1, got 0"),
    (["--n-hidden", "0"], "n_hidden must be an integer >= 1, got 0"),
    (["--seed", "-1"], "seed must be an integer >= 0, got -1"),
    (["--device", "gpu"], "invalid choice: 'gpu'"),
    (["--train-size", "0"], "--train-size must be in [1, 60000], got 0"),
    (["--train-size", "100", "--batch-size", "200"], "batch_size must be at most the number of training images (100), got 200"),
    (["--learning-rate", "0.1"], "unrecognized arguments: --learning-rate"),
]


@pytest.mark.parametrize("flags, message", BAD_FLAGS, ids=[" ".join(f) for f, _ in BAD_FLAGS])
def test_bad_flags_exit_2_with_a_short_message(flags, message, tmp_path, capsys):
    status, out, err = run_main(["train", "--out", str(tmp_path / "run"), *flags], capsys)
    assert status == 2
    assert message in err
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_unwritable_out_is_reported_before_training(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")

    def no_work(*args, **kwargs):
        raise AssertionError("data was loaded or training started before --out was checked")

    monkeypatch.setattr(cli, "load_mnist", no_work)
    monkeypatch.setattr(cli, "train", no_work)
    status, _, err = run_main(["train", "--out", str(blocker / "run")], capsys)
    assert status == 2
    assert f"output folder {blocker / 'run'} cannot be written" in err and "Traceback" not in err


def test_divergence_exits_1_with_advice(tmp_path, capsys):
    status, _, err = run_main(["train", "--penalty", "l1", "--lr", "1e30", "--out", str(tmp_path), *SMALL], capsys)
    assert status == 1
    assert "diverged" in err and "epoch 1, batch" in err and "learning rate" in err and "Traceback" not in err


def test_resume_after_a_stopped_run_matches_an_uninterrupted_run(tmp_path, capsys, fail_at_step):
    argv = ["train", "--penalty", "kl", "--epochs", "2", *SMALL]
    assert run_main([*argv, "--out", str(tmp_path / "full")], capsys)[0] == 0

    stopped = tmp_path / "stopped"
    fail_at_step(15, raise_keyboard_interrupt)  # epoch 2 of 2, batch 5 of 10
    with pytest.warns(UserWarning, match="interrupted"):
        status, _, err = run_main([*argv, "--out", str(stopped)], capsys)
    assert status == 130 and "--resume" in err
    assert (stopped / "checkpoint.pt").is_file() and not (stopped / "kl.json").exists()

    # Running again without --resume would throw the stopped run away: refused.
    status, _, err = run_main([*argv, "--out", str(stopped)], capsys)
    assert status == 2 and "holds a stopped run" in err

    fail_at_step(10**9, raise_keyboard_interrupt)  # never
    assert run_main([*argv, "--out", str(stopped), "--resume"], capsys)[0] == 0
    full = json.loads((tmp_path / "full" / "kl.json").read_text())
    resumed = json.loads((stopped / "kl.json").read_text())
    assert resumed["history"]["epoch"] == [1, 2]
    for split in ("train", "test"):
        for key in ("bce", "penalty", "objective"):
            assert resumed["metrics"][split][key] == pytest.approx(full["metrics"][split][key], rel=1e-5)


def test_resume_without_a_stopped_run_is_refused(tmp_path, capsys):
    status, _, err = run_main(["train", "--out", str(tmp_path), "--resume", *SMALL], capsys)
    assert status == 2 and "no stopped run to continue" in err and "checkpoint.pt" in err


@pytest.mark.parametrize("junk", [b"PK\x03\x04 half a zip file", b"hello\n", bytes(range(7, 40))])
def test_resume_from_a_damaged_checkpoint_names_it(tmp_path, capsys, junk):
    (tmp_path / "checkpoint.pt").write_bytes(junk)
    status, _, err = run_main(["train", "--out", str(tmp_path), "--resume", *SMALL], capsys)
    assert status == 2 and str(tmp_path / "checkpoint.pt") in err and "Traceback" not in err
    assert "not a readable torch weights file" in err  # junk, not mistaken for a file that runs code


def test_evaluate_rejects_unknown_names(capsys):
    status, _, err = run_main(["evaluate", "l2"], capsys)
    assert status == 2 and "invalid choice: 'l2'" in err


def test_evaluate_with_a_missing_folder_names_it(tmp_path, capsys):
    status, _, err = run_main(["evaluate", "kl", "--dir", str(tmp_path / "nowhere")], capsys)
    assert status == 2 and str(Path(tmp_path / "nowhere" / "kl.json")) in err
