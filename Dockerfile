# ctiserver image: the CTI server only. Asterisk and PostgreSQL run elsewhere
# (point config/ctiserver.yaml at them). The AMI secret is never baked in: give it at run time,
# e.g. `docker run -e CTISERVER_AMI_SECRET=... ` or from a secret store (config: secret_env).
# SMS goes through a Kannel gateway that also runs elsewhere (config/sms.yaml gateway); its sendsms
# password comes the same way: -e CTISERVER_KANNEL_PASSWORD=...
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    CTISERVER_HTTP_HOST=0.0.0.0
# FastAGI has no authentication, so it stays on the container's loopback unless you say otherwise.
# For an Asterisk on another host: run the container on a private network only Asterisk shares
# (docker run --network pbxnet -e CTISERVER_AGI_HOST=0.0.0.0 ..., without -p 4573), or publish
# the port on a private interface only (-p 10.0.0.5:4573:4573) with a firewall that accepts
# Asterisk's addresses alone. Never publish 4573 on a public address.

# espeak-ng for TTS prompts, sox to convert them to 8 kHz (and to merge recordings), opus-tools to compress
# recordings (docs/qc.md), graphviz for `ivr graph`.
RUN apt-get update \
 && apt-get install -y --no-install-recommends espeak-ng libespeak-ng1 sox opus-tools graphviz tzdata \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 cti
WORKDIR /app

COPY pyproject.toml README.md constraints.txt ./
COPY ctiserver ./ctiserver
RUN pip install -c constraints.txt .

COPY config ./config
RUN mkdir -p /app/var && chown -R cti:cti /app/var

USER cti
EXPOSE 8080 4573
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"

# HTTP listens on all interfaces, FastAGI on loopback (env above); set CTISERVER_DB_URL for PostgreSQL.
CMD ["ctiserver", "serve", "--config", "/app/config", "--log-json"]
