import pytest
import torch

from trainer.models import (VAE, Classifier, DenoisingAutoencoder, Discriminator, Generator, UnitIntervalGenerator,
                            VAEDecoder, VAEEncoder, count_parameters)


@pytest.mark.parametrize("module, expected", [
    (VAEEncoder, 69_076), (VAEDecoder, 65_089), (Generator, 1_486_352), (Discriminator, 1_460_225),
])
def test_parameter_counts_match_the_lecture(module, expected):
    assert count_parameters(module()) == expected


def test_shapes_and_ranges():
    torch.manual_seed(0)
    images = torch.rand(5, 1, 28, 28)
    mean, log_var = VAEEncoder()(images)
    assert mean.shape == log_var.shape == (5, 2)
    decoded = VAEDecoder()(torch.randn(5, 2))
    assert decoded.shape == (5, 1, 28, 28) and 0 <= decoded.min() and decoded.max() <= 1
    generated = UnitIntervalGenerator(Generator())(torch.randn(5, 100) * 10)
    assert generated.shape == (5, 1, 28, 28) and 0 <= generated.min() and generated.max() <= 1
    assert Discriminator()(images).shape == (5, 1)
    denoised = DenoisingAutoencoder()(images)
    assert denoised.shape == (5, 1, 28, 28) and 0 <= denoised.min() and denoised.max() <= 1
    assert Classifier()(images).shape == (5, 10)
    logits, mean, log_var = VAE()(images)
    assert logits.shape == (5, 1, 28, 28)


def test_denoiser_and_classifier_stay_small():
    assert count_parameters(DenoisingAutoencoder()) < 100_000
    assert count_parameters(Classifier()) < 500_000
