"""An app that answers with the pid of the worker that served the request."""

from __future__ import annotations

import os

from fastapi import FastAPI

app = FastAPI()


@app.get("/pid")
def pid() -> dict[str, int]:
    return {"pid": os.getpid()}
