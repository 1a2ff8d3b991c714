# altinn-receiver as a container: `docker build -t altinn-receiver:0.1.0 .`
# Config is a mounted file (/config/receiver.toml, example: deploy/receiver.toml) whose secrets come from the
# environment through ${VAR}; the store and attachments live on the /data volume. See docs/operations.md.

FROM python:3.11-slim AS build
WORKDIR /src
# Every dependency is the wheel requirements.lock pins (`make lock`), checked against its hash, and the project is a
# wheel of its own: the runtime stage installs them without a compiler, the network or the source.
COPY requirements.lock ./
RUN pip wheel --no-cache-dir --require-hashes --no-deps --wheel-dir /wheels -r requirements.lock \
 && cp requirements.lock /wheels/
COPY pyproject.toml README.md LICENSE ./
COPY receiver ./receiver
COPY handlers ./handlers
COPY altinn_sim ./altinn_sim
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# A fixed non-root uid/gid, so volume ownership (Kubernetes fsGroup, Compose volumes) can name it.
RUN groupadd --system --gid 10001 receiver \
 && useradd --system --uid 10001 --gid receiver --home-dir /data --no-create-home --shell /usr/sbin/nologin receiver \
 && mkdir -p /data /config /secrets/maskinporten \
 && chown receiver:receiver /data /secrets/maskinporten
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels --require-hashes -r /wheels/requirements.lock \
 && pip install --no-cache-dir --no-index --no-deps /wheels/altinn_receiver-*.whl \
 && rm -rf /wheels
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
# slim has no curl: ask /healthz with the standard library (urlopen raises on anything but 2xx).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
# serve drains on SIGTERM: pushes and /readyz answer 503, running handlers get receiver.shutdown_timeout.
STOPSIGNAL SIGTERM
CMD ["altinn-receiver", "serve", "--config", "/config/receiver.toml"]
