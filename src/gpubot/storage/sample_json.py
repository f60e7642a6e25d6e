"""A `HostSample` as compact JSON text: what each host writes to the `hosts` table and every reader reads back.

Every field of the samples is written, by its name, except those at their default (no processes, not lost, no
MIG...), which is most of them on most GPUs: a host of 8 GPUs is a few kilobytes. The fields are taken from the
dataclasses themselves, so a field added to `GpuSample` or `ProcessSample` is stored without a change here; a reader
older than the writer ignores a field it does not know.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, Field, fields
from typing import Any, TypeVar

from gpubot.core.models import GpuSample, HostSample, ProcessSample

T = TypeVar("T", GpuSample, ProcessSample)

_GPU_FIELDS = tuple(fields(GpuSample))
_PROCESS_FIELDS = tuple(fields(ProcessSample))


def sample_to_json(sample: HostSample) -> str:
    """The sample as compact JSON text (fields at their default left out).

    Args:
        sample: one host's telemetry.

    Returns:
        JSON text that `sample_from_json` turns back into an equal sample.
    """
    document: dict[str, Any] = {"hostname": sample.hostname, "gpus": [_gpu_document(gpu) for gpu in sample.gpus]}
    if sample.driver_version is not None:
        document["driver_version"] = sample.driver_version
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def sample_from_json(text: str) -> HostSample:
    """The sample `sample_to_json` wrote.

    Args:
        text: JSON text from the `hosts` table.

    Returns:
        The sample.

    Raises:
        ValueError: the text is not such a document (not JSON, a required field missing, a field of the
            wrong type).
    """
    try:
        document = json.loads(text)
        gpus = tuple(_from_document(GpuSample, _GPU_FIELDS, entry) for entry in document["gpus"])
        driver = document.get("driver_version")
        hostname = document["hostname"]
    except (TypeError, KeyError, AttributeError, json.JSONDecodeError) as error:
        raise ValueError(f"not a stored host sample: {error!r}") from None
    if not isinstance(hostname, str) or not (driver is None or isinstance(driver, str)):
        raise ValueError("not a stored host sample: hostname and driver_version must be text")
    return HostSample(hostname=hostname, driver_version=driver, gpus=gpus)


def _gpu_document(gpu: GpuSample) -> dict[str, Any]:
    document = _document(gpu, _GPU_FIELDS)
    if gpu.processes:
        document["processes"] = [_document(process, _PROCESS_FIELDS) for process in gpu.processes]
    return document


def _document(item: GpuSample | ProcessSample, item_fields: tuple[Field[Any], ...]) -> dict[str, Any]:
    document = {}
    for field in item_fields:
        value = getattr(item, field.name)
        if field.name != "processes" and (field.default is MISSING or value != field.default):
            document[field.name] = value
    return document


def _from_document(kind: type[T], item_fields: tuple[Field[Any], ...], document: dict[str, Any]) -> T:
    values: dict[str, Any] = {}
    for field in item_fields:
        if field.name not in document:
            continue
        value = document[field.name]
        if field.name == "processes":
            value = tuple(_from_document(ProcessSample, _PROCESS_FIELDS, entry) for entry in value)
        values[field.name] = value
    return kind(**values)
