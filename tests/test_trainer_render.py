"""Visual check of the trainer's files: LibreOffice renders them to PDF, poppler to PNG.

Every file the trainer exports (outline DOCX and PPTX, quiz DOCX, XLSX question bank, handout
DOCX) must render with a CJK font embedded and give its Chinese text back, and must not
overflow: poppler drops text outside a page, so every text line of the file must be found in
the PDF's text, and every word box must lie inside its page — on slides also above the slide
number strip. Pages are written as PNGs to tests/artifacts/trainer/ to be looked at. Skipped
only when LibreOffice or poppler is not installed (``make system-deps``), never under CI=true.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from docx import Document
from openpyxl import load_workbook
from pptx import Presentation

from cqo_assistant.parse import load_corpus
from cqo_assistant.trainer import Corpus, build_handout, build_outline, build_paper
from cqo_assistant.trainer.writers import render
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts" / "trainer"
HINT = (
    "run `make system-deps` (Debian: libreoffice-writer-nogui, -impress-nogui, -calc-nogui, "
    "poppler-utils)"
)
CJK = ("WenQuanYi", "Noto Sans CJK", "NotoSansCJK", "SimSun", "SimHei", "YaHei", "Droid")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def soffice() -> str:
    for tool in ("pdftoppm", "pdffonts", "pdftotext", "pdfinfo"):
        require_tool(tool, hint=HINT)
    return require_tool("soffice", "libreoffice", hint=HINT)


@pytest.fixture(scope="module")
def rendered(soffice: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The exported files, converted to PDF in one LibreOffice run."""
    corpus = Corpus(load_corpus(ROOT / "corpus")[0])
    paper = build_paper(corpus, 30, seed=1)
    scope = {c.id for c in corpus.clauses if c.id[0] == "5"}
    files: dict[str, bytes] = {
        "outline-doc.docx": render(build_outline(corpus), "docx"),  # type: ignore[dict-item]
        "outline-slides.pptx": render(build_outline(corpus), "pptx"),  # type: ignore[dict-item]
        "quiz.docx": render(paper, "docx"),  # type: ignore[dict-item]
        "quiz-bank.xlsx": render(paper, "xlsx"),  # type: ignore[dict-item]
        "handout.docx": render(  # type: ignore[dict-item]
            build_handout(corpus, "5", build_paper(corpus, 4, seed=1, scope=scope)), "docx"
        ),
    }
    out = tmp_path_factory.mktemp("render")
    for name, data in files.items():
        (out / name).write_bytes(data)
    subprocess.run(
        [
            soffice,
            f"-env:UserInstallation=file://{out / 'lo-profile'}",
            "--headless",
            "--convert-to",
            "pdf",
            "--outdir",
            str(out),
            *(str(out / n) for n in files),
        ],
        check=True,
        capture_output=True,
        timeout=400,
    )
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    for name in files:
        pdf = out / (Path(name).stem + ".pdf")
        assert pdf.exists(), f"LibreOffice wrote no PDF for {name}"
        shutil.copy(pdf, ARTIFACTS / pdf.name)
    return files


def _flat(s: str) -> str:
    return "".join(s.split())


_LABEL = re.compile(r"^([a-z]\)|\d+(\.\d+)*\.?)[\s\u3000]+")


def _body(line: str) -> str:
    """A line without its hanging label ("a) ", "9.1　"), which PDF text puts in a column."""
    return _flat(_LABEL.sub("", line))


def _lines(name: str, data: bytes) -> list[str]:
    """Every text line the file holds (what must appear in the PDF)."""
    if name.endswith(".docx"):
        doc = Document(io.BytesIO(data))
        return [p.text for p in doc.paragraphs if p.text.strip()]
    if name.endswith(".pptx"):
        prs = Presentation(io.BytesIO(data))
        return [
            p.text
            for s in prs.slides
            for sh in s.shapes
            if sh.has_text_frame
            for p in sh.text_frame.paragraphs
            if p.text.strip()
        ]
    ws = load_workbook(io.BytesIO(data)).active
    return [str(v) for row in ws.iter_rows(values_only=True) for v in row if v]


Box = tuple[int, float, float, float, float, float, float]


def _overlaps(boxes: list[Box]) -> list[tuple[Box, Box]]:
    """Pairs of word boxes on one page that overlap by more than a third of the smaller."""
    out = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            if b[0] != a[0]:
                break
            w = min(a[5], b[5]) - max(a[3], b[3])
            h = min(a[6], b[6]) - max(a[4], b[4])
            if w > 0 and h > 0:
                small = min((a[5] - a[3]) * (a[6] - a[4]), (b[5] - b[3]) * (b[6] - b[4]))
                if w * h > small / 3:
                    out.append((a, b))
    return out


def _info(pdf: Path) -> str:
    return subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True).stdout


def _boxes(pdf: Path) -> list[Box]:
    """(page, page width, page height, xMin, yMin, xMax, yMax) of every word."""
    html = subprocess.run(
        ["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    out: list[Box] = []
    pages = re.finditer(r'<page width="([\d.]+)" height="([\d.]+)">(.*?)</page>', html, re.S)
    for k, page in enumerate(pages):
        w, h = float(page.group(1)), float(page.group(2))
        for m in re.finditer(
            r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)"', page.group(3)
        ):
            x0, y0, x1, y1 = map(float, m.groups())
            out.append((k, w, h, x0, y0, x1, y1))
    return out


@pytest.mark.parametrize(
    ("name", "expect"),
    [
        ("outline-doc.docx", ["企业首席质量官制度培训课程提纲", "模块1"]),
        ("outline-slides.pptx", ["企业首席质量官制度培训", "任职资格"]),
        ("quiz.docx", ["企业首席质量官制度培训测验", "姓名：", "一、单选题", "答案与解析"]),
        ("quiz-bank.xlsx", ["题型", "选项A", "解析", "条款"]),
        ("handout.docx", ["5.1任职资格", "随堂练习"]),
    ],
)
def test_renders_without_overflow(rendered: dict[str, bytes], name: str, expect: list[str]) -> None:
    pdf = ARTIFACTS / (Path(name).stem + ".pdf")
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True).stdout
    assert any(f in fonts for f in CJK), f"no CJK font embedded:\n{fonts}"
    raw = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True
    ).stdout
    text = re.sub(r"第\d+页/共\d+页", "", _flat(raw))  # page footers, between split paragraphs
    for e in expect:
        assert _flat(e) in text, e
    # poppler drops characters outside the page: text that overflowed is missing here
    lines = _lines(name, rendered[name])
    if name.endswith(".xlsx"):  # cells wrap side by side: compare characters, not lines
        lack = Counter(_flat("".join(lines))) - Counter(text)
        assert not lack, f"{name}: characters not on any page: {dict(lack.most_common(5))}"
    else:
        missing = [line for line in lines if _body(line) not in text]
        assert not missing, f"{name}: {len(missing)} lines not on any page, e.g. {missing[:3]}"
    boxes = _boxes(pdf)
    assert boxes
    for _page, w, h, x0, y0, x1, y1 in boxes:
        assert x0 >= 1 and y0 >= 1 and x1 <= w - 1 and y1 <= h - 1, (name, x0, y0, x1, y1)
    words = Counter(b[0] for b in boxes if 0.08 * b[2] < b[4] and b[6] < 0.92 * b[2])  # body
    pages = int(re.search(r"Pages:\s+(\d+)", _info(pdf)).group(1))  # type: ignore[union-attr]
    assert all(words[k] >= 1 for k in range(pages)), f"{name}: a blank page: {words}"
    overlaps = _overlaps(boxes)
    assert not overlaps, f"{name}: text drawn over text (overflowing box or row): {overlaps[:3]}"
    if name.endswith(".pptx"):  # body text stays above the slide-number strip
        strip = [b for b in boxes if b[6] > b[2] * (1 - 0.4 / 7.5) and b[3] < b[1] * 0.8]
        assert not strip, f"text reaches the bottom of a slide: {strip[:3]}"
    subprocess.run(
        ["pdftoppm", "-r", "40", "-png", str(pdf), str(pdf.with_suffix(""))],
        check=True,
        timeout=300,
    )
    pages = sorted(ARTIFACTS.glob(pdf.stem + "-*.png"))
    assert pages and all(p.stat().st_size > 2000 for p in pages)
