"""`feature-store ui`: one server-rendered page over the running platform.

FastAPI renders the page with Jinja2; the CSS and the few lines of JavaScript ship in
this package (`ui/static`), and the chart is inline SVG, so the page fetches nothing
from anywhere else. `/api/status` and `/api/lookup` give the same data as JSON.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from common.last_results import CONSISTENCY, load_result
from common.side_topics import SideTopics
from feature_store.config import PlatformConfig
from feature_store.errors import FeatureStoreError
from feature_store.registry import Registry
from ui import data
from ui.chart import step_chart

log = logging.getLogger(__name__)
HERE = Path(__file__).parent


def display(value: Any) -> str:
    """A value as the page shows it: floats to 6 significant digits, the rest as is."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        head = ", ".join(display(v) for v in value[:4])
        return f"[{head}{', …' if len(value) > 4 else ''}] ({len(value)})"
    return str(value)


def age(seconds: float | None) -> str:
    """`42 s`, `3.5 min`, `2.0 h`, `1.5 d` (or `-`)."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def create_app(config: PlatformConfig, registry: Registry) -> FastAPI:
    """The page's app; the side-topic subscriptions are created here, once."""
    app = FastAPI(title="feature store", docs_url=None, redoc_url=None)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["display"] = display
    templates.env.filters["age"] = age
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    sides = SideTopics(config, registry)
    try:
        sides.ensure_subscriptions()
    except Exception as exc:  # Pub/Sub down: the rest of the page still works
        log.warning("cannot create the side-topic subscriptions: %s", exc)
        for topic, _ in sides.sides:
            sides.errors[topic] = f"Pub/Sub unreachable: {exc}"

    def status() -> dict[str, Any]:
        now = datetime.now(UTC)
        views = data.catalog(config, registry)
        health = data.health(config, registry, [v.name for v in views])
        return {
            "now": now,
            "project": config.feast_project,
            "views": views,
            "health": {h.view: h for h in health},
            "sides": sides.refresh(),
            "side_errors": sides.errors,
            "consistency": load_result(config, CONSISTENCY),
        }

    def lookup(view: str, key: str, feature: str | None) -> dict[str, Any]:
        try:
            declared = registry.view(view)
            values = data.lookup(config, registry, view, key)
            chosen = feature or next(
                (f.name for f in declared.features if data_numeric(values.get(f.name))),
                declared.features[0].name,
            )
            points = data.history(config, registry, view, chosen, key)
        except FeatureStoreError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        return {
            "view": view,
            "key": key,
            "join_key": registry.entity(declared.entity).join_key,
            "values": values,
            "feature": chosen,
            "points": points,
        }

    @app.get("/", response_class=HTMLResponse)
    def page(
        request: Request,
        view: str | None = None,
        key: str | None = None,
        feature: str | None = None,
    ) -> HTMLResponse:
        context = status()
        found = lookup(view, key.strip(), feature) if view and key and key.strip() else None
        if found is not None:
            title = f"{found['view']}:{found['feature']} of {found['key']}"
            found["chart"] = step_chart(found["points"], context["now"], title)
            found["json"] = {k: json.dumps(v, default=str) for k, v in found["values"].items()}
        return templates.TemplateResponse(
            request, "index.html", {**context, "found": found, "asked": {"view": view, "key": key}}
        )

    @app.get("/api/status")
    def api_status() -> dict[str, Any]:
        context = status()
        body: dict[str, Any] = json.loads(
            json.dumps(
                {
                    "project": context["project"],
                    "views": [
                        v.__dict__ | {"features": [f.__dict__ for f in v.features]}
                        for v in context["views"]
                    ],
                    "health": {k: h.__dict__ for k, h in context["health"].items()},
                    "side_topics": [s.as_dict() for s in context["sides"]],
                    "consistency": context["consistency"],
                },
                default=str,
            )
        )
        return body

    @app.get("/api/lookup")
    def api_lookup(view: str, key: str, feature: str | None = None) -> dict[str, Any]:
        found = lookup(view, key, feature)
        found["points"] = [(t.isoformat(), v) for t, v in found["points"]]
        body: dict[str, Any] = json.loads(json.dumps(found, default=str))
        return body

    return app


def data_numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def serve(config: PlatformConfig, registry: Registry, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(create_app(config, registry), host=host, port=port, log_level="warning")
