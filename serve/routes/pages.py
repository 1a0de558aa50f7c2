"""The call-taker page at ``/``, the supervisor page at ``/review``, the work-order desk at ``/orders`` (plain HTML and JavaScript in
``serve/static``; no build step) and the site icon at ``/favicon.ico`` (browsers ask for it on their own)."""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
router = APIRouter(include_in_schema=False)


@router.get("/")
async def call_taker_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")


@router.get("/review")
async def supervisor_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "review.html", media_type="text/html; charset=utf-8")


@router.get("/orders")
async def orders_desk_page() -> FileResponse:
    """The work-order desk (工单台): the home line acts on transfer orders (orders-desk.html/.js)."""
    return FileResponse(STATIC_DIR / "orders-desk.html", media_type="text/html; charset=utf-8")


@router.get("/favicon.ico")
async def favicon() -> FileResponse:
    """The tab icon (the two lines, red 110 and blue 12345); without it every page load logs a 404."""
    return FileResponse(STATIC_DIR / "favicon.ico", media_type="image/x-icon", headers={"Cache-Control": "public, max-age=86400"})
