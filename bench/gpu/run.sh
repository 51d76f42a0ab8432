#!/usr/bin/env bash
# The GPU procedure in one go, on a machine with an NVIDIA GPU (CUDA 13 drivers), Python
# 3.12, torch, onnx and the CUDA 13 libraries as pip packages, and no network:
#   1. onnxruntime-gpu from the parts carried over (python -m bench.gpu.wheel split here,
#      keep there after each carrying call), joined, sha256-checked and installed in
#      place of the CPU build;
#   2. python -m bench.gpu.check: every model's CUDA outputs against the CPU's, and a
#      server with --providers cuda,cpu serving every model on CUDA;
#   3. python -m bench.gpu.throughput: the GPU table;
#   4. with TRAIN=1, two epochs of every run at --profile full --device cuda, for epoch times;
#   5. with RETRAIN=1, the lecture's GAN and VAE trained at full length (EPOCHS_GAN, EPOCHS_VAE
#      to go longer) into /tmp/gpu-runs and exported into a copy of the repository, then
#      evaluated: ship a new version only where it beats the shipped one on every figure.
# Results go to $OUT (default gpu-results/), one Markdown file a step.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${OUT:-gpu-results}"
mkdir -p "$out"

has_cuda() { python -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())"; }
if ! has_cuda; then
    wheel=$(python -m bench.gpu.wheel join "${ORT_PARTS:-/tmp/ort-parts}" --out /tmp)
    python -m pip uninstall -y -q onnxruntime || true  # both wheels install the module onnxruntime
    python -m pip install -q --no-deps --no-index "$wheel"
fi
# The CUDA libraries come as pip packages (nvidia-*): onnxruntime's provider finds them on the library path.
libs=$(python - <<'PY'
import site, pathlib
roots = [pathlib.Path(p) for p in site.getsitepackages()]
print(":".join(sorted({str(d) for r in roots for d in r.glob("nvidia/*/lib") if d.is_dir()})))
PY
)
export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
has_cuda || { echo "onnxruntime still has no CUDA provider" >&2; exit 1; }

python -m bench.gpu.check | tee "$out/check.md"
python -m bench.gpu.throughput | tee "$out/throughput.md"
if [ "${TRAIN:-0}" = 1 ]; then
    for model in vae gan dae classifier cvae cgan; do
        /usr/bin/time -f "$model: %e s for 2 epochs" python -m trainer train --model "$model" --profile full \
            --device cuda --epochs 2 --run-dir "/tmp/gpu-runs" --no-progress 2>&1 | tail -1 | tee -a "$out/train.md"
    done
fi
if [ "${RETRAIN:-0}" = 1 ]; then
    cp -r models /tmp/gpu-models
    python -m trainer train --model gan --profile full --device cuda --run-dir /tmp/gpu-runs --no-progress \
        ${EPOCHS_GAN:+--epochs "$EPOCHS_GAN"} 2>&1 | tail -3 | tee -a "$out/retrain.md"
    python -m trainer train --model vae --profile full --device cuda --run-dir /tmp/gpu-runs --no-progress \
        ${EPOCHS_VAE:+--epochs "$EPOCHS_VAE"} 2>&1 | tail -3 | tee -a "$out/retrain.md"
    python -m trainer export --from-checkpoints /tmp/gpu-runs --model gan --model vae --model-repository /tmp/gpu-models \
        2>&1 | tail -3 | tee -a "$out/retrain.md"
    python -m trainer evaluate --model-repository /tmp/gpu-models --out "$out/evaluation.json" \
        2>&1 | tail -20 | tee -a "$out/retrain.md"
    cp -r /tmp/gpu-models "$out/models"
fi
