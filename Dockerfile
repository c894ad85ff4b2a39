# One image for the API and the workers; the GPU worker adds the [train] extra.
FROM python:3.11-slim
ARG EXTRAS=""
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 YOLO_OFFLINE=1
WORKDIR /srv/hardcase
COPY pyproject.toml README.md ./
COPY app app
COPY workers workers
COPY ml ml
COPY migrations migrations
COPY frontend frontend
RUN pip install --no-cache-dir -e ".${EXTRAS}"
EXPOSE 8000
CMD ["hardcase", "serve", "--host", "0.0.0.0", "--port", "8000"]
