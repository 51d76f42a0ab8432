"""The GPU procedure: onnxruntime-gpu carried over in parts, the CUDA-against-CPU
equality checks and the GPU throughput table (bench/gpu/run.sh runs them in one go)."""
