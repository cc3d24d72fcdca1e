"""Import and export formats of bank entries (safehold.banks.formats).

Every value here is a made-up hash or a harmless example URL; labels such as "A1" are
attached to nothing but these strings.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from safehold.banks.entries import EntryInput, EntryRecord
from safehold.banks.formats import (
    EXPORT_FORMATS,
    FORMATS,
    MAX_LINE,
    MAX_REPORTED_ERRORS,
    ParseResult,
    detect_format,
    parse,
    parse_path,
    signal_name,
    write,
)
from safehold.errors import InvalidValue
from safehold.signals.vpdq import VpdqFrame, serialize

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
PDQ2 = "30a10efd71cc3d429013d48d0ffffc52e34e0e17ada952a9d29685211ea9e5af"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"
MD5_2 = "0cc175b9c0f1b6a831c399e269772661"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
VPDQ = serialize([VpdqFrame(0, 0.0, PDQ, 100), VpdqFrame(1, 1.0, PDQ2, 90)])
URL = "https://example.com/a/b?x=1"


def rows(result: ParseResult) -> list[tuple[str, str, list[str], str, str | None, str | None]]:
    return [
        (e.signal_type, e.value, e.labels, e.source, e.external_id, e.note) for e in result.entries
    ]


def errors(result: ParseResult) -> dict[int, str]:
    return {e.line: e.message for e in result.errors}


def read(text: str, fmt: str = "auto", **kwargs: object) -> ParseResult:
    return parse(io.StringIO(text), fmt, **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- each format


def test_jsonl() -> None:
    text = "\n".join(
        [
            json.dumps(
                {
                    "signal_type": "pdq",
                    "value": PDQ.upper(),
                    "labels": ["A1", "iwf:c"],
                    "source": "ncmec",
                    "external_id": "n-1",
                    "note": "synthetic",
                }
            ),
            "",
            json.dumps({"signal_type": "md5", "value": MD5, "labels": "B1|B2", "external_id": 7}),
            json.dumps({"signal_type": "vpdq", "value": VPDQ}),
        ]
    )
    result = read(text)
    assert result.format == "jsonl"
    assert result.rows == 3 and result.error_count == 0
    assert rows(result) == [
        ("pdq", PDQ, ["A1", "iwf:C"], "ncmec", "n-1", "synthetic"),
        ("md5", MD5, ["B1", "B2"], "local", "7", None),
        ("vpdq", VPDQ, [], "local", None, None),
    ]


def test_csv() -> None:
    text = (
        "signal_type,value,labels,source,external_id\r\n"
        f"pdq,{PDQ},A1|B2,ncmec,ext-1\r\n"
        f"sha256,{SHA256},,,\r\n"
        f'vpdq,"{VPDQ.replace(chr(34), chr(34) * 2)}",A2,stopncii,\r\n'
        "\r\n"
        f"url,{URL},ncii,takeitdown,u1\r\n"
    )
    result = read(text)
    assert result.format == "csv"
    assert result.error_count == 0, result.errors
    assert rows(result) == [
        ("pdq", PDQ, ["A1", "B2"], "ncmec", "ext-1", None),
        ("sha256", SHA256, [], "local", None, None),
        ("vpdq", VPDQ, ["A2"], "stopncii", None, None),
        ("url", URL, ["ncii"], "takeitdown", "u1", None),
    ]


def test_csv_note_column_and_labels_with_spaces() -> None:
    text = f"signal_type,value,labels,source,external_id,note\nmd5,{MD5}, A1 | b2 ,,x,hello\n"
    assert rows(read(text)) == [("md5", MD5, ["A1", "B2"], "local", "x", "hello")]


def test_pytx_csv_tags_become_labels_or_note() -> None:
    # What `threatexchange dataset -P --csv` prints.
    text = (
        "signal_type,signal_str,collab,category,tags\n"
        f"pdq,{PDQ},Sample Collab,ADULT,A1 funny-cats\n"
        f"video_md5,{MD5},Other,,\n"
    )
    result = read(text)
    assert result.format == "pytx-csv"
    assert rows(result) == [
        (
            "pdq",
            PDQ,
            ["A1"],
            "threatexchange",
            None,
            "collab: Sample Collab; category: ADULT; tags: funny-cats",
        ),
        ("md5", MD5, [], "threatexchange", None, "collab: Other"),
    ]
    # An explicit source wins over the format's default.
    assert {e.source for e in read(text, source="partner:acme").entries} == {"partner:acme"}


def test_pytx_lines() -> None:
    text = f"# a comment\npdq {PDQ}\n\nvideo_md5 {MD5}\nvpdq {VPDQ}\nurl {URL}\n"
    result = read(text)
    assert result.format == "pytx-lines"
    assert [(e.signal_type, e.value) for e in result.entries] == [
        ("pdq", PDQ),
        ("md5", MD5),
        ("vpdq", VPDQ),
        ("url", URL),
    ]
    assert all(e.source == "local" and e.labels == [] for e in result.entries)


def test_pytx_lines_without_type_use_the_default_signal_type() -> None:
    result = read(f"{PDQ}\n{PDQ2}\n", "pytx-lines", default_signal_type="pdq")
    assert [e.value for e in result.entries] == [PDQ, PDQ2]
    # Without a default, a bare value is a bad row.
    bad = read(f"{PDQ}\n", "pytx-lines")
    assert bad.entries == [] and list(errors(bad)) == [1]


def test_te_csv() -> None:
    # `threatexchange api fb_threatexchange query` output.
    text = (
        "id,indicator,type,status,tags,owner_id\n"
        f"1001,{PDQ},HASH_PDQ,MALICIOUS,csam other-tag,42\n"
        f"1002,{MD5},HASH_MD5,,,\n"
        f"1003,{URL},URI,NON_MALICIOUS,,\n"
    )
    result = read(text)
    assert result.format == "te-csv"
    assert rows(result) == [
        (
            "pdq",
            PDQ,
            ["csam"],
            "threatexchange",
            "1001",
            "status: MALICIOUS; owner: 42; tags: other-tag",
        ),
        ("md5", MD5, [], "threatexchange", "1002", None),
        ("url", URL, [], "threatexchange", "1003", "status: NON_MALICIOUS"),
    ]


def test_default_source_and_labels_fill_rows_without_them() -> None:
    text = (
        json.dumps({"signal_type": "md5", "value": MD5})
        + "\n"
        + json.dumps({"signal_type": "md5", "value": MD5_2, "labels": ["B1"], "source": "ncmec"})
        + "\n"
    )
    result = read(text, source="stopncii", default_labels=["A2"])
    assert [(e.labels, e.source) for e in result.entries] == [
        (["A2"], "stopncii"),
        (["B1"], "ncmec"),
    ]


# --------------------------------------------------------------------------- detection, aliases


@pytest.mark.parametrize(
    ("head", "filename", "expected"),
    [
        ('{"signal_type": "pdq"}', "", "jsonl"),
        ("\n\n  {}", "", "jsonl"),
        ("anything", "feed.jsonl", "jsonl"),
        ("anything", "feed.ndjson", "jsonl"),
        ("signal_type,value,labels", "", "csv"),
        ("Signal_Type , Value", "", "csv"),
        ("signal_type,signal_str,collab,category,tags", "", "pytx-csv"),
        ("id,indicator,type,status,tags,owner_id", "", "te-csv"),
        (f"pdq {PDQ}", "", "pytx-lines"),
        (f"HASH_MD5 {MD5}", "", "pytx-lines"),
    ],
)
def test_detect_format(head: str, filename: str, expected: str) -> None:
    assert detect_format(head, filename) == expected


@pytest.mark.parametrize("head", ["", "hello", "a,b,c", f"{PDQ}", "<html>"])
def test_detect_format_refuses_to_guess(head: str) -> None:
    with pytest.raises(InvalidValue, match="--format"):
        detect_format(head)


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("pdq", "pdq"),
        ("PDQ", "pdq"),
        ("photo_pdq", "pdq"),
        ("HASH_PDQ", "pdq"),
        ("video_md5", "md5"),
        ("photo_md5", "md5"),
        ("HASH_MD5", "md5"),
        ("hash_video_md5", "md5"),
        ("video_sha256", "sha256"),
        ("HASH_SHA256", "sha256"),
        ("video_vpdq", "vpdq"),
        ("HASH_VPDQ", "vpdq"),
        ("URI", "url"),
        (" url ", "url"),
    ],
)
def test_signal_type_aliases(alias: str, name: str) -> None:
    assert signal_name(alias) == name


@pytest.mark.parametrize("bad", ["raw_text", "trend_query", "", "pdq2", "x" * 1000])
def test_unknown_signal_type(bad: str) -> None:
    with pytest.raises(InvalidValue, match="unsupported signal type") as info:
        signal_name(bad)
    assert len(info.value.message) < 200


def test_unknown_format_name() -> None:
    with pytest.raises(InvalidValue, match="unknown format"):
        read("", "xml")
    assert set(EXPORT_FORMATS) <= set(FORMATS)


# --------------------------------------------------------------------------- bad rows


def test_bad_rows_are_reported_with_line_numbers_and_good_rows_kept() -> None:
    lines = [
        json.dumps({"signal_type": "pdq", "value": PDQ}),  # 1 good
        json.dumps({"signal_type": "pdq", "value": "zz" * 32}),  # 2 bad hex
        json.dumps({"signal_type": "sha1", "value": MD5}),  # 3 unknown signal
        json.dumps({"signal_type": "md5", "value": MD5, "labels": ["Z9"]}),  # 4 unknown label
        '{"signal_type": "md5", "value": ',  # 5 invalid JSON
        "[1, 2, 3]",  # 6 not an object
        json.dumps({"value": MD5}),  # 7 no signal type
        json.dumps({"signal_type": "md5", "value": MD5, "source": "Not A Source!"}),  # 8
        json.dumps({"signal_type": "md5", "value": 12345}),  # 9 value not text
        json.dumps({"signal_type": "md5", "value": MD5, "labels": 3}),  # 10 labels not a list
        json.dumps({"signal_type": "md5", "value": MD5, "external_id": "x" * 300}),  # 11
        json.dumps({"signal_type": "md5", "value": MD5, "source": ["ncmec"]}),  # 12
        "[" * 100_000,  # 13 nested too deeply for the JSON parser
        json.dumps({"signal_type": "md5", "value": MD5_2, "labels": [{"a": 1}]}),  # 14
        json.dumps({"signal_type": "md5", "value": MD5_2}),  # 15 good
    ]
    result = read("\n".join(lines) + "\n")
    assert [e.value for e in result.entries] == [PDQ, MD5_2]
    found = errors(result)
    assert sorted(found) == list(range(2, 15))
    assert result.error_count == 13 and result.rows == 15
    assert "pdq" in found[2] and "64 hexadecimal" in found[2]
    assert "unsupported signal type 'sha1'" in found[3]
    assert "unknown label 'Z9'" in found[4]
    assert "not valid JSON" in found[5]
    assert "JSON object" in found[6]
    assert "signal_type" in found[7]
    assert "source" in found[8]
    assert "text" in found[9]
    assert "labels" in found[10]
    assert "external_id" in found[11]
    assert "not valid JSON" in found[13]
    for message in found.values():
        assert len(message) < 1500  # "unknown label" lists the valid ones


def test_csv_bad_rows() -> None:
    text = (
        "signal_type,value,labels,source,external_id\n"
        f"pdq,{PDQ},A1,,\n"
        "md5,not-hex,,,\n"
        f"foo,{MD5},,,\n"
        f"md5,{MD5},nope,,\n"
        f"md5,{MD5}\n"
        f"md5,{MD5},,,,extra\n"
        f"md5,{MD5_2},,,\n"
    )
    result = read(text)
    assert [e.value for e in result.entries] == [PDQ, MD5_2]
    found = errors(result)
    assert sorted(found) == [3, 4, 5, 6, 7]
    assert "md5" in found[3]
    assert "'foo'" in found[4]
    assert "'nope'" in found[5]
    assert found[6] == "expected 5 columns, found 2"
    assert found[7] == "expected 5 columns, found 6"


def test_csv_header_must_name_the_columns() -> None:
    with pytest.raises(InvalidValue, match="lacks column"):
        read(f"signal_type,hash\nmd5,{MD5}\n", "csv")
    with pytest.raises(InvalidValue, match="lacks column"):
        read(f"id,indicator\n1,{MD5}\n", "te-csv")
    # An empty file in an explicit format is simply empty.
    assert read("", "csv").rows == 0
    assert read("", "jsonl").rows == 0


def test_nul_bytes_are_bad_rows() -> None:
    text = json.dumps({"signal_type": "md5", "value": MD5}) + "\n" + '{"signal_type": "md5",\x00}\n'
    result = read(text)
    assert len(result.entries) == 1
    assert errors(result) == {2: "line contains a NUL character"}
    csv_text = f"signal_type,value\nmd5,{MD5}\x00\nmd5,{MD5_2}\n"
    result = read(csv_text)
    assert [e.value for e in result.entries] == [MD5_2]
    assert list(errors(result)) == [2]


def test_a_2mb_line_is_a_bad_row() -> None:
    huge = json.dumps({"signal_type": "pdq", "value": "a" * 2_000_000})
    good = json.dumps({"signal_type": "pdq", "value": PDQ})
    result = read(f"{good}\n{huge}\n{good}\n")
    assert result.rows == 3 and len(result.entries) == 2
    assert errors(result) == {2: f"line is longer than {MAX_LINE} characters"}
    csv_text = f"signal_type,value\n{'md5,' + 'b' * 2_000_000}\nmd5,{MD5}\n"
    result = read(csv_text)
    assert [e.value for e in result.entries] == [MD5]
    assert list(errors(result)) == [2]


def test_invalid_utf8_lines_are_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "feed.csv"
    path.write_bytes(
        b"signal_type,value,labels\n"
        + f"md5,{MD5},A1\n".encode()
        + b"md5,\xff\xfe\xc3\x28,A1\n"
        + f"md5,{MD5_2},B1\n".encode()
    )
    result = parse_path(path)
    assert [e.value for e in result.entries] == [MD5, MD5_2]
    assert errors(result) == {3: "line is not valid UTF-8 text"}


def test_a_file_that_is_not_text_at_all(tmp_path: Path) -> None:
    path = tmp_path / "feed.jsonl"
    path.write_bytes(bytes(range(128, 256)) * 40)
    result = parse_path(path)
    assert result.entries == []
    assert result.error_count >= 1
    assert all(e.message == "line is not valid UTF-8 text" for e in result.errors)


def test_utf8_byte_order_mark_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(
        "\ufeffsignal_type,value,labels,source,external_id\r\n".encode()
        + f"md5,{MD5},A1,ncmec,e1\r\n".encode()
    )
    result = parse_path(path)
    assert result.format == "csv"
    assert rows(result) == [("md5", MD5, ["A1"], "ncmec", "e1", None)]
    te = tmp_path / "te.csv"
    te.write_bytes(b"\xef\xbb\xbfid,indicator,type\n" + f"77,{MD5},HASH_MD5\n".encode())
    assert [e.external_id for e in parse_path(te).entries] == ["77"]


def test_parse_path_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidValue, match="cannot be read"):
        parse_path(tmp_path / "missing.jsonl")
    with pytest.raises(InvalidValue, match="cannot be read"):
        parse_path(tmp_path)


def test_error_list_is_capped_but_counted() -> None:
    n = MAX_REPORTED_ERRORS + 500
    text = "signal_type,value\n" + "md5,bad\n" * n + f"md5,{MD5}\n"
    result = read(text)
    assert result.error_count == n
    assert len(result.errors) == MAX_REPORTED_ERRORS
    assert result.errors[0].line == 2
    assert result.rows == n + 1 and len(result.entries) == 1


def test_auto_detection_across_a_long_first_chunk() -> None:
    # More than the 64 KiB the detector reads ahead: nothing may be lost or repeated.
    values = [f"{i:032x}" for i in range(4000)]
    text = "".join(json.dumps({"signal_type": "md5", "value": v}) + "\n" for v in values)
    assert len(text) > 64 * 1024 * 2
    result = read(text)
    assert [e.value for e in result.entries] == values
    assert result.error_count == 0


# --------------------------------------------------------------------------- export


def record(i: int, signal_type: str, value: str, **kw: object) -> EntryRecord:
    base: dict[str, object] = {
        "id": i,
        "bank": "b",
        "signal_type": signal_type,
        "value": value,
        "labels": [],
        "source": "local",
        "external_id": None,
        "added_at": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        "added_by": "test",
        "note": None,
    }
    base.update(kw)
    return EntryRecord(**base)  # type: ignore[arg-type]


RECORDS = [
    record(
        1, "pdq", PDQ, labels=["A1", "iwf:C"], source="ncmec", external_id="n,1", note='a "note"'
    ),
    record(2, "md5", MD5, labels=["B2"], source="partner:acme", external_id="x|y"),
    record(3, "sha256", SHA256),
    record(4, "vpdq", VPDQ, labels=["A2"], note="line one, still one"),
    record(5, "url", URL, labels=["ncii"], source="takeitdown"),
]


def as_inputs(
    records: list[EntryRecord],
) -> list[tuple[str, str, list[str], str, str | None, str | None]]:
    return [(r.signal_type, r.value, r.labels, r.source, r.external_id, r.note) for r in records]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_write_reads_back_equal(fmt: str) -> None:
    buf = io.StringIO()
    assert write(RECORDS, buf, fmt) == len(RECORDS)
    result = read(buf.getvalue())
    assert result.format == fmt
    assert result.error_count == 0, result.errors
    assert rows(result) == as_inputs(RECORDS)


def test_write_pytx_lines_reads_back_equal_values() -> None:
    buf = io.StringIO()
    assert write(RECORDS, buf, "pytx-lines") == len(RECORDS)
    text = buf.getvalue()
    # python-threatexchange's own names for the exact digests.
    assert f"video_md5 {MD5}\n" in text and f"video_sha256 {SHA256}\n" in text
    result = read(text)
    assert result.format == "pytx-lines"
    assert [(e.signal_type, e.value) for e in result.entries] == [
        (r.signal_type, r.value) for r in RECORDS
    ]


def test_write_csv_is_plain_csv() -> None:
    buf = io.StringIO()
    write(RECORDS, buf, "csv")
    table = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert [r["signal_type"] for r in table] == [r.signal_type for r in RECORDS]
    assert table[0]["labels"] == "A1|iwf:C"
    assert table[0]["added_at"].startswith("2025-01-02T03:04:05")


@pytest.mark.parametrize("fmt", ["pytx-csv", "te-csv", "xml"])
def test_write_refuses_import_only_formats(fmt: str) -> None:
    with pytest.raises(InvalidValue, match="cannot export"):
        write(RECORDS, io.StringIO(), fmt)


def test_write_jsonl_keeps_unicode_readable() -> None:
    buf = io.StringIO()
    write([record(1, "md5", MD5, note="café ✓")], buf, "jsonl")
    assert "café ✓" in buf.getvalue()
    assert isinstance(read(buf.getvalue()).entries[0], EntryInput)
