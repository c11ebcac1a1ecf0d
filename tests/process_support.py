"""Helpers for tests that start real processes (gunicorn, Celery workers) on the test database."""


def test_database_url() -> str:
    """The database this test sees, as a DATABASE_URL, so a child process uses the very same one (the
    per-run SQLite file, or the PostgreSQL test database CI uses)."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


test_database_url.__test__ = False  # a helper, not a test
