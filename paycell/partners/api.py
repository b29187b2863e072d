"""HTTP API of paycell.partners (mounted under /v1 by paycell.api.app)."""

from __future__ import annotations

from fastapi import APIRouter

routers: list[APIRouter] = []
