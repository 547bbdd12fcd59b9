"""The pages a browser opens: GraphiQL at /graphql (its scripts and styles at /static/graphiql/, vendored in
`api/static/graphiql/`, so it loads without any network) and a model's dashboard at /dashboard/.

A model may ship a dashboard: a `dashboard/` folder beside its YAML file (or inside its model folder) holding an
`index.html`, served as static files; the example's is `examples/shop/dashboard/`. Pages carry no data and need no
credentials: what they show comes from /graphql, which authenticates every request.
"""

from __future__ import annotations

import functools
from pathlib import Path

from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

GRAPHIQL = Path(__file__).resolve().parent / "static" / "graphiql"


@functools.cache
def graphiql_html() -> str:
    """The GraphiQL page served at /graphql to a browser."""
    return (GRAPHIQL / "index.html").read_text(encoding="utf-8")


def dashboard_of(model_source: str) -> Path | None:
    """The dashboard folder of the model read from `model_source` (a file or a folder), if it has one."""
    source = Path(model_source)
    folder = (source if source.is_dir() else source.parent) / "dashboard"
    return folder if (folder / "index.html").is_file() else None


def routes(model_source: str) -> list[BaseRoute]:
    """GraphiQL's assets, and the model's dashboard where it has one."""
    found: list[BaseRoute] = [Mount("/static/graphiql", StaticFiles(directory=GRAPHIQL), name="graphiql")]
    folder = dashboard_of(model_source)
    if folder is not None:
        found.append(Mount("/dashboard", StaticFiles(directory=folder, html=True)))  # /dashboard: redirected to /
    return found
