"""A small PostgREST-compatible test double over a real PostgreSQL database.

It implements the part of PostgREST's grammar that supabase-py's postgrest client sends for
``SupabaseStore``, with PostgREST's own SQL strategy (``json_populate_recordset`` for writes,
``json_agg`` for reads, one transaction per request), so values round-trip exactly as they
would through Supabase:

- ``GET``/``HEAD /rest/v1/<table>``: ``select`` (``col``, ``col::type``, ``*``), filters
  ``eq neq lt lte gt gte is in like ilike`` and ``not.<op>``, ``order``, ``limit``/``offset``,
  ``Prefer: count=exact`` (``Content-Range``), ``db-max-rows`` (``max_rows``), and
  ``Accept: application/vnd.pgrst.object+json``;
- ``POST``: insert, or upsert with ``Prefer: resolution=merge-duplicates|ignore-duplicates``
  and ``on_conflict``; ``columns``; ``Prefer: return=minimal|representation``;
- ``PATCH`` / ``DELETE`` with filters (and Supabase's safeupdate rule: never without one);
- errors as PostgREST renders them (``{"code","message","details","hint"}`` with its status
  mapping), a Supabase-gateway 401 for a wrong key, a gateway 413 above ``max_body_bytes``.

Use it in-process (``transport()`` → ``httpx.MockTransport``) or over a real socket
(``asgi()`` served by ``pms_cli.sandbox.server.SandboxServer`` on 127.0.0.1). ``fail_next``
injects gateway faults; ``log`` keeps every request for assertions.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
from psycopg import sql
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pms_cli.stores.supabase import REST_PATH, SupabaseStore

RESERVED = {"select", "order", "limit", "offset", "on_conflict", "columns"}
OPS = {"eq": "=", "neq": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
SINGLE = "application/vnd.pgrst.object+json"


class PgrstError(Exception):
    """An error answered as PostgREST does: status + JSON body."""

    def __init__(
        self, status: int, code: str | None, message: str, details: Any = None, hint: Any = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"code": code, "details": details, "hint": hint, "message": message}


def pg_status(sqlstate: str) -> int:
    """PostgREST's PostgreSQL error code → HTTP status table (the parts we can meet)."""
    if sqlstate in ("23503", "23505"):
        return 409
    if sqlstate in ("42P01", "42883"):
        return 404
    if sqlstate == "42501":
        return 403
    if sqlstate.startswith(("08", "53")):
        return 503
    if sqlstate.startswith(
        ("09", "25", "2D", "38", "39", "3B", "40", "54", "55", "57", "58", "XX")
    ):
        return 500
    return 400


def split_list(text: str) -> list[str]:
    """``a,"b,c",d`` → ['a', 'b,c', 'd'] (PostgREST's quoting for in-lists and columns)."""
    out, cur, quoted, escaped = [], "", False, False
    for ch in text:
        if escaped:
            cur += ch
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return out


@dataclass
class Fault:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    when: Callable[[httpx.Request], bool] | None = None


class PostgrestDouble:
    """PostgREST's REST grammar (the subset supabase-py uses) over a real PostgreSQL."""

    def __init__(
        self,
        dsn: str,
        service_key: str,
        *,
        max_rows: int | None = 1000,
        max_body_bytes: int | None = None,
    ) -> None:
        self.dsn = dsn
        self.service_key = service_key
        self.max_rows = max_rows
        self.max_body_bytes = max_body_bytes
        self.log: list[httpx.Request] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self._db = psycopg.connect(dsn, autocommit=True)
        # Supabase runs PostgREST with TimeZone UTC: timestamps come back as +00:00.
        self._db.execute("SET TimeZone = 'UTC'")

    def close(self) -> None:
        self._db.close()

    # --- plumbing -----------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def asgi(self) -> Starlette:
        async def endpoint(request: Request) -> Response:
            req = httpx.Request(
                request.method,
                str(request.url),
                headers=request.headers.raw,
                content=await request.body(),
            )
            resp = await run_in_threadpool(self.handle, req)
            return Response(resp.content, resp.status_code, headers=dict(resp.headers))

        methods = ["GET", "HEAD", "POST", "PATCH", "DELETE"]
        return Starlette(routes=[Route("/{path:path}", endpoint, methods=methods)])

    def fail_next(
        self,
        status: int,
        body: bytes = b"",
        times: int = 1,
        when: Callable[[httpx.Request], bool] | None = None,
    ) -> None:
        """Answer the next ``times`` requests (matching ``when``) with this gateway fault."""
        self.faults.extend(Fault(status, body, {}, when) for _ in range(times))

    def store(self, **kwargs: Any) -> DoubleBackedStore:
        return DoubleBackedStore(self, **kwargs)

    @contextmanager
    def cursor(self) -> Iterator[psycopg.Cursor[Any]]:
        with self._lock, self._db.transaction(), self._db.cursor() as cur:
            yield cur

    # --- request handling ---------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.log.append(request)
        fault = next((f for f in self.faults if f.when is None or f.when(request)), None)
        if fault is not None:
            self.faults.remove(fault)
            return httpx.Response(fault.status, content=fault.body, headers=fault.headers)
        key = self.service_key
        if (
            request.headers.get("apikey") != key
            or request.headers.get("authorization") != f"Bearer {key}"
        ):
            # Supabase's API gateway answers before PostgREST sees the request.
            return httpx.Response(
                401,
                json={
                    "message": "Invalid API key",
                    "hint": "Double check your Supabase `anon` or `service_role` API key.",
                },
            )
        if self.max_body_bytes is not None and len(request.content) > self.max_body_bytes:
            return httpx.Response(
                413,
                content=b"<html><body><h1>413 Request Entity Too Large</h1></body></html>",
                headers={"content-type": "text/html"},
            )
        try:
            return self._dispatch(request)
        except PgrstError as exc:
            return httpx.Response(exc.status, json=exc.body)
        except psycopg.Error as exc:
            diag = exc.diag
            state = exc.sqlstate or "XX000"
            return httpx.Response(
                pg_status(state),
                json={
                    "code": state,
                    "details": diag.message_detail,
                    "hint": diag.message_hint,
                    "message": diag.message_primary or str(exc),
                },
            )

    def _dispatch(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if not path.startswith(REST_PATH + "/"):
            raise PgrstError(404, None, "Not found")
        table = path[len(REST_PATH) + 1 :]
        profile = request.headers.get("accept-profile") or request.headers.get("content-profile")
        if profile and profile != "public":
            raise PgrstError(
                406, "PGRST106", "The schema must be one of the following: public", None, None
            )
        with self.cursor() as cur:
            types = self._columns(cur, table)
            prefer = self._prefer(request)
            params = list(request.url.params.multi_items())
            where, args = self._where(table, types, params)
            method = request.method
            if method in ("GET", "HEAD"):
                return self._read(cur, request, table, types, params, where, args, prefer)
            if method == "POST":
                return self._insert(cur, request, table, types, params, prefer)
            if method in ("PATCH", "DELETE"):
                if not where:
                    raise PgrstError(
                        400, "21000", f"{method.replace('PATCH', 'UPDATE')} requires a WHERE clause"
                    )
                return self._mutate(cur, request, table, types, params, where, args, prefer)
        raise PgrstError(405, None, f"method {request.method} not supported")

    @staticmethod
    def _prefer(request: httpx.Request) -> dict[str, str]:
        out: dict[str, str] = {}
        for value in request.headers.get_list("prefer", split_commas=True):
            name, _, setting = value.strip().partition("=")
            out[name] = setting
        return out

    def _columns(self, cur: psycopg.Cursor[Any], table: str) -> dict[str, str]:
        cur.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relname = %s AND c.relkind = 'r' "
            "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            [table],
        )
        types = {r[0]: r[1] for r in cur.fetchall()}
        if not types:
            raise PgrstError(
                404,
                "PGRST205",
                f"Could not find the table 'public.{table}' in the schema cache",
                None,
                None,
            )
        return types

    @staticmethod
    def _column(table: str, types: dict[str, str], name: str) -> str:
        name = name.strip().strip('"')
        if name not in types:
            raise PgrstError(400, "42703", f"column {table}.{name} does not exist")
        return name

    def _where(
        self, table: str, types: dict[str, str], params: list[tuple[str, str]]
    ) -> tuple[list[sql.Composable], list[Any]]:
        clauses: list[sql.Composable] = []
        args: list[Any] = []
        for key, value in params:
            if key in RESERVED:
                continue
            col = self._column(table, types, key)
            ident = sql.Identifier(table, col)  # qualified: UPDATE … FROM has the names twice
            typ = sql.SQL(types[col])
            negate = value.startswith("not.")
            if negate:
                value = value[4:]
            op, _, operand = value.partition(".")
            clause: sql.Composable
            if op in OPS:
                clause = sql.SQL("{} {} CAST({} AS {})").format(
                    ident, sql.SQL(OPS[op]), sql.Placeholder(), typ
                )
                args.append(operand)
            elif op == "is":
                word = {"null": "NULL", "true": "TRUE", "false": "FALSE", "unknown": "UNKNOWN"}
                if operand.lower() not in word:
                    raise PgrstError(400, "PGRST100", f'"failed to parse filter (is.{operand})"')
                clause = sql.SQL("{} IS {}").format(ident, sql.SQL(word[operand.lower()]))
            elif op == "in":
                if not (operand.startswith("(") and operand.endswith(")")):
                    raise PgrstError(400, "PGRST100", f'"failed to parse filter (in.{operand})"')
                clause = sql.SQL("{} = ANY(CAST({} AS {}[]))").format(ident, sql.Placeholder(), typ)
                args.append(split_list(operand[1:-1]) if operand != "()" else [])
            elif op in ("like", "ilike"):
                clause = sql.SQL("{} {} {}").format(ident, sql.SQL(op.upper()), sql.Placeholder())
                args.append(operand.replace("*", "%"))
            else:
                raise PgrstError(400, "PGRST100", f'"failed to parse filter ({value})"')
            clauses.append(sql.SQL("NOT ({})").format(clause) if negate else clause)
        return clauses, args

    def _select_list(
        self, table: str, types: dict[str, str], params: list[tuple[str, str]]
    ) -> sql.Composable:
        select = next((v for k, v in params if k == "select"), "*")
        items: list[sql.Composable] = []
        for item in select.split(","):
            item = item.strip()
            if item == "*":
                items.extend(sql.Identifier(c) for c in types)
                continue
            name, _, cast = item.partition("::")
            col = self._column(table, types, name)
            if cast:
                if not re.fullmatch(r"[a-z_ ]+", cast):
                    raise PgrstError(400, "PGRST100", f'"failed to parse select ({item})"')
                items.append(
                    sql.SQL("CAST({} AS {}) AS {}").format(
                        sql.Identifier(col), sql.SQL(cast), sql.Identifier(col)
                    )
                )
            else:
                items.append(sql.Identifier(col))
        return sql.SQL(", ").join(items)

    def _order(
        self, table: str, types: dict[str, str], params: list[tuple[str, str]]
    ) -> sql.Composable:
        order = next((v for k, v in params if k == "order"), "")
        if not order:
            return sql.SQL("")
        terms: list[sql.Composable] = []
        for term in order.split(","):
            name, *mods = term.split(".")
            parts: list[sql.Composable] = [sql.Identifier(self._column(table, types, name))]
            for mod in mods:
                words = {"asc": "ASC", "desc": "DESC", "nullsfirst": "NULLS FIRST"}
                words["nullslast"] = "NULLS LAST"
                if mod not in words:
                    raise PgrstError(400, "PGRST100", f'"failed to parse order ({term})"')
                parts.append(sql.SQL(words[mod]))
            terms.append(sql.SQL(" ").join(parts))
        return sql.SQL(" ORDER BY ") + sql.SQL(", ").join(terms)

    @staticmethod
    def _and(where: list[sql.Composable]) -> sql.Composable:
        if not where:
            return sql.SQL("")
        return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where)

    def _read(
        self,
        cur: psycopg.Cursor[Any],
        request: httpx.Request,
        table: str,
        types: dict[str, str],
        params: list[tuple[str, str]],
        where: list[sql.Composable],
        args: list[Any],
        prefer: dict[str, str],
    ) -> httpx.Response:
        tbl = sql.Identifier(table)
        limit = next((int(v) for k, v in params if k == "limit"), None)
        offset = next((int(v) for k, v in params if k == "offset"), 0)
        if self.max_rows is not None:
            limit = self.max_rows if limit is None else min(limit, self.max_rows)
        query = (
            sql.SQL("SELECT ")
            + self._select_list(table, types, params)
            + sql.SQL(" FROM ")
            + tbl
            + self._and(where)
            + self._order(table, types, params)
            + (sql.SQL(f" LIMIT {limit}") if limit is not None else sql.SQL(""))
            + sql.SQL(f" OFFSET {offset}")
        )
        cur.execute(
            sql.SQL("SELECT coalesce(json_agg(_r), '[]')::text, count(*) FROM ({}) _r").format(
                query
            ),
            args,
        )
        body, n = cur.fetchone() or ("[]", 0)
        total = "*"
        if prefer.get("count") == "exact":
            cur.execute(sql.SQL("SELECT count(*) FROM ") + tbl + self._and(where), args)
            row = cur.fetchone()
            total = str(row[0] if row else 0)
        rng = f"{offset}-{offset + n - 1}/{total}" if n else f"*/{total}"
        headers = {"content-range": rng, "content-type": "application/json; charset=utf-8"}
        if request.headers.get("accept", "").startswith(SINGLE):
            rows = json.loads(body)
            if len(rows) != 1:
                raise PgrstError(
                    406,
                    "PGRST116",
                    "Cannot coerce the result to a single JSON object",
                    f"The result contains {len(rows)} rows",
                )
            body = json.dumps(rows[0])
        status = 206 if total not in ("*", str(n)) and n else 200
        if request.method == "HEAD":
            return httpx.Response(status, headers=headers)
        return httpx.Response(status, content=body.encode(), headers=headers)

    def _written(
        self,
        cur: psycopg.Cursor[Any],
        statement: sql.Composable,
        args: list[Any],
        table: str,
        types: dict[str, str],
        params: list[tuple[str, str]],
        prefer: dict[str, str],
        created: bool,
    ) -> httpx.Response:
        """Run a data-modifying statement (``… RETURNING *``) and answer as PostgREST does."""
        cur.execute(
            sql.SQL(
                "WITH pgrst_source AS ({}) SELECT coalesce(json_agg(_r), '[]')::text, count(*) "
                "FROM (SELECT {} FROM pgrst_source {}) _r"
            ).format(
                statement,
                self._select_list(table, types, params),
                sql.Identifier(table),
            ),
            args,
        )
        body, n = cur.fetchone() or ("[]", 0)
        headers = {"content-type": "application/json; charset=utf-8"}
        if prefer.get("count") == "exact":
            headers["content-range"] = f"*/{n}"
        if prefer.get("return") == "representation":
            return httpx.Response(201 if created else 200, content=body.encode(), headers=headers)
        return httpx.Response(201 if created else 204, headers=headers)

    def _insert(
        self,
        cur: psycopg.Cursor[Any],
        request: httpx.Request,
        table: str,
        types: dict[str, str],
        params: list[tuple[str, str]],
        prefer: dict[str, str],
    ) -> httpx.Response:
        try:
            payload = json.loads(request.content or b"null")
        except ValueError:
            raise PgrstError(400, "PGRST102", "Empty or invalid json") from None
        rows = payload if isinstance(payload, list) else [payload]
        if not all(isinstance(r, dict) for r in rows):
            raise PgrstError(400, "PGRST102", "Empty or invalid json")
        columns_param = next((v for k, v in params if k == "columns"), None)
        if columns_param is not None:
            names = [self._column(table, types, c) for c in split_list(columns_param)]
        else:
            names = [self._column(table, types, c) for c in (rows[0] if rows else {})]
            if any(set(r) != set(names) for r in rows):
                raise PgrstError(400, "PGRST102", "All object keys must match")
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in names)
        tbl = sql.Identifier(table)
        statement = sql.SQL(
            "INSERT INTO {tbl} ({cols}) "
            "SELECT {cols} FROM json_populate_recordset(NULL::{tbl}, {p})"
        ).format(tbl=tbl, cols=cols, p=sql.Placeholder())
        resolution = prefer.get("resolution")
        if resolution in ("merge-duplicates", "ignore-duplicates"):
            conflict = next((v for k, v in params if k == "on_conflict"), None)
            keys = (
                [self._column(table, types, c) for c in conflict.split(",")]
                if conflict
                else self._primary_key(cur, table)
            )
            target = sql.SQL(", ").join(sql.Identifier(c) for c in keys)
            rest = [c for c in names if c not in keys]
            if resolution == "ignore-duplicates" or not rest:
                action = sql.SQL("DO NOTHING")
            else:
                action = sql.SQL("DO UPDATE SET ") + sql.SQL(", ").join(
                    sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in rest
                )
            statement += sql.SQL(" ON CONFLICT ({}) ").format(target) + action
        statement += sql.SQL(" RETURNING {}.*").format(tbl)
        return self._written(
            cur, statement, [json.dumps(rows)], table, types, params, prefer, created=True
        )

    @staticmethod
    def _primary_key(cur: psycopg.Cursor[Any], table: str) -> list[str]:
        cur.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = to_regclass(%s) AND i.indisprimary",
            [table],
        )
        return [r[0] for r in cur.fetchall()]

    def _mutate(
        self,
        cur: psycopg.Cursor[Any],
        request: httpx.Request,
        table: str,
        types: dict[str, str],
        params: list[tuple[str, str]],
        where: list[sql.Composable],
        args: list[Any],
        prefer: dict[str, str],
    ) -> httpx.Response:
        tbl = sql.Identifier(table)
        if request.method == "DELETE":
            statement = sql.SQL("DELETE FROM {} {} RETURNING {}.*").format(
                tbl, self._and(where), tbl
            )
            return self._written(cur, statement, args, table, types, params, prefer, False)
        try:
            values = json.loads(request.content or b"null")
        except ValueError:
            raise PgrstError(400, "PGRST102", "Empty or invalid json") from None
        if not isinstance(values, dict) or not values:
            raise PgrstError(400, "PGRST102", "Empty or invalid json")
        names = [self._column(table, types, c) for c in values]
        sets = sql.SQL(", ").join(
            sql.SQL("{c} = _v.{c}").format(c=sql.Identifier(c)) for c in names
        )
        statement = sql.SQL(
            "UPDATE {tbl} SET {sets} FROM json_populate_record(NULL::{tbl}, {p}) _v {w} "
            "RETURNING {tbl}.*"
        ).format(tbl=tbl, sets=sets, p=sql.Placeholder(), w=self._and(where))
        return self._written(
            cur, statement, [json.dumps(values), *args], table, types, params, prefer, False
        )


class DoubleBackedStore(SupabaseStore):
    """A SupabaseStore wired to a PostgrestDouble in-process, plus direct SQL on the database
    behind it (``_tx``/``ph``, as the SQL stores have) for tests that fake a state REST
    cannot produce, such as a lock held by a dead process."""

    ph = "%s"

    def __init__(self, double: PostgrestDouble, **kwargs: Any) -> None:
        kwargs.setdefault("sleep", lambda seconds: None)
        super().__init__(
            "https://project-ref.supabase.test",
            double.service_key,
            transport=double.transport(),
            **kwargs,
        )
        self.double = double

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Cursor[Any]]:
        with self.double.cursor() as cur:
            yield cur
