"""A site's labelled calls (``calls.csv``): what is read, and every malformed file refused with its row and the fix."""

from __future__ import annotations

import pytest

from edge_coat.data.calls import CallFile, CallsError, read_calls


def _folder(tmp_path, text: str):
    (tmp_path / "calls.csv").write_text(text, encoding="utf-8")
    return tmp_path


def test_calls_are_read_in_file_order_with_optional_columns(tmp_path):
    got = read_calls(_folder(tmp_path, "file,alert,onset_s,group\nb.wav,YES,12.5,c1\na.wav,no,,c2\n\nc.wav,1,,\n"))
    assert got == [CallFile("b.wav", True, 12.5, "c1"), CallFile("a.wav", False, 0.0, "c2"),
                   CallFile("c.wav", True, 0.0, "")]
    # the two required columns alone, in another order, and a spreadsheet's byte-order mark
    (tmp_path / "calls.csv").write_text("\ufeffalert,file\nfalse,x.flac\n", encoding="utf-8")
    assert read_calls(tmp_path) == [CallFile("x.flac", False)]


@pytest.mark.parametrize("text, says", [
    ("file\na.wav\n", "no alert column"),
    ("file,alert,speaker\na.wav,yes,1\n", "unknown column(s) ['speaker']"),
    ("file,alert\na.wav,maybe\n", "row 2: alert must be yes or no"),
    ("file,alert,onset_s\na.wav,yes,soon\n", "row 2: onset_s must be seconds"),
    ("file,alert,onset_s\na.wav,yes,-3\n", "row 2: onset_s must be >= 0"),
    ("file,alert,onset_s\na.wav,no,4\n", "row 2: onset_s is set on a call marked alert=no"),
    ("file,alert\na.wav,yes\na.wav,no\n", "row 3: a.wav is listed twice (first on row 2)"),
    ("file,alert\n../a.wav,yes\n", "must be a path inside the folder"),
    ("file,alert\n,yes\n", "row 2: empty file"),
    ("file,alert\n", "no calls"),
])
def test_a_malformed_calls_csv_is_refused_naming_the_row(tmp_path, text, says):
    with pytest.raises(CallsError, match=None) as exc:
        read_calls(_folder(tmp_path, text))
    assert says in str(exc.value) and "calls.csv" in str(exc.value)


def test_a_missing_folder_or_file_or_binary_junk_is_refused(tmp_path):
    with pytest.raises(CallsError, match="no such folder"):
        read_calls(tmp_path / "absent")
    with pytest.raises(CallsError, match="calls.csv: missing; write one row per call"):
        read_calls(tmp_path)
    (tmp_path / "calls.csv").write_bytes(b"\xff\xfe\x00\x81junk")
    with pytest.raises(CallsError, match="not UTF-8 text"):
        read_calls(tmp_path)
