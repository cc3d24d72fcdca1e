"""A demo bank of harmless synthetic pictures, so a newcomer sees matches at once.

Every picture is drawn by code (gradients, shapes, text). The labels attached to
them (``A1`` ...) are there only to show how labels travel with matches; the
pictures themselves are abstract shapes.

``create_demo`` writes ``bank/`` (the pictures in the bank) and ``queries/``
(modified copies — resized, recompressed, rotated, mirrored — and pictures that are
not in the bank) under a directory, and fills the bank ``demo``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from safehold.banks.entries import make_entry
from safehold.banks.repository import AddResult, Banks
from safehold.errors import NotFound
from safehold.hashing import hash_file
from safehold.store.db import Database

DEMO_BANK = "demo"
DEMO_LABELS = ("A1", "A2", "B1", "B2")
N_PICTURES = 12


def synthetic_picture(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A deterministic, harmless picture: a smooth gradient with shapes and a caption."""
    rng = np.random.default_rng(seed)
    w, h = size
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0.0, 1.0, w)[None, :, None]
    s = np.linspace(0.0, 1.0, h)[:, None, None]
    mix = t * 0.7 + s * 0.3
    base = (c0[None, None, :] * (1 - mix) + c1[None, None, :] * mix).astype(np.uint8)
    im = Image.fromarray(base, "RGB")
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(4, 9))):
        x0, y0 = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
        x1, y1 = x0 + int(rng.integers(30, w // 2)), y0 + int(rng.integers(30, h // 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        shape = int(rng.integers(0, 3))
        if shape == 0:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        elif shape == 1:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        else:
            pts = [(int(rng.integers(0, w)), int(rng.integers(0, h))) for _ in range(3)]
            draw.polygon(pts, fill=colour)
    draw.text((12, h - 28), f"safehold demo #{seed}", fill=(255, 255, 255))
    return im.filter(ImageFilter.SMOOTH)


@dataclass
class DemoResult:
    bank: str
    directory: Path
    pictures: list[Path] = field(default_factory=list)
    queries: list[Path] = field(default_factory=list)
    added: AddResult | None = None


def create_demo(db: Database, directory: Path | str = "demo-media") -> DemoResult:
    """Create (or refresh) the demo bank and its pictures. Safe to run again."""
    root = Path(directory)
    bank_dir, query_dir = root / "bank", root / "queries"
    bank_dir.mkdir(parents=True, exist_ok=True)
    query_dir.mkdir(parents=True, exist_ok=True)
    result = DemoResult(DEMO_BANK, root)
    for i in range(N_PICTURES):
        path = bank_dir / f"demo-{i:02d}.jpg"
        synthetic_picture(i).save(path, "JPEG", quality=90)
        result.pictures.append(path)
    variants: dict[str, Callable[[Image.Image], Image.Image]] = {
        "demo-00-resized.jpg": lambda im: im.resize((320, 240)),
        "demo-01-recompressed.jpg": lambda im: im,
        "demo-02-rotated.jpg": lambda im: im.rotate(90, expand=True),
        "demo-03-mirrored.jpg": ImageOps.mirror,
        "demo-04-cropped.jpg": lambda im: im.crop((8, 8, im.width - 8, im.height - 8)),
    }
    for name, change in variants.items():
        src = Image.open(bank_dir / f"{name[:7]}.jpg").convert("RGB")
        path = query_dir / name
        change(src).save(path, "JPEG", quality=60)
        result.queries.append(path)
    for i in range(100, 103):  # pictures that are not in the bank
        path = query_dir / f"unrelated-{i}.png"
        synthetic_picture(i).save(path, "PNG")
        result.queries.append(path)

    banks = Banks(db)
    try:
        banks.get(DEMO_BANK)
    except NotFound:
        banks.create(
            DEMO_BANK,
            description="Synthetic demo pictures (abstract shapes); labels are illustrative only",
            dihedral=True,
        )
    entries = []
    for i, path in enumerate(result.pictures):
        h = hash_file(path)
        label = DEMO_LABELS[i % len(DEMO_LABELS)]
        note = "synthetic demo picture"
        ext = f"demo-{i:02d}"
        entries.append(make_entry("pdq", h.pdq or "", [label], "local", ext, note))
        entries.append(make_entry("md5", h.md5, [label], "local", ext, note))
    result.added = banks.add(DEMO_BANK, entries, added_by="safehold demo")
    return result


def scan_demo_queries(db: Database, result: DemoResult) -> int:
    """Scan the demo's query pictures through the active rules, as uploads from two demo
    accounts, so the review console has cases to work (the built-in rules block a match
    and queue it for review; the job worker of ``safehold serve`` opens the cases).
    Runs once per database: returns the number of pictures scanned (0 when done before).
    """
    import os

    from sqlalchemy import func, select

    from safehold.actions.dispatch import Policy
    from safehold.audit import AuditLog
    from safehold.banks.matcher import Matcher
    from safehold.jobs import Jobs
    from safehold.media_store import MediaStore, default_media_root
    from safehold.rules.context import Context
    from safehold.rules.store import RuleSets
    from safehold.store.models import Event

    with db.session() as s:
        done = s.scalar(select(func.count(Event.id)).where(Event.content_id.like("demo-upload-%")))
    if done:
        return 0
    matcher = Matcher(db)
    jobs = Jobs.from_url(os.environ.get("SAFEHOLD_QUEUE_URL"), db.url)
    media = MediaStore(db, os.environ.get("SAFEHOLD_MEDIA_DIR") or default_media_root(db))
    rulesets = RuleSets(db)
    policy = Policy(db, rulesets=rulesets, jobs=jobs, media=media, audit=AuditLog(db))
    try:
        for n, path in enumerate(result.queries, 1):
            hashes = hash_file(path, dihedral=True)
            found = matcher.match_content(hashes).to_dict()
            ctx = Context(
                content_id=f"demo-upload-{n}",
                account_id=f"demo-account-{n % 2 + 1}",
                matches=found["matches"],
                media={"kind": hashes.kind, "format": hashes.format, "bytes": hashes.size},
                signals=hashes.to_json(),
            )
            policy.decide(ctx, upload_path=str(path), hashes=hashes)
    finally:
        jobs.close()
    return len(result.queries)


DEMO_REPORTS: tuple[dict[str, object], ...] = (
    {
        "category": "child_sexual_abuse",
        "urls": "https://files.example.net/gallery/123\nhttps://mirror.example.org/g/123",
        "platform": "Example image host",
        "description": "Demo report: a gallery of pictures that should not be there.",
        "demographics": {"age_band": "13_15", "relation": "bystander", "country": "NZ"},
    },
    {
        "category": "grooming",
        "urls": "https://chat.example.com/room/42",
        "platform": "ExampleChat",
        "username": "demo_adult_account",
        "description": "Demo report: an adult keeps asking a child in this room for photos.",
        "demographics": {"age_band": "under_13", "relation": "parent", "country": "MY"},
        "contact": {"name": "Demo parent", "email": "parent@example.org"},
    },
    {
        "category": "intimate_images",
        "urls": "https://files.example.net/gallery/123",
        "description": "Demo report: the same gallery reported again (joins the first case).",
    },
    {"category": "other", "platform": "x", "description": ""},
)
"""Synthetic demo reports (reserved example domains); the last one is flagged as spam."""


def submit_demo_reports(db: Database) -> int:
    """Submit the demo reports once per database, so the console's complaint pages have
    work; returns how many were submitted (0 when done before)."""
    import os

    from sqlalchemy import func, select

    from safehold.audit import AuditLog
    from safehold.cases.service import Cases
    from safehold.intake import NewReport, Reports
    from safehold.media_store import MediaStore, default_media_root
    from safehold.store.models import Report

    with db.session() as s:
        if s.scalar(select(func.count(Report.id)).where(Report.source == "demo")):
            return 0
    audit = AuditLog(db)
    media = MediaStore(db, os.environ.get("SAFEHOLD_MEDIA_DIR") or default_media_root(db))
    reports = Reports(db, audit, Cases(db, audit), media)
    for fields in DEMO_REPORTS:
        reports.submit(NewReport(**fields, source="demo"))  # type: ignore[arg-type]
    return len(DEMO_REPORTS)
