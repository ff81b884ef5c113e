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
# The web server (plumbing/serve.py): uvicorn with uvloop and httptools, WEB_CONCURRENCY
# processes sharing port 8000 (`auto`: one per core), websocket messages up
# to 16 MiB (TRACE_MAX_FRAME_BYTES answers oversize trace frames), X-Forwarded-* from the proxy.
# MONITOR_SERVER=daphne runs daphne instead. Both can be set in .env.
ENV WEB_CONCURRENCY=auto
CMD ["python", "-m", "plumbing.serve", "-b", "0.0.0.0", "-p", "8000", "--proxy-headers"]
