"""The MMRec reader/validator, the dataset object and dataset folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmunlearn.data.features import Modality
from mmunlearn.data.interactions import (
    SPLITS,
    InteractionData,
    from_arrays,
    load_folder,
    pairs_to_csr,
    per_user_split,
    read_inter,
    write_inter,
    write_inter_table,
)
from mmunlearn.errors import InputError

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"
HEADER3 = "userID\titemID\tx_label"
HEADER5 = "userID\titemID\trating\ttimestamp\tx_label"
GOOD3 = [HEADER3, "0\t0\t0", "0\t1\t0", "0\t2\t1", "1\t1\t0", "1\t0\t2", "2\t2\t0"]


# ---------------------------------------------------------------------------------------- parsing


def test_three_column_file_parses(write_inter_file) -> None:
    data = read_inter(write_inter_file(GOOD3))
    assert (data.n_users, data.n_items) == (3, 3)
    assert [data.split(s).nnz for s in SPLITS] == [4, 1, 1]
    assert data.train[0].indices.tolist() == [0, 1]
    assert data.valid[0].indices.tolist() == [2]
    assert data.test[1].indices.tolist() == [0]
    assert data.name == "toy"


def test_five_column_file_with_float_rating_and_timestamp_parses(write_inter_file) -> None:
    lines = [HEADER5, "0\t0\t4.5\t8.8e8\t0", "0\t1\t3\t881250949\t1", "1\t1\t1.0\t1.5\t2", "1\t0\t5\t0\t0"]
    data = read_inter(write_inter_file(lines))
    three = read_inter(write_inter_file([HEADER3, "0\t0\t0", "0\t1\t1", "1\t1\t2", "1\t0\t0"], "b.inter"))
    assert data.fingerprint() == three.fingerprint()
    assert [data.split(s).nnz for s in SPLITS] == [2, 1, 1]


def test_columns_may_come_in_any_order(write_inter_file) -> None:
    lines = ["x_label\titemID\tuserID", "0\t1\t0", "2\t0\t0", "0\t0\t1"]
    data = read_inter(write_inter_file(lines))
    assert data.train[0].indices.tolist() == [1]
    assert data.test[0].indices.tolist() == [0]
    assert data.train[1].indices.tolist() == [0]


def test_crlf_line_endings_and_trailing_blank_lines_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "crlf.inter"
    path.write_bytes(b"userID\titemID\tx_label\r\n0\t1\t0\r\n1\t0\t0\r\n\r\n")
    data = read_inter(path)
    assert data.train.nnz == 2


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["0\t0\t0", "1\t1\t0"], "toy.inter:1: missing header"),
        (["userID\titemID", "0\t0"], "toy.inter:1: header lacks column(s) x_label"),
        (["userID,itemID,x_label", "0,0,0"], "toy.inter:1: header is not tab-separated"),
        (["userID\titemID\trating\tx_label", "0\t0\t1\t0"], "toy.inter:1: expected 3 or 5 columns"),
        (["userID\titemID\tuserID\tx_label\tfoo", "0\t0\t0\t0\t0"], "toy.inter:1: header repeats column(s) userID"),
        ([HEADER3, "0\t0\t0", "0\t1"], "toy.inter:3: expected 3 tab-separated fields, got 2"),
        ([HEADER3, "0\t0\t0", "0\t1\t0\t7"], "toy.inter:3: expected 3 tab-separated fields, got 4"),
        ([HEADER3, "0\t0\t0", "1\tabc\t0"], "toy.inter:3: field itemID='abc' is not an integer"),
        ([HEADER3, "0\t0\t0", "1.5\t1\t0"], "toy.inter:3: field userID='1.5' is not an integer"),
        ([HEADER5, "0\t0\t5\t1\t0", "0\t1\t5\t1\tx"], "toy.inter:3: field x_label='x' is not an integer"),
        ([HEADER3, "0\t0\t0", "-1\t1\t0"], "toy.inter:3: field userID=-1 is negative"),
        ([HEADER3, "0\t0\t0", "1\t-4\t0"], "toy.inter:3: field itemID=-4 is negative"),
        ([HEADER3, "0\t0\t0", "1\t1\t3"], "toy.inter:3: field x_label=3 is not 0 (train), 1 (valid) or 2 (test)"),
        ([HEADER3, "0\t0\t0", "0\t1\t0", "0\t0\t2"], "toy.inter:4: duplicate pair userID=0 itemID=0"),
        ([HEADER3, "0\t0\t1", "1\t1\t2"], "the train split (x_label=0) is empty"),
        ([HEADER3], "toy.inter: no interactions after the header"),
        ([HEADER3, "0\t0\t0", "5000000000\t1\t0"], "toy.inter:3: field userID=5000000000 is far beyond"),
    ],
)
def test_bad_files_give_one_line_naming_file_line_and_field(write_inter_file, listing, tmp_path: Path,
                                                            lines: list[str], expected: str) -> None:
    path = write_inter_file(lines)
    before = listing(tmp_path)
    with pytest.raises(InputError) as info:
        read_inter(path)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message
    assert listing(tmp_path) == before  # nothing written, not even a temp file


def test_duplicate_error_names_both_lines(write_inter_file) -> None:
    path = write_inter_file([HEADER3, "0\t0\t0", "0\t1\t0", "1\t1\t0", "0\t1\t2"])
    with pytest.raises(InputError, match=r"toy\.inter:5: duplicate pair userID=0 itemID=1 \(first at .*toy\.inter:3\)"):
        read_inter(path)


def test_line_numbers_count_blank_lines(write_inter_file) -> None:
    path = write_inter_file([HEADER3, "0\t0\t0", "", "1\t1\t7"])
    with pytest.raises(InputError, match=r"toy\.inter:4: field x_label=7"):
        read_inter(path)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such interaction file"):
        read_inter(tmp_path / "absent.inter")
    empty = tmp_path / "empty.inter"
    empty.write_text("")
    with pytest.raises(InputError, match=r"empty\.inter:1: empty file"):
        read_inter(empty)


def test_non_utf8_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin.inter"
    path.write_bytes(b"userID\titemID\tx_label\n0\t0\t0\n1\t\xff\t0\n")
    with pytest.raises(InputError, match="latin.inter"):
        read_inter(path)


def test_real_shared_baby_file_has_its_published_counts() -> None:
    path = SHARED / "amazon-baby" / "baby.inter"
    if not path.is_file():
        pytest.skip(f"shared dataset absent: {path}")
    data = read_inter(path)
    assert (data.n_users, data.n_items) == (19_445, 7_050)
    assert [data.split(s).nnz for s in SPLITS] == [119_674, 20_559, 20_559]
    assert len(data.cold_users()) == 0
    assert len(data.cold_items()) == 2  # the README: 2 items appear only in valid/test


@pytest.mark.parametrize(("folder", "counts"), [
    ("amazon-sports", (35_598, 18_357, [218_409, 40_029, 37_899])),
    ("amazon-clothing", (39_387, 23_033, [197_338, 41_189, 40_150])),
])
def test_real_shared_folders_load(folder: str, counts) -> None:
    path = SHARED / folder
    if not path.is_dir():
        pytest.skip(f"shared dataset absent: {path}")
    data = load_folder(path)
    assert (data.n_users, data.n_items, [data.split(s).nnz for s in SPLITS]) == counts
    assert data.modalities == {}


# ------------------------------------------------------------------------------ the dataset object


def _toy() -> InteractionData:
    users = np.array([0, 0, 1, 1, 2, 3])
    items = np.array([0, 1, 1, 2, 3, 0])
    labels = np.array([0, 0, 0, 2, 1, 0])
    return from_arrays(users, items, labels, name="toy", source="memory", n_users=5, n_items=5)


def test_cold_users_and_items_exist_and_nothing_crashes() -> None:
    data = _toy()
    # user 2 has only a valid item, user 4 nothing at all; item 3 only valid, item 4 nothing.
    assert data.cold_users().tolist() == [2, 4]
    assert data.cold_items().tolist() == [2, 3, 4]
    info = data.describe()
    assert info["cold_users"] == 2 and info["cold_items"] == 3
    assert data.pairs("valid")[0].tolist() == [2]
    assert data.n_users == 5 and data.n_items == 5


def test_fingerprint_changes_with_train_and_is_stable_otherwise() -> None:
    data = _toy()
    same = _toy()
    assert data.fingerprint() == same.fingerprint()
    assert data.fingerprint() == data.with_modalities(
        {"image": Modality("image", np.ones((5, 2)), "synthetic")}).fingerprint()
    retained = data.train.tolil()
    retained[0, 1] = 0
    smaller = data.with_train(sp.csr_matrix(retained))
    assert smaller.train.nnz == data.train.nnz - 1
    assert smaller.fingerprint() != data.fingerprint()
    assert data.with_train(data.train.copy()).fingerprint() == data.fingerprint()


def test_fingerprint_ignores_how_a_split_was_built() -> None:
    """Unsorted indices, explicit zeros, counts > 1 or float64 give the same canonical split."""
    data = _toy()
    messy = sp.csr_matrix((np.array([2.0, 0.0, 1.0, 1.0, 3.0]),
                           (np.array([0, 0, 1, 3, 0]), np.array([1, 4, 1, 0, 0]))), shape=(5, 5))
    rebuilt = data.with_train(messy)
    assert rebuilt.train.nnz == 4
    assert rebuilt.train.dtype == np.float32 and set(rebuilt.train.data.tolist()) == {1.0}
    assert rebuilt.fingerprint() == data.fingerprint()


def test_invalid_dataset_objects_are_rejected() -> None:
    data = _toy()
    with pytest.raises(InputError, match="the train split is empty"):
        data.with_train(sp.csr_matrix((5, 5), dtype=np.float32))
    with pytest.raises(InputError, match="split shapes differ"):
        data.with_train(sp.csr_matrix(np.eye(4, dtype=np.float32)))
    with pytest.raises(InputError, match="has 3 rows, expected n_items=5"):
        data.with_modalities({"image": Modality("image", np.ones((3, 2)), "synthetic")})
    with pytest.raises(InputError, match="stored under 'text' is named 'image'"):
        data.with_modalities({"text": Modality("image", np.ones((5, 2)), "synthetic")})
    with pytest.raises(InputError, match="unknown split 'dev'"):
        data.split("dev")


def test_from_arrays_widens_but_never_narrows_the_id_space() -> None:
    with pytest.raises(InputError, match="itemID=4 is outside the id space of 3"):
        from_arrays([0, 1], [4, 0], [0, 0], name="x", source="mem", n_items=3)


def test_pairs_to_csr_is_binary_and_sorted() -> None:
    mat = pairs_to_csr(np.array([1, 0, 1, 1]), np.array([2, 1, 0, 2]), 2, 3)
    assert mat.nnz == 3 and mat.has_sorted_indices and set(mat.data.tolist()) == {1.0}


# ------------------------------------------------------------------------------------------ split


def test_per_user_split_keeps_train_and_gives_valid_and_test_where_possible() -> None:
    users = np.repeat(np.arange(6), [1, 2, 3, 10, 20, 7])
    labels = per_user_split(users, 0.1, 0.1, np.random.default_rng(0))
    counts = {u: np.bincount(labels[users == u], minlength=3).tolist() for u in range(6)}
    assert counts[0] == [1, 0, 0]
    assert counts[1] == [1, 0, 1]
    assert counts[2] == [1, 1, 1]
    assert counts[3] == [8, 1, 1]
    assert counts[4] == [16, 2, 2]
    again = per_user_split(users, 0.1, 0.1, np.random.default_rng(0))
    other = per_user_split(users, 0.1, 0.1, np.random.default_rng(1))
    assert np.array_equal(labels, again) and not np.array_equal(labels, other)


# ------------------------------------------------------------------------------------- round trip


@st.composite
def interaction_tables(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_users = draw(st.integers(1, 8))
    n_items = draw(st.integers(1, 8))
    cells = draw(st.lists(st.tuples(st.integers(0, n_users - 1), st.integers(0, n_items - 1)),
                          min_size=1, max_size=30, unique=True))
    labels = draw(st.lists(st.integers(0, 2), min_size=len(cells), max_size=len(cells)))
    labels[draw(st.integers(0, len(cells) - 1))] = 0  # at least one train pair
    users, items = (np.array(c, dtype=np.int64) for c in zip(*cells, strict=True))
    return users, items, np.array(labels, dtype=np.int64)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=interaction_tables(), five=st.booleans())
def test_write_then_read_round_trips(tmp_path: Path, table, five: bool) -> None:
    users, items, labels = table
    path = tmp_path / "rt.inter"
    extra = {"rating": np.full(len(users), 4.5), "timestamp": np.arange(len(users)) * 1.5} if five else {}
    write_inter_table(path, users, items, labels, **extra)
    data = read_inter(path)
    want = from_arrays(users, items, labels, name="rt", source="mem")
    assert data.fingerprint() == want.fingerprint()
    for k, s in enumerate(SPLITS):
        got = set(zip(*data.pairs(s), strict=True))
        assert got == set(zip(users[labels == k].tolist(), items[labels == k].tolist(), strict=True))
    again = tmp_path / "again.inter"
    write_inter(data, again)
    assert read_inter(again).fingerprint() == data.fingerprint()


# ---------------------------------------------------------------------------------------- folders


def _folder(tmp_path: Path, lines: list[str] = GOOD3) -> Path:
    folder = tmp_path / "ds"
    folder.mkdir()
    (folder / "toy.inter").write_text("\n".join(lines) + "\n")
    return folder


def test_folder_with_any_number_of_modalities(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    np.save(folder / "image_feat.npy", np.arange(12, dtype=np.float32).reshape(3, 4))
    np.save(folder / "text_feat.npy", np.ones((3, 2), dtype=np.float64))
    np.save(folder / "audio_feat.npy", np.zeros((3, 5), dtype=np.float16))
    np.save(folder / "unrelated.npy", np.zeros(2))
    data = load_folder(folder)
    assert sorted(data.modalities) == ["audio", "image", "text"]
    assert {m.provenance for m in data.modalities.values()} == {"real"}
    assert data.modalities["image"].values[2, 3] == 11.0
    assert all(m.values.dtype == np.float32 for m in data.modalities.values())
    assert data.modalities["text"].source.endswith("text_feat.npy")


def test_folder_sidecar_sets_provenance(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    np.save(folder / "text_feat.npy", np.ones((3, 2), dtype=np.float32))
    (folder / "mmunlearn.json").write_text(
        '{"name": "mine", "n_items": 3, "modalities": {"text": {"provenance": "encoded:all-MiniLM-L6-v2"}}}')
    data = load_folder(folder)
    assert data.name == "mine"
    assert data.modalities["text"].provenance == "encoded:all-MiniLM-L6-v2"


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda f: np.save(f / "image_feat.npy", np.ones((4, 2), np.float32)),
         "image_feat.npy: has 4 rows, expected n_items=3"),
        (lambda f: np.save(f / "image_feat.npy", np.array([[0, 1], [np.nan, 1], [1, 1]], np.float32)),
         "image_feat.npy: NaN/inf in row 1"),
        (lambda f: np.save(f / "text_feat.npy", np.array([[0, 1], [1, 1], [np.inf, 1]], np.float64)),
         "text_feat.npy: NaN/inf in row 2"),
        (lambda f: np.save(f / "image_feat.npy", np.array([{"a": 1}] * 3, dtype=object), allow_pickle=True),
         "image_feat.npy: not a readable .npy array"),
        (lambda f: np.save(f / "image_feat.npy", np.ones(3, np.float32)), "image_feat.npy: features must be 2-D"),
        (lambda f: (f / "image_feat.npy").write_bytes(b"garbage"), "image_feat.npy: not a readable .npy array"),
        (lambda f: (f / "other.inter").write_text(HEADER3 + "\n0\t0\t0\n"),
         "needs exactly one *.inter file, found other.inter, toy.inter"),
        (lambda f: (f / "mmunlearn.json").write_text("{not json"), "mmunlearn.json: cannot parse"),
        (lambda f: (f / "mmunlearn.json").write_text('{"modalities": {"text": {}}}'),
         "declares modality 'text' but text_feat.npy is missing"),
    ],
)
def test_bad_folders_name_the_file(tmp_path: Path, listing, setup, expected: str) -> None:
    folder = _folder(tmp_path)
    setup(folder)
    before = listing(tmp_path)
    with pytest.raises(InputError) as info:
        load_folder(folder)
    assert expected in str(info.value)
    assert listing(tmp_path) == before


def test_folder_without_inter_file(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="found none"):
        load_folder(tmp_path / "empty")
    with pytest.raises(InputError, match="no such dataset folder"):
        load_folder(tmp_path / "absent")


# ---------------------------------------------------------------------------------------- hostile sizes


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(big=st.integers(min_value=2 ** 63 + 1, max_value=2 ** 200), negative=st.booleans(), column=st.sampled_from([0, 1]))
def test_ids_past_int64_are_one_line_naming_the_line(tmp_path: Path, big: int, negative: bool, column: int) -> None:
    value = -big if negative else big
    row = ["0", "0", "0"]
    row[column] = str(value)
    path = tmp_path / "big.inter"
    path.write_text("\n".join([*GOOD3, "\t".join(row)]) + "\n")
    with pytest.raises(InputError, match=r"big.inter:8: field (userID|itemID)=") as exc:
        read_inter(path)
    assert "\n" not in str(exc.value) and "64 bits" in str(exc.value)


@pytest.mark.parametrize("side", [{"n_users": 2 ** 40}, {"n_items": 2 ** 40}, {"n_users": True}])
def test_side_file_sizes_are_bounded_by_the_data(tmp_path: Path, side) -> None:
    import json

    (tmp_path / "d.inter").write_text("\n".join(GOOD3) + "\n")
    (tmp_path / "mmunlearn.json").write_text(json.dumps(side))
    with pytest.raises(InputError, match="mmunlearn.json") as exc:
        load_folder(tmp_path)
    assert "\n" not in str(exc.value)
    (tmp_path / "mmunlearn.json").write_text(json.dumps({"n_items": 50}))  # a wider catalogue is fine
    assert load_folder(tmp_path).n_items == 50


def test_content_fingerprint_sees_same_shape_content() -> None:
    data = from_arrays([0, 1, 1], [0, 1, 0], [0, 0, 1], name="t", source="t")
    a = data.with_modalities({"image": Modality("image", np.zeros((2, 3)), "real")})
    b = data.with_modalities({"image": Modality("image", np.ones((2, 3)), "real")})
    assert a.fingerprint() == b.fingerprint()  # interactions: the same (requests stay valid)
    assert a.content_fingerprint() != b.content_fingerprint()
