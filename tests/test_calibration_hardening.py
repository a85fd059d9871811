"""Calibration reliability (issue 12): bad calibration files, unknown perf models, BOM CSVs,
validation on one GPU, unsafe output paths and the curation script without its data.

Each case runs end to end through the CLI where it has one: exit code 2, ONE line on stderr,
and an existing output file left byte for byte as it was.
"""

from __future__ import annotations

import json
import math
import os
import stat
import subprocess
import sys
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from infersave.catalog import calibration as store
from infersave.catalog import measurements as meas
from infersave.catalog.calibration import ALPHA_MAX, BETA_MAX_S, CalibrationError, CtcfFit
from infersave.catalog.output_files import UnsafeOutputError, check_output_path
from infersave.cli.main import app
from infersave.formulations import calibration_report as wf
from infersave.formulations import ctcf_fit
from infersave.formulations.options import ModelOptions

SHIPPED_CAL = Path(str(resources.files("infersave.catalog").joinpath("data", "calibration.json")))
SOLVE = [
    "solve", "--model", "opt-2.7b", "--input-len", "1024", "--output-len", "128",
    "--requests", "1000", "--slo-tps", "100", "--backend", "exhaustive",
]  # fmt: skip


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def assert_one_line_error(r: Any, *needles: str) -> str:
    assert r.exit_code == 2, (r.exit_code, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def subset(tmp_path: Path, name: str, keep: Any) -> Path:
    rows = [m for m in meas.read_measurements(meas.shipped_measurements_path()) if keep(m)]
    p = tmp_path / name
    meas.write_measurements(rows, p)
    return p


@pytest.fixture
def no_fitting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the calibrate command starts fitting (checks must come first)."""

    def boom(*_: Any, **__: Any) -> Any:
        raise AssertionError("fitting started before the output path was checked")

    monkeypatch.setattr(wf, "calibrate", boom)
    monkeypatch.setattr(wf, "shipped_calibration", boom)


# ------------------------------------------------------------ calibration files: bounds


def _doc_with(alpha_text: str, beta_text: str = "0.001") -> str:
    """The shipped document with the first roofline entry's alpha/beta as raw JSON text."""
    doc = store.shipped_document()
    doc["fits"]["roofline"][0]["alpha"] = "@ALPHA@"
    doc["fits"]["roofline"][0]["beta_s"] = "@BETA@"
    return json.dumps(doc).replace('"@ALPHA@"', alpha_text).replace('"@BETA@"', beta_text)


@pytest.mark.parametrize(
    ("alpha", "beta", "field"),
    [
        ("Infinity", "0.001", "alpha"),
        ("-Infinity", "0.001", "alpha"),
        ("NaN", "0.001", "alpha"),
        ("1e300", "0.001", "alpha"),
        ("1e400", "0.001", "alpha"),  # Python reads it as inf
        ("1" + "0" * 400, "0.001", "alpha"),  # an integer too large for a float
        ("-1.5", "0.001", "alpha"),
        ("0", "0.001", "alpha"),
        ('"2.0"', "0.001", "alpha"),
        ("true", "0.001", "alpha"),
        ("1.2", "Infinity", "beta_s"),
        ("1.2", "1e300", "beta_s"),
        ("1.2", "-1e-3", "beta_s"),
        ("1.2", "null", "beta_s"),
    ],
)
def test_bad_coefficients_refused_naming_file_gpu_phase_field(
    tmp_path: Path, alpha: str, beta: str, field: str
) -> None:
    p = tmp_path / "bad.json"
    p.write_text(_doc_with(alpha, beta))
    entry = store.shipped_document()["fits"]["roofline"][0]
    with pytest.raises(CalibrationError) as info:
        store.load_calibration(str(p), "roofline")
    msg = str(info.value)
    for part in (str(p), entry["gpu"], entry["phase"], repr(field)):
        assert part in msg, msg
    # the same file through the CLI: validate and solve refuse it, one line, exit 2
    assert_one_line_error(invoke("validate", "shipped", "--calibration", str(p)), "bad.json")
    assert_one_line_error(invoke(*SOLVE, "--calibration", str(p)), "bad.json", entry["gpu"])


@pytest.mark.parametrize("constant", ["Infinity", "-Infinity", "NaN"])
def test_json_constants_refused_by_the_parser_itself(constant: str) -> None:
    with pytest.raises(CalibrationError, match=rf"x\.json: name: {constant} is not a finite"):
        store.parse_json(f'{{"name": {constant}}}', "x.json")
    text = _doc_with(constant)
    with pytest.raises(CalibrationError, match=rf"field 'alpha': {constant} is not a finite"):
        store.parse_json(text, "x.json")


def test_bounds_are_inclusive_where_documented(tmp_path: Path) -> None:
    p = tmp_path / "edge.json"
    p.write_text(_doc_with(repr(ALPHA_MAX), repr(BETA_MAX_S)))
    coef = store.load_calibration(str(p), "roofline")[1]
    entry = store.shipped_document()["fits"]["roofline"][0]
    assert coef is not None and coef[(entry["gpu"], entry["phase"])] == (ALPHA_MAX, BETA_MAX_S)


def test_duplicate_entry_refused(tmp_path: Path) -> None:
    doc = store.shipped_document()
    doc["fits"]["roofline"].append(dict(doc["fits"]["roofline"][0], alpha=9.0))
    p = tmp_path / "dup.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(CalibrationError, match="second entry"):
        store.load_calibration(str(p), "roofline")


NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-1e-3, 200.0),
    st.floats(0.0, 2.0),
    st.integers(-(10**400), 10**400),
    st.integers(-5, 150),
    st.sampled_from([0.0, -0.0, 1e-300, ALPHA_MAX, BETA_MAX_S, math.nextafter(ALPHA_MAX, 1e9)]),
)


def _in_bounds(alpha: float | int, beta: float | int) -> bool:
    try:
        a, b = float(alpha), float(beta)
    except OverflowError:
        return False
    return math.isfinite(a) and math.isfinite(b) and 0 < a <= ALPHA_MAX and 0 <= b <= BETA_MAX_S


@settings(max_examples=300, deadline=None)
@given(alpha=NUMBERS, beta=NUMBERS)
def test_parser_accepts_exactly_the_documented_bounds(alpha: float, beta: float) -> None:
    doc = {
        "format": store.FORMAT,
        "fits": {"roofline": [{"gpu": "T4", "phase": "decode", "alpha": alpha, "beta_s": beta}]},
    }
    text = json.dumps(doc)  # writes Infinity/NaN literals for non-finite floats
    try:
        data = store.parse_json(text, "t.json")
        _, fits = store.parse_calibration(data, "roofline", where="t.json")
    except CalibrationError as exc:
        assert not _in_bounds(alpha, beta), exc
        assert "t.json" in str(exc)
        return
    assert _in_bounds(alpha, beta)
    fit = fits[("T4", "decode")]
    assert (fit.alpha, fit.beta) == (float(alpha), float(beta))
    assert fits[("T4G", "decode")] == fit  # same silicon


# ------------------------------------------------------------ one type for a fit


def test_one_fit_type_from_fitting_through_the_file_and_back(tmp_path: Path) -> None:
    res, _ = wf._resolve(meas.shipped_measurements_path(), "roofline")
    group = ctcf_fit.fit_groups(res)
    assert group.fits and all(isinstance(f, CtcfFit) for f in group.fits.values())
    assert all((f.gpu, f.phase) == k for k, f in group.fits.items())
    doc = wf.calibrate(meas.shipped_measurements_path(), ["roofline"], created="2000-01-01")
    p = tmp_path / "c.json"
    p.write_text(json.dumps(doc))
    loaded = store.load_fits(str(p), "roofline")[1]
    assert loaded is not None
    for key, fit in group.fits.items():
        back = loaded[key]
        assert isinstance(back, CtcfFit)
        assert (back.alpha, back.beta, back.points, back.warning) == (
            fit.alpha,
            fit.beta,
            fit.points,
            fit.warning,
        )
        assert back.mape_after == pytest.approx(fit.mape_after, abs=1e-4)


def test_out_of_bounds_fit_is_skipped_not_written(tmp_path: Path) -> None:
    """A group whose measured time FALLS as the model's time grows fits a negative alpha: the
    file store would refuse it, so calibrate skips the group with the reason."""
    rows = [
        m
        for m in meas.read_measurements(meas.shipped_measurements_path())
        if m.gpu == "L4" and m.tensor_parallel == 1 and m.model == "llama-30b"
    ]
    res = ctcf_fit.resolve(
        rows, meas.find_calibration_gpu, meas.find_calibration_model, ModelOptions()
    )
    top = max(x for x, m in zip(res.x_layer_s, rows, strict=True) if m.phase == "prefill")
    flipped = [  # layers=1, so time_s is the per-layer time: measured = 2 * top - model
        m.model_copy(update={"time_s": 2 * top - x}) if m.phase == "prefill" else m
        for m, x in zip(rows, res.x_layer_s, strict=True)
    ]
    p = tmp_path / "flipped.csv"
    meas.write_measurements(flipped, p)
    out = tmp_path / "cal.json"
    r = invoke("calibrate", str(p), "-o", str(out), "--perf-model", "roofline", "-f", "json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(out.read_text())
    assert [(e["gpu"], e["phase"]) for e in doc["fits"]["roofline"]] == [("L4", "decode")]
    assert any("L4 prefill" in s and "alpha" in s for s in doc["skipped"])
    assert store.load_fits(str(out), "roofline")[1] is not None  # what was written loads


# ------------------------------------------------------------ --perf-model


@pytest.mark.parametrize("source", ["shipped", "csv"])
def test_unknown_perf_model_exits_2_and_writes_nothing(tmp_path: Path, source: str) -> None:
    m = (
        "shipped"
        if source == "shipped"
        else str(subset(tmp_path, "t4.csv", lambda m: m.gpu == "T4"))
    )
    out = tmp_path / "cal.json"
    out.write_bytes(b"previous contents\n")
    r = invoke("calibrate", m, "--perf-model", "ml", "-o", str(out))
    assert_one_line_error(r, "'ml'", "roofline", "paper", "all")
    assert out.read_bytes() == b"previous contents\n"
    fresh = tmp_path / "fresh.json"
    assert_one_line_error(invoke("calibrate", m, "--perf-model", "ml", "-o", str(fresh)))
    assert not fresh.exists()
    assert_one_line_error(invoke("validate", m, "--perf-model", "ml"), "'ml'")


def test_single_perf_model_from_shipped_writes_only_that_fit(tmp_path: Path) -> None:
    out = tmp_path / "cal.json"
    r = invoke("calibrate", "shipped", "--perf-model", "paper", "-o", str(out), "-f", "json")
    assert r.exit_code == 0, r.stderr
    assert list(json.loads(out.read_text())["fits"]) == ["paper"]


# ------------------------------------------------------------ byte-order mark


def test_measurement_csv_with_bom_reads_like_without(tmp_path: Path) -> None:
    plain = subset(tmp_path, "plain.csv", lambda m: m.gpu == "T4" and m.tensor_parallel == 1)
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    assert meas.read_measurements(bom) == meas.read_measurements(plain)
    outs = []
    for src in (plain, bom):
        out = tmp_path / f"{src.stem}.json"
        r = invoke("calibrate", str(src), "-o", str(out), "--name", "t", "-f", "json")
        assert r.exit_code == 0, r.stderr
        doc = json.loads(out.read_text())
        outs.append((doc["fits"], doc["name"]))
    assert outs[0] == outs[1]
    r = invoke("validate", str(bom), "--calibration", "refit", "-f", "json")
    assert r.exit_code == 0, r.stderr


def test_measurement_errors_still_name_file_row_and_field_with_bom(tmp_path: Path) -> None:
    p = tmp_path / "m.csv"
    p.write_text(
        "\ufeffgpu,model,phase,batch_size,input_len,output_len,time_s,layers,source\n"
        "T4,llama-2-7b,prefill,1,10,0,-0.1,,x\n",
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match=r"m\.csv row 1, field time_s"):
        meas.read_measurements(p)
    assert_one_line_error(invoke("validate", str(p)), "m.csv row 1, field time_s")


# ------------------------------------------------------------ validate on one GPU / one model


@pytest.mark.parametrize(
    ("keep", "na_checks"),
    [
        (lambda m: m.gpu == "T4" and m.model == "llama-30b", {"lomo", "logo"}),
        (lambda m: m.gpu == "T4", {"logo"}),
        (lambda m: m.model == "llama-30b", {"lomo"}),
    ],
    ids=["one-gpu-one-model", "one-gpu", "one-model"],
)  # fmt: skip
def test_validate_without_held_out_data_says_na(
    tmp_path: Path, keep: Any, na_checks: set[str]
) -> None:
    p = subset(tmp_path, "sub.csv", keep)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy RuntimeWarning fails the test
        table = invoke("validate", str(p), "--perf-model", "roofline")  # CTCF's held-out checks
        js = invoke("validate", str(p), "--format", "json", "--perf-model", "roofline")
    assert table.exit_code == 0, table.stderr
    assert "nan" not in table.stdout.lower() and "warning" not in table.stderr.lower()
    for check in na_checks:
        assert any(ln.startswith(check) and "n/a (" in ln for ln in table.stdout.splitlines())
    rows = json.loads(js.stdout)["rows"]
    for r in rows:
        if r["check"] in na_checks:
            assert r["mape_after"] is None and r["worst_after"] is None, r
            assert r["note"], r
        else:
            assert r["mape_after"] is not None and r["note"] is None, r


# ------------------------------------------------------------ output safety (CLI)


def _measure(tmp_path: Path) -> Path:
    return subset(tmp_path, "m.csv", lambda m: m.gpu == "T4" and m.tensor_parallel == 1)


def test_calibrate_refuses_to_overwrite_its_input(tmp_path: Path, no_fitting: None) -> None:
    m = _measure(tmp_path)
    before = m.read_bytes()
    assert_one_line_error(invoke("calibrate", str(m), "-o", str(m)), "input", str(m))
    assert m.read_bytes() == before
    # another spelling of the same file, and a hard link to it
    other = tmp_path / "." / "sub" / ".." / "m.csv"
    (tmp_path / "sub").mkdir()
    assert_one_line_error(invoke("calibrate", str(m), "-o", str(other)), "input")
    os.link(m, tmp_path / "hard.csv")
    assert_one_line_error(invoke("calibrate", str(m), "-o", str(tmp_path / "hard.csv")), "input")
    assert m.read_bytes() == before


def test_calibrate_refuses_symlink_output(tmp_path: Path, no_fitting: None) -> None:
    m = _measure(tmp_path)
    target = tmp_path / "target.json"
    target.write_bytes(b'{"old": true}\n')
    link = tmp_path / "link.json"
    link.symlink_to(target)
    assert_one_line_error(invoke("calibrate", str(m), "-o", str(link)), "symbolic link")
    assert link.is_symlink() and target.read_bytes() == b'{"old": true}\n'
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "nowhere.json")
    assert_one_line_error(invoke("calibrate", str(m), "-o", str(dangling)), "symbolic link")
    assert dangling.is_symlink() and not (tmp_path / "nowhere.json").exists()


def test_calibrate_refuses_fifo_device_and_directory(tmp_path: Path, no_fitting: None) -> None:
    m = _measure(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert_one_line_error(invoke("calibrate", str(m), "-o", str(fifo)), "FIFO")
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert_one_line_error(invoke("calibrate", str(m), "-o", os.devnull), "device")
    assert stat.S_ISCHR(Path(os.devnull).stat().st_mode)
    assert_one_line_error(invoke("calibrate", str(m), "-o", str(tmp_path)), "directory")


def test_calibrate_refuses_missing_directory_before_fitting(
    tmp_path: Path, no_fitting: None
) -> None:
    m = _measure(tmp_path)
    out = tmp_path / "no" / "such" / "dir" / "cal.json"
    assert_one_line_error(invoke("calibrate", str(m), "-o", str(out)), "does not exist")
    assert not (tmp_path / "no").exists()
    assert_one_line_error(invoke("calibrate", "shipped", "-o", str(out)), "does not exist")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to a read-only directory anyway")
def test_calibrate_refuses_unwritable_directory(tmp_path: Path, no_fitting: None) -> None:
    m = _measure(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "cal.json").write_bytes(b"old\n")
    ro.chmod(0o500)
    try:
        r = invoke("calibrate", str(m), "-o", str(ro / "cal.json"))
        assert_one_line_error(r, "not writable")
        assert (ro / "cal.json").read_bytes() == b"old\n"
    finally:
        ro.chmod(0o700)


def test_calibrate_replaces_a_regular_file_atomically(tmp_path: Path) -> None:
    m = _measure(tmp_path)
    out = tmp_path / "cal.json"
    out.write_bytes(b"old\n")
    out.chmod(0o640)
    r = invoke("calibrate", str(m), "-o", str(out), "-f", "json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(out.read_text())["format"] == store.FORMAT
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".cal.json")] == []


def test_calibrate_shipped_reproduces_the_shipped_file(tmp_path: Path) -> None:
    """`infersave calibrate shipped -o catalog/data/calibration.json` rewrites the file: all
    fields equal except the creation date. Floats to 1e-8: the least-squares iteration stops
    at its tolerance and BLAS rounding differs by machine (seen 1.6e-10 apart)."""
    out = tmp_path / "calibration.json"
    r = invoke("calibrate", "shipped", "-o", str(out), "-f", "json")
    assert r.exit_code == 0, r.stderr
    new, old = json.loads(out.read_text()), json.loads(SHIPPED_CAL.read_text())
    new["created"] = old["created"]
    assert _close(new, old)


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        assert list(a) == list(b)
        return all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b)
        return all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-8, abs=1e-12)
        return True
    assert a == b
    return True


# ------------------------------------------------------------ check_output_path on its own


def test_check_output_path_accepts_new_and_regular_files(tmp_path: Path) -> None:
    assert check_output_path(tmp_path / "new.json") == tmp_path / "new.json"
    f = tmp_path / "f.json"
    f.write_text("x")
    assert check_output_path(f, inputs=[tmp_path / "other.csv"]) == f
    assert check_output_path(str(f)) == f


KINDS = ["same", "samefile", "hardlink", "symlink", "dangling", "fifo", "devnull", "directory"]


@pytest.mark.parametrize("kind", [*KINDS, "nodir", "parentfile"])
def test_check_output_path_refuses(tmp_path: Path, kind: str) -> None:
    src = tmp_path / "in.csv"
    src.write_text("data\n")
    out = {
        "same": src,
        "samefile": tmp_path / "sub" / ".." / "in.csv",
        "hardlink": tmp_path / "hard.csv",
        "symlink": tmp_path / "link",
        "dangling": tmp_path / "dangling",
        "fifo": tmp_path / "fifo",
        "devnull": Path(os.devnull),
        "directory": tmp_path,
        "nodir": tmp_path / "missing" / "x.json",
        "parentfile": src / "x.json",
    }[kind]
    (tmp_path / "sub").mkdir()
    if kind == "hardlink":
        os.link(src, out)
    elif kind == "symlink":
        out.symlink_to(tmp_path / "elsewhere.json")
        (tmp_path / "elsewhere.json").write_text("x")
    elif kind == "dangling":
        out.symlink_to(tmp_path / "nowhere")
    elif kind == "fifo":
        os.mkfifo(out)
    with pytest.raises(UnsafeOutputError) as info:
        check_output_path(out, inputs=[src])
    err = info.value
    assert isinstance(err, OSError) and err.filename and err.strerror
    assert "\n" not in str(err)
    assert src.read_text() == "data\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="os.access grants root write on a 0500 directory")
def test_check_output_path_refuses_unwritable_directory(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(UnsafeOutputError, match="not writable"):
            check_output_path(ro / "x.json")
    finally:
        ro.chmod(0o700)


# ------------------------------------------------------------ curation without its data


def _curate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infersave.catalog.curate_measurements", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_curation_without_data_dir_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    out.write_bytes(b"keep\n")
    p = _curate(str(tmp_path / "no-shared-data"), "-o", str(out))
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert "no-shared-data" in p.stderr and "shared/data" in p.stderr
    (tmp_path / "empty").mkdir()
    p = _curate(str(tmp_path / "empty"), "-o", str(out))
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "helix_per_layer_times.csv" in p.stderr and "Helix-ASPLOS25" in p.stderr
    assert out.read_bytes() == b"keep\n"


def test_documented_curation_command_rebuilds_the_shipped_csv(tmp_path: Path) -> None:
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (shared / "measurements" / "helix_per_layer_times.csv").is_file():
        pytest.skip("the project's shared/data folder is not here")
    out = tmp_path / "measurements_helix.csv"
    p = _curate(str(shared), "-o", str(out))
    assert p.returncode == 0, p.stderr
    assert out.read_bytes() == meas.shipped_measurements_path().read_bytes()


def test_curation_refuses_unsafe_output_and_bad_raw_file(tmp_path: Path) -> None:
    raw = tmp_path / "data" / "measurements" / "helix_per_layer_times.csv"
    raw.parent.mkdir(parents=True)
    raw.write_text("gpu,model\nT4,x\n")
    p = _curate(str(tmp_path / "data"), "-o", str(tmp_path / "missing" / "o.csv"))
    assert p.returncode == 2 and "does not exist" in p.stderr, p.stderr
    p = _curate(str(tmp_path / "data"), "-o", str(raw))
    assert p.returncode == 2 and "input" in p.stderr, p.stderr
    p = _curate(str(tmp_path / "data"), "-o", str(tmp_path / "o.csv"))
    assert p.returncode == 2 and "missing column" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
    assert raw.read_text() == "gpu,model\nT4,x\n"
