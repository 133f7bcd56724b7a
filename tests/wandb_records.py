"""Read an offline W&B run's transaction log (run-*.wandb), to check what a run really logged.

The file is a LevelDB-style log: a 7-byte header (":W&B", magic 0xBEE1, version 0), then 32 KiB blocks of
records, each with a 7-byte header (crc32, length uint16, type: 1 full, 2 first, 3 middle, 4 last) and a
`wandb_internal_pb2.Record` protobuf payload.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK = 32 * 1024
FILE_HEADER = 7
RECORD_HEADER = 7


def read_records(path: Path) -> list[wandb_internal_pb2.Record]:
    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a W&B transaction log")
    records, pending, offset = [], b"", FILE_HEADER
    while offset + RECORD_HEADER <= len(data):
        space_left = BLOCK - offset % BLOCK
        if space_left < RECORD_HEADER:  # block trailer padding
            offset += space_left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[offset:offset + RECORD_HEADER])
        payload = data[offset + RECORD_HEADER: offset + RECORD_HEADER + length]
        offset += RECORD_HEADER + length
        if kind == 0 and length == 0:
            continue
        pending = payload if kind in (1, 2) else pending + payload
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def logged_history_keys(path: Path) -> set[str]:
    """Every metric key that appears in a history record."""
    return {item.key or "/".join(item.nested_key) for record in read_records(path)
            if record.WhichOneof("record_type") == "history" for item in record.history.item}


def logged_config(path: Path) -> dict[str, object]:
    """The run's config (merged over config records), values decoded from JSON."""
    config: dict[str, object] = {}
    for record in read_records(path):
        if record.WhichOneof("record_type") == "config":
            for item in record.config.update:
                config[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return config
