"""Content in: Markdown with front matter, HTML, plain text, PDF, and FAQ tables (CSV/JSON).

``load_path`` walks a folder recursively. A file that cannot be read, or that holds no text, is
reported in ``LoadReport.errors`` with its reason and the import goes on: one broken upload must
not keep the other 40 articles out of the index.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from kb_index.models import Article, LoadReport
from kb_index.text import detect_language

# pypdf logs every repair it attempts on a damaged file; the loader reports the outcome itself.
logging.getLogger("pypdf").setLevel(logging.ERROR)

LANG_DIRS = {"en", "zh", "ru"}
MARKDOWN_EXT = {".md", ".markdown"}
HTML_EXT = {".html", ".htm"}
TEXT_EXT = {".txt"}
PDF_EXT = {".pdf"}
TABLE_EXT = {".csv", ".json"}
SUPPORTED_EXT = MARKDOWN_EXT | HTML_EXT | TEXT_EXT | PDF_EXT | TABLE_EXT
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
_H1_RE = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)


class LoadError(Exception):
    """A file (or row) that cannot become an article; the message is the reported reason."""


def load_path(path: Path, *, default_language: str = "en") -> LoadReport:
    """Load one file or every supported file under a folder (sorted, hidden files ignored).

    Articles are unique by ``(id, language)``: a second file claiming the same pair is reported
    as an error rather than silently replacing the first.
    """
    path = Path(path)
    report = LoadReport()
    if not path.exists():
        report.errors.append((path, "no such file or directory"))
        return report
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p, path))
    seen: dict[tuple[str, str], Path] = {}
    for f in files:
        if f.suffix.lower() not in SUPPORTED_EXT:
            report.skipped.append(f)
            continue
        one = load_file(f, default_language=default_language)
        for art in one.articles:
            if art.key in seen:
                report.errors.append((f, f"duplicate article id {art.id!r} ({art.language}); first defined in {seen[art.key]}"))
                continue
            seen[art.key] = f
            report.articles.append(art)
        report.errors.extend(one.errors)
    return report


def load_file(path: Path, *, default_language: str = "en") -> LoadReport:
    """Load one file of any supported type; never raises for bad content."""
    report = LoadReport()
    loader = _LOADERS.get(path.suffix.lower())
    if loader is None:
        report.errors.append((path, f"unsupported file type {path.suffix or '(none)'}; supported: {', '.join(sorted(SUPPORTED_EXT))}"))
        return report
    lang_hint = _language_from_path(path) or default_language
    try:
        produced = loader(path, lang_hint)
    except LoadError as exc:
        report.errors.append((path, str(exc)))
        return report
    except OSError as exc:
        report.errors.append((path, f"cannot read file: {exc.strerror or exc}"))
        return report
    for item in produced:
        if isinstance(item, Article):
            report.articles.append(item)
        else:
            report.errors.append(item)
    return report


# --- helpers ----------------------------------------------------------------------------------


def _hidden(p: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in p.relative_to(root).parts)


def _language_from_path(path: Path) -> str | None:
    """``help_centre/zh/foo.md`` → zh: the folder layout the help centre uses."""
    for part in reversed(path.parent.parts):
        if part.lower() in LANG_DIRS:
            return part.lower()
    return None


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LoadError(f"not UTF-8 text (byte {exc.start}: {exc.reason})") from None


def _slug(stem: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_.:-]+", "-", stem).strip("-")
    return s or "article"


def _title_from_name(path: Path) -> str:
    """The title of a document that states none: its file name, ``-`` and ``_`` read as spaces."""
    return path.stem.replace("-", " ").replace("_", " ")


def _file_article(path: Path, title: str, text: str, language: str, url: str = "") -> list[Article]:
    """A file that is one article, its id the slug of its file name."""
    return [Article(id=_slug(path.stem), language=language, title=title, url=url, text=text, source_path=str(path))]


def _check_id(value: Any, where: str) -> str:
    s = str(value).strip()
    if not _ID_RE.match(s):
        raise LoadError(f"invalid {where} {value!r}: use letters, digits and _.:- (at most 128)")
    return s


def _split_list(value: Any, sep: str, error: str) -> list[str]:
    """A list given either as ``sep``-separated text or as a list: items stripped, empty ones
    dropped; any other value raises ``LoadError(error)``."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(sep) if v.strip()]
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    raise LoadError(error)


def _str_list(value: Any, field_name: str) -> list[str]:
    return _split_list(value, ",", f"front matter {field_name!r} must be a list or a comma-separated string")


def _language(value: Any, text: str, hint: str) -> str:
    if value is None or str(value).strip() == "":
        return detect_language(text, default=hint)
    lang = str(value).strip().lower().replace("_", "-")
    # zh-cn / zh-hans / zh-tw all index as zh; the tokenizer folds Traditional into Simplified.
    return lang.split("-")[0] if lang.split("-")[0] in LANG_DIRS else lang


# --- Markdown ---------------------------------------------------------------------------------


def _load_markdown(path: Path, hint: str) -> list[Article]:
    import frontmatter
    import yaml

    raw = _read_text(path)
    try:
        post = frontmatter.loads(raw)
    except yaml.YAMLError as exc:
        raise LoadError(f"front matter is not valid YAML: {str(exc).splitlines()[0]}") from None
    meta: dict[str, Any] = dict(post.metadata)
    body = post.content.strip()
    if not body:
        raise LoadError("empty document: no text after the front matter")
    title = str(meta.get("title") or "").strip()
    if not title:
        m = _H1_RE.search(body)
        title = m.group(1).strip() if m else _title_from_name(path)
    body = _strip_leading_title(body, title)
    if not body:
        raise LoadError("empty document: only a title, no text")
    art_id = _check_id(meta.get("id") or _slug(path.stem), "article id")
    return [
        Article(
            id=art_id,
            language=_language(meta.get("language") or meta.get("lang"), body, hint),
            title=title,
            url=str(meta.get("url") or "").strip(),
            text=body,
            tags=_str_list(meta.get("tags"), "tags"),
            translations=_str_list(meta.get("translations"), "translations"),
            source_path=str(path),
            questions=_questions(meta.get("questions")),
        )
    ]


def _questions(value: Any) -> list[str]:
    """``questions:`` in front matter: a list of strings (or one string)."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value.strip()]
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    raise LoadError("front matter 'questions' must be a list of question strings")


def _question_cells(value: Any) -> list[str]:
    """An FAQ row's extra questions: ``|``-separated text (CSV) or a list of strings (JSON)."""
    return _split_list(value, "|", "'questions' must be a list of strings or |-separated text")


def _strip_leading_title(body: str, title: str) -> str:
    """A leading ``# Title`` repeats the title: drop it so that chunks' heading paths start at the
    first real section."""
    m = _H1_RE.match(body)
    if m and m.group(1).strip() == title:
        return body[m.end() :].strip()
    return body


# --- HTML -------------------------------------------------------------------------------------


def _load_html(path: Path, hint: str) -> list[Article]:
    import trafilatura

    raw = _read_text(path)
    # Markdown output keeps the headings, which the chunker turns into heading paths.
    text = trafilatura.extract(
        _without_chrome(raw), output_format="markdown", favor_recall=True, include_tables=True, include_comments=False
    )
    if not text or not text.strip():
        raise LoadError("no main text found in the HTML (only navigation, scripts or empty markup)")
    meta = trafilatura.extract_metadata(raw)
    title = (meta.title if meta and meta.title else "") or ""
    title = title.split(" | ")[0].strip() or path.stem.replace("-", " ")
    lang_attr = re.search(r"<html[^>]*\blang\s*=\s*[\"']?([A-Za-z-]+)", raw, re.IGNORECASE)
    body = _strip_leading_title(text.strip(), title)
    if not body:
        raise LoadError("no main text found in the HTML (only a title)")
    language = _language(lang_attr.group(1) if lang_attr else None, body, hint)
    return _file_article(path, title, body, language, url=(meta.url if meta and meta.url else "") or "")


def _without_chrome(raw: str) -> str:
    """Drop navigation, scripts and page header/footer before extraction: on a page with no
    article trafilatura otherwise returns the menu ("Home | Help") as if it were the content."""
    import lxml.html
    from lxml import etree

    try:
        tree = lxml.html.document_fromstring(raw)
    except (etree.ParserError, ValueError):
        return raw
    etree.strip_elements(tree, "script", "style", "noscript", "nav", "aside", "form", etree.Comment, with_tail=False)
    for el in tree.xpath("//*[@role='navigation'] | //header[not(ancestor::main or ancestor::article)] | //footer[not(ancestor::main or ancestor::article)]"):
        el.drop_tree()
    return lxml.html.tostring(tree, encoding="unicode")


# --- plain text -------------------------------------------------------------------------------


def _load_text(path: Path, hint: str) -> list[Article]:
    raw = _read_text(path).strip()
    if not raw:
        raise LoadError("empty document")
    lines = raw.splitlines()
    # First line is the title when it is short and followed by a blank line (the usual layout).
    if len(lines) > 2 and len(lines[0]) <= 120 and not lines[1].strip():
        title, body = lines[0].strip(), "\n".join(lines[2:]).strip()
    else:
        title, body = _title_from_name(path), raw
    return _file_article(path, title, body, detect_language(body, default=hint))


# --- PDF --------------------------------------------------------------------------------------


def _load_pdf(path: Path, hint: str) -> list[Article]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError, PyPdfError

    try:
        reader = PdfReader(io.BytesIO(path.read_bytes()))
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError("PDF is password-protected")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        info_title = (reader.metadata.title if reader.metadata else None) or ""
    except LoadError:
        raise
    except (PdfReadError, PyPdfError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LoadError(f"unreadable PDF: {exc}") from None
    text = "\n\n".join(p for p in pages if p)
    if not text.strip():
        raise LoadError("PDF has no extractable text (scanned images need OCR first)")
    title = str(info_title).strip() or _title_from_name(path)
    return _file_article(path, title, text, detect_language(text, default=hint))


# --- FAQ tables -------------------------------------------------------------------------------

_FAQ_REQUIRED = ("question", "answer")


def _faq_rows_to_articles(path: Path, rows: Iterable[dict[str, Any]], hint: str, first_row: int) -> list[Article | tuple[Path, str]]:
    """Each row is one article: the question is its title and its first question (more in an
    optional ``questions`` column, ``|``-separated in CSV or a list in JSON); ``category`` is
    taken as a tag. A bad row is reported with its number; the good rows still load."""
    out: list[Article | tuple[Path, str]] = []
    for n, row in enumerate(rows, start=first_row):
        where = Path(f"{path}#row{n}")
        if not isinstance(row, dict):
            out.append((where, "row is not an object with question/answer"))
            continue
        norm = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
        q = str(norm.get("question") or "").strip()
        a = str(norm.get("answer") or "").strip()
        if not q or not a:
            out.append((where, "empty question or answer"))
            continue
        try:
            art_id = _check_id(norm.get("id") or f"{_slug(path.stem)}-{n}", "row id")
            tags = _str_list(norm.get("tags") or norm.get("category"), "tags")
            extra = _question_cells(norm.get("questions"))
        except LoadError as exc:
            out.append((where, str(exc)))
            continue
        out.append(
            Article(
                id=art_id,
                language=_language(norm.get("language") or norm.get("lang"), q + "\n" + a, hint),
                title=q,
                url=str(norm.get("url") or "").strip(),
                text=a,
                tags=tags,
                source_path=str(path),
                questions=[q, *(x for x in extra if x != q)],
            )
        )
    return out


def _load_csv(path: Path, hint: str) -> list[Article | tuple[Path, str]]:
    raw = _read_text(path)
    if not raw.strip():
        raise LoadError("empty CSV file")
    try:
        dialect = csv.Sniffer().sniff(raw[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(raw), dialect=dialect)
    try:
        fields = [f.strip().lower() for f in (reader.fieldnames or [])]
        missing = [c for c in _FAQ_REQUIRED if c not in fields]
        if missing:
            raise LoadError(
                f"CSV is missing column(s) {', '.join(missing)}; an FAQ table needs question, answer "
                f"(url, id, language, tags optional); found: {', '.join(fields) or 'no header'}"
            )
        rows = list(reader)
    except csv.Error as exc:
        raise LoadError(f"malformed CSV: {exc}") from None
    return _faq_rows_to_articles(path, rows, hint, first_row=2)  # row 1 is the header


def _load_json(path: Path, hint: str) -> list[Article | tuple[Path, str]]:
    raw = _read_text(path)
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise LoadError(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if isinstance(data, dict):
        for key in ("faqs", "faq", "items", "questions", "articles"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
        else:
            raise LoadError("JSON FAQ must be a list of {question, answer, url} objects (or {\"faqs\": [...]})")
    if not isinstance(data, list):
        raise LoadError("JSON FAQ must be a list of {question, answer, url} objects")
    if not data:
        raise LoadError("JSON FAQ list is empty")
    objs = [r for r in data if isinstance(r, dict)]
    if objs and all(not ({"question", "answer"} <= {str(k).lower() for k in r}) for r in objs):
        raise LoadError("JSON FAQ objects are missing question/answer fields")
    return _faq_rows_to_articles(path, data, hint, first_row=1)


_LOADERS: dict[str, Callable[[Path, str], list[Any]]] = {
    **{e: _load_markdown for e in MARKDOWN_EXT},
    **{e: _load_html for e in HTML_EXT},
    **{e: _load_text for e in TEXT_EXT},
    **{e: _load_pdf for e in PDF_EXT},
    ".csv": _load_csv,
    ".json": _load_json,
}
