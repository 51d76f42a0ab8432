# The client SDK and its command line (python -m client ...), for jobs that call a
# genserve server: the dataset Job in deploy/k8s. Neither torch nor onnxruntime.
#   docker build -f deploy/client.Dockerfile -t genserve-client .

FROM python:3.12-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY deploy/install.sh deploy/
COPY genserve/ genserve/
COPY client/ client/
RUN deploy/install.sh client /opt/venv

FROM python:3.12-slim-bookworm
RUN groupadd --system --gid 10001 genserve \
 && useradd --system --uid 10001 --gid genserve --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin genserve
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
ENTRYPOINT ["python", "-m", "client"]
