import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from helpers import ROOT, run_cli

from trainer import checkpoints
from trainer.data import load_split, to_unit
from trainer.interrupts import InterruptAtStep
from trainer.recipes import MODELS, PROFILES, recipe_for
from trainer.tasks import TASKS


def _batch(n=64):
    split = load_split(split="train")
    return torch.from_numpy(to_unit(split.images[:n])), torch.from_numpy(split.labels[:n].astype(np.int64))


def _eval_losses(task, images, labels):
    """The losses ``task.step`` minimises, on the same batch, without dropout or updates."""
    task.train(False)
    torch.manual_seed(123)  # same sampling noise before and after the steps
    saved = {k: o.state_dict() for k, o in task.optimizers.items()}
    params = {k: {n: p.detach().clone() for n, p in m.state_dict().items()} for k, m in task.modules.items()}
    for opt in task.optimizers.values():
        for group in opt.param_groups:
            group["lr_saved"], group["lr"] = group["lr"], 0.0
    losses = task.step(images, labels)
    for k, opt in task.optimizers.items():
        opt.load_state_dict(saved[k])
        for group in opt.param_groups:
            group.pop("lr_saved", None)
    for k, m in task.modules.items():
        m.load_state_dict(params[k])
    task.train(True)
    return losses


@pytest.mark.parametrize("model, keys", [
    ("vae", ["loss"]), ("dae", ["loss"]), ("classifier", ["loss"]), ("gan", ["d_loss"]),
])
def test_training_steps_reduce_the_loss(model, keys):
    torch.manual_seed(0)
    task = TASKS[model](recipe_for("full", model))
    images, labels = _batch()
    before = _eval_losses(task, images, labels)
    for _ in range(3):
        task.step(images, labels)
    after = _eval_losses(task, images, labels)
    for key in keys:
        assert after[key] < before[key], (key, before, after)


def test_generator_step_fools_the_discriminator_more():
    torch.manual_seed(0)
    task = TASKS["gan"](recipe_for("full", "gan"))
    task.train(False)
    noise = torch.randn(64, 100)
    score = lambda: torch.sigmoid(task.discriminator(task.generator(noise))).mean().item()  # noqa: E731
    before = score()
    task.discriminator.requires_grad_(False)
    for _ in range(3):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            task.discriminator(task.generator(noise)), torch.ones(64, 1))
        task.optimizers["generator"].zero_grad()
        loss.backward()
        task.optimizers["generator"].step()
    assert score() > before


def test_profiles_cover_every_model_and_lecture_settings():
    for profile in PROFILES.values():
        assert set(profile) == set(MODELS)
    lecture_vae = PROFILES["lecture"]["vae"]
    assert (lecture_vae.optimizer, lecture_vae.lr, lecture_vae.batch_size, lecture_vae.epochs,
            lecture_vae.train_len) == ("rmsprop", 1e-3, 128, 30, 10_000)
    assert recipe_for("full", "vae", epochs=3, batch_size=None).epochs == 3


def test_train_writes_log_checkpoint_and_pictures(tiny_run):
    for model in MODELS:
        out = tiny_run / model
        records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in records] == [1]
        state = checkpoints.load(out / "checkpoint.pt")
        assert state["epoch"] == 1 and state["model"] == model
        assert (out / "loss_curves.png").stat().st_size > 1000
    for picture in ("vae/samples.png", "vae/latent_manifold.png", "vae/latent_means.png", "gan/samples.png",
                    "dae/denoise_salt10.png"):
        assert (tiny_run / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_first_ctrl_c_is_taken_at_the_next_step_and_a_second_at_once():
    previous = signal.getsignal(signal.SIGINT)
    with InterruptAtStep() as interrupt:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)  # the handler runs between bytecodes, here without raising
        assert interrupt.requested
        with pytest.raises(KeyboardInterrupt):
            interrupt.check()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
    assert signal.getsignal(signal.SIGINT) is previous
    with InterruptAtStep(enabled=False) as interrupt:  # as under torchrun
        assert signal.getsignal(signal.SIGINT) is previous


def _train_cmd(run_dir, *extra):
    return [sys.executable, "-m", "trainer", "train", "--model", "vae", "--profile", "quick", "--epochs", "3",
            "--train-len", "1024", "--run-dir", str(run_dir), "--no-progress", *extra]


@pytest.mark.slow
def test_interrupt_keeps_the_last_checkpoint_and_resume_matches_an_uninterrupted_run(tmp_path):
    straight = tmp_path / "straight"
    subprocess.run(_train_cmd(straight), check=True, capture_output=True, timeout=300, cwd=ROOT)

    interrupted = tmp_path / "interrupted"
    proc = subprocess.Popen(_train_cmd(interrupted), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    checkpoint = interrupted / "vae" / "checkpoint.pt"
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert checkpoints.load(interrupted / "vae" / "checkpoint.pt")["epoch"] in (1, 2)
    assert not list((interrupted / "vae").glob("*.tmp"))

    subprocess.run(_train_cmd(interrupted, "--resume"), check=True, capture_output=True, timeout=300, cwd=ROOT)
    a = checkpoints.load(straight / "vae" / "checkpoint.pt")
    b = checkpoints.load(interrupted / "vae" / "checkpoint.pt")
    assert b["epoch"] == 3
    for module in ("encoder", "decoder"):
        for name, tensor in a["modules"][module].items():
            torch.testing.assert_close(b["modules"][module][name], tensor, rtol=0, atol=0)
    log = interrupted / "vae" / "metrics.jsonl"
    epochs = [json.loads(line)["epoch"] for line in log.read_text().splitlines()]
    assert epochs == [1, 2, 3]


@pytest.mark.slow
def test_resume_with_other_settings_is_refused(tmp_path):
    subprocess.run(_train_cmd(tmp_path, "--epochs", "1", "--train-len", "256"), check=True, capture_output=True,
                   timeout=300, cwd=ROOT)
    result = subprocess.run(_train_cmd(tmp_path, "--epochs", "2", "--train-len", "256", "--resume"),
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 1
    assert "resume with the same settings" in result.stderr and "Traceback" not in result.stderr


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    result = run_cli("train", "--model", "vae", "--run-dir", str(tmp_path), "--resume", "--epochs", "1",
                     "--train-len", "256", "--no-progress")
    assert result.returncode == 1
    assert "checkpoint.pt: unreadable checkpoint" in result.stderr and "Traceback" not in result.stderr


def test_r1_penalty_adds_the_discriminator_gradient_norm():
    images, labels = _batch()
    losses = {}
    for gamma in (0.0, 10.0):
        torch.manual_seed(0)
        task = TASKS["gan"](recipe_for("full", "gan", r1_gamma=gamma))
        task.train(False)  # no dropout: the two runs see the same discriminator
        losses[gamma] = task.step(images, labels)["d_loss"]
    assert losses[10.0] > losses[0.0]


@pytest.mark.parametrize("g_step_dropout", [True, False])
def test_the_generator_step_scores_with_or_without_the_discriminators_dropout(g_step_dropout):
    torch.manual_seed(0)
    task = TASKS["gan"](recipe_for("full", "gan", g_step_dropout=g_step_dropout))
    task.train(True)
    modes = []
    task.discriminator.register_forward_hook(lambda module, args, out: modes.append(module.training))
    task.step(*_batch())
    # Its own step on real and on fake images with dropout, then the generator's step.
    assert modes == [True, True, g_step_dropout]
    assert task.discriminator.training


def test_the_vae_relu_starts_leaky_and_ends_plain():
    import torch

    from trainer.recipes import Recipe
    from trainer.tasks import VAETask

    torch.manual_seed(0)
    task = VAETask(Recipe(epochs=1, relu_leak=0.2, relu_leak_epochs=1))
    task.steps_per_epoch = 4
    images = torch.rand(8, 1, 28, 28)
    slopes = []
    for _ in range(5):
        slopes.append(round(task.leak(), 6))
        task.step(images, torch.zeros(8, dtype=torch.long))
        assert task.vae.encoder.leak == 0.0  # outside a step the model is the lecture's
    assert slopes == [0.2, 0.15, 0.1, 0.05, 0.0]


def test_weight_decay_makes_adam_decoupled_adamw():
    from trainer.recipes import recipe_for
    from trainer.tasks import VAETask

    assert recipe_for("full", "vae").weight_decay == 0.1
    optimizer = VAETask(recipe_for("full", "vae")).optimizers["vae"]
    assert type(optimizer) is torch.optim.AdamW and optimizer.defaults["weight_decay"] == 0.1
    assert type(VAETask(recipe_for("quick", "vae")).optimizers["vae"]) is torch.optim.Adam
