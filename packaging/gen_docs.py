"""Generate provd's man page and shell completions from its argparse parser.

    python packaging/gen_docs.py OUTDIR

writes OUTDIR/provd.1 (argparse-manpage), OUTDIR/provd.bash and OUTDIR/_provd (shtab).
Needs ``pip install shtab argparse-manpage`` (the ``packaging`` extra) and provd importable.
"""

from __future__ import annotations

import sys
from pathlib import Path

import shtab
from argparse_manpage.manpage import Manpage

from provd import __version__
from provd.cli.main import build_parser

DESCRIPTION = "provision third-party SIP phones for an innovaphone PBX"


def main(outdir: str) -> None:
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    page = Manpage(
        build_parser(),
        _data={
            "project_name": "provd",
            "version": __version__,
            "manual_title": "provd manual",
            "manual_section": 1,
            "description": DESCRIPTION,
        },
    )
    (out / "provd.1").write_text(str(page), encoding="utf-8")
    (out / "provd.bash").write_text(shtab.complete(build_parser(), shell="bash"))  # noqa: S604
    (out / "_provd").write_text(shtab.complete(build_parser(), shell="zsh"))  # noqa: S604


if __name__ == "__main__":
    main(sys.argv[1])
