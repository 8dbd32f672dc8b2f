"""Executed notebooks name paths relative to the repository, never one machine's folders."""

from __future__ import annotations

import re

import nbformat

from cifar_helpers.workbook.notebook_export import notebook_html
from cifar_helpers.workbook.notebook_files import rebased_links, relative_text, tidy_executed
from cifar_helpers.core.paths import NOTEBOOK_DIR, REPO_ROOT

# A markdown or HTML link to a path: no scheme, not an anchor.
PATH_LINK = re.compile(r"""(?:\]\(|href=")([^)"\s#:]+)""")


def test_paths_inside_the_repository_become_relative_and_others_stay():
    root = str(REPO_ROOT)
    assert relative_text(f"Resuming from {root}/checkpoints/dnn/last.pt") == "Resuming from checkpoints/dnn/last.pt"
    assert relative_text(f"cwd {root}, then ({root}).") == "cwd ., then (.)."
    assert relative_text(f"{root}2/x and /tmp/y") == f"{root}2/x and /tmp/y"  # another folder, not a prefix


def test_an_executed_notebook_and_its_log_are_rewritten_but_images_are_not(tmp_path):
    root = str(REPO_ROOT)
    image = f"iVBOR{root}/not-a-path"  # base64 that happens to spell the root is image data, kept
    cell = nbformat.v4.new_code_cell("print(1)", outputs=[
        nbformat.v4.new_output("stream", name="stdout", text=f"Results written to {root}/results/dnn.json\n"),
        nbformat.v4.new_output("display_data", data={"text/markdown": f"**Data:** at {root}/data",
                                                     "image/png": image}),
    ])
    notebook = nbformat.v4.new_notebook(cells=[cell])
    notebook.metadata["papermill"] = {"input_path": f"{root}/notebooks/01_dnn.ipynb"}
    path, log = tmp_path / "01_dnn.ipynb", tmp_path / "01_dnn.log"
    nbformat.write(notebook, path)
    log.write_text(f"epoch 1 ... Results written to {root}/results/dnn.json\n")
    tidy_executed(path, log)
    rewritten = nbformat.read(path, as_version=4)
    outputs = rewritten.cells[0].outputs
    assert outputs[0].text == "Results written to results/dnn.json\n"
    assert outputs[1].data["text/markdown"] == "**Data:** at data" and outputs[1].data["image/png"] == image
    assert rewritten.metadata.papermill.input_path == "notebooks/01_dnn.ipynb"
    assert log.read_text() == "epoch 1 ... Results written to results/dnn.json\n"
    assert path.read_text().endswith("}\n") and "version" not in rewritten.metadata.get("language_info", {})


def test_links_written_from_notebooks_lead_to_their_files_from_an_executed_copys_folder():
    markdown = ("[protocol](../docs/protocol.md#decisions), [web](https://pytorch.org/docs), [up](#top), "
                "[gone](../docs/no-such-page.md)")
    deep = REPO_ROOT / "reference" / "cpu-jpeg" / "executed"
    rebased = rebased_links(markdown, NOTEBOOK_DIR, deep)
    assert rebased == ("[protocol](../../../docs/protocol.md#decisions), [web](https://pytorch.org/docs), [up](#top), "
                       "[gone](../docs/no-such-page.md)")  # a link to no file is left as written
    assert rebased_links(rebased, NOTEBOOK_DIR, deep) == rebased  # a link that opens is kept: tidying twice is safe
    assert rebased_links(markdown, NOTEBOOK_DIR, REPO_ROOT / "executed") == markdown  # a sibling of notebooks/
    assert rebased_links(markdown, NOTEBOOK_DIR, REPO_ROOT.parent / "elsewhere") == markdown  # outside the clone


def test_an_executed_notebook_and_its_html_page_keep_their_links_working(tmp_path, monkeypatch):
    from cifar_helpers.workbook import notebook_files

    repository = tmp_path / "clone"  # a repository of its own, so that the test writes nothing into this one
    for folder in ("docs", "notebooks"):
        (repository / folder).mkdir(parents=True)
    (repository / "docs" / "protocol.md").write_text("# Protocol\n")
    monkeypatch.setattr(notebook_files, "REPO_ROOT", repository)
    monkeypatch.setattr(notebook_files, "NOTEBOOK_DIR", repository / "notebooks")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("[the protocol](../docs/protocol.md)")])
    path = repository / "reference" / "executed" / "05_custom_resnet.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(notebook, path)
    tidy_executed(path)
    target = PATH_LINK.findall(nbformat.read(path, as_version=4).cells[0].source)
    assert target == ["../../docs/protocol.md"]
    page_folder = repository / "report" / "notebooks"
    target = [t for t in PATH_LINK.findall(notebook_html(path, page_folder)) if t.endswith(".md")]
    assert len(target) == 1 and (page_folder / target[0]).resolve() == repository / "docs" / "protocol.md"


def test_an_executed_copy_outside_the_repository_keeps_its_links_and_names_no_machine_folder(tmp_path):
    """A link from /tmp/... back into the clone would climb through this machine's folders: left as written."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("[the protocol](../docs/protocol.md)")])
    path = tmp_path / "executed" / "05_custom_resnet.ipynb"
    path.parent.mkdir()
    nbformat.write(notebook, path)
    tidy_executed(path)
    assert nbformat.read(path, as_version=4).cells[0].source == "[the protocol](../docs/protocol.md)"
    assert REPO_ROOT.name not in path.read_text()
    assert "../docs/protocol.md" in notebook_html(path, tmp_path / "report")


def test_committed_reference_runs_name_no_machine_folder_and_no_renamed_one():
    """What a clone holds of the reference runs opens anywhere: no `/work/main/...`, no `reference/jpeg/`."""
    machine_path = re.compile(r"""(?<![\w.])/[^\s"'()<>]+/(?:data|checkpoints|reference|notebooks|results)/""")
    files = [p for p in (REPO_ROOT / "reference").rglob("*") if p.suffix in (".ipynb", ".log", ".json", ".md")
             and not any(part.startswith(".") for part in p.relative_to(REPO_ROOT).parts)]  # JupyterLab's copies
    assert len(files) > 20
    for path in files:
        text = path.read_text(encoding="utf-8")
        found = machine_path.search(text)
        assert found is None, f"{path.relative_to(REPO_ROOT)} names {found.group(0)!r}"
        assert "reference/jpeg/" not in text, path.relative_to(REPO_ROOT)
        if path.suffix == ".ipynb":  # opens unmodified under any Python (notebook_files)
            notebook = nbformat.reads(text, as_version=4)
            assert "version" not in notebook.metadata.language_info, path
            markdown = [output.data["text/markdown"] for cell in notebook.cells for output in cell.get("outputs", [])
                        if "text/markdown" in output.get("data", {})]
            assert not any("<class>" in text for text in markdown), path  # Markdown would drop it as a tag
            for cell in notebook.cells:
                if cell.cell_type == "markdown":
                    for target in PATH_LINK.findall(cell.source):
                        assert (path.parent / target).exists(), f"{path.relative_to(REPO_ROOT)} links {target}"


def test_committed_report_pages_link_only_to_files_that_exist():
    pages = list((REPO_ROOT / "reference").glob("*/report/notebooks/*.html"))
    assert pages
    for page in pages:
        for target in PATH_LINK.findall(page.read_text(encoding="utf-8")):
            assert (page.parent / target).exists(), f"{page.relative_to(REPO_ROOT)} links {target}"
