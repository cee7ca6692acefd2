"""Write ``.dvc/plots/offline.html``: DVC's plots page with Vega, Vega-Lite and Vega-Embed inlined, so that
``dvc plots show`` renders without network. DVC's default page loads them from a CDN, and shows blank plots
offline. ``.dvc/config`` points ``plots.html_template`` at the result (``make plots-template`` runs this).

The three npm packages (BSD-3-Clause, Copyright the University of Washington Interactive Data Lab) are fetched
with ``npm pack`` at pinned versions and checked against their pinned sha512 integrity before use."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
PACKAGES = {  # name@version -> (npm integrity, the UMD build inside the tarball)
    "vega@5.33.1": ("sha512-1fArfVDUqVbb5z8n+/nVQb+VNBzx8svY6CrsyTK4Ujm4yrd9I1auoKxBAPXLCavY1LcrbHUskQbGUP8gXOzyQw==",
                    "package/build/vega.min.js"),
    "vega-lite@5.23.0": ("sha512-l4J6+AWE3DIjvovEoHl2LdtCUkfm4zs8Xxx7INwZEAv+XVb6kR6vIN1gt3t2gN2gs/y4DYTs/RPoTeYAuEg6mA==",
                         "package/build/vega-lite.min.js"),
    "vega-embed@6.29.0": ("sha512-PmlshTLtLFLgWtF/b23T1OwX53AugJ9RZ3qPE2c01VFAbgt3/GSNI/etzA/GzdrkceXFma+FDHNXUppKuM0U6Q==",
                          "package/build/vega-embed.min.js"),
}
PAGE = """<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <!-- Vega, Vega-Lite, Vega-Embed inlined ({versions}; BSD-3-Clause, University of Washington Interactive
         Data Lab): this page renders without network. Written by .dvc/plots/make_template.py. -->
{scripts}
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def fetch(spec: str, integrity: str, member: str, folder: Path) -> str:
    out = subprocess.run(["npm", "pack", spec, "--silent", "--pack-destination", str(folder)],
                         capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    tarball = folder / out
    digest = "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    if digest != integrity:
        sys.exit(f"{spec}: integrity {digest}, pinned {integrity}")
    with tarfile.open(tarball) as archive:
        return archive.extractfile(member).read().decode("utf-8")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        code = {spec: fetch(spec, integrity, member, Path(tmp)) for spec, (integrity, member) in PACKAGES.items()}
    safe = {spec: text.replace("</script", "<\\/script") for spec, text in code.items()}
    scripts = "\n".join(f"    <script>/* {spec} */\n{text}\n    </script>" for spec, text in safe.items())
    page = PAGE.format(versions=", ".join(PACKAGES), scripts=scripts)
    (HERE / "offline.html").write_text(page, encoding="utf-8")
    print(f"{HERE / 'offline.html'}: {len(page.encode()) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
