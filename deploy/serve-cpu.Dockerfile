# syntax=docker/dockerfile:1
# genserve on onnxruntime's CPU execution provider: the server's dependencies only, no torch.
#
#   docker build -f deploy/serve-cpu.Dockerfile -t genserve:cpu .
#   docker run --rm -p 50051:50051 -p 8000:8000 -p 9090:9090 genserve:cpu
#
# The default model repository is baked in at /models; mount another over it to serve
# other models: -v "$PWD/models:/models:ro". Every flag of `python -m server` can be set
# with its GENSERVE_* variable (-e GENSERVE_WORKERS=2).

FROM python:3.12-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY deploy/install.sh deploy/
COPY genserve/ genserve/
COPY server/ server/
RUN deploy/install.sh serve /opt/venv

FROM python:3.12-slim-bookworm
RUN groupadd --system --gid 10001 genserve \
 && useradd --system --uid 10001 --gid genserve --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin genserve
COPY --from=build /opt/venv /opt/venv
COPY models/ /models/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GENSERVE_MODEL_REPOSITORY=/models \
    GENSERVE_PROVIDERS=cpu
USER 10001:10001
EXPOSE 50051 8000 9090
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "server.healthcheck"]
ENTRYPOINT ["python", "-m", "server"]
