"""The storage tools on S3 (moto's standalone server in its own process): read, tables,
listing, writing, the bucket allow-list and the size cap."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable

import boto3
import pandas as pd
import pytest

from service.errors import NotFound, PathNotAllowed, PayloadTooLarge
from service.tools.models import ListFilesArgs, ReadFileArgs, ReadTableArgs, WriteFileArgs
from service.tools.registry import DataTools
from service.tools.storage import list_files, read_csv, read_file, read_parquet, write_file


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    name = f"data-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture
def tools(bucket: str, tools_for: Callable[..., DataTools]) -> DataTools:
    return tools_for(s3_buckets=[bucket], storage_max_file_size=1)


def test_write_read_and_list(tools: DataTools, bucket: str) -> None:
    url = f"s3://{bucket}/raw/notes.txt"
    assert write_file(tools, WriteFileArgs(file_path=url, content="héllo")).size == 6
    content = read_file(tools, ReadFileArgs(file_path=url))
    assert (content.content, content.encoding, content.size) == ("héllo", "utf-8", 6)
    write_file(tools, WriteFileArgs(file_path=f"s3://{bucket}/raw/deep/x.csv", content="a\n1\n"))
    top = list_files(tools, ListFilesArgs(directory=f"s3://{bucket}/raw"))
    assert {(f.name, f.is_dir) for f in top.files} == {("notes.txt", False), ("deep", True)}
    deep = list_files(
        tools, ListFilesArgs(directory=f"s3://{bucket}/", pattern="*.csv", recursive=True)
    )
    assert [f.path for f in deep.files] == [f"s3://{bucket}/raw/deep/x.csv"]
    assert deep.files[0].size == 4
    with pytest.raises(PathNotAllowed, match="overwrite is false"):
        write_file(tools, WriteFileArgs(file_path=url, content="x", overwrite=False))


def test_read_csv_and_parquet(tools: DataTools, bucket: str) -> None:
    buffer = io.BytesIO()
    pd.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "c"]}).to_parquet(buffer)
    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key="t.parquet", Body=buffer.getvalue())
    s3.put_object(Bucket=bucket, Key="t.csv", Body=b"x,y\n1,a\n2,b\n")
    parquet = read_parquet(tools, ReadTableArgs(file_path=f"s3://{bucket}/t.parquet", n_rows=2))
    assert parquet.rows == [[1, "a"], [2, "b"]] and parquet.total_rows == 3
    csv = read_csv(tools, ReadTableArgs(file_path=f"s3://{bucket}/t.csv", columns=["y"]))
    assert csv.rows == [["a"], ["b"]]


def test_refusals(tools: DataTools, bucket: str) -> None:
    with pytest.raises(PathNotAllowed, match="bucket 'other' is not allowed"):
        read_file(tools, ReadFileArgs(file_path="s3://other/key.txt"))
    with pytest.raises(PathNotAllowed, match="names no object"):
        read_file(tools, ReadFileArgs(file_path=f"s3://{bucket}/"))
    with pytest.raises(NotFound):
        read_file(tools, ReadFileArgs(file_path=f"s3://{bucket}/missing.txt"))
    boto3.client("s3").put_object(Bucket=bucket, Key="big.csv", Body=b"x" * (1024 * 1024 + 1))
    with pytest.raises(PayloadTooLarge, match="over the storage limit"):
        read_csv(tools, ReadTableArgs(file_path=f"s3://{bucket}/big.csv"))


def test_s3_off_without_buckets(tools_for: Callable[..., DataTools]) -> None:
    tools = tools_for()
    with pytest.raises(PathNotAllowed, match="S3 is not enabled"):
        read_file(tools, ReadFileArgs(file_path="s3://any/key"))
