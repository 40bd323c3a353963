# qlik2mqtt: Qlik Sense log4net events to MQTT. See docs/docker.md.
# Build stage: wheels for qlik2mqtt and everything it needs; no build tools reach the final image.
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY bridge ./bridge
COPY discovery ./discovery
COPY appenders ./appenders
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.12-slim
# Debian's mosquitto: the embedded broker when no mqtt.host is set (a first try; production
# names its broker). Its packaged service is not started in the container.
RUN apt-get update \
    && apt-get install -y --no-install-recommends mosquitto \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin qlik2mqtt \
    && mkdir -p /data /config \
    && chown qlik2mqtt /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels qlik2mqtt \
    && rm -rf /wheels
# State (sessions, failure flag) and the health report live in the /data volume.
ENV QLIK2MQTT_STATE_FILE=/data/state.json \
    QLIK2MQTT_LOGGING__FORMAT=json \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
EXPOSE 9997/udp 9998/udp 9996/udp
USER qlik2mqtt
WORKDIR /data
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 CMD ["qlik2mqtt", "health"]
# /config/config.yaml when mounted; otherwise every setting comes from QLIK2MQTT_* variables.
CMD ["sh", "-c", "if [ -f /config/config.yaml ]; then exec qlik2mqtt run --config /config/config.yaml; else exec qlik2mqtt run; fi"]
