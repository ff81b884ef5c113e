"""The settings module read with a given environment, as a fresh process would read it."""

import json
import os
import runpy
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

pytestmark = pytest.mark.unit

SETTINGS_FILE = str(Path(__file__).resolve().parents[1] / "settings.py")

ALL_VARIABLES = [
    "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "DATABASE_URL", "DB_DEFAULT",
    "REDIS_URL", "REDIS_PREFIX", "DEBUG_SQL_QUERY", "DASHBOARDS_PUBLIC", "TIME_ZONE",
    "EMAIL_URL", "DEFAULT_FROM_EMAIL", "SECURE_HTTPS", "SECURE_SSL_REDIRECT",
    "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD", "TRUST_X_FORWARDED_PROTO",
    "STATIC_MANIFEST", "LOG_LEVEL",
]


@pytest.fixture
def load(monkeypatch):
    """load(**env) -> the settings module's globals, read with exactly that environment."""

    def read(**variables):
        for name in ALL_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        return runpy.run_path(SETTINGS_FILE, run_name="settings_under_test")

    return read


def test_no_environment_is_development_on_embedded_services(load):
    settings = load(DEBUG="True")
    assert settings["DATABASES"]["default"]["ENGINE"] == "django.db.backends.sqlite3"
    assert str(settings["DATABASES"]["default"]["NAME"]).endswith("db.sqlite3")
    assert settings["CHANNEL_LAYERS"]["default"]["BACKEND"].endswith(".InMemoryChannelLayer")
    assert settings["CACHES"]["default"]["BACKEND"].endswith("LocMemCache")
    assert settings["SECRET_KEY"].startswith("django-insecure")
    assert settings["DASHBOARDS_PUBLIC"] is False


def test_debug_defaults_to_off(load):
    assert load(SECRET_KEY="x" * 60)["DEBUG"] is False


def test_missing_secret_key_with_debug_off_names_the_variable(load):
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY"):
        load(DEBUG="False")


@pytest.mark.parametrize(
    "name, value",
    [
        ("DEBUG", "maybe"),
        ("DEBUG_SQL_QUERY", "sometimes"),
        ("DASHBOARDS_PUBLIC", "2"),
        ("SECURE_HSTS_SECONDS", "a year"),
        ("SECURE_HTTPS", "yes please"),
        ("DATABASE_URL", "notadatabase://x"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("DB_DEFAULT", "{not json"),
        ("DB_DEFAULT", '["ENGINE"]'),
        ("CSRF_TRUSTED_ORIGINS", "example.com"),
        ("LOG_LEVEL", "LOUD"),
        ("EMAIL_URL", "carrier-pigeon://x"),
    ],
)
def test_invalid_value_fails_naming_the_variable(load, name, value):
    with pytest.raises(ImproperlyConfigured, match=name):
        load(SECRET_KEY="x" * 60, **{name: value})


def test_database_url_postgres_gets_a_connect_timeout(load):
    settings = load(SECRET_KEY="k" * 60, DATABASE_URL="postgres://monitor:pw@db.example:5433/mon")
    database = settings["DATABASES"]["default"]
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert (database["HOST"], database["PORT"], database["NAME"]) == ("db.example", 5433, "mon")
    assert (database["USER"], database["PASSWORD"]) == ("monitor", "pw")
    assert database["OPTIONS"]["connect_timeout"] == 5


def test_db_default_json_of_seed_002(load):
    entry = {
        "ENGINE": "django.db.backends.postgresql", "NAME": "playground_kcidb", "USER": "u",
        "PASSWORD": 'p"w', "HOST": "127.0.0.1", "PORT": "5432", "CONN_MAX_AGE": None,
        "OPTIONS": {"connect_timeout": 2},
    }
    database = load(SECRET_KEY="k" * 60, DB_DEFAULT=json.dumps(entry))["DATABASES"]["default"]
    assert database["NAME"] == "playground_kcidb"
    assert database["PASSWORD"] == 'p"w'
    assert database["OPTIONS"]["connect_timeout"] == 2


def test_database_url_and_db_default_together_are_ambiguous(load):
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL and DB_DEFAULT"):
        load(
            SECRET_KEY="k" * 60,
            DATABASE_URL="postgres://localhost/a",
            DB_DEFAULT='{"ENGINE": "django.db.backends.sqlite3", "NAME": "x"}',
        )


def test_redis_url_selects_redis_channel_layer_and_cache(load):
    settings = load(SECRET_KEY="k" * 60, REDIS_URL="redis://127.0.0.1:6379/3")
    layer = settings["CHANNEL_LAYERS"]["default"]
    assert layer["BACKEND"] == "plumbing.library_internals.channels_redis_pubsub.PubSubChannelLayer"
    assert layer["CONFIG"]["hosts"] == [{"address": "redis://127.0.0.1:6379/3",
                                         "socket_connect_timeout": 2.0}]
    assert settings["CACHES"]["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert settings["CACHES"]["default"]["LOCATION"] == "redis://127.0.0.1:6379/3"


def test_hosts_and_origins_are_comma_separated(load):
    settings = load(
        SECRET_KEY="k" * 60,
        ALLOWED_HOSTS="monitor.example.com, .internal ,",
        CSRF_TRUSTED_ORIGINS="https://monitor.example.com,https://*.internal",
    )
    assert settings["ALLOWED_HOSTS"] == ["monitor.example.com", ".internal"]
    assert settings["CSRF_TRUSTED_ORIGINS"] == [
        "https://monitor.example.com", "https://*.internal",
    ]


def test_debug_sql_query_logs_statements(load):
    settings = load(SECRET_KEY="k" * 60, DEBUG_SQL_QUERY="True")
    assert settings["DEBUG_SQL_QUERY"] is True
    assert settings["LOGGING"]["loggers"]["django.db.backends"]["level"] == "DEBUG"
    assert load(SECRET_KEY="k" * 60)["LOGGING"]["loggers"]["django.db.backends"]["level"] == "INFO"


def test_secure_https_turns_on_every_https_setting(load):
    settings = load(SECRET_KEY="k" * 60, SECURE_HTTPS="True", SECURE_HSTS_PRELOAD="False")
    assert settings["SECURE_SSL_REDIRECT"] and settings["SESSION_COOKIE_SECURE"]
    assert settings["CSRF_COOKIE_SECURE"] and settings["SECURE_HSTS_INCLUDE_SUBDOMAINS"]
    assert settings["SECURE_HSTS_SECONDS"] == 31536000
    assert settings["SECURE_HSTS_PRELOAD"] is False
    assert "SECURE_PROXY_SSL_HEADER" not in settings
    proxied = load(SECRET_KEY="k" * 60, TRUST_X_FORWARDED_PROTO="True")
    assert proxied["SECURE_PROXY_SSL_HEADER"] == ("HTTP_X_FORWARDED_PROTO", "https")


def test_email_url_configures_smtp(load):
    settings = load(SECRET_KEY="k" * 60, EMAIL_URL="smtp://me:secret@mail.example:587/?tls=True")
    assert settings["EMAIL_BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert (settings["EMAIL_HOST"], settings["EMAIL_PORT"]) == ("mail.example", 587)
    assert settings["EMAIL_USE_TLS"] is True
    assert load(SECRET_KEY="k" * 60)["EMAIL_BACKEND"].endswith("console.EmailBackend")


def test_static_files_are_hashed_in_production(load):
    production = load(SECRET_KEY="k" * 60)
    assert production["STORAGES"]["staticfiles"]["BACKEND"].startswith("whitenoise.")
    development = load(DEBUG="True")
    assert development["STORAGES"]["staticfiles"]["BACKEND"].startswith("django.")
    assert development["WHITENOISE_USE_FINDERS"] is True


# --- the .env file of `make run` ----------------------------------------------------------------

@pytest.fixture
def env_file(tmp_path):
    """env_file(text) -> the path of a file holding text; what reading it put into os.environ is
    undone after the test, as for monkeypatch's own changes."""
    saved = dict(os.environ)

    def write(text):
        path = tmp_path / ".env"
        path.write_text(text)
        return str(path)

    yield write
    os.environ.clear()
    os.environ.update(saved)


def test_tests_read_no_env_file(load):
    # pytest.ini empties ENV_FILE: a developer's .env (DEBUG=True) cannot change test results.
    assert os.environ["ENV_FILE"] == ""
    assert load(SECRET_KEY="k" * 60)["DEBUG"] is False


def test_env_file_gives_development_defaults_to_every_command(load, env_file):
    path = env_file("# written by make run\nDEBUG=True\nSECRET_KEY=" + "s" * 60 + "\n")
    settings = load(ENV_FILE=path)
    assert settings["DEBUG"] is True
    assert settings["SECRET_KEY"] == "s" * 60
    assert settings["TM_ALLOW_ANONYMOUS_MACHINES"] is True


def test_real_environment_wins_over_the_env_file(load, env_file):
    path = env_file("DEBUG=True\nSECRET_KEY=" + "s" * 60 + "\n")
    settings = load(ENV_FILE=path, DEBUG="False", SECRET_KEY="e" * 60)
    assert settings["DEBUG"] is False
    assert settings["SECRET_KEY"] == "e" * 60


def test_production_without_secret_key_refuses_to_start_whatever_the_env_file(load, env_file):
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY is not set"):
        load(ENV_FILE=env_file("TIME_ZONE=Europe/Warsaw\n"))
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY is not set"):
        load(ENV_FILE=env_file("DEBUG=True\n"), DEBUG="False")
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY is not set"):
        load(ENV_FILE=str(Path(env_file("")).parent / "missing.env"))
    with pytest.raises(ImproperlyConfigured, match="ENV_FILE"):
        load(ENV_FILE=str(Path(env_file("")).parent))
