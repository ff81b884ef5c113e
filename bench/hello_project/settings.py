"""Django 5.2's hello world with no middleware: the floor bench/http_floor.py compares the
project's HTTP paths against, under the same ASGI server."""

SECRET_KEY = "bench-hello-world-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "bench.hello_project.urls"
INSTALLED_APPS = []
MIDDLEWARE = []
DATABASES = {}
USE_TZ = True
