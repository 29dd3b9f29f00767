"""Read a billing file (CSV, gzipped CSV, Parquet, newline-delimited JSON) as text columns."""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl

from costs.sources.base import LINE, BillingFileError, SourceTable

_PARQUET_MAGIC = b"PAR1"
_GZIP_MAGIC = b"\x1f\x8b"


def _sniff(path: Path) -> tuple[str, bool]:
    """Return (kind, gzipped) from the file's first bytes, not its name."""
    with path.open("rb") as fh:
        head = fh.read(4)
    gzipped = head[:2] == _GZIP_MAGIC
    if head == _PARQUET_MAGIC:
        return "parquet", False
    opener = gzip.open if gzipped else open
    try:
        with opener(path, "rb") as fh:
            first = fh.read(4096).lstrip(b"\xef\xbb\xbf").lstrip()
    except (OSError, EOFError) as exc:
        raise BillingFileError(
            f"cannot read the file ({exc})", file=path.name, hint="is it a truncated .gz?"
        ) from exc
    if b"\x00" in first:
        raise BillingFileError(
            "the file is not text: it holds binary data",
            file=path.name,
            line=1,
            hint="upload the CSV, .csv.gz, Parquet or JSONL export itself",
        )
    if first.startswith(b"{"):
        return "jsonl", gzipped
    return "csv", gzipped


def _list_json(value: object) -> str:
    items = value.to_list() if isinstance(value, pl.Series) else value
    return json.dumps(items, default=str)


def maps_as_lists(frame: pl.DataFrame) -> pl.DataFrame:
    """CUR 2.0 Parquet keeps tags, product and cost categories as maps: read them as
    key/value lists, the shape the tag parser turns into tag text."""
    maps = {name: dtype for name, dtype in frame.schema.items() if isinstance(dtype, pl.Map)}
    if not maps:
        return frame
    return frame.with_columns(
        pl.col(name).cast(pl.List(pl.Struct({"key": dtype.key, "value": dtype.value})))
        for name, dtype in maps.items()
    )


def _flatten(frame: pl.DataFrame) -> pl.DataFrame:
    """Turn nested JSON/Parquet columns into dotted text columns; lists become JSON text."""
    frame = maps_as_lists(frame)
    while True:
        structs = [c for c, t in frame.schema.items() if isinstance(t, pl.Struct)]
        if not structs:
            break
        for name in structs:
            fields = frame[name].struct.fields
            frame = frame.with_columns(
                pl.col(name).struct.field(f).alias(f"{name}.{f}") for f in fields
            ).drop(name)
    out = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.List):
            inner = dtype.inner
            if not isinstance(inner, pl.Struct):
                # Rare (GCP ancestry numbers): plain JSON through Python is fine here.
                out.append(
                    pl.col(name).map_elements(_list_json, return_dtype=pl.String).alias(name)
                )
                continue
            out.append(
                pl.concat_str(
                    pl.lit("["),
                    pl.col(name).list.eval(pl.element().struct.json_encode()).list.join(","),
                    pl.lit("]"),
                ).alias(name)
            )
        else:
            out.append(pl.col(name).cast(pl.String))
    return frame.select(out)


def _clean(name: str) -> str:
    return name.lstrip("\ufeff").strip()


def _check_exists(path: Path, name: str) -> None:
    if not path.exists():
        raise BillingFileError("file not found", file=name)
    if path.stat().st_size == 0:
        raise BillingFileError("the file is empty", file=name, hint="export it again")


def _unreadable(name: str, kind: str, exc: Exception) -> BillingFileError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return BillingFileError(
        f"the file is not a readable {kind.upper()} ({detail})",
        file=name,
        hint="check that the export finished and the file is not truncated or garbled",
    )


def read_header(path: Path, *, display_name: str | None = None) -> list[str]:
    """The file's column names, read without loading its rows (CSV and Parquet)."""
    name = display_name or path.name
    _check_exists(path, name)
    kind, _ = _sniff(path)
    try:
        if kind == "parquet":
            return _flat_names(dict(pl.read_parquet_schema(path)))
        if kind == "csv":
            return _csv_columns(path, None)[0]
    except (pl.exceptions.PolarsError, OSError, EOFError, ValueError) as exc:
        raise _unreadable(name, kind, exc) from exc
    return []  # JSONL: the names come with the rows


def _csv_columns(
    path: Path, columns: Callable[[list[str]], list[str]] | None
) -> tuple[list[str], list[str]]:
    """The cleaned header, and the columns (as polars names them) worth reading."""
    raw_names = pl.read_csv(path, n_rows=0, infer_schema=False).columns
    header = [_clean(c) for c in raw_names]
    wanted = set(columns(header)) if columns else set(header)
    selected = [raw for raw, clean in zip(raw_names, header, strict=True) if clean in wanted]
    return header, selected or raw_names


def _flat_names(schema: dict[str, pl.DataType], prefix: str = "") -> list[str]:
    """Column names as ``_flatten`` will spell them: nested struct fields dotted."""
    names: list[str] = []
    for name, dtype in schema.items():
        if isinstance(dtype, pl.Struct):
            names += _flat_names({f.name: f.dtype for f in dtype.fields}, f"{prefix}{name}.")
        else:
            names.append(f"{prefix}{_clean(name)}")
    return names


def read_table(
    path: Path,
    *,
    display_name: str | None = None,
    columns: Callable[[list[str]], list[str]] | None = None,
) -> SourceTable:
    """Read ``path`` with every column as text, numbering lines as the user sees them.

    ``columns`` picks, from the CSV header, the columns worth reading: a billing export has
    30 to 200 of them and an adapter uses a fraction, so this saves most of the memory.
    """
    name = display_name or path.name
    _check_exists(path, name)
    kind, gzipped = _sniff(path)
    header: list[str] = []
    try:
        if kind == "parquet":
            frame = _flatten(pl.read_parquet(path))
            first_line = 1
        elif kind == "jsonl":
            if gzipped:
                with gzip.open(path, "rb") as fh:
                    source = fh.read()
            else:
                source = path
            frame = _flatten(pl.read_ndjson(source, infer_schema_length=None))
            first_line = 1
        else:
            header, selected = _csv_columns(path, columns)
            frame = pl.read_csv(
                path,
                columns=selected,
                infer_schema=False,
                encoding="utf8-lossy",
                null_values=None,
                raise_if_empty=True,
            )
            first_line = 2
    except (pl.exceptions.PolarsError, OSError, EOFError, ValueError) as exc:
        raise _unreadable(name, kind, exc) from exc
    frame = frame.rename({c: _clean(c) for c in frame.columns})
    if frame.height == 0:
        raise BillingFileError("the file has a header but no rows", file=name, line=first_line)
    frame = frame.with_row_index(LINE, offset=first_line).with_columns(pl.col(LINE).cast(pl.Int64))
    return SourceTable(path=Path(name), frame=frame, first_line=first_line, header=header)


def iter_tables(
    path: Path,
    *,
    display_name: str | None = None,
    columns: Callable[[list[str]], list[str]] | None = None,
    chunk_rows: int = 250_000,
) -> Iterator[SourceTable]:
    """Read a large plain CSV in chunks of ``chunk_rows`` lines, so memory stays bounded.

    Line numbers run on across chunks. Gzipped CSV, Parquet and JSONL are read whole.
    """
    name = display_name or path.name
    _check_exists(path, name)
    kind, gzipped = _sniff(path)
    if kind != "csv" or gzipped:
        yield read_table(path, display_name=display_name, columns=columns)
        return
    try:
        header, selected = _csv_columns(path, columns)
    except (pl.exceptions.PolarsError, OSError, EOFError, ValueError) as exc:
        raise _unreadable(name, kind, exc) from exc
    lazy = (
        pl.scan_csv(path, infer_schema=False, encoding="utf8-lossy")
        .select(selected)
        .with_row_index(LINE, offset=2)
        .with_columns(pl.col(LINE).cast(pl.Int64))
    )
    batches = lazy.collect_batches(chunk_size=chunk_rows)
    seen = False
    last_line = 0
    while True:
        try:
            frame = next(batches)
        except StopIteration:
            break
        except (pl.exceptions.PolarsError, OSError, EOFError, ValueError) as exc:
            raise _unreadable(name, kind, exc) from exc
        if frame.height == 0:
            continue
        seen = True
        last_line = int(frame[LINE][-1])
        frame = frame.rename({c: _clean(c) for c in frame.columns})
        yield SourceTable(path=Path(name), frame=frame, first_line=2, header=header)
    if not seen:
        raise BillingFileError("the file has a header but no rows", file=name, line=2)
    _check_not_cut(path, name, last_line)


def _fields(line: bytes) -> int:
    text = line.decode("utf-8", "replace")
    return len(next(csv.reader([text]), []))


def _check_not_cut(path: Path, name: str, last_line: int) -> None:
    """Fail when the last line has fewer fields than the first: the file was cut off.

    Compared with the first data line rather than the header, because some exporters write
    every line one field short of their header, which is harmless.
    """
    with path.open("rb") as fh:
        head = fh.read(1 << 16).splitlines()
        fh.seek(max(0, path.stat().st_size - (1 << 16)))
        end = fh.read()
    if end.endswith(b"\n"):
        return  # a complete last line; only a file cut mid-line is detectable here
    tail = [line for line in end.splitlines() if line.strip()]
    if len(head) < 2 or not tail:
        return
    expected, found = _fields(head[1]), _fields(tail[-1])
    if found < expected:
        raise BillingFileError(
            f"the last line has {found} fields but the lines before it have {expected}",
            file=name,
            line=last_line,
            hint="the file looks cut off; export or download it again",
        )
