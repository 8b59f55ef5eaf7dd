"""The shared table loader: formats, aliases, overrides and row-precise errors."""

import gzip
import json

import numpy as np
import pytest

from scaleadvise.errors import UserError
from scaleadvise.analysis.tables import Column, read_table

COLUMNS = (
    Column("width", ("d_model", "n_embd"), positive=True),
    Column("lr", ("learning_rate",), positive=True),
    Column("loss", ("eval_loss",), allow_nonfinite=True),
    Column("seed", ("random_seed",), numeric=False, required=False),
)


def _write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_aliases_case_and_mapping(tmp_path):
    path = _write(tmp_path, "s.csv", "D_Model, Learning_Rate,eval_loss,param\n128,0.01,3.5,stp\n256,0.005,nan,stp\n")
    t = read_table(path, COLUMNS)
    assert list(t.frame.columns[:3]) == ["width", "lr", "loss"]
    assert t.mapping == {"width": "D_Model", "lr": " Learning_Rate", "loss": "eval_loss"}
    assert t.extra_columns == ["param"]
    assert t.frame["width"].dtype == np.float64 and t.frame["width"].tolist() == [128.0, 256.0]
    assert np.isnan(t.frame["loss"].iloc[1])  # NaN loss is data (a diverged run)
    assert len(t) == 2


@pytest.mark.parametrize("name,writer", [
    ("s.tsv", lambda p: p.write_text("width\tlr\tloss\n128\t0.01\t3.5\n")),
    ("s.jsonl", lambda p: p.write_text('{"width": 128, "lr": 0.01, "loss": 3.5}\n')),
    ("s.json", lambda p: p.write_text(json.dumps([{"width": 128, "lr": 0.01, "loss": 3.5}]))),
    ("s.csv.gz", lambda p: p.write_bytes(gzip.compress(b"width,lr,loss\n128,0.01,3.5\n"))),
])
def test_formats(tmp_path, name, writer):
    path = tmp_path / name
    writer(path)
    t = read_table(path, COLUMNS)
    assert t.frame[["width", "lr", "loss"]].iloc[0].tolist() == [128.0, 0.01, 3.5]


def test_override_and_shadowed_column(tmp_path):
    # The file has a `width` column the user does not mean; --width-col picks another.
    path = _write(tmp_path, "s.csv", "width,hidden,lr,loss\n1,128,0.01,3.5\n")
    t = read_table(path, COLUMNS, {"width": "HIDDEN"})
    assert t.frame["width"].tolist() == [128.0] and list(t.frame.columns).count("width") == 1
    with pytest.raises(UserError, match="'nope' \\(given for lr\\) not found"):
        read_table(path, COLUMNS, {"lr": "nope"})
    with pytest.raises(UserError, match="given for both width and lr"):
        read_table(path, COLUMNS, {"width": "hidden", "lr": "hidden"})


def test_missing_column_message(tmp_path):
    path = _write(tmp_path, "s.csv", "width,learning_rate,score\n128,0.01,3.5\n")
    with pytest.raises(UserError) as e:
        read_table(path, COLUMNS)
    msg = str(e.value)
    assert "missing column 'loss'" in msg and "['loss', 'eval_loss']" in msg and "'score'" in msg
    assert "--loss-col" in msg and "\n" not in msg


@pytest.mark.parametrize("body,where", [
    ("128,0.01,3.5\n256,x,3.4\n", "line 3, column 'lr': 'x' is not a number"),
    ("128,0.01,3.5\n256,,3.4\n", "line 3, column 'lr': is empty or NaN"),
    ("128,0.01,3.5\n-256,0.01,3.4\n", "line 3, column 'width': -256 must be > 0"),
    ("128,0.01,3.5\n256,inf,3.4\n", "line 3, column 'lr': inf is not finite"),
    ("128,0.01,3.5\n256,0.01,oops\n", "line 3, column 'loss': 'oops' is not a number"),
])
def test_row_precise_errors(tmp_path, body, where):
    path = _write(tmp_path, "s.csv", "width,lr,loss\n" + body)
    with pytest.raises(UserError, match=where.replace("(", "\\(").replace(")", "\\)")):
        read_table(path, COLUMNS)


def test_jsonl_errors_name_the_record(tmp_path):
    path = _write(tmp_path, "s.jsonl", '{"width": 128, "lr": 0.01, "loss": 3.5}\n{"width": 128, "lr": "fast", "loss": 3}\n')
    with pytest.raises(UserError, match="record 2, column 'lr': 'fast' is not a number"):
        read_table(path, COLUMNS)


def test_file_level_errors(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        read_table(tmp_path / "none.csv", COLUMNS)
    with pytest.raises(UserError, match="is a directory"):
        read_table(tmp_path, COLUMNS)
    with pytest.raises(UserError, match="unknown file type '.xls'"):
        read_table(_write(tmp_path, "s.xls", "x"), COLUMNS)
    with pytest.raises(UserError, match="empty"):
        read_table(_write(tmp_path, "e.csv", ""), COLUMNS)
    with pytest.raises(UserError, match="no rows"):
        read_table(_write(tmp_path, "h.csv", "width,lr,loss\n"), COLUMNS)
    with pytest.raises(UserError, match="cannot parse as jsonl"):
        read_table(_write(tmp_path, "b.jsonl", "{not json\n"), COLUMNS)


@pytest.mark.parametrize("name,expected", [("s.csv", "line 4"), ("s.tsv", "line 4"), ("s.jsonl", "record 3"),
                                           ("s.json", "record 3"), ("s.parquet", "row 3"), ("s.csv.gz", "line 4")])
def test_where_names_a_row_as_the_file_shows_it(tmp_path, name, expected):
    from scaleadvise.analysis.tables import Table

    assert Table(path=str(tmp_path / name), frame=None).where(2) == expected
