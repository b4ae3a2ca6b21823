"""Safe handling of user-supplied design files (browser uploads, zips, `include`).

Everything a user hands us lands in one design folder and stays there: file names are reduced to a
safe base name, zips are checked member by member before a byte is written (no absolute paths, no
`..`, no links, caps on member count and on bytes actually decompressed), and every Verilog
`include` must resolve to a file inside the same folder. Errors are `UploadError` with a message a
person can act on; nothing here raises a traceback for bad input.
"""

from __future__ import annotations

import io
import logging
import re
import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from engine.errors import UploadError  # defined with the other errors; imported from here too
from engine.validate import size_text

log = logging.getLogger(__name__)


@dataclass
class UploadConfig:
    # A single RTL file above this is almost surely not hand-written RTL (or a mistake).
    max_file_bytes: int = 4 * 1024 * 1024
    # Cap on all bytes written for one design (files plus decompressed zip members).
    max_total_bytes: int = 32 * 1024 * 1024
    # Cap on files in one design; zips of whole repositories are refused.
    max_files: int = 200
    # Suffixes we keep; anything else in a zip is skipped (logged), a single upload is refused.
    allowed_suffixes: tuple[str, ...] = (".v", ".sv", ".vh", ".svh", ".vams", ".inc", ".txt", ".json", ".sdc")
    # A zip member that expands by more than this factor is treated as a zip bomb.
    max_compression_ratio: float = 200.0


_SAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_INCLUDE_RE = re.compile(r'^\s*`include\s+"([^"]+)"', re.MULTILINE)
_MODULE_RE = re.compile(r"^\s*module\s+([A-Za-z_][A-Za-z0-9_$]*)", re.MULTILINE)
COMMENT_RE = re.compile(r"//[^\n]*|/\*.*?\*/", re.DOTALL)
_INSTANCE_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_$]*)\s*(?:#\s*\(.*?\)\s*)?([A-Za-z_][A-Za-z0-9_$]*)\s*\(",
                          re.MULTILINE | re.DOTALL)
_KEYWORDS = {"module", "input", "output", "inout", "wire", "reg", "assign", "always", "if", "else", "case",
             "for", "begin", "end", "function", "task", "initial", "generate", "localparam", "parameter",
             "integer", "genvar", "logic", "endmodule", "posedge", "negedge", "or", "and", "not", "return"}


def safe_name(name: str) -> str:
    """Reduce an uploaded file name to a safe base name (no folders, no odd characters)."""
    base = PurePosixPath(name.replace("\\", "/")).name
    base = _SAFE_CHARS.sub("_", base).strip("._")
    if not base:
        raise UploadError(f"The file name {name!r} has no usable characters; rename the file and upload it again.")
    return base[:120]


def _inside(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def save_files(files: list[tuple[str, bytes]], dest: Path, config: UploadConfig | None = None) -> list[Path]:
    """Write uploaded (name, bytes) pairs into `dest`; zips are extracted safely in place.

    Returns the paths written. Raises UploadError (nothing half-written is left) on bad input.
    """
    cfg = config or UploadConfig()
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if not files:
        raise UploadError("No file was uploaded: add at least one Verilog file (.v) or a .zip of them.")
    written: list[Path] = []
    total = 0
    try:
        for name, data in files:
            if name.lower().endswith(".zip"):
                paths = extract_zip(data, dest, cfg, budget_bytes=cfg.max_total_bytes - total,
                                    budget_files=cfg.max_files - len(written))
                total += sum(p.stat().st_size for p in paths)
                written += paths
                continue
            fname = safe_name(name)
            if not fname.lower().endswith(cfg.allowed_suffixes):
                raise UploadError(f"{name}: only Verilog sources are accepted "
                                  f"({', '.join(cfg.allowed_suffixes)} or a .zip of them).")
            if len(data) > cfg.max_file_bytes:
                raise UploadError(f"{name} is {size_text(len(data))}; the limit per file is "
                                  f"{size_text(cfg.max_file_bytes)}.")
            total += len(data)
            if total > cfg.max_total_bytes:
                raise UploadError(f"The upload is larger than the {size_text(cfg.max_total_bytes)} limit per design.")
            if len(written) + 1 > cfg.max_files:
                raise UploadError(f"Too many files: the limit is {cfg.max_files} per design.")
            check_text(name, data)
            path = dest / fname
            path.write_bytes(data)
            written.append(path)
    except UploadError:
        for p in written:
            p.unlink(missing_ok=True)
        raise
    if not any(p.suffix in (".v", ".sv") for p in written):
        raise UploadError("The upload holds no Verilog source (.v or .sv).")
    return written


def check_text(name: str, data: bytes) -> None:
    """Refuse what is not Verilog text: a NUL byte (binary data) or, when it is not UTF-8, mostly unprintable
    bytes. Latin-1 sources with a few accented comments pass. The one check behind uploads and synthesis."""
    head = data[:65536]
    if b"\x00" in head:
        raise UploadError(f"{name} is binary data, not Verilog text.")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3:  # a multi-byte character cut by the 64 KiB window, not bad text
            return
        text = head.decode("latin-1")
        if sum(c.isprintable() or c.isspace() for c in text) < 0.9 * len(text):
            raise UploadError(f"{name} is not a text file (mostly unprintable bytes).") from None


def extract_zip(data: bytes, dest: Path, config: UploadConfig | None = None, *,
                budget_bytes: int | None = None, budget_files: int | None = None) -> list[Path]:
    """Extract a zip safely into `dest` (flat or keeping sub-folders, never escaping `dest`).

    Every member is checked before anything is written; decompressed bytes are counted as they are
    read, so a member lying about its size cannot exceed the cap.
    """
    cfg = config or UploadConfig()
    dest = Path(dest)
    budget_bytes = cfg.max_total_bytes if budget_bytes is None else budget_bytes
    budget_files = cfg.max_files if budget_files is None else budget_files
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise UploadError("The .zip file is damaged or not a zip archive.") from None
    plan: list[tuple[zipfile.ZipInfo, Path]] = []
    with zf:
        for info in zf.infolist():
            name = info.filename
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise UploadError(f"The zip contains a link ({name}); links are not allowed.")
            if info.is_dir():
                continue
            parts = PurePosixPath(name.replace("\\", "/")).parts
            if not parts or name.startswith(("/", "\\")) or ".." in parts or re.match(r"^[A-Za-z]:", name):
                raise UploadError(f"The zip member {name!r} points outside its folder; refusing the archive.")
            if any(p.startswith(".") or p == "__MACOSX" for p in parts):
                continue  # editor/OS clutter
            if not name.lower().endswith(cfg.allowed_suffixes):
                log.info("skipping zip member %s (not a design source)", name)
                continue
            if info.file_size > cfg.max_file_bytes:
                raise UploadError(f"{name} in the zip is {size_text(info.file_size)}; the limit per file is "
                                  f"{size_text(cfg.max_file_bytes)}.")
            if info.compress_size and info.file_size / info.compress_size > cfg.max_compression_ratio:
                raise UploadError(f"{name} in the zip expands {info.file_size / info.compress_size:.0f}x; "
                                  "refusing a possible zip bomb.")
            rel = Path(*[safe_name(p) for p in parts])
            target = dest / rel
            if not _inside(dest, target):
                raise UploadError(f"The zip member {name!r} points outside its folder; refusing the archive.")
            plan.append((info, target))
        if len(plan) > budget_files:
            raise UploadError(f"The zip holds {len(plan)} design files; the limit is {cfg.max_files}.")
        written: list[Path] = []
        total = 0
        try:
            for info, target in plan:
                target.parent.mkdir(parents=True, exist_ok=True)
                chunks = []
                member_bytes = 0
                with zf.open(info) as src:
                    while True:
                        chunk = src.read(65536)
                        if not chunk:
                            break
                        member_bytes += len(chunk)
                        total += len(chunk)
                        if member_bytes > cfg.max_file_bytes:
                            raise UploadError(f"{info.filename} in the zip is larger than the "
                                              f"{size_text(cfg.max_file_bytes)} limit per file.")
                        if total > budget_bytes:
                            raise UploadError(f"The zip expands beyond the {size_text(cfg.max_total_bytes)} "
                                              "limit per design.")
                        chunks.append(chunk)
                content = b"".join(chunks)
                check_text(info.filename, content)
                target.write_bytes(content)
                written.append(target)
        except (UploadError, zipfile.BadZipFile, RuntimeError, OSError) as exc:
            for p in written:
                p.unlink(missing_ok=True)
            if isinstance(exc, UploadError):
                raise
            raise UploadError(f"The zip could not be read ({exc}).") from None
    if not written:
        raise UploadError("The zip holds no Verilog source (.v/.sv files).")
    return written


def check_includes(design_dir: Path, sources: list[Path] | None = None) -> list[Path]:
    """Check that every `include "..."` in the design's sources resolves inside `design_dir`.

    Returns the included files. Raises UploadError naming the file and the include when one escapes
    the folder or does not exist.
    """
    root = Path(design_dir).resolve()
    sources = sources if sources is not None else sorted(
        p for p in root.rglob("*") if p.suffix in (".v", ".sv", ".vh", ".svh") and p.is_file())
    found: list[Path] = []
    seen: set[Path] = set()
    todo = [Path(s) for s in sources]
    while todo:
        src = todo.pop()
        if src in seen:
            continue
        seen.add(src)
        text = src.read_text(errors="replace")
        for inc in _INCLUDE_RE.findall(COMMENT_RE.sub("", text)):
            candidates = [src.parent / inc, root / inc]
            target = next((c for c in candidates if c.exists()), candidates[0])
            if PurePosixPath(inc).is_absolute() or not _inside(root, target):
                raise UploadError(f'{src.name}: `include "{inc}" points outside the design folder; '
                                  "put the included file next to the sources and include it by name.")
            if not target.exists():
                raise UploadError(f'{src.name}: `include "{inc}" names a file that was not uploaded.')
            if target.is_symlink():
                raise UploadError(f'{src.name}: `include "{inc}" is a link; links are not allowed.')
            found.append(target.resolve())
            todo.append(target.resolve())
    return found


def verilog_modules(sources: list[Path]) -> dict[str, list[str]]:
    """Map each module defined in `sources` to the module types it instantiates (a rough parse)."""
    modules: dict[str, list[str]] = {}
    for src in sources:
        text = COMMENT_RE.sub("", Path(src).read_text(errors="replace"))
        # Split on module boundaries so instances are attributed to their parent module.
        for chunk in re.split(r"\bendmodule\b", text):
            m = _MODULE_RE.search(chunk)
            if not m:
                continue
            body = chunk[m.end():]
            children = [t for t, _ in _INSTANCE_RE.findall(body) if t not in _KEYWORDS]
            modules[m.group(1)] = children
    return modules


def guess_top(sources: list[Path]) -> tuple[str | None, list[str]]:
    """Return (likely top module, all module names): the top is the module nobody instantiates."""
    modules = verilog_modules(sources)
    names = list(modules)
    used = {c for kids in modules.values() for c in kids}
    roots = [n for n in names if n not in used]
    if len(roots) == 1:
        return roots[0], names
    # Several roots (test benches, unused helpers): prefer the one with the most children.
    roots = [r for r in roots if not r.lower().startswith(("tb", "test"))] or roots
    best = max(roots, key=lambda r: len(modules[r]), default=None)
    return best, names


def clear_dir(path: Path) -> None:
    """Remove a design folder made for an upload (used when the user replaces the upload)."""
    shutil.rmtree(path, ignore_errors=True)


_PORT_RE = re.compile(r"\binput\b\s*(?:wire\s*)?(?:\[[^\]]*\]\s*)?"
                      r"([A-Za-z_][A-Za-z0-9_$]*(?:\s*,\s*[A-Za-z_][A-Za-z0-9_$]*)*)")


def guess_clock(sources: list[Path], top: str) -> str | None:
    """Return the top module's input that looks like a clock (clk, clock, ...), or None."""
    for src in sources:
        text = COMMENT_RE.sub("", Path(src).read_text(errors="replace"))
        for chunk in re.split(r"\bendmodule\b", text):
            m = _MODULE_RE.search(chunk)
            if not m or m.group(1) != top:
                continue
            inputs = [n.strip() for group in _PORT_RE.findall(chunk) for n in group.split(",")]
            for name in inputs:
                if re.fullmatch(r"(?i)(clk|clock|clk_i|i_clk|clk_in|sys_clk|wb_clk_i)", name):
                    return name
            for name in inputs:
                if "clk" in name.lower() or "clock" in name.lower():
                    return name
    return None
