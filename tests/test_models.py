"""Device model files: shipped ones load; a bad file names the file, the entry and the problem."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from panelfast.exceptions import ModelError, PanelfastError
from panelfast.models import DeviceModel
from panelfast.models.loader import (
    SHIPPED_DIR,
    ModelLibrary,
    load_model_file,
    parse_model,
    register_count,
)

GOOD = """
name = "TestMeter"
vendor = "ACME"
defaults = { type = "FLOAT32" }
measurements = [
  { id = "VoltageAN", name = "Voltage A-N", unit = "V", address = 3027, quantity = "voltage_ln.1" },
  { id = "CurrentA", name = "Current A", unit = "A", address = 2999, order = "CDAB" },
  { id = "Energy", name = "E", unit = "Wh", kind = "cumulative", address = 3203, type = "INT64" },
  { id = "Status", name = "S", address = 100, type = "BITMAP", bit = 3, bits = 2, function = 4 },
  { id = "Alarm", name = "Alarm", address = 100, type = "BITMAP", bit = 0, function = 4 },
  { id = "Name", name = "Name", address = 29, type = "ASCII", length = 20, quantity = "text:T" },
]
outputs = [
  { id = "Q1", name = "Q1", mode = "contactor", command_address = 37050, status_address = 37020 },
]
"""


def write(tmp_path: Path, body: str, name: str = "pm.toml") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def edited(edit: Any) -> dict[str, Any]:
    document = tomllib.loads(GOOD)
    edit(document)
    return document


def problems(document: dict[str, Any]) -> list[str]:
    with pytest.raises(ModelError) as info:
        parse_model(document, "pm.toml")
    assert isinstance(info.value, PanelfastError)
    lines = str(info.value).splitlines()
    assert all(line.startswith("pm.toml: ") for line in lines), lines
    return lines


def test_every_shipped_model_loads_and_is_consistent() -> None:
    library = ModelLibrary()
    assert {"PM5560", "iEM3255", "IO-C"} <= set(library.names())
    for model in library:
        assert isinstance(model, DeviceModel)
        assert model.measurements
        ids = [m.id for m in model.measurements] + [o.id for o in model.outputs]
        assert len(ids) == len(set(ids))
        assert library.source(model.name).parent == SHIPPED_DIR
    pm = library.get("PM5560")
    by_id = {m.id: m for m in pm.measurements}
    # Zero-based wire addresses: register 3000 of the register list is 2999.
    assert by_id["CurrentA"].address == 2999
    assert by_id["VoltageAN"].address == 3027
    assert by_id["ActivePower"].address == 3059
    assert by_id["Frequency"].address == 3109
    assert by_id["ActiveEnergyDelivered"].type == "INT64"
    assert by_id["ActiveEnergyDelivered"].kind == "cumulative"
    assert by_id["DateTime"].type == "DATETIME"
    assert register_count(by_id["MeterModel"]) == 20
    io = library.get("io-c")  # names are found ignoring case
    assert [(o.id, o.mode) for o in io.outputs] == [("Q1", "contactor"), ("Q2", "impulse")]


def test_defaults_apply_and_entries_override_them(tmp_path: Path) -> None:
    model = load_model_file(write(tmp_path, GOOD))
    by_id = {m.id: m for m in model.measurements}
    assert by_id["VoltageAN"].type == "FLOAT32"
    assert by_id["VoltageAN"].function == 3
    assert by_id["CurrentA"].order == "CDAB"
    assert by_id["Energy"].type == "INT64"
    assert by_id["Status"].bit == 3
    assert model.outputs[0].command_address == 37050


def test_bad_type_names_file_entry_and_choices() -> None:
    def bad(d: dict[str, Any]) -> None:
        d["measurements"][0]["type"] = "FLOAT33"

    [line] = problems(edited(bad))
    assert line.startswith("pm.toml: measurements[0] (VoltageAN).type: 'FLOAT33' is not one of")
    assert "'FLOAT32'" in line


def test_duplicate_id_is_named() -> None:
    def bad(d: dict[str, Any]) -> None:
        d["measurements"][1]["id"] = "VoltageAN"

    [line] = problems(edited(bad))
    assert "measurements[1] (VoltageAN).id" in line
    assert "measurements[0] (VoltageAN)" in line


def test_output_and_measurement_ids_share_one_namespace() -> None:
    def bad(d: dict[str, Any]) -> None:
        d["outputs"][0]["id"] = "Energy"

    [line] = problems(edited(bad))
    assert "outputs[0] (Energy).id" in line


def test_overlapping_registers_are_refused() -> None:
    def bad(d: dict[str, Any]) -> None:
        d["measurements"][1]["address"] = 3028  # inside VoltageAN (3027..3028)

    [line] = problems(edited(bad))
    assert "overlap" in line
    assert "VoltageAN" in line
    assert "CurrentA" in line


def test_a_long_field_overlapping_a_later_one_is_found() -> None:
    def bad(d: dict[str, Any]) -> None:
        d["measurements"][5]["address"] = 3020  # ASCII 3020..3039 covers VoltageAN 3027
        d["measurements"][1]["address"] = 3050

    [line] = problems(edited(bad))
    assert "VoltageAN" in line
    assert "Name" in line


def test_bitmaps_share_a_register_but_not_a_bit() -> None:
    def bad(d: dict[str, Any]) -> None:
        d["measurements"][4]["bit"] = 4  # Status has bits 3..4

    [line] = problems(edited(bad))
    assert "measurements[4] (Alarm).bit" in line


def test_same_address_in_another_function_code_is_no_overlap() -> None:
    def other_function(d: dict[str, Any]) -> None:
        d["measurements"][1]["address"] = 3027
        d["measurements"][1]["function"] = 4

    model = parse_model(edited(other_function), "pm.toml")
    assert len(model.measurements) == 6


def test_missing_key_unknown_key_and_bad_values_all_at_once() -> None:
    def bad(d: dict[str, Any]) -> None:
        del d["measurements"][0]["address"]
        d["measurements"][1]["colour"] = "blue"
        d["measurements"][2]["id"] = "has space"
        d["measurements"][3]["address"] = 70000
        d["outputs"][0]["mode"] = "pulse"
        del d["vendor"]

    lines = problems(edited(bad))
    text = "\n".join(lines)
    assert "measurements[0] (VoltageAN).address: missing" in text
    assert "measurements[1] (CurrentA).colour: unknown key" in text
    assert "measurements[2] (has space).id: 'has space' is not an id" in text
    assert "measurements[3] (Status).address" in text
    assert "outputs[0] (Q1).mode: 'pulse' is not one of" in text
    assert "pm.toml: vendor: missing" in text
    assert len(lines) == 6


def test_cross_key_problems() -> None:
    def bad(d: dict[str, Any]) -> None:
        d["measurements"][5]["length"] = 0  # ASCII without length
        d["measurements"][0]["quantity"] = "volts"
        d["measurements"][1]["scale"] = 0.0
        d["measurements"][3]["function"] = 4
        d["measurements"][3]["type"] = "INT16"
        d["measurements"][3]["function"] = 2  # bits need BITMAP

    text = "\n".join(problems(edited(bad)))
    assert "(VoltageAN).quantity: 'volts' is not a known quantity" in text
    assert "(CurrentA).scale: scale must be finite and non-zero" in text
    # Cross-key checks run once the entries are well-formed: fix and check again.

    def cross(d: dict[str, Any]) -> None:
        d["measurements"][5]["length"] = 0
        d["measurements"][3]["type"] = "INT16"
        d["measurements"][3]["function"] = 2
        d["measurements"][0]["invalid"] = 0x1_0000_0000  # FLOAT32 is 32 bits

    text = "\n".join(problems(edited(cross)))
    assert "(VoltageAN).invalid: 0x100000000 is wider than FLOAT32's 32 bits" in text
    assert "(Name).length: an ASCII measurement needs its length" in text
    assert "(Status).type: functions 1 and 2 read bits" in text


def test_bad_toml_and_missing_file_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"^broken\.toml: \(file\): not valid TOML"):
        load_model_file(write(tmp_path, "name = \n", "broken.toml"))
    with pytest.raises(ModelError, match=r"^nothere\.toml: \(file\): cannot read"):
        load_model_file(tmp_path / "nothere.toml")


def test_misplaced_table_is_an_unknown_key_not_silence(tmp_path: Path) -> None:
    # The classic TOML slip: keys after a [table] header belong to that table.
    body = 'name = "X"\nvendor = "Y"\n[defaults]\ntype = "FLOAT32"\nmeasurements = []\n'
    with pytest.raises(ModelError, match=r"defaults\.measurements: unknown key"):
        load_model_file(write(tmp_path, body))


def test_library_adds_user_folders_and_user_models_replace_shipped(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "test.toml")
    write(tmp_path, GOOD.replace('"TestMeter"', '"PM5560"').replace('"ACME"', '"Me"'), "mine.toml")
    library = ModelLibrary([tmp_path])
    assert library.get("TestMeter").vendor == "ACME"
    assert library.get("PM5560").vendor == "Me"
    assert "IO-C" in library
    with pytest.raises(ModelError, match="no model of that name"):
        library.get("PM9999")


def test_library_refuses_two_user_files_of_one_name(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "a.toml")
    write(tmp_path, GOOD, "b.toml")
    with pytest.raises(ModelError, match=r"b\.toml: name: 'TestMeter' is already defined"):
        ModelLibrary([tmp_path])


def test_lenient_library_keeps_good_models_and_records_bad_files(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "good.toml")
    write(tmp_path, GOOD.replace("FLOAT32", "FLOAT33"), "bad.toml")
    library = ModelLibrary([tmp_path, tmp_path / "missing"], strict=False)
    assert "TestMeter" in library
    sources = [e.source for e in library.errors]
    assert sources == ["bad.toml", str(tmp_path / "missing")]


def test_the_readme_example_is_a_valid_model() -> None:
    readme = (SHIPPED_DIR.parent / "README.md").read_text(encoding="utf-8")
    example = readme.split("## Format (TOML)\n\n```toml\n", 1)[1].split("```", 1)[0]
    model = parse_model(tomllib.loads(example), "README.md")
    assert [m.id for m in model.measurements] == ["VoltageAN", "EnergyIn"]
