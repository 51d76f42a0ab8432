"""One training task per model: its modules, optimizers, one step, and its test metrics.

Images reach ``step`` as float32 [B,1,28,28] in [0,1] on the training device.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import Split, add_salt, to_unit
from .metrics import psnr
from . import pictures
from .models import (DIGITS, VAE, Classifier, DenoisingAutoencoder, Discriminator, Generator,
                     NOISE_DIM, ProjectionDiscriminator, vae_loss_terms)
from .recipes import Recipe

EVAL_BATCH = 500


def make_optimizer(params, recipe: Recipe, betas: tuple[float, float] = (0.9, 0.999)):
    if recipe.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=recipe.lr, alpha=0.9, eps=1e-7)  # Keras' defaults
    if recipe.optimizer == "adam" and recipe.weight_decay:
        return torch.optim.AdamW(params, lr=recipe.lr, betas=betas, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, betas=betas)
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}")


def make_scheduler(optimizer, recipe: Recipe, total_steps: int):
    if recipe.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    if recipe.schedule == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps)))
    raise ValueError(f"unknown schedule {recipe.schedule!r}")


def _batches(x: torch.Tensor, size: int = EVAL_BATCH):
    return (x[i:i + size] for i in range(0, len(x), size))


class Task:
    name: str
    modules: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    conv = True  # convolutional models run faster in channels_last on the CPU
    steps_per_epoch = 1  # set by the training loop

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        raise NotImplementedError

    def distribute(self, wrap) -> None:
        """Train through ``wrap(module)`` (DistributedDataParallel under torchrun) from now
        on. Evaluation and pictures keep using the plain modules, on rank 0 alone."""

    @torch.no_grad()
    def test_metrics(self, test: Split, device: torch.device) -> dict[str, float]:
        return {}

    def train(self, mode: bool = True) -> None:
        for module in self.modules.values():
            module.train(mode)

    def pictures(self, out: Path, test: Split) -> list[Path]:
        """PNGs a person would look at after this run, written into ``out``."""
        return []

    def numpy(self, fn, x: np.ndarray) -> np.ndarray:
        """Apply a module (or a function of modules) to a numpy batch, in chunks."""
        device = next(next(iter(self.modules.values())).parameters()).device
        with torch.no_grad():
            return torch.cat([fn(b.to(device)).cpu() for b in _batches(torch.from_numpy(x))]).numpy()

    def numpy2(self, fn, x: np.ndarray, digit: np.ndarray) -> np.ndarray:
        """``numpy`` for a conditional module: fn(x, digit)."""
        device = next(next(iter(self.modules.values())).parameters()).device
        with torch.no_grad():
            return torch.cat([fn(b.to(device), d.to(device)).cpu() for b, d in
                              zip(_batches(torch.from_numpy(x)), _batches(torch.from_numpy(digit)))]).numpy()


def digit_rows(per_digit: int) -> np.ndarray:
    """int64 [10 * per_digit]: each digit ``per_digit`` times, 0s first."""
    return np.repeat(np.arange(DIGITS, dtype=np.int64), per_digit)


class VAETask(Task):
    name = "vae"
    classes = 0  # 10: the conditional VAE, which sees the digit in both halves

    def __init__(self, recipe: Recipe):
        self.vae = VAE(classes=self.classes)
        self.net = self.vae  # what a training step calls
        self.modules = {"encoder": self.vae.encoder, "decoder": self.vae.decoder}
        self.optimizers = {"vae": make_optimizer(self.vae.parameters(), recipe)}
        self.recipe = recipe

    def distribute(self, wrap):
        self.net = wrap(self.vae)

    def leak(self) -> float:
        """The encoder ReLU's negative slope for the next step. Counted in the optimizer's
        own steps, which a resumed run restores with the optimizer."""
        if not self.recipe.relu_leak or not self.recipe.relu_leak_epochs:
            return 0.0
        first = next(iter(self.optimizers["vae"].state.values()), {})
        done = int(first.get("step", 0))
        return self.recipe.relu_leak * max(0.0, 1 - done / (self.recipe.relu_leak_epochs * self.steps_per_epoch))

    def step(self, images, labels):
        self.vae.encoder.leak = self.leak()
        try:
            bce, kl = vae_loss_terms(*self._forward(images, labels, self.net))
            loss = (bce + kl).mean()
            opt = self.optimizers["vae"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        finally:
            self.vae.encoder.leak = 0.0
        return {"loss": loss.item(), "bce": bce.mean().item(), "kl": kl.mean().item()}

    def _forward(self, images, labels, net=None):
        digit = (labels,) if self.classes else ()
        logits, mean, log_var = (net or self.vae)(images, *digit)
        return logits, images, mean, log_var

    @torch.no_grad()
    def test_metrics(self, test, device):
        self.train(False)
        bce_sum = kl_sum = 0.0
        labels = torch.from_numpy(test.labels.astype(np.int64))
        for x, y in zip(_batches(torch.from_numpy(to_unit(test.images))), _batches(labels)):
            bce, kl = vae_loss_terms(*self._forward(x.to(device), y.to(device)))
            bce_sum, kl_sum = bce_sum + bce.sum().item(), kl_sum + kl.sum().item()
        self.train(True)
        n = len(test.images)
        return {"test_loss": (bce_sum + kl_sum) / n, "test_bce": bce_sum / n, "test_kl": kl_sum / n}

    def pictures(self, out, test):
        self.train(False)
        decode = lambda z: self.numpy(self.vae.decoder, z)  # noqa: E731
        prior = np.random.default_rng(0).standard_normal((64, 2)).astype(np.float32)
        mean = self.numpy(lambda x: self.vae.encoder(x)[0], to_unit(test.images))
        self.train(True)
        return [pictures.save_grid(decode(prior), out / "samples.png", ncol=8),
                pictures.latent_manifold(decode, out / "latent_manifold.png"),
                pictures.latent_scatter(mean, test.labels, out / "latent_means.png")]


class CVAETask(VAETask):
    """The lecture's VAE conditioned on the digit: with the digit given, its two latent
    dimensions are left to hold the handwriting's style."""

    name = "cvae"
    classes = DIGITS

    def pictures(self, out, test):
        self.train(False)
        digits = digit_rows(10)
        prior = np.random.default_rng(0).standard_normal((10, 2)).astype(np.float32)
        decode = lambda z, d: self.numpy2(self.vae.decoder, z, d)  # noqa: E731
        samples = decode(np.tile(prior, (DIGITS, 1)), digits)  # a row per digit, one style per column
        manifold = lambda z: decode(z, np.full(len(z), 3, np.int64))  # noqa: E731
        self.train(True)
        return [pictures.save_grid(samples, out / "samples.png", ncol=10),
                pictures.latent_manifold(manifold, out / "latent_manifold_3.png")]


class GANTask(Task):
    """The lecture's GAN, trained in alternation: one discriminator step on a real
    and a fake batch, then one generator step through the frozen discriminator."""

    name = "gan"
    conv = False
    classes = 0  # 10: the conditional GAN, whose discriminator sees the digit by projection
    REAL_LABEL = 0.9  # one-sided label smoothing keeps D from saturating early
    # The exported generator is an exponential moving average of the trained one:
    # averaging over the last ~1000 steps smooths the oscillation of adversarial
    # training, which gives cleaner digits and steadier shares of each digit.
    EMA_DECAY = 0.999

    def __init__(self, recipe: Recipe):
        self.generator = Generator(classes=self.classes)
        self.discriminator = ProjectionDiscriminator(self.classes) if self.classes else Discriminator()
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)
        self.train_generator, self.train_discriminator = self.generator, self.discriminator
        self.recipe = recipe
        self.modules = {"generator": self.generator, "discriminator": self.discriminator,
                        "generator_ema": self.generator_ema}
        self.optimizers = {
            "generator": make_optimizer(self.generator.parameters(), recipe, betas=(0.5, 0.999)),
            "discriminator": make_optimizer(self.discriminator.parameters(), recipe, betas=(0.5, 0.999)),
        }

    def distribute(self, wrap):
        self.train_generator, self.train_discriminator = wrap(self.generator), wrap(self.discriminator)

    def step(self, images, labels):
        real = images * 2 - 1  # tanh range
        n = len(real)
        digit = (labels,) if self.classes else ()  # the fakes are drawn as the real batch's digits
        fake = self.train_generator(torch.randn(n, NOISE_DIM, device=real.device), *digit)
        ones, zeros = real.new_ones(n, 1), real.new_zeros(n, 1)

        real.requires_grad_(self.recipe.r1_gamma > 0)
        if self.train_discriminator is not self.discriminator:
            # Wrapped in DistributedDataParallel, which takes one forward pass per backward pass.
            both = (torch.cat([labels, labels]),) if digit else ()
            d_real, d_fake = self.train_discriminator(torch.cat([real, fake.detach()]), *both).split(n)
        else:
            d_real, d_fake = self.discriminator(real, *digit), self.discriminator(fake.detach(), *digit)
        d_loss = (F.binary_cross_entropy_with_logits(d_real, ones * self.REAL_LABEL)
                  + F.binary_cross_entropy_with_logits(d_fake, zeros))
        if self.recipe.r1_gamma > 0:
            # R1 (Mescheder et al. 2018): a steep D on real data is what lets G collapse onto easy digits.
            grad, = torch.autograd.grad(d_real.sum(), real, create_graph=True)
            d_loss = d_loss + 0.5 * self.recipe.r1_gamma * grad.pow(2).flatten(1).sum(1).mean()
        opt_d = self.optimizers["discriminator"]
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()

        # Non-saturating generator loss: maximise log D(G(z)). D is frozen here, so the plain
        # module serves: there is no gradient of D to synchronise.
        self.discriminator.requires_grad_(False)
        training = self.discriminator.training
        self.discriminator.train(training and self.recipe.g_step_dropout)
        g_loss = F.binary_cross_entropy_with_logits(self.discriminator(fake, *digit), ones)
        self.discriminator.train(training)
        opt_g = self.optimizers["generator"]
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        self.discriminator.requires_grad_(True)
        # Warm-up as in TensorFlow's ExponentialMovingAverage: short runs must not keep
        # the random initial weights in the average.
        steps = float(opt_g.state[next(self.generator.parameters())]["step"])
        decay = min(self.EMA_DECAY, (1 + steps) / (10 + steps))
        with torch.no_grad():
            for averaged, current in zip(self.generator_ema.parameters(), self.generator.parameters()):
                averaged.lerp_(current, 1 - decay)
        return {"d_loss": d_loss.item(), "g_loss": g_loss.item(),
                "d_real": torch.sigmoid(d_real).mean().item(), "d_fake": torch.sigmoid(d_fake).mean().item()}

    def pictures(self, out, test):
        self.train(False)
        noise = np.random.default_rng(0).standard_normal((64, NOISE_DIM)).astype(np.float32)
        images = (self.numpy(self.generator_ema, noise) + 1) / 2
        self.train(True)
        return [pictures.save_grid(images, out / "samples.png", ncol=8)]


class CGANTask(GANTask):
    """The lecture's GAN conditioned on the digit: the generator reads its one-hot code
    beside the noise, the discriminator projects it onto its last features."""

    name = "cgan"
    classes = DIGITS

    def pictures(self, out, test):
        self.train(False)
        noise = np.random.default_rng(0).standard_normal((10, NOISE_DIM)).astype(np.float32)
        images = (self.numpy2(self.generator_ema, np.tile(noise, (DIGITS, 1)), digit_rows(10)) + 1) / 2
        self.train(True)
        return [pictures.save_grid(images, out / "samples.png", ncol=10)]


class _Logits(nn.Module):
    """The DAE's logits as a forward pass, which DistributedDataParallel needs."""

    def __init__(self, dae: DenoisingAutoencoder):
        super().__init__()
        self.dae = dae

    def forward(self, noisy: torch.Tensor) -> torch.Tensor:
        return self.dae.logits(noisy)


class DAETask(Task):
    name = "dae"

    def __init__(self, recipe: Recipe):
        self.dae = DenoisingAutoencoder()
        self.net = _Logits(self.dae)  # what a training step calls
        self.modules = {"dae": self.dae}
        self.optimizers = {"dae": make_optimizer(self.dae.parameters(), recipe)}
        self.salt_max = recipe.salt_max

    def step(self, images, labels):
        fraction = torch.rand(len(images), 1, 1, 1, device=images.device) * self.salt_max
        salt = torch.rand_like(images) < fraction
        noisy = torch.where(salt, torch.ones_like(images), images)
        loss = F.binary_cross_entropy_with_logits(self.net(noisy), images)
        opt = self.optimizers["dae"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    def distribute(self, wrap):
        self.net = wrap(self.net)

    @torch.no_grad()
    def test_metrics(self, test, device):
        self.train(False)
        clean = to_unit(test.images[:2000])
        noisy = add_salt(clean, 0.10, np.random.default_rng(0))
        denoised = np.concatenate([self.dae(x.to(device)).cpu().numpy()
                                   for x in _batches(torch.from_numpy(noisy))])
        self.train(True)
        return {"test_psnr_salt10": psnr(denoised, clean), "test_psnr_noisy_salt10": psnr(noisy, clean)}

    def pictures(self, out, test):
        self.train(False)
        clean = to_unit(test.images[:12])
        paths = []
        for level in (0.1, 0.3):
            noisy = add_salt(clean, level, np.random.default_rng(0))
            paths.append(pictures.denoise_rows(noisy, self.numpy(self.dae, noisy), clean,
                                               out / f"denoise_salt{round(level * 100)}.png"))
        self.train(True)
        return paths


class ClassifierTask(Task):
    name = "classifier"

    def __init__(self, recipe: Recipe):
        self.classifier = Classifier()
        self.net = self.classifier  # what a training step calls
        self.modules = {"classifier": self.classifier}
        self.optimizers = {"classifier": make_optimizer(self.classifier.parameters(), recipe)}

    def distribute(self, wrap):
        self.net = wrap(self.classifier)

    def step(self, images, labels):
        loss = F.cross_entropy(self.net(images), labels)
        opt = self.optimizers["classifier"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    @torch.no_grad()
    def test_metrics(self, test, device):
        self.train(False)
        images, labels = torch.from_numpy(to_unit(test.images)), torch.from_numpy(test.labels.astype(np.int64))
        correct = sum((self.classifier(x.to(device)).argmax(1).cpu() == y).sum().item()
                      for x, y in zip(_batches(images), _batches(labels)))
        self.train(True)
        return {"test_accuracy": correct / len(labels)}


TASKS: dict[str, type[Task]] = {t.name: t for t in (VAETask, GANTask, DAETask, ClassifierTask,
                                                    CVAETask, CGANTask)}
