"""The written report (`make report`): rendered from tiny real runs, read back from the PDF."""

from __future__ import annotations

import json
import re
import shutil

import nbformat
import pandas as pd
import pytest
from pypdf import PdfReader

from cifar_helpers.models.specs import SPECS
from cifar_helpers.engine.config import TrainConfig
from cifar_helpers.core.files import FolderInUseError, exclusive
from cifar_helpers.core.paths import REPO_ROOT
from cifar_helpers.engine.record import best_points
from cifar_helpers.report.results import format_duration, load_results, table1, write_table1
from cifar_helpers.engine.train import train_model
from cifar_helpers.workbook.written_report import (KOREAN_FONTS, LATIN_FONTS, ReportError, build_document, default_report_dir,
                                          korean_font, load_report_results, main, write_report)
from cifar_helpers.workbook.written_report_text import TEXT

TINY = {"epochs": 2, "subset": [200, 100]}


@pytest.fixture(scope="module")
def runs(fake_data, tmp_path_factory):
    """A smoke-sized set of runs, as `make smoke` leaves them: the DNN complete with a second seed,
    the CNN stopped after 1 of its 2 epochs, the Custom ResNet complete, the ResNet not run; then
    Table 1 written the way notebook 06 writes it."""
    root = tmp_path_factory.mktemp("runs")
    results = root / "results"
    plan = [("dnn", {}, results, None), ("dnn", {"seed": 24}, results / "seed-24", None),
            ("cnn", {}, results, 1), ("custom_resnet", {}, results, None)]
    for model, overrides, folder, stop_after in plan:
        train_model(TrainConfig.for_model(model, **TINY, **overrides), fake_data, device="cpu", results_dir=folder,
                    checkpoint_dir=root / "ckpt" / str(overrides.get("seed", 23)), log=lambda line: None,
                    stop_after=stop_after)
    write_table1(table1(load_results(results)), results)
    return results


@pytest.fixture(scope="module")
def rendered(runs):
    """The report of `runs`, and the text of its PDF with runs of white space made one space."""
    pdf = write_report(runs, runs.parent / "executed", default_report_dir(runs))
    text = " ".join(page.extract_text() for page in PdfReader(pdf).pages)
    return pdf, " ".join(text.split())


def table1_rows(results_dir) -> pd.DataFrame:
    return pd.read_csv(results_dir / "table1.csv", dtype={"Model": str})


def test_the_pdf_carries_exactly_table1_csvs_numbers(runs, rendered):
    _, text = rendered
    rows = table1_rows(runs)
    assert list(rows["Model"]) == ["DNN", "CNN", "Custom ResNet"]
    for row in rows.to_dict("records"):
        label = row["Model"] if row["Model"] != "CNN" else "CNN (partial)"
        numbers = [f"{row['Best Test Loss']:.4f}", f"{row['Best Accuracy (%)']:.2f}", str(row["Best Epoch"]),
                   str(row["Best-Acc Epoch"])]
        numbers += [row["Best Acc over seeds (%)"], row["Best Loss over seeds"]]  # the DNN ran two seeds
        numbers += [f"{row['Report Loss']:.4f}", f"{row['Report Acc (%)']:.2f}", str(row["Report Epoch"]),
                    f"{row['Δ Loss']:+.4f}", f"{row['Δ Acc (pts)']:+.2f}"]
        assert " ".join([label, *numbers]) in text, f"Table 1's {label} row is not in the PDF as {numbers}"
        run_cells = [f"{row['Parameters']:,}", format_duration(row["Train time (s)"]), row["Epochs"], row["Device"]]
        assert " ".join([row["Model"], *run_cells]) in text


def test_a_partial_and_a_missing_model_read_as_such_where_their_numbers_would_stand(rendered):
    _, text = rendered
    not_run = TEXT["en"]["not_run"].format(notebook=SPECS["resnet"].notebook_path)
    assert text.count(f"ResNet {not_run}") >= 3  # the environment table and both halves of Table 1
    assert "ResNet has not run yet: notebooks/03_resnet.ipynb writes its results." in text  # its section
    assert "CNN (partial) " in text  # Table 1, where its numbers stand
    assert "1 of 2 (partial)" in text and "This run is partial: it stopped after 1 of the 2" in text
    assert "Not run yet: ResNet (notebooks/03_resnet.ipynb)." in text  # 06's summary sentence
    assert not re.search(r"\bnan\b", text), "a cell of a model that has not run shows 'nan'"


def test_the_report_follows_the_reports_structure_with_figures_seeds_and_sources(runs, rendered):
    pdf, text = rendered
    headings = ["1 Environment and data", "2 The lecture models", "2.1 Plan", "2.2 Results", "3 The Custom ResNet",
                "3.1 Architecture", "3.2 Plan", "3.3 Results", "4 Analysis", "5 Beyond the report",
                "5.1 Per-class accuracy", "5.2 Confusion matrices", "5.3 Seeds"]
    positions = [text.find(h) for h in headings]
    assert -1 not in positions and positions == sorted(positions), dict(zip(headings, positions))
    folder = pdf.parent
    document = json.loads((folder / "report.json").read_text())
    drawn = {path.name for path in (folder / "figures").iterdir()}
    used = {block["path"].split("/")[-1] for block in document["blocks"] if block["kind"] == "figure"}
    used |= {f["path"].split("/")[-1] for block in document["blocks"] if block["kind"] == "figure_row"
             for f in block["figures"]}
    assert used == drawn == {"fig1_loss_curves.pdf", "fig2_custom_resnet.pdf", "fig3_bottleneck_block.pdf",
                             "fig4_custom_resnet_loss.pdf", "test_accuracy.pdf", "confusion_matrices.pdf"}
    assert (folder / "report.typ").is_file()
    custom = json.loads((runs / "custom_resnet.json").read_text())
    assert f"CustomResNet ({custom['num_parameters']:,} parameters)" in text  # Fig 2, drawn from the run's model
    assert custom["data_digest"] in text
    for seed, path in ((23, runs / "dnn.json"), (24, runs / "seed-24" / "dnn.json")):  # each seed's own row
        best = best_points(json.loads(path.read_text()))
        assert f"DNN {seed} {100 * best.test_acc:.2f} {best.acc_epoch} {best.test_loss:.4f}" in text


def test_the_committed_reference_report_is_the_one_its_results_give_now():
    """reference/cpu-jpeg/report/ is refreshed whenever its results (or the report's code) change."""
    reference = REPO_ROOT / "reference" / "cpu-jpeg"
    document = build_document(load_report_results(reference / "results"), "reference/cpu-jpeg/results", "en",
                              LATIN_FONTS)
    committed = json.loads((reference / "report" / "report.json").read_text(encoding="utf-8"))
    assert committed == json.loads(json.dumps(document)), (
        "reference/cpu-jpeg/report/ is stale: render it again with `make report PARAMS=params/reference-cpu.yaml`")


def test_a_second_render_writes_the_same_pdf(runs, rendered, tmp_path):
    pdf, _ = rendered
    again = write_report(runs, runs.parent / "executed", tmp_path / "report")
    assert again.read_bytes() == pdf.read_bytes()


def test_a_broken_results_file_stops_it_with_one_line_and_leaves_the_last_report(runs, tmp_path, capsys):
    broken = tmp_path / "results"
    shutil.copytree(runs, broken)
    out = tmp_path / "report"
    assert main(["--results-dir", str(broken), "--executed-dir", str(tmp_path / "none"), "--out", str(out)]) == 0
    before = (out / "report.pdf").read_bytes()
    capsys.readouterr()
    (broken / "cnn.json").write_text('{"schema": 1, "model": "cnn", "hist')
    assert main(["--results-dir", str(broken), "--executed-dir", str(tmp_path / "none"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "cnn.json cannot be used: unreadable" in err and "rerun notebooks/02_cnn.ipynb" in err
    assert (out / "report.pdf").read_bytes() == before
    assert not list(out.glob(".report-staging-*"))


def test_a_results_folder_that_does_not_exist_stops_it_with_one_line(tmp_path, capsys):
    assert main(["--results-dir", str(tmp_path / "reslts")]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "reslts does not exist" in err


def test_an_unknown_language_stops_it_before_any_work(tmp_path, capsys):
    assert main(["--results-dir", str(tmp_path), "--lang", "kr"]) == 1
    assert "unknown report language 'kr': choose one of en, ko" in capsys.readouterr().err


def test_a_render_in_progress_keeps_a_second_one_out(runs, tmp_path):
    out = tmp_path / "report"
    with exclusive(out, "the written report", "wait"):
        with pytest.raises(FolderInUseError):
            write_report(runs, tmp_path / "none", out)


def test_the_report_folder_sits_beside_the_results_folder(tmp_path):
    assert default_report_dir(tmp_path / "results") == tmp_path / "report"
    assert default_report_dir(tmp_path / "results" / "smoke") == tmp_path / "report" / "smoke"
    assert default_report_dir(tmp_path / "reference" / "results") == tmp_path / "reference" / "report"
    with pytest.raises(ReportError, match="--out"):
        default_report_dir(tmp_path / "runs")


# ----------------------------------------------------------------------------- Korean


def test_korean_needs_a_korean_font_and_names_the_one_to_install():
    with pytest.raises(ReportError) as error:
        korean_font(["Libertinus Serif", "DejaVu Sans"], fontconfig=[])
    message = str(error.value)
    assert "\n" not in message and KOREAN_FONTS[0] in message and "fonts-noto-cjk" in message
    assert korean_font(["DejaVu Sans", "nanummyeongjo"]) == "nanummyeongjo"
    assert korean_font(["Some Hangul Face"], fontconfig=["Some Hangul Face"]) == "Some Hangul Face"


def test_both_languages_have_every_fixed_sentence():
    assert TEXT["en"].keys() == TEXT["ko"].keys()
    for key, sentence in TEXT["en"].items():
        assert set(re.findall(r"{\w+}", sentence)) == set(re.findall(r"{\w+}", TEXT["ko"][key])), key


def test_a_korean_report_where_a_korean_font_is_installed(runs, tmp_path):
    typst = pytest.importorskip("typst")
    families = typst.Fonts().families()
    try:
        korean_font(families)
    except ReportError:
        pytest.skip("no Korean font installed here (fc-list :lang=ko)")
    pdf = write_report(runs, tmp_path / "none", tmp_path / "report", lang="ko")
    text = " ".join(" ".join(page.extract_text() for page in PdfReader(pdf).pages).split())
    assert "실험 환경과 데이터" in text and "보고서 이후의 분석" in text  # headings in Korean
    row = table1_rows(runs).iloc[0]
    assert f"DNN {row['Best Test Loss']:.4f} {row['Best Accuracy (%)']:.2f}" in text


# ----------------------------------------------------------------------------- notebooks as HTML


def executed_notebook(path, results_dir):
    """A small executed notebook as papermill leaves it: a parameters cell, the injected one, an image."""
    png = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# A run"),
        nbformat.v4.new_code_cell('RESULTS_DIR = "results"', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(f"RESULTS_DIR = {str(results_dir)!r}", metadata={"tags": ["injected-parameters"]}),
        nbformat.v4.new_code_cell("figure", outputs=[nbformat.v4.new_output(
            "display_data", data={"image/png": png, "text/plain": "<Figure>"})]),
    ]
    notebook.metadata["papermill"] = {"parameters": {"RESULTS_DIR": str(results_dir)}}
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)


def test_the_executed_notebooks_become_offline_pages_linked_from_index_html(runs, tmp_path):
    executed = tmp_path / "executed"
    executed_notebook(executed / "01_dnn.ipynb", runs)
    executed_notebook(executed / "seed-24" / "01_dnn.ipynb", runs / "seed-24")
    executed_notebook(executed / "02_cnn.ipynb", tmp_path / "results" / "smoke")  # another run's
    (executed / "03_resnet.ipynb").write_text("{ not a notebook")
    lines = []
    pdf = write_report(runs, executed, tmp_path / "report", log=lines.append)
    folder = pdf.parent
    page = (folder / "notebooks" / "01_dnn.html").read_text()
    assert "data:image/png;base64," in page
    assert not re.search(r"""(src|href)=["']https?:""", page), "a page must need nothing from the web"
    assert (folder / "notebooks" / "seed-24" / "01_dnn.html").is_file()
    assert not (folder / "notebooks" / "02_cnn.html").exists()
    assert len(lines) == 2 and "02_cnn.ipynb: it ran with RESULTS_DIR=" in lines[0] and "smoke" in lines[0]
    assert "03_resnet.ipynb: it cannot be read" in lines[1]
    index = (folder / "index.html").read_text()
    links = re.findall(r'href="([^"]+)"', index)
    assert links == ["report.pdf", "notebooks/01_dnn.html", "notebooks/seed-24/01_dnn.html"]
    assert all((folder / link).is_file() for link in links)
    assert f"02_cnn: not in {executed}" in index


def test_without_runs_in_results_the_smoke_run_is_rendered_and_said_so(tmp_path, monkeypatch, capsys):
    """`make smoke && make report` on a fresh clone: results/ is empty, results/smoke/ holds the runs."""
    from cifar_helpers.workbook import written_report

    profile = tmp_path / "smoke.yaml"
    profile.write_text("RESULTS_DIR: results/smoke\nworkbook:\n  executed_dir: executed\n")
    monkeypatch.setattr(written_report, "SMOKE_PROFILE", str(profile))
    monkeypatch.setattr(written_report, "repo_path",
                        lambda path, default: tmp_path / (path if path not in (None, "") else default))
    args = lambda **given: written_report.argparse.Namespace(  # noqa: E731
        **{"params": None, "results_dir": None, "executed_dir": None, "out": None, **given})
    (tmp_path / "results" / "smoke").mkdir(parents=True)
    assert written_report.resolve_folders(args())[0] == tmp_path / "results"  # no runs anywhere: results/
    (tmp_path / "results" / "smoke" / "dnn.json").write_text("{}")
    assert written_report.resolve_folders(args())[0] == tmp_path / "results" / "smoke"
    assert "results/ holds no run yet: rendering the smoke run's" in capsys.readouterr().out
    (tmp_path / "results" / "dnn.json").write_text("{}")
    assert written_report.resolve_folders(args())[0] == tmp_path / "results"  # a real run comes first
    assert written_report.resolve_folders(args(results_dir="x"))[0] == tmp_path / "x"


def test_a_model_the_report_did_not_train_has_its_rows_section_and_dashes(runs, tmp_path):
    """A further results file (a student's own model) renders: no KeyError, its own section, its rows after
    the report's models, and '-' where the report has no number."""
    results = tmp_path / "results"
    shutil.copytree(runs, results)
    record = json.loads((runs / "dnn.json").read_text())
    record.update(model="wide_cnn", label="Wide CNN", params=dict(record["params"], model="wide_cnn"))
    (results / "wide_cnn.json").write_text(json.dumps(record))
    pdf = write_report(results, tmp_path / "executed", tmp_path / "report")
    text = " ".join(" ".join(page.extract_text() for page in PdfReader(pdf).pages).split())
    best = best_points(record)
    assert re.search(rf"Wide CNN {best.test_loss:.4f} {100 * best.test_acc:.2f} .*? - - - - -", text)  # Table 1
    assert "4 Further models" in text and "5 Analysis" in text
    assert "Wide CNN: the lowest test loss" in text and "the report did not train this model" in text
    assert "The report has no numbers for Wide CNN." in text
    document = json.loads((tmp_path / "report" / "report.json").read_text())
    captions = [block["caption"] for block in document["blocks"] if block["kind"] == "figure"]
    assert any("did not train: Wide CNN." in caption for caption in captions)  # Fig 1's panel (D)
