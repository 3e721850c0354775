"""Row ids as routes take them: a whole number the database can hold.

SQLite and PostgreSQL keep ids as signed 64-bit integers; a larger number in a URL would reach the
driver and fail there (a 500). Routes declare ids with these types instead, so such a request is a
422 that says why (found by the schemathesis fuzz run, tests/test_security_fuzz.py).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

MAX_ROW_ID = 2**63 - 1

RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="a row id")]
AfterId = Annotated[int, Query(ge=0, le=MAX_ROW_ID, description="only rows with a larger id")]
OptionalRowId = Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)]
