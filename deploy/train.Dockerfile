# syntax=docker/dockerfile:1
# The trainer, with torch (PyPI's Linux build of torch carries CUDA): trains, evaluates
# and exports a model repository. MNIST ships with the image; nothing is downloaded.
#
#   docker build -f deploy/train.Dockerfile -t genserve-train .
#   docker run --rm --gpus all -v "$PWD/out:/out" genserve-train \
#       export --device cuda --run-dir /out/runs --model-repository /out/models
#   # on several GPUs of one machine:
#   docker run --rm --gpus all --ipc host -v "$PWD/out:/out" --entrypoint torchrun genserve-train \
#       --nproc-per-node 4 -m trainer export --run-dir /out/runs --model-repository /out/models

ARG CUDA_IMAGE=nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04

FROM ${CUDA_IMAGE} AS build
# DL3008 (pin apt versions): Ubuntu's python3 follows the pinned CUDA base image; pinning
# its patch release would break the build whenever Ubuntu replaces it.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY deploy/install.sh deploy/
COPY genserve/ genserve/
COPY trainer/ trainer/
RUN deploy/install.sh train /opt/venv

FROM ${CUDA_IMAGE}
# DL3008 (pin apt versions): Ubuntu's python3 follows the pinned CUDA base image; pinning
# its patch release would break the build whenever Ubuntu replaces it.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 genserve \
 && useradd --system --uid 10001 --gid genserve --create-home --home-dir /home/genserve \
            --shell /usr/sbin/nologin genserve \
 && mkdir /out && chown genserve:genserve /out
COPY --from=build /opt/venv /opt/venv
# Run from /app so that `python -m trainer` finds MNIST beside it in /app/data.
WORKDIR /app
COPY data/ data/
COPY trainer/ trainer/
COPY genserve/ genserve/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp/matplotlib
USER 10001:10001
ENTRYPOINT ["python", "-m", "trainer"]
CMD ["export", "--run-dir", "/out/runs", "--model-repository", "/out/models"]
