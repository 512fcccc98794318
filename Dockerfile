# Parvis: one image for the five services and the gateway.
#   docker run parvis            -> the GraphQL gateway on :8000
#   docker run parvis service agenda   (consultation, satisfaction, payment_link, notification)
# Configuration comes from the environment only (see README.md); docker-compose.yml wires it up.

# -- build: install Parvis and its pinned dependencies into a virtualenv -----------------------------
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/parvis
ENV PATH=/opt/parvis/bin:$PATH
# nameko imports pkg_resources, which setuptools 81 removed (see pyproject.toml).
RUN pip install "setuptools>=68,<81" wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY core ./core
COPY parvis ./parvis
COPY contracts ./contracts
COPY services ./services
COPY gateway ./gateway
RUN pip install . && python -m compileall -q /opt/parvis/lib

# -- runtime: the virtualenv only, run as an unprivileged user ---------------------------------------
FROM python:3.11-slim
ENV PATH=/opt/parvis/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PARVIS_ENV=production \
    PARVIS_DATA_DIR=/var/lib/parvis
RUN groupadd --system --gid 10001 parvis \
 && useradd --system --uid 10001 --gid parvis --home-dir /var/lib/parvis --create-home --shell /usr/sbin/nologin parvis
COPY --from=build /opt/parvis /opt/parvis
USER parvis
WORKDIR /var/lib/parvis
# 8000: the gateway (GraphQL, /healthz, /readyz, /metrics); 9100: a service's /metrics
# (set PARVIS_METRICS_PORT=9100 in the service's environment).
EXPOSE 8000 9100
ENTRYPOINT ["parvis"]
CMD ["gateway"]
