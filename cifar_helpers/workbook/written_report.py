"""The written report, generated from the runs: `make report` renders `report/report.pdf` with Typst.

    python -m cifar_helpers.workbook.written_report [--params params/reference-cpu.yaml] [--results-dir DIR]
                                           [--executed-dir DIR] [--out DIR] [--lang en|ko] [--font-path DIR]

The report follows the course report's structure: environment and data; the lecture models' plan and
results (Fig 1); the Custom ResNet's architecture (Fig 2, Fig 3), plan and results (Fig 4); the analysis
with Table 1 beside the report's numbers; then what goes beyond it (per-class accuracy, confusion
matrices, seeds). It reads the results files through `results.load_results` and builds every table,
figure and sentence with the functions notebooks 04 and 06 use, so a number here is the number there.
This module turns them into `report.json`; the Typst template `written_report.typ` only lays that out.

The folder it writes (`report/` for `results/`, `reference/cpu-jpeg/report/` for the reference runs):
report.pdf, its source (report.typ, report.json, figures/*.pdf), the executed notebooks as HTML
(notebooks/*.html) and index.html, which links them all. It is written in a staging folder and moved
into place only once the PDF compiled, so a failed render leaves the previous report as it was.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from cifar_helpers.core.files import atomic_write, atomic_write_text
from cifar_helpers.models.specs import LECTURE_MODELS, SPECS, in_model_order
from cifar_helpers.core.errors import WorkbookError
from cifar_helpers.core.files import exclusive
from cifar_helpers.core.paths import repo_path, require_writable, shown_path
from cifar_helpers.engine.record import best_points
from cifar_helpers.report.results import (REPORT_DATA, REPORT_DEVICE, REPORT_SOFTWARE, SEEDS_NOTE, TEXT_COLUMNS,
                                          data_label, device_label, epochs_label, further_models, load_results,
                                          model_label, runs_of, summary_paragraph, table1)
from cifar_helpers.workbook.written_report_text import TEXT

TEMPLATE = Path(__file__).with_name("written_report.typ")
LANGUAGES = tuple(TEXT)
# Typst's own fonts (in the wheel): an English report looks the same on every machine.
LATIN_FONTS = ["Libertinus Serif", "DejaVu Sans Mono"]
# Korean families, preferred first; a Korean report needs one of them (or any fontconfig knows for Korean).
KOREAN_FONTS = ("Noto Serif CJK KR", "Noto Serif KR", "NanumMyeongjo", "Noto Sans CJK KR", "Noto Sans KR",
                "NanumGothic", "UnBatang", "Baekmuk Batang", "AppleMyungjo", "Apple SD Gothic Neo", "Batang",
                "Malgun Gothic")


class ReportError(WorkbookError, RuntimeError):
    """The report cannot be rendered; the message says why and what to do."""


# ----------------------------------------------------------------------------- results


def load_report_results(results_dir: Path):
    """`load_results(results_dir)`, but a results file it would skip stops the report: a report that
    left out a broken run would read as if that model had not run."""
    if not results_dir.is_dir():
        raise ReportError(f"RESULTS_DIR {results_dir} does not exist: run `make run` (or `make smoke`) first, or "
                          "give the folder that holds the results files (RESULTS_DIR=... or PARAMS=...)")
    results = load_results(results_dir, warn=False)
    if results.skipped:
        name, reason = next(iter(results.skipped.items()))
        more = f" (and {len(results.skipped) - 1} more)" if len(results.skipped) > 1 else ""
        raise ReportError(" ".join(f"{results_dir / name} cannot be used: {reason}{more}.".split()))
    return results


def newest_result_time(results: Mapping[str, dict]) -> dt.datetime | None:
    """When the newest results file was written (its `finished_at`), or None."""
    stamps = []
    for model in results:
        for run in runs_of(results, model):
            with contextlib.suppress(TypeError, ValueError):
                stamps.append(dt.datetime.fromisoformat(run["finished_at"]).astimezone(dt.timezone.utc))
    return max(stamps, default=None)


# ----------------------------------------------------------------------------- blocks of report.json


def heading(text: str, level: int = 1) -> dict:
    return {"kind": "heading", "level": level, "text": text}


def paragraph(text: str, lead: str | None = None) -> dict:
    return {"kind": "paragraph", "text": text, "lead": lead}


def figure(name: str, caption: str, width: float = 1.0) -> dict:
    """figures/<name>.pdf (drawn by draw_figures), `width` a share of the text width."""
    return {"kind": "figure", "path": f"figures/{name}.pdf", "caption": caption, "width": width}


def figure_row(*figures: dict) -> dict:
    """Figures side by side, each `width` its share of the row."""
    return {"kind": "figure_row", "figures": list(figures)}


def spanning(text: str, columns: int) -> dict:
    """A table cell that covers `columns` columns: what stands where a row's numbers would."""
    return {"text": text, "span": columns}


def table_block(columns: Sequence[str], rows: Sequence[Sequence], caption: str, text_columns: Iterable[str] = (),
                notes: Sequence[str] = ()) -> dict:
    """A table: a cell is text, or a `spanning` one that stands for the rest of its row; text columns
    left, numbers right."""
    text_columns = set(text_columns)
    return {
        "kind": "table",
        "caption": caption,
        "columns": [str(column) for column in columns],
        "align": ["left" if column in text_columns else "right" for column in columns],
        "rows": [[cell if isinstance(cell, dict) else str(cell) for cell in row] for row in rows],
        "notes": list(notes),
    }


def frame_table(frame: pd.DataFrame, caption: str, text_columns: Iterable[str] = (),
                notes: Sequence[str] = ()) -> dict:
    """`frame`'s text cells as a table, its columns the header."""
    return table_block(list(frame.columns), frame.values.tolist(), caption, text_columns, notes)


def per_model_rows(rows: Mapping[str, Sequence], width: int, text: Mapping[str, str]) -> list[list]:
    """One row per model, the report's four first (`in_model_order`): `rows[model]` where the model has
    results, else its label and "not run yet" across the other `width - 1` columns."""
    return [list(rows[model]) if model in rows else [SPECS[model].label, spanning(_not_run(model, text), width - 1)]
            for model in in_model_order({*SPECS, *rows})]


def markdown_paragraphs(markdown: str) -> list[dict]:
    """06's and the training notebooks' sentences (`**Lead:** text` paragraphs) as paragraph blocks."""
    blocks = []
    for chunk in filter(None, (part.strip() for part in markdown.split("\n\n"))):
        lead = re.fullmatch(r"\*\*(.+?)\*\*\s*(.*)", chunk, re.S)
        blocks.append(paragraph(lead[2], lead[1]) if lead else paragraph(chunk))
    return blocks


def join_words(items: Iterable[str], text: Mapping[str, str]) -> str:
    items = list(items)
    return ", ".join(items[:-1]) + text["and"] + items[-1] if len(items) > 1 else "".join(items)


# ----------------------------------------------------------------------------- sections


def _code_label(result: Mapping[str, Any]) -> str:
    """The commit(s) that trained the run, each with its epochs when there are several."""
    sessions = result.get("sessions") or [{"first_epoch": 1, "last_epoch": len(result["history"]),
                                           "git_commit": result.get("git_commit"),
                                           "uncommitted_code": result.get("uncommitted_code")}]
    spans: list[list] = []
    for session in sessions:
        commit = (session.get("git_commit") or "unknown")[:7]
        commit += " + uncommitted changes" if session.get("uncommitted_code") else ""
        if spans and spans[-1][0] == commit:
            spans[-1][2] = session["last_epoch"]
        else:
            spans.append([commit, session["first_epoch"], session["last_epoch"]])
    if len(spans) == 1:
        return spans[0][0]
    return ", ".join(f"{commit} (epochs {first}-{last})" for commit, first, last in spans)


def _software_label(result: Mapping[str, Any]) -> str:
    versions = result.get("versions") or {}
    names = {"python": "Python", "torch": "torch", "torchvision": "torchvision"}
    return ", ".join(f"{label} {versions[key]}" for key, label in names.items() if key in versions) or "unrecorded"


def environment_section(results, text: Mapping[str, str]) -> list[dict]:
    columns = text["env_columns"].split("|")
    rows = {model: [model_label(model, result), device_label(result), _software_label(result), _code_label(result),
                    f"{data_label(result)} ({result.get('data_digest') or 'unrecorded'})"]
            for model, result in results.items()}
    sources: dict[tuple[str, str], list[str]] = {}
    for model, result in results.items():
        key = (result.get("data_source") or "an unrecorded source", result.get("data_digest") or "unrecorded")
        sources.setdefault(key, []).append(model_label(model, result))
    blocks = [
        heading(text["env"]),
        paragraph(text["env_intro"].format(report_data=REPORT_DATA, report_device=REPORT_DEVICE,
                                           report_software=REPORT_SOFTWARE)),
        table_block(columns, per_model_rows(rows, len(columns), text), text["env_table"], columns),
    ]
    blocks += [paragraph(text["data_sentence"].format(models=join_words(models, text), source=source,
                                                      digest=digest))
               for (source, digest), models in sources.items()]
    return blocks


def _not_run(model: str, text: Mapping[str, str]) -> str:
    return text["not_run"].format(notebook=SPECS[model].notebook_path)


def protocol_columns(results, models: Sequence[str], text: Mapping[str, str]) -> pd.DataFrame:
    """Each model's protocol as notebooks show it (`display.protocol_table`): the one its run recorded,
    else the notebook's default. The data row names the data the run read."""
    from cifar_helpers.engine.config import TrainConfig
    from cifar_helpers.report.chapter import protocol_table

    columns = {}
    for model in models:
        result = results.get(model)
        if result is None:
            config = TrainConfig.for_model(model)
            header = text["not_run_column"].format(model=SPECS[model].label)
        else:
            config = TrainConfig.from_params({**(result.get("params") or {}), "model": model})
            header = SPECS[model].label
        column = protocol_table(config)["setting"]
        if result is not None:
            column["data"] = data_label(result)
        columns[header] = column.drop("model")
    frame = pd.DataFrame(columns).fillna("—")
    frame.index.name = "protocol"
    return frame.reset_index()


def model_results(result: Mapping[str, Any] | None, model: str, text: Mapping[str, str]) -> list[dict]:
    """The training notebooks' own sentences on a run: its best epochs and the comparison with the report."""
    from cifar_helpers.report.chapter import best_epoch_sentence, report_comparison

    if result is None:
        return [paragraph(text["not_run_sentence"].format(model=SPECS[model].label,
                                                          notebook=SPECS[model].notebook_path))]
    return markdown_paragraphs(best_epoch_sentence(result).data) + markdown_paragraphs(report_comparison(result).data)


def lecture_section(results, text: Mapping[str, str]) -> list[dict]:
    protocol = protocol_columns(results, LECTURE_MODELS, text)
    further = further_models(results)
    caption = text["fig1"] + (" " + text["fig1_further"].format(models=join_words(
        [model_label(model, results[model]) for model in further], text)) if further else "")
    blocks = [heading(text["lecture"]), heading(text["plan"], 2), paragraph(text["lecture_plan"]),
              frame_table(protocol, text["protocol_table"], protocol.columns),
              heading(text["results"], 2), figure("fig1_loss_curves", caption)]
    for model in LECTURE_MODELS:
        blocks += [heading(SPECS[model].label, 3), *model_results(results.get(model), model, text)]
    return blocks


def further_section(results, text: Mapping[str, str]) -> list[dict]:
    """Models the report did not train (a student's own): their sentences; Fig 1, Table 1 and the accuracy
    figure show them beside the report's. Nothing when there is none."""
    further = further_models(results)
    if not further:
        return []
    blocks = [heading(text["further"]), paragraph(text["further_intro"])]
    for model in further:
        blocks += [heading(model_label(model, results[model]), 2), *model_results(results[model], model, text)]
    return blocks


def custom_resnet_section(results, text: Mapping[str, str]) -> list[dict]:
    from cifar_helpers.report.chapter import block_comparison_table, bottleneck_verdict
    from cifar_helpers.models import compare_blocks

    comparison = compare_blocks()
    blocks_table = block_comparison_table(comparison).reset_index()
    protocol = protocol_columns(results, ["custom_resnet"], text)
    result = results.get("custom_resnet")
    return [
        heading(text["custom"]), heading(text["architecture"], 2),
        paragraph(text["arch_run" if result else "arch_default"]),
        figure_row(figure("fig2_custom_resnet", text["fig2"], 0.43),
                   figure("fig3_bottleneck_block", text["fig3"], 0.55)),
        frame_table(blocks_table.astype(str), text["blocks_table"], ["feature map"]),
        *markdown_paragraphs(bottleneck_verdict(comparison).data),
        heading(text["plan"], 2), paragraph(text["custom_plan"]),
        frame_table(protocol, text["protocol_table_custom"], protocol.columns),
        heading(text["results"], 2), figure("fig4_custom_resnet_loss", text["fig4"]),
        *model_results(result, "custom_resnet", text),
    ]


def analysis_section(results, text: Mapping[str, str]) -> list[dict]:
    from cifar_helpers.report.chapter import table1_views

    table = table1(results)
    numbers, runs = (view.reset_index() for view in table1_views(table))
    blocks = [heading(text["analysis"])]
    models = in_model_order(results)  # table1's rows, in order
    numbers["Model"] = [_model_cell(model, label, results, text) for model, label in zip(models, numbers["Model"])]
    for frame, caption, notes in ((numbers, text["table1"], ()), (runs, text["table1_runs"], table.attrs["notes"])):
        rows = dict(zip(models, frame.values.tolist()))
        blocks.append(table_block(list(frame.columns), per_model_rows(rows, len(frame.columns), text), caption,
                                  TEXT_COLUMNS, notes))
    blocks += [paragraph(summary_paragraph(results)),
               figure("test_accuracy", text["accuracy_fig"])]
    return blocks


def _model_cell(model: str, label: str, results, text: Mapping[str, str]) -> str:
    """The model's label, marked "(partial)" where its run stopped before its end (Epochs says where)."""
    return text["partial"].format(model=label) if results[model].get("complete") is False else label


def beyond_section(results, text: Mapping[str, str]) -> list[dict]:
    from cifar_helpers.data.official import CIFAR10_CLASSES
    from cifar_helpers.report.predictions import PER_CLASS_NOTES, marked_per_class, per_class_table

    per_class = per_class_table(results, CIFAR10_CLASSES)
    blocks = [heading(text["beyond"]), heading(text["per_class"], 2)]
    if per_class.empty:
        blocks.append(paragraph(text["no_predictions"]))
    else:
        blocks.append(frame_table(marked_per_class(per_class).reset_index(), text["per_class_table"], ["class"],
                                  PER_CLASS_NOTES))
    blocks += [heading(text["confusion"], 2), figure("confusion_matrices", text["confusion_fig"], 0.9)]
    seeded = [model for model in results if len(runs_of(results, model)) > 1]
    if seeded:
        rows = []
        for model in seeded:
            for run in runs_of(results, model):
                best = best_points(run)
                rows.append([model_label(model, run), str(run["params"]["seed"]), f"{100 * best.test_acc:.2f}",
                             str(best.acc_epoch), f"{best.test_loss:.4f}", str(best.loss_epoch), epochs_label(run)])
        columns = text["seeds_columns"].split("|")
        blocks += [heading(text["seeds"], 2), paragraph(text["seeds_intro"]),
                   table_block(columns, rows, text["seeds_table"], [columns[0], columns[-1]], [SEEDS_NOTE])]
    return blocks


def build_document(results, results_label: str, lang: str, fonts: Sequence[str]) -> dict:
    """Everything report.json holds: the words, the numbers and where the figures are."""
    text = TEXT[lang]
    newest = newest_result_time(results)
    subtitle = (text["subtitle"].format(results=results_label, when=f"{newest:%Y-%m-%d %H:%M} UTC") if newest
                else text["subtitle_empty"].format(results=results_label))
    blocks = (environment_section(results, text) + lecture_section(results, text)
              + custom_resnet_section(results, text) + further_section(results, text)
              + analysis_section(results, text) + beyond_section(results, text))
    return {"title": text["title"], "subtitle": subtitle, "lang": lang, "fonts": list(fonts), "blocks": blocks}


# ----------------------------------------------------------------------------- figures


def draw_figures(results, folder: Path) -> list[Path]:
    """The report's figures, drawn from `results` by 04's and 06's functions, as vector PDFs in `folder`."""
    from cifar_helpers.data.official import CIFAR10_CLASSES
    from cifar_helpers.report.diagrams import custom_resnet_to_draw, draw_bottleneck_block, draw_custom_resnet
    from cifar_helpers.report.style import save_figure
    from cifar_helpers.report.figures import accuracy_curves, confusion_matrices, fig1_loss_curves, fig4_custom_resnet_loss

    custom = results.get("custom_resnet")
    model = custom_resnet_to_draw((custom or {}).get("architecture"))  # as notebook 04
    figures = {
        "fig1_loss_curves": fig1_loss_curves(results),
        "fig2_custom_resnet": draw_custom_resnet(model),
        "fig3_bottleneck_block": draw_bottleneck_block(model.layer2[0]),
        "fig4_custom_resnet_loss": fig4_custom_resnet_loss(custom, seeds=results),
        "test_accuracy": accuracy_curves(results),
        "confusion_matrices": confusion_matrices(results, CIFAR10_CLASSES),
    }
    return [path for name, fig in figures.items() for path in save_figure(fig, folder / name, formats=("pdf",))]


# ----------------------------------------------------------------------------- fonts and Typst


def _fontconfig_korean_families() -> list[str]:
    """Families fontconfig knows to cover Korean (`fc-list :lang=ko`), where fontconfig is installed."""
    try:
        listed = subprocess.run(["fc-list", ":lang=ko", "family"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    return [name.strip() for line in listed.stdout.splitlines() for name in line.split(",") if name.strip()]


def korean_font(available: Iterable[str], fontconfig: Iterable[str] = ()) -> str:
    """The Korean family to set the report in, of the families Typst can use; else ReportError."""
    available = {family.casefold(): family for family in available}
    for family in (*KOREAN_FONTS, *fontconfig):
        if family.casefold() in available:
            return available[family.casefold()]
    raise ReportError(f"a Korean report needs a Korean font, and none is installed: install {KOREAN_FONTS[0]} "
                      "(Debian/Ubuntu: apt-get install fonts-noto-cjk) or NanumMyeongjo (fonts-nanum), or give "
                      "--font-path a folder that holds one; or render in English (REPORT_LANG=en)")


def report_fonts(lang: str, font_paths: Sequence[str]) -> list[str]:
    if lang == "en":
        return list(LATIN_FONTS)
    import typst

    families = typst.Fonts(include_system_fonts=True, font_paths=list(font_paths)).families()
    return [LATIN_FONTS[0], korean_font(families, _fontconfig_korean_families()), LATIN_FONTS[1]]


def compile_pdf(folder: Path, lang: str, font_paths: Sequence[str], timestamp: dt.datetime | None) -> bytes:
    """report.typ in `folder` as PDF bytes. English uses only Typst's own fonts, so it reads the same everywhere."""
    import typst

    try:
        return typst.compile(str(folder / "report.typ"), root=str(folder), font_paths=list(font_paths),
                             ignore_system_fonts=lang == "en",
                             timestamp=timestamp or dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc))
    except typst.TypstError as err:  # a layout bug, not the user's doing: say where
        raise ReportError(" ".join(f"Typst could not compile {folder / 'report.typ'}: {err}".split())) from None


# ----------------------------------------------------------------------------- the folder


STAGING_PREFIX = ".report-staging-"


def default_report_dir(results_dir: Path) -> Path:
    """results -> report, results/smoke -> report/smoke, reference/cpu-jpeg/results -> reference/cpu-jpeg/report."""
    parts = results_dir.parts
    if "results" not in parts:
        raise ReportError(f"cannot tell where the report of {results_dir} goes (its path has no 'results' folder): "
                          "give it one with --out")
    at = len(parts) - 1 - parts[::-1].index("results")
    return Path(*parts[:at], "report", *parts[at + 1:])


def check_language(lang: str) -> None:
    if lang not in LANGUAGES:
        raise ReportError(f"unknown report language {lang!r}: choose one of {', '.join(LANGUAGES)}")


def write_report(results_dir: Path, executed_dir: Path, out: Path | None = None, lang: str = "en",
                 font_paths: Sequence[str] = (), log=print) -> Path:
    """Render the report of `results_dir` (and `executed_dir`'s notebooks) into `out` (default: beside
    `results_dir`, see default_report_dir); return report.pdf."""
    from cifar_helpers.workbook.notebook_export import export_notebooks, index_html

    check_language(lang)
    results = load_report_results(results_dir)
    out = out or default_report_dir(results_dir)
    fonts = report_fonts(lang, font_paths)
    if not results:
        log(f"{shown_path(results_dir)} holds no results yet, so the report says 'not run yet' for every model "
            "(the smoke run's report: make report PARAMS=params/smoke.yaml)")
    require_writable(out, "the report folder (--out)")
    with exclusive(out, "the written report", "give this render another --out"):
        for leftover in out.glob(STAGING_PREFIX + "*"):  # from a render that was killed
            shutil.rmtree(leftover, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out))
        try:
            draw_figures(results, staging / "figures")
            document = build_document(results, shown_path(results_dir), lang, fonts)
            atomic_write_text(staging / "report.json", json.dumps(document, ensure_ascii=False, indent=1) + "\n")
            shutil.copyfile(TEMPLATE, staging / "report.typ")
            pdf = compile_pdf(staging, lang, font_paths, newest_result_time(results))
            atomic_write(staging / "report.pdf", lambda tmp: tmp.write_bytes(pdf))
            pages, left_out = export_notebooks(executed_dir, results_dir, staging / "notebooks", out / "notebooks")
            for line in left_out:
                log(f"left out {line}")
            atomic_write_text(staging / "index.html", index_html(TEXT[lang], lang, pages, shown_path(executed_dir)))
            _move_into(staging, out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return out / "report.pdf"


def _move_into(staging: Path, out: Path) -> None:
    """Each staged file replaces its namesake in `out`; files a former render left in figures/ and
    notebooks/ that this one did not write go."""
    staged = {path.relative_to(staging) for path in staging.rglob("*") if path.is_file()}
    for folder in ("figures", "notebooks"):
        for old in (out / folder).rglob("*"):
            if old.is_file() and old.relative_to(out) not in staged:
                old.unlink()
    for relative in sorted(staged):
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / relative, out / relative)


# ----------------------------------------------------------------------------- command line


SMOKE_PROFILE = "params/smoke.yaml"


def _has_results(folder: Path) -> bool:
    return any(folder.glob("*.json"))


def resolve_folders(args: argparse.Namespace) -> tuple[Path, Path, Path | None]:
    """RESULTS_DIR and the executed folder from --params (06's RESULTS_DIR, workbook: executed_dir),
    overridden by --results-dir and --executed-dir; --out, or None for the folder beside RESULTS_DIR.

    With neither --params nor --results-dir, `results/` is the runs' folder; while it holds no run and the
    smoke profile's holds one (`make smoke && make report` on a fresh clone), that one is rendered, and said so."""
    from cifar_helpers.workbook.run_all import load_profile

    profile = load_profile(args.params)
    if not (args.params or args.results_dir or _has_results(repo_path(None, "results"))):
        smoke = load_profile(SMOKE_PROFILE)
        smoke_results = repo_path(smoke.for_notebook("06_analysis", {"RESULTS_DIR"}).get("RESULTS_DIR"), "results")
        if _has_results(smoke_results):
            print(f"results/ holds no run yet: rendering the smoke run's ({shown_path(smoke_results)}, "
                  f"PARAMS={SMOKE_PROFILE}) instead.")
            profile = smoke
    results = args.results_dir or profile.for_notebook("06_analysis", {"RESULTS_DIR"}).get("RESULTS_DIR")
    executed = args.executed_dir or profile.settings.get("executed_dir")
    return (repo_path(results, "results"), repo_path(executed, "executed"),
            repo_path(args.out, "report") if args.out else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", help="the parameter file of the runs (as for make run), e.g. "
                                         "params/reference-cpu.yaml: its RESULTS_DIR and executed_dir")
    parser.add_argument("--results-dir", help="the results files (default: results/, or the profile's)")
    parser.add_argument("--executed-dir", help="the executed notebooks (default: executed/, or the profile's)")
    parser.add_argument("--out", help="the report folder (default: RESULTS_DIR with 'results' made 'report')")
    parser.add_argument("--lang", default="en", help="en (default) or ko")
    parser.add_argument("--font-path", action="append", default=[], help="a folder of fonts (repeatable)")
    args = parser.parse_args(argv)
    try:
        check_language(args.lang)
        results_dir, executed_dir, out = resolve_folders(args)
        pdf = write_report(results_dir, executed_dir, out, args.lang, args.font_path)
    except WorkbookError as exc:
        print(f"make report stopped: {exc}", file=sys.stderr)
        return 1
    print(f"Report: {shown_path(pdf)}; {shown_path(pdf.with_name('index.html'))} links it and the executed notebooks.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
