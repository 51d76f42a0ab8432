# syntax=docker/dockerfile:1
# genserve on onnxruntime's CUDA execution provider, on NVIDIA's CUDA 13 / cuDNN 9
# runtime. The server's dependencies only, no torch; onnxruntime-gpu in place of
# onnxruntime. Run with the NVIDIA container toolkit:
#
#   docker build -f deploy/serve-gpu.Dockerfile -t genserve:gpu .
#   docker run --rm --gpus 1 -p 50051:50051 -p 8000:8000 -p 9090:9090 genserve:gpu
#
# GENSERVE_PROVIDERS=cuda (set below) refuses to start where CUDA cannot load, rather
# than serve slowly on the CPU; set it to cuda,cpu to allow the fallback.

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
COPY server/ server/
RUN deploy/install.sh serve-gpu /opt/venv

FROM ${CUDA_IMAGE}
# DL3008 (pin apt versions): Ubuntu's python3 follows the pinned CUDA base image; pinning
# its patch release would break the build whenever Ubuntu replaces it.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 genserve \
 && useradd --system --uid 10001 --gid genserve --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin genserve
COPY --from=build /opt/venv /opt/venv
COPY models/ /models/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GENSERVE_MODEL_REPOSITORY=/models \
    GENSERVE_PROVIDERS=cuda
USER 10001:10001
EXPOSE 50051 8000 9090
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "server.healthcheck"]
ENTRYPOINT ["python", "-m", "server"]
