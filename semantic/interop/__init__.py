"""Models and queries written for other tools: OSI (Apache Ossie) core-spec models and semantic queries, dbt
semantic manifests; and our models written out as OSI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from semantic.errors import Issue, ModelError
from semantic.interop.dbt import is_dbt, read_dbt, read_dbt_issues
from semantic.interop.osi_model import OsiError, OsiModel, is_osi, read_issues
from semantic.interop.osi_model import read as read_osi
from semantic.loader import _LineLoader, load, read
from semantic.model import Model


def load_any(path: str | Path) -> OsiModel:
    """A model in any format we read: ours (a YAML file or folder), an OSI model (YAML or JSON) or a dbt semantic
    manifest (`semantic_manifest.json`, or YAML with `semantic_models:`); seen through OSI's global metric names."""
    root = Path(path)
    if root.is_file() and root.suffix in (".yaml", ".yml", ".json"):
        document = _document(root)
        if is_osi(document):
            return read_osi(document, str(root))
        if is_dbt(document):  # read again keeping lines, so what cannot be mapped is reported at file:line
            lines = yaml.load(root.read_text(), Loader=_LineLoader)  # noqa: S506 - a SafeLoader with line numbers
            return OsiModel.of(read_dbt(lines, str(root)))
    return OsiModel.of(load(root))


def read_any(path: str | Path) -> tuple[Model | None, list[Issue]]:
    """What `load_any` reads, with every problem found at once where the format allows, and the model beside them
    (so the data checks run on a model with problems too): ours and dbt manifests keep file:line and every issue;
    an OSI model keeps validation's issues, but a refusal while mapping it (with its OSI code) stops there, and
    then there is no model."""
    root = Path(path)
    if root.is_file() and root.suffix in (".yaml", ".yml", ".json"):
        try:
            document = _document(root)
        except ModelError:
            document = None  # ours reports it, with its line
        if is_osi(document):
            try:
                osi, issues = read_issues(document, str(root))
            except OsiError as error:
                return None, [Issue(f"[{error.code}] {error.message}", str(root))]
            except ModelError as error:
                return None, list(error.issues)
            return osi.model, issues
        if is_dbt(document):
            lines = yaml.load(root.read_text(), Loader=_LineLoader)  # noqa: S506 - a SafeLoader with line numbers
            return read_dbt_issues(lines, str(root))
    return read(root)


def read_json(path: str | Path, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except OSError as error:
        raise OsiError("E_INVALID_QUERY", f"cannot read {what} {path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise OsiError("E_INVALID_QUERY", f"{what} {path}:{error.lineno}: invalid JSON: {error.msg}") from None


def _document(path: Path) -> Any:
    try:
        text = path.read_text()
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ModelError([Issue(f"cannot parse: {error}", str(path))]) from None
