# Capgov: one image for the web process, both Celery workers and beat (see compose.yaml).
#   docker build -t capgov .
#   docker run --env-file .env -p 8000:8000 capgov                  # the web process
#   docker run --env-file .env capgov celery -A governance worker -Q bulk
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The pinned runtime dependencies first, so this layer is rebuilt only when they change.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install --no-cache-dir -c constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY . .

# Uploaded billing files live under /data/media: a volume shared by the web and the workers.
RUN groupadd --system --gid 10001 capgov \
    && useradd --system --uid 10001 --gid capgov --no-create-home --home-dir /app capgov \
    && mkdir -p /data/media \
    && chown -R 10001:10001 /data

ENV DJANGO_ENV=production \
    CAPGOV_VAR_DIR=/data \
    DJANGO_MEDIA_ROOT=/data/media \
    DJANGO_STATIC_ROOT=/app/staticfiles \
    GUNICORN_BIND=0.0.0.0:8000

# Static files are collected (hashed and compressed) into the image. The production checks
# need a key and hosts to start; these are used for this one command and never kept.
RUN DJANGO_SECRET_KEY=collectstatic-only-build-time-key-that-signs-nothing-at-all-0123456789 \
    DJANGO_ALLOWED_HOSTS=build.invalid \
    DATABASE_URL=sqlite:////tmp/build.sqlite3 \
    python manage.py collectstatic --no-input -v0

USER 10001:10001
EXPOSE 8000
# Gunicorn's heartbeat files in memory: a container's overlay disk can stall them.
CMD ["gunicorn", "-c", "deploy/gunicorn.conf.py", "--worker-tmp-dir", "/dev/shm"]
