"""uvicorn factory for the benchmark: the intake API on the bench's own database.

`create_app` of the service always names the `jingmin_intake` database unless given a
DSN, so the bench starts uvicorn on this module with BENCH_DSN pointing at its
throw-away database:

    BENCH_DSN=postgresql://.../jingmin_bench_<ts> JINGMIN_HOME=<tmp> \\
        python -m uvicorn --factory --app-dir tests/bench intake_app:create_app
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from jingmin_intake.entrypoints.app import create_app as create_intake_app


def create_app() -> FastAPI:
    app: FastAPI = create_intake_app(dsn=os.environ["BENCH_DSN"])
    return app
