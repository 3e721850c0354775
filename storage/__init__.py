"""Database plumbing shared by every module that stores something (SQLAlchemy 2 + Alembic)."""
