# One image for every Python service: web (gunicorn), sweeper, flower and the workers.
#   docker build -t mri-classifier:cpu .                                  # tensorflow-cpu
#   docker build -t mri-classifier:gpu --build-arg EXTRAS=gpu .           # tensorflow[and-cuda]
# The web, sweeper and flower services never import TensorFlow; they share the image
# so that one build serves the whole stack.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG EXTRAS=ml
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Only the dependencies live in the venv (the project itself is uninstalled again); the
# code is copied into /app below, so a code change does not reinstall TensorFlow.
COPY pyproject.toml README.md ./
RUN mkdir -p webapp predictions workers ml \
    && touch webapp/__init__.py predictions/__init__.py workers/__init__.py ml/__init__.py \
    && pip install ".[${EXTRAS}]" \
    && pip uninstall -y mri-classifier

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/app \
    VAR_DIR=/app/var \
    MEDIA_ROOT=/data/media \
    MODEL_REGISTRY_DIR=/app/models
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app \
    && mkdir -p /app/var /data/media /var/lib/flower \
    && chown -R app:app /app /data /var/lib/flower
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=app:app manage.py gunicorn.conf.py ./
COPY --chown=app:app webapp ./webapp
COPY --chown=app:app predictions ./predictions
COPY --chown=app:app workers ./workers
COPY --chown=app:app ml ./ml
COPY --chown=app:app models ./models
USER app
EXPOSE 8000 5555
# Each service in docker-compose.yml names its own command; this is the web server.
CMD ["gunicorn", "webapp.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--threads", "4", \
     "--access-logfile", "-"]
