"""Refresh the vendored GraphiQL assets in `graphiql/` from the npm registry, at the exact versions below.

    python -m api.static.refresh          # needs `npm` and the registry; rewrites graphiql/ (all but index.html)

Each package is fetched with `npm pack NAME@VERSION` (the registry's tarball, checked against its integrity by
npm), the files the page loads are copied out, and its license file is kept beside them (`graphiql/licenses/`);
`graphiql/manifest.json` records, per file, the package, version, license, the tarball's integrity and the file's
subresource integrity (sha384). `graphiql/index.html` is strawberry's GraphiQL page with these files in place of a
CDN, each with its `integrity` (the browser refuses a file that does not match); after a refresh, put the new
versions' paths and integrities there by hand (`tests/test_graphiql.py` checks that they agree with the manifest).
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

HERE = Path(__file__).resolve().parent / "graphiql"


@dataclass(frozen=True)
class Package:
    """One npm package at one version and the files taken from it (path in the tarball -> name served)."""

    name: str
    version: str
    files: tuple[tuple[str, str], ...]
    license_file: str | None = "LICENSE"  # @graphiql/plugin-explorer ships none: its repository's LICENSE applies


# The versions strawberry's own GraphiQL page loads from a CDN (strawberry/static/graphiql.html).
PACKAGES = (
    Package("react", "18.2.0", (("umd/react.production.min.js", "react.production.min.js"),)),
    Package("react-dom", "18.2.0", (("umd/react-dom.production.min.js", "react-dom.production.min.js"),)),
    Package("js-cookie", "3.0.5", (("dist/js.cookie.min.js", "js.cookie.min.js"),)),
    Package("graphiql", "3.8.3", (("graphiql.min.js", "graphiql.min.js"), ("graphiql.min.css", "graphiql.min.css"))),
    Package("@graphiql/plugin-explorer", "1.0.2", (("dist/index.umd.js", "plugin-explorer.umd.js"),
                                                   ("dist/style.css", "plugin-explorer.css")), license_file=None),
)


def pack(package: Package, into: Path) -> tuple[Path, str]:
    """`npm pack` one package into `into`: the tarball's path and its integrity (sha512, as the registry says)."""
    out = subprocess.run(["npm", "pack", f"{package.name}@{package.version}", "--json", "--pack-destination",  # noqa: S607
                          str(into)], check=True, capture_output=True, text=True, cwd=into).stdout
    [info] = json.loads(out)
    return into / info["filename"], str(info["integrity"])


def refresh(target: Path = HERE) -> dict[str, dict[str, str]]:
    """Fetch every package and write its files, licenses and the manifest into `target`; returns the manifest."""
    manifest: dict[str, dict[str, str]] = {}
    licenses = target / "licenses"
    shutil.rmtree(licenses, ignore_errors=True)
    licenses.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        for package in PACKAGES:
            tarball, integrity = pack(package, Path(tmp))
            with tarfile.open(tarball) as tar:
                meta = json.load(_member(tar, "package.json"))
                license_name = f"{package.name.lstrip('@').replace('/', '-')}-{package.version}.LICENSE"
                text = _member(tar, package.license_file).read() if package.license_file else \
                    (f"{package.name} {package.version} declares the {meta['license']} license in its package.json "
                     f"and ships no license file; it comes from {meta['repository']['url']}, whose LICENSE is "
                     f"that of the graphiql package (licenses/graphiql-*.LICENSE).\n").encode()
                (licenses / license_name).write_bytes(text)
                for inside, served in package.files:
                    data = _member(tar, inside).read()
                    (target / served).write_bytes(data)
                    manifest[served] = {"package": package.name, "version": package.version,
                                        "license": str(meta["license"]), "license_file": f"licenses/{license_name}",
                                        "tarball_integrity": integrity,
                                        "integrity": integrity_of(data)}
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def integrity_of(data: bytes) -> str:
    """Subresource integrity of a file, as `index.html` states it (`sha384-<base64>`)."""
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def _member(tar: tarfile.TarFile, path: str) -> IO[bytes]:
    """A file of an npm tarball (they hold everything under `package/`)."""
    found = tar.extractfile(f"package/{path}")
    if found is None:
        raise FileNotFoundError(path)
    return found


if __name__ == "__main__":
    for served, entry in refresh().items():
        print(f"{served:32} {entry['package']}@{entry['version']} {entry['license']} {entry['integrity'][:24]}")
