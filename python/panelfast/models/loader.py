"""Device model files (TOML) → :class:`~panelfast.models.DeviceModel`.

The format is documented in ``models/README.md``. Every problem in a file is
reported at once, each naming the file, the entry and the key:
``pm.toml: measurements[3] (VoltageAN).type: 'FLOAT33' is not one of 'INT16', ...``.
Overlapping registers are refused too: two measurements reading the same
register of the same function code is a mistake in the register list, except
for BITMAP measurements sharing a register with distinct bits.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from panelfast import register_types
from panelfast.exceptions import ConfigIssue, ModelError
from panelfast.models import (
    DataType,
    DeviceModel,
    MeasurementDef,
    MeasurementKind,
    OutputDef,
    OutputMode,
    WordOrder,
)

__all__ = ["SHIPPED_DIR", "ModelLibrary", "load_model_file", "parse_model", "register_count"]

#: The models that ship with panelfast.
SHIPPED_DIR = Path(__file__).parent / "library"

_ID = r"^[A-Za-z0-9_.-]{1,64}$"
Identifier = Annotated[str, Field(pattern=_ID)]
Address = Annotated[int, Field(ge=0, le=65535)]

# The physical quantities the simulator knows (mirrors rust/simulator/model.rs).
_QUANTITY = re.compile(
    r"""^(?:
      voltage_ln\.(?:[123]|avg) | voltage_ll\.(?:12|23|31|avg) | current\.(?:[123]|n|avg)
    | (?:active|reactive|apparent)_power\.(?:[123]|total) | power_factor\.(?:[123]|total)
    | frequency | clock | active_energy\.(?:delivered|received)
    | (?:reactive|apparent)_energy\.delivered
    | (?:input|output|pulse_count)\.(?:[1-9]|1[0-6])
    )$""",
    re.VERBOSE,
)


def register_count(measurement: MeasurementDef) -> int:
    """Registers (or bits, for functions 1 and 2) a measurement occupies."""
    return register_types.register_count(measurement.type, measurement.length)


class _Entry(BaseModel):
    # Strict: `address = "3000"` or `scale = true` are mistakes, not conversions.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _Measurement(_Entry):
    id: Identifier
    name: str
    unit: str = ""
    kind: MeasurementKind = "instantaneous"
    function: Literal[1, 2, 3, 4] = 3
    address: Address
    type: DataType
    order: WordOrder = "ABCD"
    scale: float = 1.0
    offset: float = 0.0
    invalid: Any = None
    bit: Annotated[int, Field(ge=0, le=15)] = 0
    bits: Annotated[int, Field(ge=1, le=16)] = 1
    length: Annotated[int, Field(ge=0, le=125)] = 0
    quantity: str = ""
    identification: bool = False

    @field_validator("scale")
    @classmethod
    def _scale(cls, scale: float) -> float:
        if scale == 0 or scale != scale or abs(scale) == float("inf"):
            raise ValueError(f"scale must be finite and non-zero, not {scale}")
        return scale

    @field_validator("invalid")
    @classmethod
    def _invalid(cls, invalid: Any) -> int | Literal[False] | None:
        if invalid is False or invalid is None:
            return invalid
        if isinstance(invalid, int) and not isinstance(invalid, bool) and invalid >= 0:
            return invalid
        raise ValueError(
            f"{invalid!r}: use false (no sentinel) or the raw pattern as an integer (0xFFC00000)"
        )

    @field_validator("quantity")
    @classmethod
    def _quantity(cls, quantity: str) -> str:
        if quantity == "" or quantity.startswith("text:") or _QUANTITY.match(quantity):
            return quantity
        if quantity.startswith("constant:"):
            try:
                float(quantity.removeprefix("constant:"))
            except ValueError:
                raise ValueError(f"{quantity!r}: constant:<number>") from None
            return quantity
        raise ValueError(f"{quantity!r} is not a known quantity (see models/README.md)")

    def problems(self) -> list[tuple[str, str]]:
        """Checks across keys: (key, problem)."""
        out: list[tuple[str, str]] = []
        if self.type == "ASCII" and self.length == 0:
            out.append(("length", "an ASCII measurement needs its length in registers"))
        if self.type == "BITMAP" and self.bit + self.bits > 16:
            out.append(("bits", f"bits {self.bit}..{self.bit + self.bits} overflow the register"))
        if self.function in (1, 2) and self.type != "BITMAP":
            out.append(("type", "functions 1 and 2 read bits: the type must be BITMAP"))
        if self.type in ("ASCII", "DATETIME") and (self.scale != 1.0 or self.offset != 0.0):
            out.append(("scale", f"a {self.type} measurement takes no scale or offset"))
        if self.quantity.startswith("text:") != (self.type == "ASCII") and self.quantity:
            out.append(("quantity", "text:... is for ASCII measurements, and only it"))
        if self.type == "DATETIME" and self.quantity not in ("", "clock"):
            out.append(("quantity", "a DATETIME measurement shows the clock"))
        if isinstance(self.invalid, int) and self.invalid is not False and self.type != "ASCII":
            bits = 16 * register_types.register_count(self.type)
            if self.invalid >> bits:
                out.append(
                    ("invalid", f"{self.invalid:#x} is wider than {self.type}'s {bits} bits")
                )
        if self.address + register_types.register_count(self.type, self.length) > 65536:
            out.append(("address", "runs past the last address 65535"))
        return out


class _Output(_Entry):
    id: Identifier
    name: str
    mode: OutputMode
    command_address: Address
    status_address: Address


class _Defaults(_Entry):
    function: Literal[1, 2, 3, 4] = 3
    type: DataType | None = None
    order: WordOrder = "ABCD"
    kind: MeasurementKind = "instantaneous"
    unit: str = ""


class _Model(_Entry):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    vendor: str
    description: str = ""
    max_registers_per_read: Annotated[int, Field(ge=1, le=125)] = 125
    max_gap: Annotated[int, Field(ge=0, le=125)] = 16
    defaults: _Defaults = _Defaults()
    measurements: list[_Measurement] = []
    outputs: list[_Output] = []


_DEFAULTABLE = frozenset(_Defaults.model_fields)


def _apply_defaults(document: dict[str, Any]) -> dict[str, Any]:
    defaults = document.get("defaults")
    if not isinstance(defaults, dict):
        return document
    given = {k: v for k, v in defaults.items() if k in _DEFAULTABLE and v is not None}
    measurements = document.get("measurements")
    if isinstance(measurements, list):
        document = {
            **document,
            "measurements": [{**given, **m} if isinstance(m, dict) else m for m in measurements],
        }
    return document


def _entry_name(document: Mapping[str, Any], section: str, index: int) -> str:
    entries = document.get(section)
    if isinstance(entries, list) and index < len(entries) and isinstance(entries[index], dict):
        ident = entries[index].get("id")
        if isinstance(ident, str):
            return f"{section}[{index}] ({ident})"
    return f"{section}[{index}]"


def _key(document: Mapping[str, Any], loc: tuple[int | str, ...]) -> str:
    if len(loc) >= 2 and loc[0] in ("measurements", "outputs") and isinstance(loc[1], int):
        head = _entry_name(document, str(loc[0]), loc[1])
        rest = ".".join(str(p) for p in loc[2:])
        return f"{head}.{rest}" if rest else head
    return ".".join(str(p) for p in loc) or "(file)"


def _message(err: Any) -> str:
    kind = err["type"]
    if kind == "literal_error":
        return f"{err['input']!r} is not one of {err['ctx']['expected']}"
    if kind == "missing":
        return "missing: this key is required"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "string_pattern_mismatch":
        return f"{err['input']!r} is not an id: 1 to 64 of A-Z a-z 0-9 _ . -"
    message: str = err["msg"]
    return message.removeprefix("Value error, ")


def _bit_mask(m: _Measurement) -> int:
    return ((1 << m.bits) - 1) << m.bit


def _overlaps(model: _Model, document: Mapping[str, Any]) -> list[ConfigIssue]:
    """Measurements sharing registers of one function code (BITMAP bits excepted)."""
    issues: list[ConfigIssue] = []
    spans = sorted(
        (m.function, m.address, m.address + register_types.register_count(m.type, m.length), k)
        for k, m in enumerate(model.measurements)
    )
    # Compare each span with the one reaching furthest so far: a long ASCII
    # field may overlap several later ones.
    reach: tuple[int, int, int, int] | None = None
    for span in spans:
        fb, sb, eb, kb = span
        if reach is None or reach[0] != fb or sb >= reach[2]:
            reach = span
            continue
        _fa, sa, ea, ka = reach
        a, b = model.measurements[ka], model.measurements[kb]
        if not (a.type == b.type == "BITMAP" and sa == sb):  # bits: checked below
            issues.append(
                ConfigIssue(
                    f"{_entry_name(document, 'measurements', kb)}.address",
                    f"registers {sb}..{eb - 1} of function {fb} overlap "
                    f"{_entry_name(document, 'measurements', ka)} ({sa}..{ea - 1})",
                )
            )
        if eb > ea:
            reach = span
    # BITMAP measurements may share a register, not a bit.
    bits_taken: dict[tuple[int, int], tuple[int, int]] = {}
    for k, m in enumerate(model.measurements):
        if m.type != "BITMAP":
            continue
        taken, first = bits_taken.get((m.function, m.address), (0, k))
        if taken & _bit_mask(m):
            issues.append(
                ConfigIssue(
                    f"{_entry_name(document, 'measurements', k)}.bit",
                    f"bits {m.bit}..{m.bit + m.bits - 1} of register {m.address} are already "
                    f"read by another BITMAP measurement, from "
                    f"{_entry_name(document, 'measurements', first)}",
                )
            )
        bits_taken[(m.function, m.address)] = (taken | _bit_mask(m), first)
    return issues


def _cross_checks(model: _Model, document: Mapping[str, Any]) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    seen: dict[str, str] = {}
    entries = [("measurements", k, m.id) for k, m in enumerate(model.measurements)]
    entries += [("outputs", k, o.id) for k, o in enumerate(model.outputs)]
    for section, k, ident in entries:
        where = _entry_name(document, section, k)
        if ident in seen:
            issues.append(ConfigIssue(f"{where}.id", f"{ident!r} is already {seen[ident]}'s id"))
        else:
            seen[ident] = where
    for k, m in enumerate(model.measurements):
        for key, problem in m.problems():
            issues.append(ConfigIssue(f"{_entry_name(document, 'measurements', k)}.{key}", problem))
    issues += _overlaps(model, document)
    commands: dict[int, str] = {}
    for k, o in enumerate(model.outputs):
        where = _entry_name(document, "outputs", k)
        if o.command_address in commands:
            issues.append(
                ConfigIssue(
                    f"{where}.command_address",
                    f"{o.command_address} already commands {commands[o.command_address]}",
                )
            )
        commands[o.command_address] = where
    return issues


def parse_model(document: dict[str, Any], source: str = "<model>") -> DeviceModel:
    """Validate a parsed model document; every problem named in one :class:`ModelError`."""
    document = _apply_defaults(document)
    try:
        model = _Model.model_validate(document)
    except ValidationError as exc:
        issues = [ConfigIssue(_key(document, e["loc"]), _message(e)) for e in exc.errors()]
        raise ModelError(source, issues) from None
    issues = _cross_checks(model, document)
    if issues:
        raise ModelError(source, issues)
    return DeviceModel(
        name=model.name,
        vendor=model.vendor,
        description=model.description,
        measurements=tuple(MeasurementDef(**m.model_dump()) for m in model.measurements),
        outputs=tuple(OutputDef(**o.model_dump()) for o in model.outputs),
        max_registers_per_read=model.max_registers_per_read,
        max_gap=model.max_gap,
    )


def load_model_file(path: str | os.PathLike[str]) -> DeviceModel:
    """Read and validate one model file."""
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelError(
            path.name, [ConfigIssue("(file)", f"cannot read: {exc.strerror}")]
        ) from None
    except UnicodeDecodeError:
        raise ModelError(path.name, [ConfigIssue("(file)", "not UTF-8 text")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(path.name, [ConfigIssue("(file)", f"not valid TOML: {exc}")]) from None
    return parse_model(document, path.name)


class ModelLibrary:
    """The device models the gateway knows: those shipped, then the user's folders.

    A user's model with the name of a shipped one replaces it; two user files
    defining the same name are an error. With ``strict=False`` a bad file is
    recorded in :attr:`errors` and the other models stay usable.
    """

    def __init__(
        self,
        dirs: Iterable[str | os.PathLike[str]] = (),
        *,
        shipped: bool = True,
        strict: bool = True,
    ) -> None:
        self._models: dict[str, DeviceModel] = {}
        self._sources: dict[str, Path] = {}
        self.errors: list[ModelError] = []
        folders = ([SHIPPED_DIR] if shipped else []) + [Path(d) for d in dirs]
        for folder in folders:
            for path in self._files(folder, strict):
                try:
                    self._add(load_model_file(path), path, shipped=folder == SHIPPED_DIR)
                except ModelError as exc:
                    if strict:
                        raise
                    self.errors.append(exc)

    def _files(self, folder: Path, strict: bool) -> list[Path]:
        if not folder.is_dir():
            error = ModelError(str(folder), [ConfigIssue("(folder)", "no such folder of models")])
            if strict:
                raise error
            self.errors.append(error)
            return []
        return sorted(folder.glob("*.toml"))

    def _add(self, model: DeviceModel, path: Path, *, shipped: bool) -> None:
        earlier = self._sources.get(model.name)
        if earlier is not None and earlier.parent != SHIPPED_DIR:
            raise ModelError(
                path.name,
                [ConfigIssue("name", f"{model.name!r} is already defined by {earlier}")],
            )
        if earlier is not None and shipped:
            raise ModelError(path.name, [ConfigIssue("name", f"{model.name!r} is shipped twice")])
        self._models[model.name] = model
        self._sources[model.name] = path

    def get(self, name: str) -> DeviceModel:
        """The model called ``name`` (exact, else ignoring case)."""
        model = self._models.get(name)
        if model is None:
            folded = {n.casefold(): m for n, m in self._models.items()}
            model = folded.get(name.casefold())
        if model is None:
            known = ", ".join(sorted(self._models)) or "none"
            raise ModelError(
                name, [ConfigIssue("model", f"no model of that name (known: {known})")]
            )
        return model

    def source(self, name: str) -> Path:
        """The file a model was read from."""
        return self._sources[self.get(name).name]

    def names(self) -> list[str]:
        return sorted(self._models)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._models

    def __iter__(self) -> Iterator[DeviceModel]:
        return iter(self._models[n] for n in self.names())

    def __len__(self) -> int:
        return len(self._models)
