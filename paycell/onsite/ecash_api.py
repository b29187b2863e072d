"""HTTP routes of on-site payment: ecash (filled in by the on-site work)."""

from __future__ import annotations

from fastapi import APIRouter

routers: list[APIRouter] = []
