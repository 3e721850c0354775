"""Loaders and chunking on real files: the good fixtures load with every field, each broken file is
reported with its reason, and one bad file never keeps the others out."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kb_index import Article, chunk_article, chunk_text, load_file, load_path
from kb_index.text import default_tokenizer, detect_language

FIXTURES = Path(__file__).parent / "kb_fixtures"
GOOD = FIXTURES / "good"
BROKEN = FIXTURES / "broken"


def make_pdf(lines: list[str], title: str | None = None) -> bytes:
    """A minimal one-page PDF with Helvetica text, offsets computed (size-guide.pdf was made so)."""

    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    ops = ["BT", "/F1 12 Tf", "72 720 Td"]
    for i, line in enumerate(lines):
        if i:
            ops.append("0 -16 Td")
        ops.append(f"({esc(line)}) Tj")
    ops.append("ET")
    stream = "\n".join(ops).encode("latin-1") if lines else b""
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        (b"<< /Title (%s) >>" % esc(title).encode("latin-1")) if title else b"<< >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def by_key(articles: list[Article]) -> dict[tuple[str, str], Article]:
    return {a.key: a for a in articles}


# --- good files ---------------------------------------------------------------------------------


def test_good_folder_loads_every_format_with_its_fields() -> None:
    report = load_path(GOOD)
    arts = by_key(report.articles)
    assert set(arts) == {
        ("returns", "en"), ("returns", "zh"), ("returns", "ru"), ("shipping", "en"), ("care", "en"),
        ("size-guide", "en"), ("faq-2", "en"), ("faq-3", "zh"), ("gift-card-balance", "en"), ("faq-extra-2", "ru"),
    }  # fmt: skip
    md = arts[("returns", "en")]
    assert md.title == "Returns and refund windows"
    assert md.url == "https://help.example/en/returns"
    assert md.tags == ["returns", "refunds"] and md.translations == ["zh", "ru"]
    assert md.text.startswith("You can return unworn items")  # the repeated "# Title" line is dropped
    assert "### Gold members" in md.text
    assert arts[("returns", "zh")].title == "退货和退款期限"

    html = arts[("shipping", "en")]
    assert html.title == "Shipping times" and html.url == "https://help.example/en/shipping"
    assert "## Express shipping" in html.text
    assert "Home" not in html.text and "analytics" not in html.text and "rights reserved" not in html.text

    txt = arts[("care", "en")]
    assert txt.title == "Caring for denim" and txt.text.startswith("Wash jeans inside out")

    pdf = arts[("size-guide", "en")]
    assert pdf.title == "Size guide" and "Measure your chest" in pdf.text

    csv_row = arts[("faq-2", "en")]
    assert csv_row.title == "Do you ship to Canada?" and csv_row.url == "https://help.example/en/international"
    assert "duties are paid" in csv_row.text
    assert arts[("faq-3", "zh")].title == "可以用PayPal付款吗？"  # no language column value: detected
    assert arts[("gift-card-balance", "en")].url == "https://help.example/en/gift-cards"  # JSON with its own id
    assert arts[("faq-extra-2", "ru")].title == "Как связаться с поддержкой?"

    # The CSV row without a question is reported by row number; the other rows still loaded.
    assert [(p.name, r) for p, r in report.errors] == [("faq.csv#row4", "empty question or answer")]
    assert [p.name for p in report.skipped] == ["catalog.yml"]


def test_pdf_written_at_run_time_loads(tmp_path: Path) -> None:
    (tmp_path / "warranty.pdf").write_bytes(make_pdf(["Warranty", "Defects are covered for one year."], title="Warranty"))
    [art] = load_path(tmp_path).articles
    assert art.id == "warranty" and art.title == "Warranty" and "one year" in art.text


def test_language_comes_from_front_matter_then_folder_then_script(tmp_path: Path) -> None:
    (tmp_path / "ru").mkdir()
    (tmp_path / "ru" / "latin.md").write_text("---\nid: x\n---\nThis page is written in English but filed under ru.\n")
    (tmp_path / "zh.md").write_text("---\nid: y\n---\n退货期限取决于会员等级。\n")
    (tmp_path / "en.md").write_text("---\nid: z\nlanguage: zh-TW\n---\n退貨期限取決於會員等級。\n")
    arts = by_key(load_path(tmp_path).articles)
    assert set(arts) == {("x", "ru"), ("y", "zh"), ("z", "zh")}
    assert arts[("x", "ru")].title == "latin"  # no title, no H1: the file name


# --- broken files -------------------------------------------------------------------------------


def test_each_broken_file_is_reported_with_its_reason() -> None:
    report = load_path(BROKEN)
    assert report.articles == []
    reasons = {p.name: r for p, r in report.errors}
    assert set(reasons) == {
        "bad.json", "bad_frontmatter.md", "blank.txt", "corrupt.pdf", "empty.md", "fake.pdf", "latin1.txt",
        "missing_columns.csv", "no_text.html", "title_only.md",
    }  # fmt: skip
    assert reasons["corrupt.pdf"].startswith("unreadable PDF")
    assert reasons["fake.pdf"].startswith("unreadable PDF")
    assert reasons["empty.md"].startswith("empty document")
    assert reasons["title_only.md"].startswith("empty document")
    assert reasons["no_text.html"].startswith("no main text found")
    assert reasons["missing_columns.csv"].startswith("CSV is missing column(s) answer")
    assert reasons["bad_frontmatter.md"].startswith("front matter is not valid YAML")
    assert reasons["bad.json"].startswith("invalid JSON")
    assert reasons["latin1.txt"].startswith("not UTF-8")
    assert reasons["blank.txt"] == "empty document"


def test_broken_files_do_not_stop_the_good_ones(tmp_path: Path) -> None:
    shutil.copytree(GOOD, tmp_path / "good")
    shutil.copytree(BROKEN, tmp_path / "broken")
    report = load_path(tmp_path)
    assert len(report.articles) == len(load_path(GOOD).articles)
    assert len(report.errors) == 11  # 10 broken files + the bad CSV row


def test_pdf_without_text_and_unreadable_path_are_reported(tmp_path: Path) -> None:
    (tmp_path / "scan.pdf").write_bytes(make_pdf([]))
    (tmp_path / "folder.md").mkdir()  # a name that looks like an article but cannot be read as a file
    reasons = {p.name: r for p, r in load_path(tmp_path).errors}
    assert reasons == {"scan.pdf": "PDF has no extractable text (scanned images need OCR first)"}
    [(path, reason)] = load_file(tmp_path / "folder.md").errors
    assert reason.startswith("cannot read file")
    assert load_path(tmp_path / "nope").errors == [(tmp_path / "nope", "no such file or directory")]


def test_duplicate_ids_are_reported_and_first_kept(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("---\nid: same\nlanguage: en\n---\nFirst version.\n")
    (tmp_path / "b.md").write_text("---\nid: same\nlanguage: en\n---\nSecond version.\n")
    (tmp_path / "c.md").write_text("---\nid: bad id!\n---\nText.\n")
    report = load_path(tmp_path)
    assert [a.text for a in report.articles] == ["First version."]
    reasons = {p.name: r for p, r in report.errors}
    assert reasons["b.md"].startswith("duplicate article id 'same' (en)")
    assert reasons["c.md"].startswith("invalid article id")


def test_json_faq_shapes(tmp_path: Path) -> None:
    (tmp_path / "list.json").write_text('[{"question": "Q1?", "answer": "A1.", "url": "u1"}, {"question": "Q2?"}, 5]')
    (tmp_path / "nofields.json").write_text('[{"title": "x", "body": "y"}]')
    (tmp_path / "scalar.json").write_text('"just a string"')
    report = load_path(tmp_path)
    assert [(a.id, a.title, a.url) for a in report.articles] == [("list-1", "Q1?", "u1")]
    reasons = {p.name: r for p, r in report.errors}
    assert reasons["list.json#row2"] == "empty question or answer"
    assert reasons["list.json#row3"].startswith("row is not an object")
    assert reasons["nofields.json"].startswith("JSON FAQ objects are missing question/answer")
    assert reasons["scalar.json"].startswith("JSON FAQ must be a list")


# --- chunking -----------------------------------------------------------------------------------


def test_chunks_keep_heading_paths_and_article_fields() -> None:
    art = by_key(load_path(GOOD).articles)[("returns", "en")]
    chunks = chunk_article(art)
    assert [c.heading_path for c in chunks] == [
        [], ["Windows by membership"], ["Windows by membership", "Gold members"], ["How to start a return"]
    ]
    assert all((c.article_id, c.language, c.title, c.url) == ("returns", "en", art.title, art.url) for c in chunks)
    assert chunks[2].text.startswith("Gold members can return")
    assert chunks[2].embedding_text().startswith("Returns and refund windows > Windows by membership > Gold members\n\n")


def test_long_sections_are_split_with_overlap_within_the_limit() -> None:
    sentences = [f"Sentence {i} explains one more detail of the refund rules." for i in range(40)]
    text = "## Refunds\n\n" + " ".join(sentences) + "\n\n```\n# not a heading\n```\n"
    parts = chunk_text(text, max_chars=300, overlap_chars=80)
    assert len(parts) > 5
    assert all(path == ["Refunds"] for path, _ in parts)  # "# not a heading" is inside a code fence
    assert all(len(body) <= 300 for _, body in parts)
    for (_, prev), (_, nxt) in zip(parts, parts[1:], strict=False):
        last_sentence = prev.split(". ")[-1].rstrip(".")
        assert last_sentence in nxt  # the next chunk starts with the previous one's tail
    joined = " ".join(body for _, body in parts)
    assert all(s in joined for s in sentences)


def test_chinese_text_is_cut_at_sentence_ends() -> None:
    text = "".join(f"第{i}条说明退款规则的细节。" for i in range(60))
    parts = chunk_text(text, max_chars=200, overlap_chars=40)
    assert len(parts) > 3 and all(len(b) <= 200 for _, b in parts)
    assert all(b.endswith("。") for _, b in parts)


def test_chunk_parameters_are_checked() -> None:
    with pytest.raises(ValueError):
        chunk_text("x", max_chars=10)
    with pytest.raises(ValueError):
        chunk_text("x", max_chars=200, overlap_chars=150)


# --- tokens and language ------------------------------------------------------------------------


def test_tokenizer_handles_codes_stems_chinese_and_traditional() -> None:
    tok = default_tokenizer()
    assert tok.tokenize("Tracking the XJ-4410B parcels") == ["track", "xj4410b", "xj", "4410b", "parcel"]
    assert tok.tokenize("Где мой заказ? Заказы") == ["заказ", "заказ"]  # stop words dropped, stemmed
    assert "订单" in tok.tokenize("我的訂單在哪裡") and "订单" in tok.tokenize("我的订单在哪里")
    assert detect_language("Где мой заказ") == "ru"
    assert detect_language("我的订单 order") == "zh"
    assert detect_language("where is it", default="en") == "en"
