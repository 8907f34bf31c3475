"""``/v1/db/*`` and ``/v1/storage/*``: the data tools over REST (thin: check the permission,
run the tool off the event loop, return its model)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

from service.api.deps import DataToolsDep, PrincipalDep, require
from service.auth.permissions import Permission, Principal
from service.errors import InvalidRequest
from service.tools import models as m
from service.tools.registry import TOOLS_BY_NAME, DataTools, call_tool


class DataRoute(APIRoute):
    """Malformed or mistyped arguments become our 400 naming the fields, without echoing the
    input back (as every other route answers), instead of FastAPI's 422."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def translated(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                errors = [
                    {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type")}
                    for e in exc.errors()
                ]
                where = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}"
                    for e in errors
                )
                raise InvalidRequest(f"invalid arguments: {where}", detail=errors) from exc

        return translated


router = APIRouter(prefix="/v1", tags=["data"], route_class=DataRoute)


Query_ = Depends(require(Permission.QUERY))
Read = Depends(require(Permission.READ))
Lister = Depends(require(Permission.LIST))
Write = Depends(require(Permission.WRITE))


async def _run(name: str, tools: DataTools, args: BaseModel, caller: Principal) -> Any:
    return await call_tool(TOOLS_BY_NAME[name], tools, args, caller)


def _args(model: type[m.ToolArgs], **values: Any) -> Any:
    """Build tool arguments from path and query parameters, as a 400 when they do not fit."""
    try:
        return model(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        raise InvalidRequest(
            "invalid parameters",
            detail=exc.errors(include_url=False, include_context=False, include_input=False),
        ) from exc


DatabaseParam = Annotated[
    str | None, Query(alias="database", description="configured database name")
]
SchemaParam = Annotated[
    str | None, Query(alias="schema", description="schema; default: the default one")
]


# --- database ---------------------------------------------------------------------------------


@router.post("/db/query", dependencies=[Query_], summary="Run one read-only SQL statement")
async def query(
    args: m.ExecuteQueryArgs, tools: DataToolsDep, caller: PrincipalDep
) -> m.QueryResult:
    result: m.QueryResult = await _run("execute_query", tools, args, caller)
    return result


@router.get("/db/tables", dependencies=[Query_], summary="List tables and views")
async def tables(
    tools: DataToolsDep,
    caller: PrincipalDep,
    database_name: DatabaseParam = None,
    schema_name: SchemaParam = None,
) -> m.TableList:
    args = _args(m.ListTablesArgs, database=database_name, schema_name=schema_name)
    result: m.TableList = await _run("list_tables", tools, args, caller)
    return result


@router.get(
    "/db/tables/{table}",
    dependencies=[Query_],
    summary="Describe a table: row estimate, columns, keys, indexes",
)
async def describe(
    table: str,
    tools: DataToolsDep,
    caller: PrincipalDep,
    database_name: DatabaseParam = None,
    schema_name: SchemaParam = None,
) -> m.TableDescription:
    args = _args(m.TableArgs, table=table, database=database_name, schema_name=schema_name)
    result: m.TableDescription = await _run("describe_table", tools, args, caller)
    return result


@router.get("/db/tables/{table}/schema", dependencies=[Query_], summary="Columns of a table")
async def schema(
    table: str,
    tools: DataToolsDep,
    caller: PrincipalDep,
    database_name: DatabaseParam = None,
    schema_name: SchemaParam = None,
) -> m.TableSchema:
    args = _args(m.TableArgs, table=table, database=database_name, schema_name=schema_name)
    result: m.TableSchema = await _run("get_schema", tools, args, caller)
    return result


@router.get("/db/tables/{table}/sample", dependencies=[Query_], summary="First n rows of a table")
async def sample(
    table: str,
    tools: DataToolsDep,
    caller: PrincipalDep,
    n: int = 10,
    database_name: DatabaseParam = None,
    schema_name: SchemaParam = None,
) -> m.QueryResult:
    args = _args(m.SampleArgs, table=table, n=n, database=database_name, schema_name=schema_name)
    result: m.QueryResult = await _run("get_table_sample", tools, args, caller)
    return result


# --- storage ----------------------------------------------------------------------------------


@router.post("/storage/read", dependencies=[Read], summary="Read a text file (or base64 bytes)")
async def read_file(
    args: m.ReadFileArgs, tools: DataToolsDep, caller: PrincipalDep
) -> m.FileContent:
    result: m.FileContent = await _run("read_file", tools, args, caller)
    return result


@router.post("/storage/read_csv", dependencies=[Read], summary="Rows and types of a CSV file")
async def read_csv(args: m.ReadTableArgs, tools: DataToolsDep, caller: PrincipalDep) -> m.TableData:
    result: m.TableData = await _run("read_csv", tools, args, caller)
    return result


@router.post(
    "/storage/read_parquet", dependencies=[Read], summary="Rows and schema of a Parquet file"
)
async def read_parquet(
    args: m.ReadTableArgs, tools: DataToolsDep, caller: PrincipalDep
) -> m.TableData:
    result: m.TableData = await _run("read_parquet", tools, args, caller)
    return result


@router.post("/storage/list", dependencies=[Lister], summary="Files with sizes and mtimes")
async def list_files(
    args: m.ListFilesArgs, tools: DataToolsDep, caller: PrincipalDep
) -> m.FileList:
    result: m.FileList = await _run("list_files", tools, args, caller)
    return result


@router.post("/storage/write", dependencies=[Write], summary="Write text or base64 bytes")
async def write_file(
    args: m.WriteFileArgs, tools: DataToolsDep, caller: PrincipalDep
) -> m.WrittenFile:
    result: m.WrittenFile = await _run("write_file", tools, args, caller)
    return result
