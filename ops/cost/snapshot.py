"""Saved prices for offline estimates: a JSON file with its capture date and the source of every price.

```json
{
  "format": "genai-ops-cost-snapshot/1",
  "captured_at": "2026-11-02T09:00:00+00:00",
  "region": "us-west-2",
  "prices": {
    "ec2.on-demand/g6.xlarge": {"usd": 0.8048, "unit": "hour", "source": "AWS Price List API GetProducts ..."},
    "eks.auto-mode-fee/g6e.xlarge": {"missing": "EKS Auto Mode fee for g6e.xlarge ...: no product matched"}
  },
  "instance_types": {
    "g6.xlarge": {"vcpus": 4, "memory_mib": 16384, "gpus": 1, "neuron_devices": 0}
  },
  "instance_types_source": "EC2 DescribeInstanceTypes us-west-2"
}
```

A price recorded as missing stays missing offline; a price not in the file is missing too.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from ops.cost.capacity import InstanceSpec
from ops.cost.prices import Entry, Missing, NormalizedUnit, Price, PriceBook
from ops.errors import BadInputError

FORMAT = "genai-ops-cost-snapshot/1"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SavedPrice(_Strict):
    usd: float = Field(ge=0)
    unit: NormalizedUnit
    source: str = Field(min_length=1)
    description: str = ""


class SavedMissing(_Strict):
    missing: str = Field(min_length=1)


class SavedInstanceType(_Strict):
    vcpus: int = Field(ge=1)
    memory_mib: int = Field(ge=1)
    gpus: int = Field(ge=0)
    neuron_devices: int = Field(ge=0)


class Snapshot(_Strict):
    format: Literal["genai-ops-cost-snapshot/1"]
    captured_at: AwareDatetime
    region: str = Field(pattern=r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
    prices: dict[str, SavedPrice | SavedMissing]
    instance_types: dict[str, SavedInstanceType]
    instance_types_source: str = Field(min_length=1)


def load_snapshot(path: Path) -> tuple[PriceBook, dict[str, InstanceSpec]]:
    """The prices and instance sizes saved in `path`, or BadInputError naming what is wrong with the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise BadInputError(f"--snapshot {path}: cannot be read ({error.strerror or error})") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise BadInputError(f"--snapshot {path}: not JSON ({error.msg} at line {error.lineno})") from None
    try:
        snapshot = Snapshot.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in error.errors()[:5])
        raise BadInputError(
            f"--snapshot {path}: not a {FORMAT} file written by `genai-ops cost --save-snapshot` ({problems})"
        ) from None
    entries: dict[str, Entry] = {
        key: Missing(saved.missing)
        if isinstance(saved, SavedMissing)
        else Price(saved.usd, saved.unit, saved.source, saved.description)
        for key, saved in snapshot.prices.items()
    }
    book = PriceBook(
        region=snapshot.region,
        captured_at=snapshot.captured_at.isoformat(),
        entries=entries,
        origin=f"snapshot {path.name}",
    )
    specs = {
        name: InstanceSpec(name, s.vcpus, s.memory_mib, s.gpus, s.neuron_devices)
        for name, s in snapshot.instance_types.items()
    }
    return book, specs


def save_snapshot(path: Path, book: PriceBook, specs: dict[str, InstanceSpec], specs_source: str) -> None:
    prices: dict[str, SavedPrice | SavedMissing] = {
        key: SavedMissing(missing=entry.reason)
        if isinstance(entry, Missing)
        else SavedPrice(usd=entry.usd, unit=entry.unit, source=entry.source, description=entry.description)
        for key, entry in sorted(book.entries.items())
    }
    snapshot = Snapshot(
        format=FORMAT,
        captured_at=datetime.fromisoformat(book.captured_at),
        region=book.region,
        prices=prices,
        instance_types={
            name: SavedInstanceType(
                vcpus=s.vcpus, memory_mib=s.memory_mib, gpus=s.gpus, neuron_devices=s.neuron_devices
            )
            for name, s in sorted(specs.items())
        },
        instance_types_source=specs_source,
    )
    try:
        path.write_text(snapshot.model_dump_json(indent=2) + "\n", encoding="utf-8")
    except OSError as error:
        raise BadInputError(f"--save-snapshot {path}: cannot be written ({error.strerror or error})") from None
