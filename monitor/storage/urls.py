"""Database URLs: whether this installation can open one, without connecting.

Kept apart from `db` (engines and migrations), so that check-config loads SQLAlchemy's
dialects but not Alembic.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

__all__ = ["url_problem"]


def url_problem(url: str) -> str | None:
    """Why SQLAlchemy cannot open this kind of database here, or None: check-config and
    opening the database say it the same way. Loads the driver; connects to nothing."""
    try:
        parsed = make_url(url)
        parsed.get_dialect().import_dbapi()
    except NoSuchModuleError:  # also an ArgumentError, so first
        return f"unsupported database {parsed.drivername!r}"
    except ArgumentError as exc:
        return f"not a database URL ({exc})"
    except ImportError as exc:
        return f"the driver for {parsed.drivername!r} is not installed ({exc})"
    return None
