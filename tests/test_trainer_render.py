"""Visual check of the trainer's Office files: LibreOffice renders them to PDF, poppler to PNG.

The PDF must have pages, embed a CJK font for the Chinese text (not a Latin fallback that
would show boxes) and give the Chinese text back on extraction. Skipped only when LibreOffice
or poppler is not installed (``make system-deps`` installs them), and never under ``CI=true``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cqo_assistant import export
from cqo_assistant.parse import load_corpus
from cqo_assistant.trainer import Corpus, build_outline, generate_quiz, select_clauses
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parent.parent
HINT = "run `make system-deps` (Debian: libreoffice-writer-nogui, -impress-nogui, poppler-utils)"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def soffice() -> str:
    for tool in ("pdftoppm", "pdffonts", "pdftotext"):
        require_tool(tool, hint=HINT)
    return require_tool("soffice", "libreoffice", hint=HINT)


def _to_pdf(soffice: str, src: Path, out: Path) -> Path:
    profile = out / "lo-profile"
    subprocess.run(
        [
            soffice,
            f"-env:UserInstallation=file://{profile}",
            "--headless",
            "--convert-to",
            "pdf",
            "--outdir",
            str(out),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    pdf = out / (src.stem + ".pdf")
    assert pdf.exists(), f"LibreOffice wrote no PDF for {src.name}"
    return pdf


def _check_pdf(pdf: Path, expect: list[str]) -> None:
    pages = sorted(pdf.parent.glob(pdf.stem + "-*.png"))
    assert not pages
    subprocess.run(
        ["pdftoppm", "-r", "50", "-png", "-f", "1", "-l", "3", str(pdf), str(pdf.with_suffix(""))],
        check=True,
        timeout=120,
    )
    pages = sorted(pdf.parent.glob(pdf.stem + "-*.png"))
    assert pages and all(p.stat().st_size > 3000 for p in pages)
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True).stdout
    cjk = ("WenQuanYi", "Noto Sans CJK", "NotoSansCJK", "SimSun", "SimHei", "YaHei", "Droid")
    assert any(name in fonts for name in cjk), f"no CJK font embedded:\n{fonts}"
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
    flat = "".join(text.split())
    for e in expect:
        assert "".join(e.split()) in flat, e


def test_docx_and_pptx_render_with_chinese(soffice: str, tmp_path: Path) -> None:
    corpus = Corpus(load_corpus(ROOT / "corpus")[0])
    outline = build_outline(corpus)
    items = generate_quiz(corpus, 10, seed=1)
    files = {
        "outline-doc.docx": export.outline_docx(corpus, outline),
        "outline-slides.pptx": export.outline_pptx(corpus, outline),
        "quiz.docx": export.quiz_docx(corpus, items, inline=True, seed=1),
        "handout.docx": export.handout_docx(corpus, select_clauses(corpus, "5"), items[:2]),
    }
    expect = {
        "outline-doc.docx": ["首席质量官培训课程提纲", "模块1"],
        "outline-slides.pptx": ["企业首席质量官制度培训", "任职资格"],
        "quiz.docx": ["首席质量官培训题库", "单选题"],
        "handout.docx": ["5.1任职资格", corpus.by_id["5.1 e)"].text[:12]],
    }
    for name, data in files.items():
        src = tmp_path / name
        src.write_bytes(data)
        pdf = _to_pdf(soffice, src, tmp_path)
        _check_pdf(pdf, expect[name])
