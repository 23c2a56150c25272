"""The systemd unit file shipped with panelfast, filled in for one gateway and installed.

The template (``panelfast.service`` beside this module) holds the hardening
and the restart policy; what differs per site is filled in: the command that
runs the gateway (this Python, this configuration file), the service's user
and group, and the folders it may write besides its state directory (the
configured storage directory, the log file's folder).
"""

from __future__ import annotations

import string
import sys
from importlib import resources
from pathlib import Path

from panelfast._durable import write_atomically
from panelfast.config import Settings

__all__ = ["DEFAULT_UNIT_DIR", "UNIT_NAME", "install_unit", "render_unit", "unit_template"]

UNIT_NAME = "panelfast.service"
DEFAULT_UNIT_DIR = Path("/etc/systemd/system")


def unit_template() -> str:
    return resources.files(__package__).joinpath(UNIT_NAME).read_text(encoding="utf-8")


def _quote(word: str) -> str:
    """One word of a unit file command line or path list (systemd.syntax(7) quoting)."""
    # % starts a specifier and $ a variable in ExecStart=: doubled, they are themselves.
    word = word.replace("%", "%%").replace("$", "$$")
    if word and not any(c in word for c in " \t\"\\'"):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_unit(
    settings: Settings,
    config_path: Path,
    *,
    user: str,
    group: str | None = None,
    python: Path | None = None,
) -> str:
    """The unit file that runs ``panelfast run --config config_path`` as ``user``."""
    interpreter = python or Path(sys.executable)
    command = [str(interpreter), "-m", "panelfast", "run", "--config", str(config_path.resolve())]
    writable = [settings.storage.dir.resolve()]
    if settings.logging.file is not None:
        writable.append(settings.logging.file.resolve().parent)
    # "-": a folder that does not exist yet is not an error (StateDirectory= makes the default).
    paths = " ".join(_quote(f"-{p}") for p in dict.fromkeys(writable))
    return string.Template(unit_template()).substitute(
        exec_start=" ".join(_quote(w) for w in command),
        user=_quote(user),
        group=_quote(group or user),
        read_write_paths=paths,
    )


def install_unit(
    text: str,
    *,
    unit_dir: Path = DEFAULT_UNIT_DIR,
    prefix: Path | None = None,
    force: bool = False,
) -> Path:
    """Write the unit file in ``unit_dir`` (under ``prefix``, for a package's staging
    root); an existing one is kept unless ``force``. Returns the path written."""
    folder = prefix / unit_dir.relative_to(unit_dir.anchor) if prefix is not None else unit_dir
    target = folder / UNIT_NAME
    if target.exists() and not force:
        raise FileExistsError(target)
    folder.mkdir(parents=True, exist_ok=True)
    write_atomically(target, text.encode("utf-8"), mode=0o644)
    return target
