FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# Hashed, compressed static files for whitenoise; the key is only for this build step.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput
RUN useradd --system --uid 1000 monitor
USER monitor
EXPOSE 8000
# Websocket messages up to 16 MiB reach the application, which answers oversize trace frames
# (TRACE_MAX_FRAME_BYTES) with an Error reply instead of daphne's bare 1009 (docs/limits.md).
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "--proxy-headers", "--websocket-max-message-size", "16777216", "--websocket-max-frame-size", "16777216", "trace_project.asgi:application"]
