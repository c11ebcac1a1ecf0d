"""Per-column statistics for the data viewer, computed in one streaming pass."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .schema import DatanetSchema, TaskType


@dataclass(frozen=True, slots=True)
class ColumnStats:
    """Lengths are in characters over non-empty values; ``top_values`` is filled for the label column."""

    name: str
    count: int
    empty: int
    min_length: int | None
    mean_length: float | None
    max_length: int | None
    top_values: tuple[tuple[str, int], ...] = ()


def column_statistics(
    records: Iterable[Mapping[str, Any]], schema: DatanetSchema, top_n: int = 10
) -> dict[str, ColumnStats]:
    """Stats for every schema column over rows (mappings: accepted fields or version records).

    Only the label column counts values: it is the one column with a small, declared vocabulary, so
    its counter stays bounded whatever the data.
    """
    columns = schema.columns
    count = 0
    empty = dict.fromkeys(columns, 0)
    total = dict.fromkeys(columns, 0)
    shortest: dict[str, int | None] = dict.fromkeys(columns)
    longest: dict[str, int | None] = dict.fromkeys(columns)
    labels: Counter[str] = Counter()
    for record in records:
        count += 1
        for column in columns:
            value = record.get(column)
            if value is None or value == "":
                empty[column] += 1
                continue
            length = len(str(value))
            total[column] += length
            low, high = shortest[column], longest[column]
            shortest[column] = length if low is None else min(low, length)
            longest[column] = length if high is None else max(high, length)
        if schema.task_type is TaskType.TEXT_CLASSIFICATION and record.get("label") is not None:
            labels[str(record["label"])] += 1
    stats = {}
    for column in columns:
        filled = count - empty[column]
        stats[column] = ColumnStats(
            column,
            count,
            empty[column],
            shortest[column],
            total[column] / filled if filled else None,
            longest[column],
            tuple(labels.most_common(top_n)) if column == "label" else (),
        )
    return stats
