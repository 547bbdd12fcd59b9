"""Models and queries written for other tools: OSI (Apache Ossie) core-spec models and semantic queries, dbt
semantic manifests; and our models written out as OSI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from semantic.errors import Issue, ModelError
from semantic.interop.dbt import is_dbt, read_dbt, read_dbt_issues
from semantic.interop.osi_model import OsiError, OsiModel, is_osi, read_issues
from semantic.interop.osi_model import read as read_osi
from semantic.loader import _read_yaml, load, read
from semantic.model import Model


def load_any(path: str | Path) -> OsiModel:
    """A model in any format we read: ours (a YAML file or folder), an OSI model (YAML or JSON) or a dbt semantic
    manifest (`semantic_manifest.json`, or YAML with `semantic_models:`); seen through OSI's global metric names."""
    root = Path(path)
    if root.is_file() and root.suffix in (".yaml", ".yml", ".json"):
        document, problems = _document(root)
        if is_osi(document) or is_dbt(document):
            if problems:
                raise ModelError(problems)
            return read_osi(document, str(root)) if is_osi(document) else OsiModel.of(read_dbt(document, str(root)))
    return OsiModel.of(load(root))


def read_any(path: str | Path) -> tuple[Model | None, list[Issue]]:
    """What `load_any` reads, with every problem found at once and the model beside them (so the data checks run
    on a model with problems too), each at file:line where the file has lines (YAML; JSON has none here). An OSI
    refusal carries its code; an OSI document that is not a model at all gives no model."""
    root = Path(path)
    if root.is_file() and root.suffix in (".yaml", ".yml", ".json"):
        document, problems = _document(root)
        if is_osi(document):
            try:
                osi, issues = read_issues(document, str(root))
            except OsiError as error:
                return None, [*problems, Issue(f"[{error.code}] {error.message}", str(root), error.line)]
            except ModelError as error:
                return None, [*problems, *error.issues]
            return osi.model, [*problems, *issues]
        if is_dbt(document):
            model, issues = read_dbt_issues(document, str(root))
            return model, [*problems, *issues]
    return read(root)


def read_json(path: str | Path, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except OSError as error:
        raise OsiError("E_INVALID_QUERY", f"cannot read {what} {path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise OsiError("E_INVALID_QUERY", f"{what} {path}:{error.lineno}: invalid JSON: {error.msg}") from None


def _document(path: Path) -> tuple[Any, list[Issue]]:
    """The document and the problems of the file itself, read with lines (and keys given twice noted) by the YAML
    reader, which reads JSON too; JSON it cannot read (a tab in the indentation) is read by json, without lines."""
    document, problems = _read_yaml(path)
    if path.suffix != ".json" or document is not None or not problems:
        return document, problems
    try:
        return json.loads(path.read_text()), []
    except json.JSONDecodeError as error:
        return None, [Issue(f"invalid JSON: {error.msg}", str(path), error.lineno)]
