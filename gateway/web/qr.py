"""QR codes as inline SVG (segno, pure Python): a kiosk's provisioning link, to scan with the tablet's camera."""
from __future__ import annotations

import io

import segno


def svg(text: str, title: str) -> str:
    """The QR code of `text` (error correction M), black on white with its quiet zone, scalable, titled."""
    code = segno.make(text, error="m", micro=False)
    out = io.BytesIO()
    code.save(out, kind="svg", xmldecl=False, svgns=True, scale=1, border=4, dark="#000", light="#fff",
              title=title, svgclass="qr-code", lineclass=None, omitsize=True)
    return out.getvalue().decode().replace("<svg ", '<svg role="img" ', 1)
