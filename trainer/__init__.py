"""genserve trainer: the lecture's VAE, GAN and denoising autoencoder on MNIST,
trained in PyTorch and exported to an ONNX model repository."""
