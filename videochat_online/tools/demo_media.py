"""Write a synthetic demo image, so that `make demo` runs with no data at hand.

    python -m videochat_online.tools.demo_media OUT.png
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw


def demo_image(width: int = 640, height: int = 360) -> Image.Image:
    """A sky, a field, a sun and a red ball."""
    image = Image.new("RGB", (width, height), (135, 190, 235))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, height * 2 // 3, width, height), fill=(70, 150, 60))
    draw.ellipse((width - 110, 20, width - 30, 100), fill=(250, 220, 60))
    draw.ellipse((width // 3, height // 2, width // 3 + 70, height // 2 + 70), fill=(210, 30, 30))
    return image


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m videochat_online.tools.demo_media OUT.png")
    out = Path(args[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    demo_image().save(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
