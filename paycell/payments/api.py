"""HTTP routes of paycell.payments (filled in by its issue's work)."""

from __future__ import annotations

from fastapi import APIRouter

routers: list[APIRouter] = []
