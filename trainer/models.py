"""The lecture's models: VAE encoder and decoder, GAN generator and discriminator,
a small convolutional denoising autoencoder, and an evaluation classifier; and the
VAE and GAN conditioned on the digit (``classes=10``), the lecture's P(X | Y = y).

Shapes in comments are (channels x height x width) per image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genserve.contract import DIGITS, LATENT_DIM, NOISE_DIM

IMAGE_SIZE = 28


class OneHot(nn.Module):
    """digit int64 [N] -> one-hot float32 [N, classes]; a lookup in a fixed identity
    matrix, which exports to ONNX as one Gather."""

    def __init__(self, classes: int):
        super().__init__()
        self.register_buffer("eye", torch.eye(classes), persistent=False)

    def forward(self, digit: torch.Tensor) -> torch.Tensor:
        return self.eye[digit]


def _with_digit(h: torch.Tensor, one_hot: OneHot | None, digit: torch.Tensor | None) -> torch.Tensor:
    """``h`` with the digit's one-hot code appended, for a conditional model."""
    if one_hot is None:
        return h
    if digit is None:
        raise ValueError("a conditional model needs the digit")
    return torch.cat([h, one_hot(digit)], 1)


def keras_init_(module: nn.Module) -> nn.Module:
    """Glorot-uniform weights and zero biases, Keras' defaults, which the lecture's VAE
    was trained with. Torch's default init leaves most of the encoder's 16 ReLU units
    dead within the first epochs, which costs the ELBO dearly.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return module


class VAEEncoder(nn.Module):
    """image [N,1,28,28] in [0,1] (and digit [N] when conditional) -> (z_mean, z_log_var),
    each [N,2]. Conditional (``classes``): the digit's one-hot code joins the conv features."""

    def __init__(self, latent_dim: int = LATENT_DIM, classes: int = 0):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, stride=2, padding=1)  # 32 x 14 x 14
        self.conv2 = nn.Conv2d(32, 64, 3, stride=2, padding=1)  # 64 x 7 x 7
        self.one_hot = OneHot(classes) if classes else None
        self.dense = nn.Linear(64 * 7 * 7 + classes, 16)
        self.z_mean = nn.Linear(16, latent_dim)
        self.z_log_var = nn.Linear(16, latent_dim)
        keras_init_(self)
        # Negative slope of the 16-unit ReLU while training only (see VAETask); 0 outside
        # a training step, so the model as evaluated and exported is the lecture's.
        self.leak = 0.0

    def forward(self, image: torch.Tensor, digit: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.relu(self.conv2(F.relu(self.conv1(image))))
        h = self.dense(_with_digit(h.flatten(1), self.one_hot, digit))  # 3136 (+ 10) -> 16
        h = F.leaky_relu(h, self.leak) if self.leak else F.relu(h)
        return self.z_mean(h), self.z_log_var(h)


class VAEDecoder(nn.Module):
    """z [N,2] (and digit [N] when conditional) -> image [N,1,28,28] in [0,1].

    ``logits`` gives the pre-sigmoid output, which the loss needs for a stable BCE.
    """

    def __init__(self, latent_dim: int = LATENT_DIM, classes: int = 0):
        super().__init__()
        self.one_hot = OneHot(classes) if classes else None
        self.dense = nn.Linear(latent_dim + classes, 64 * 7 * 7)
        self.deconv1 = nn.ConvTranspose2d(64, 64, 3, stride=2, padding=1, output_padding=1)  # 64 x 14 x 14
        self.deconv2 = nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1)  # 32 x 28 x 28
        self.out = nn.ConvTranspose2d(32, 1, 3, stride=1, padding=1)  # 1 x 28 x 28
        keras_init_(self)

    def logits(self, z: torch.Tensor, digit: torch.Tensor | None = None) -> torch.Tensor:
        h = F.relu(self.dense(_with_digit(z, self.one_hot, digit))).view(-1, 64, 7, 7)
        h = F.relu(self.deconv2(F.relu(self.deconv1(h))))
        return self.out(h)

    def forward(self, z: torch.Tensor, digit: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(self.logits(z, digit))


class VAE(nn.Module):
    def __init__(self, latent_dim: int = LATENT_DIM, classes: int = 0):
        super().__init__()
        self.encoder = VAEEncoder(latent_dim, classes)
        self.decoder = VAEDecoder(latent_dim, classes)

    @staticmethod
    def reparameterize(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
        return mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)

    def forward(self, image: torch.Tensor, digit: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (reconstruction logits, z_mean, z_log_var)."""
        mean, log_var = self.encoder(image, digit)
        return self.decoder.logits(self.reparameterize(mean, log_var), digit), mean, log_var


def vae_loss_terms(logits: torch.Tensor, image: torch.Tensor, mean: torch.Tensor,
                   log_var: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image (BCE summed over the 784 pixels, KL divergence), both in nats.

    KL term: Kingma and Welling, Auto-Encoding Variational Bayes, appendix B.
    """
    bce = F.binary_cross_entropy_with_logits(logits, image, reduction="none").flatten(1).sum(1)
    kl = -0.5 * torch.sum(1 + log_var - mean.pow(2) - log_var.exp(), dim=1)
    return bce, kl


class Generator(nn.Module):
    """noise [N,100] (and digit [N] when conditional) -> image [N,1,28,28] in [-1,1] (tanh).
    Conditional (``classes``): the digit's one-hot code is appended to the noise."""

    def __init__(self, noise_dim: int = NOISE_DIM, classes: int = 0):
        super().__init__()
        self.one_hot = OneHot(classes) if classes else None
        self.net = nn.Sequential(
            nn.Linear(noise_dim + classes, 256), nn.LeakyReLU(0.2),
            nn.Linear(256, 512), nn.LeakyReLU(0.2),
            nn.Linear(512, 1024), nn.LeakyReLU(0.2),
            nn.Linear(1024, IMAGE_SIZE * IMAGE_SIZE), nn.Tanh(),
        )

    def forward(self, noise: torch.Tensor, digit: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(_with_digit(noise, self.one_hot, digit)).view(-1, 1, IMAGE_SIZE, IMAGE_SIZE)


class UnitIntervalGenerator(nn.Module):
    """The generator as exported: tanh output mapped to [0,1] so every image output
    of the model repository means the same thing. Clamped too: (tanh + 1) / 2 rounds to
    just below 0 in float32 where tanh is -1."""

    def __init__(self, generator: Generator):
        super().__init__()
        self.generator = generator

    def forward(self, noise: torch.Tensor, digit: torch.Tensor | None = None) -> torch.Tensor:
        return torch.clamp((self.generator(noise, digit) + 1) * 0.5, 0.0, 1.0)


class Discriminator(nn.Module):
    """image [N,1,28,28] in [-1,1] -> logit [N,1] (the sigmoid lives in the loss)."""

    def __init__(self, dropout: float = 0.3):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(IMAGE_SIZE * IMAGE_SIZE, 1024), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Linear(1024, 512), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Linear(512, 256), nn.LeakyReLU(0.2), nn.Dropout(dropout),
            nn.Linear(256, 1),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)


class ProjectionDiscriminator(Discriminator):
    """image [N,1,28,28] in [-1,1], digit [N] -> logit [N,1]: the lecture's discriminator
    with a projection of the digit (Miyato and Koyama, cGANs with Projection Discriminator,
    2018): logit = w . h + embed(digit) . h over its last 256 features h."""

    def __init__(self, classes: int = DIGITS, dropout: float = 0.3):
        super().__init__(dropout)
        self.embed = nn.Embedding(classes, self.net[-1].in_features)

    def forward(self, image: torch.Tensor, digit: torch.Tensor) -> torch.Tensor:
        h = self.net[:-1](image)
        return self.net[-1](h) + (self.embed(digit) * h).sum(1, keepdim=True)


class DenoisingAutoencoder(nn.Module):
    """noisy [N,1,28,28] in [0,1] -> clean estimate [N,1,28,28] in [0,1].

    A small U-Net: two downsampling stages, a skip connection at each resolution so
    that untouched strokes pass through unchanged.
    """

    def __init__(self, width: int = 16):
        super().__init__()
        w = width
        self.enc1 = nn.Sequential(nn.Conv2d(1, w, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(w, w, 3, padding=1), nn.ReLU())  # w x 28 x 28
        self.enc2 = nn.Sequential(nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU())  # 2w x 14 x 14
        self.bottom = nn.Sequential(nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1), nn.ReLU(),
                                    nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU())  # 2w x 7 x 7
        self.up2 = nn.ConvTranspose2d(2 * w, 2 * w, 2, stride=2)  # 2w x 14 x 14
        self.dec2 = nn.Sequential(nn.Conv2d(4 * w, 2 * w, 3, padding=1), nn.ReLU())
        self.up1 = nn.ConvTranspose2d(2 * w, w, 2, stride=2)  # w x 28 x 28
        self.dec1 = nn.Sequential(nn.Conv2d(2 * w, w, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(w, 1, 3, padding=1))  # 1 x 28 x 28

    def logits(self, noisy: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(noisy)
        e2 = self.enc2(e1)
        d2 = self.dec2(torch.cat([self.up2(self.bottom(e2)), e2], 1))
        return self.dec1(torch.cat([self.up1(d2), e1], 1))

    def forward(self, noisy: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(noisy))


class Classifier(nn.Module):
    """MNIST digit classifier used only to evaluate generators: its penultimate
    features give the Frechet distance, its softmax the Inception-Score analogue."""

    FEATURES = 128

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 32 x 14 x 14
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 64 x 7 x 7
            nn.Flatten(), nn.Dropout(0.25),
            nn.Linear(64 * 7 * 7, self.FEATURES), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(0.5), nn.Linear(self.FEATURES, 10))

    def features(self, image: torch.Tensor) -> torch.Tensor:
        return self.body(image)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(image))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
