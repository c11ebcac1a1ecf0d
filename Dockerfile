FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 LINEAGE_NATIVE_CACHE=/opt/lineage-native
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY constraints.txt pyproject.toml ./
# torch first (CPU wheel here; a CUDA base image installs its own), then everything held to it.
RUN pip install torch==2.13.0
COPY . .
RUN pip install -c constraints.txt . && npm ci --prefix contracts --no-audit --no-fund \
    && python -c "from inference.engine import cpu_kernels; print(cpu_kernels.build_library())" \
    && DEBUG=0 SECRET_KEY=collectstatic-only ALLOWED_HOSTS=localhost python manage.py collectstatic --noinput
# The slot-LoRA CPU kernel (gcc above) is built into the image once, so no container compiles at start-up.
# collectstatic runs with the production storage (DEBUG=0) so the hashed manifest the web process
# needs is written; the key above is a build-time placeholder and never reaches a running container.
EXPOSE 8000
CMD ["gunicorn", "lineage.wsgi", "--bind", "0.0.0.0:8000"]
