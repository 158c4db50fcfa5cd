"""The ``db.*`` parameters: their bounds and the shapes each operation takes (README: The grid)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from simpleaided.domain import api


def test_rows_defaults_follow_the_design() -> None:
    rows = api.RowsParams.model_validate({"table": 'we"ird; DROP TABLE t', "schema": "é s"})
    assert (rows.limit, rows.cell_bytes, rows.sort, rows.filters) == (100, 1024, [], [])
    assert rows.table == 'we"ird; DROP TABLE t' and rows.schema_ == "é s"
    assert api.QueryParams.model_validate({"sql": "SELECT 1"}).limit == 1000
    assert api.QueryParams.model_validate({"sql": "SELECT 1"}).timeout_ms == 30_000


@pytest.mark.parametrize(
    ("model", "params"),
    [
        (api.RowsParams, {"table": "t", "limit": 0}),
        (api.RowsParams, {"table": "t", "limit": 1001}),
        (api.RowsParams, {"table": "t", "cellBytes": 0}),
        (api.RowsParams, {"table": "t", "after": "a", "before": "b"}),
        (api.RowsParams, {"table": "t", "sort": [{"column": "a"}, {"column": "a", "desc": True}]}),
        (api.RowsParams, {"table": "t", "filters": [{"column": "a", "op": "="}]}),
        (api.RowsParams, {"table": "t", "filters": [{"column": "a", "op": "is-null", "value": 1}]}),
        (api.RowsParams, {"table": "t", "filters": [{"column": "a", "op": "regex", "value": "x"}]}),
        (api.RowsParams, {"table": ""}),
        (api.RowsParams, {"table": "a\0b"}),
        (api.RowsParams, {"table": "t", "offset": 5}),
        (api.CellParams, {"table": "t", "key": [], "column": "c"}),
        (api.EditParams, {"table": "t", "changes": []}),
        (api.EditParams, {"table": "t", "changes": [{"op": "insert"}]}),
        (api.EditParams, {"table": "t", "changes": [{"op": "insert", "values": {}, "key": [1]}]}),
        (
            api.EditParams,
            {"table": "t", "changes": [{"op": "update", "key": [1], "values": {"a": 1}}]},
        ),
        (
            api.EditParams,
            {"table": "t", "changes": [{"op": "update", "key": [1], "expect": {"a": 0}}]},
        ),
        (api.EditParams, {"table": "t", "changes": [{"op": "delete", "expect": {"a": 0}}]}),
        (api.QueryParams, {"sql": ""}),
        (api.QueryParams, {"sql": "SELECT 1", "queryId": "../x"}),
        (api.QueryParams, {"sql": "SELECT 1", "timeoutMs": 0}),
        (api.CancelParams, {}),
    ],
)
def test_params_out_of_bounds_are_refused(model: type[BaseModel], params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(params)


def test_an_edit_batch_holds_each_kind_of_change() -> None:
    edit = api.EditParams.model_validate(
        {
            "table": "t",
            "changes": [
                {"op": "insert", "values": {"a": "9223372036854775807"}},
                {"op": "update", "key": [1], "values": {"a": None}, "expect": {"a": ""}},
                {"op": "delete", "key": ["x", 2], "expect": {"a": 1}},
            ],
        }
    )
    assert [c.op for c in edit.changes] == ["insert", "update", "delete"]
