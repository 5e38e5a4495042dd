"""The as-of join partitioned by a hash of the entity key, as plain functions and a
``Runner`` that runs them: in this process one after another (``InProcess``), or as Ray
tasks (``driftloop.features._asof_ray``).

Views have different keys (customer, merchant, both), so the views are chained: the entity
rows are split by a hash of view 0's keys; each view's history is read once, by
``partitions`` readers that each take every ``partitions``-th row group of its files and
split it by the same hash; task (v, p) joins its entity rows with part p of every reader
of view v, appends view v's features and splits its rows by view v+1's keys; task (v+1, p)
takes the p-th part of every task of stage v. A task holds its partition (a reader its
share of the files), never the whole set. The
last stage's outputs, each in input order, become the result's blocks once the integer
columns the local store would give as floats (a null anywhere) are cast, which needs
every partition's answer: a small last step."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
from duckdb import DuckDBPyConnection as DuckDB

from driftloop.features._asof_view import (
    ROW,
    T,
    ViewPlan,
    as_output,
    partition_of,
    prepare_view,
    read_history_share,
    source_nulls,
    task_connection,
)

_OUT = "__asof_o"


class Runner(Protocol):
    """Runs functions as tasks: ``submit`` returns one handle per return value; a handle
    passed as an argument of ``submit`` is its value inside the task."""

    def put(self, value: Any) -> Any: ...

    def submit(self, fn: Callable[..., Any], *args: Any, num_returns: int = 1) -> list[Any]: ...

    def get(self, handles: Sequence[Any]) -> list[Any]: ...


class InProcess:
    """The tasks run in this process, one after another: the partitioned pipeline without
    a cluster (tests, and a check of the plan)."""

    def put(self, value: Any) -> Any:
        return value

    def submit(self, fn: Callable[..., Any], *args: Any, num_returns: int = 1) -> list[Any]:
        result = fn(*args)
        return list(result) if num_returns > 1 else [result]

    def get(self, handles: Sequence[Any]) -> list[Any]:
        return list(handles)


@dataclass(frozen=True)
class JoinPlan:
    views: list[ViewPlan]
    partitions: int
    threads: int | None = None
    memory_limit: str | None = None


@dataclass(frozen=True)
class Partitioned:
    """The join's answer as ``partitions`` blocks (handles of ``Runner``), each holding the
    rows whose keys of the last view hash to it, in input order; ``rows`` holds, per block,
    the input position of each of its rows."""

    blocks: list[Any]
    rows: list[Any]


def split(
    table: pa.Table, keys: list[str], partitions: int, connection: DuckDB | None = None
) -> list[pa.Table]:
    """``table``'s rows by the partition of their ``keys``, each part in the table's order."""
    parts = partition_of(table, keys, partitions, connection)
    order = np.argsort(parts, kind="stable")
    bounds = np.searchsorted(parts[order], np.arange(partitions + 1))
    ordered = table.take(pa.array(order))
    return [ordered.slice(bounds[p], bounds[p + 1] - bounds[p]) for p in range(partitions)]


def history_split(plan: JoinPlan, v: int, reader: int) -> list[pa.Table] | pa.Table:
    """Reader ``reader`` of view ``v``'s history: its share of the files' row groups (one
    in ``partitions``), split by the partition of their keys. Each history row is read
    once, whatever the number of partitions; one partition: the whole table."""
    view = plan.views[v]
    share = read_history_share(view, reader, plan.partitions)
    if plan.partitions == 1:
        return share
    connection = task_connection(plan.threads, plan.memory_limit)
    parts = split(share, [f"k{i}" for i in range(view.keys)], plan.partitions, connection)
    connection.close()
    return parts


def join_part(plan: JoinPlan, v: int, p: int, entities: int, *parts: pa.Table) -> list[Any]:
    """Task (v, p): the entity rows of partition ``p`` of view ``v`` (the first
    ``entities`` of ``parts``, one per task of the stage before) joined with the view's
    history rows of partition ``p`` (the rest of ``parts``, one per reader), in input
    order, with view ``v``'s features appended as ``__asof_o<i>``. Returns the rows split
    by view v+1's keys (``partitions`` tables) and, last, per feature of the view:
    (output has nulls, history has nulls)."""
    view = plan.views[v]
    entity = pa.concat_tables(parts[:entities]).sort_by(ROW)
    history = pa.concat_tables(parts[entities:])
    connection = task_connection(plan.threads, plan.memory_limit)
    left = {ROW: entity.column(ROW), T: entity.column(T)}
    for i, key in enumerate(view.entity_keys):
        left[f"v{v}k{i}"] = entity.column(key)
    connection.register("e", pa.table(left))
    first = sum(len(before.names) for before in plan.views[:v])
    join, selects = prepare_view(connection, view, v, history, first)
    columns = ", ".join([f"e.{ROW}", *selects])
    query = f"SELECT {columns} FROM e {join} ORDER BY e.{ROW}"  # noqa: S608
    joined = connection.sql(query).to_arrow_table()
    if not joined.column(ROW).equals(entity.column(ROW)):
        raise RuntimeError(f"view {v}, partition {p}: the join did not keep one row per row")
    flags = []
    for f in range(len(view.names)):
        column = joined.column(f"o{first + f}")
        entity = entity.append_column(f"{_OUT}{first + f}", column)
        flags.append(column.null_count > 0)
    nulls = list(zip(flags, source_nulls(history, len(view.names)), strict=True))
    if v + 1 == len(plan.views):
        connection.close()
        return [entity, nulls]
    nexts = split(entity, plan.views[v + 1].entity_keys, plan.partitions, connection)
    connection.close()
    return [*nexts, nulls]


def finish_part(block: pa.Table, names: list[str], floats: list[bool]) -> tuple[
    pa.Table, np.ndarray
]:  # fmt: skip
    """A last-stage block as the local store gives its rows (features named, integers
    with nulls anywhere as floats), and the input position of each row."""
    features = [f"{_OUT}{i}" for i in range(len(names))]
    out = block.drop_columns([ROW, T, *features])
    for i, name in enumerate(names):
        out = out.append_column(name, as_output(block.column(features[i]), floats[i]))
    rows: np.ndarray = block.column(ROW).to_numpy()
    return out, rows


def run(plan: JoinPlan, entity: pa.Table, runner: Runner) -> Partitioned:
    """The partitioned join of ``entity`` (``_asof.entity_table``) on ``runner``."""
    if not plan.views:
        raise ValueError("the partitioned join needs at least one feature view")
    count = plan.partitions
    parts = [runner.put(part) for part in split(entity, plan.views[0].entity_keys, count)]
    inputs = [[part] for part in parts]
    # Every view's history is read once, by ``count`` readers, each splitting its share
    # by partition; join task (v, p) takes part p of every reader of view v.
    histories = [[runner.submit(history_split, plan, v, r, num_returns=count)
                  for r in range(count)] for v in range(len(plan.views))]  # fmt: skip
    flags: list[Any] = []
    for v in range(len(plan.views)):
        last = v + 1 == len(plan.views)
        outputs = [runner.submit(join_part, plan, v, p, len(inputs[p]), *inputs[p],
                                 *(reader[p] for reader in histories[v]),
                                 num_returns=2 if last else count + 1)
                   for p in range(count)]  # fmt: skip
        flags.extend(out[-1] for out in outputs)
        if not last:
            inputs = [[out[p] for out in outputs] for p in range(count)]
    blocks = [out[0] for out in outputs]
    # Per feature: an integer column becomes float64 if any partition had a null.
    per_task = runner.get(flags)
    floats: list[bool] = []
    for v, view in enumerate(plan.views):
        tasks = per_task[v * count : (v + 1) * count]
        floats.extend(any(t[f][0] or t[f][1] for t in tasks) for f in range(len(view.names)))
    names = [name for view in plan.views for name in view.names]
    finished = [runner.submit(finish_part, blocks[p], names, floats, num_returns=2)
                for p in range(count)]  # fmt: skip
    return Partitioned([f[0] for f in finished], [f[1] for f in finished])


def collect(result: Partitioned, runner: Runner) -> pa.Table:
    """The blocks as one table in input order."""
    blocks = runner.get(result.blocks)
    rows = np.concatenate(runner.get(result.rows))
    position = np.empty(len(rows), dtype=np.int64)
    position[rows] = np.arange(len(rows), dtype=np.int64)
    table: pa.Table = pa.concat_tables(blocks).take(pa.array(position))
    return table
