"""Helpers of the operations tests: a gateway daemon with extra configuration, its metrics."""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]


def append_sections(config_path: Path, sections: Mapping[str, Mapping[str, str]]) -> None:
    """Add TOML tables (string values) at the end of a configuration file."""
    lines = [""]
    for name, body in sections.items():
        lines.append(f"[{name}]")
        lines += [f'{key} = "{value}"' for key, value in body.items()]
    config_path.write_text(
        config_path.read_text(encoding="utf-8") + "\n".join(lines) + "\n", encoding="utf-8"
    )


class Scrape:
    """One scrape of ``/metrics``, parsed by prometheus-client's own parser."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, Labels], float] = {}
        self.types: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for sample in family.samples:
                self.samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value

    @classmethod
    def of(cls, port: int) -> Scrape:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            assert answer.status == 200
            return cls(answer.read().decode("utf-8"))

    def value(self, name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        if key not in self.samples:
            raise AssertionError(f"no sample {name}{labels} in the scrape:\n{self.text}")
        return self.samples[key]

    def get(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, tuple(sorted(labels.items()))))
