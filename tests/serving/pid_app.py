"""An app that answers with the pid of the worker that served the request."""

from __future__ import annotations

import gc
import os

from fastapi import FastAPI

app = FastAPI()


@app.get("/pid")
def pid() -> dict[str, int]:
    return {"pid": os.getpid()}


@app.get("/gc")
def collector() -> dict[str, int]:
    return {"frozen": gc.get_freeze_count(), "young": gc.get_threshold()[0]}
