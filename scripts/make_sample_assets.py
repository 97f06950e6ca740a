"""Write the bundled sample image and clip (`src/sa2va_hf/assets/`) from seeded synthetic scenes.

Rerun only when `sa2va_hf.synthetic` changes how scenes are drawn: `python scripts/make_sample_assets.py`.
"""

from pathlib import Path

from sa2va_hf.synthetic import random_clip, random_scene


ASSETS = Path(__file__).resolve().parents[1] / "src" / "sa2va_hf" / "assets"


def main() -> None:
    random_scene(seed=7, size=(320, 240), num_shapes=3).image.save(ASSETS / "sample_image.png", optimize=True)
    clip_dir = ASSETS / "sample_clip"
    clip_dir.mkdir(parents=True, exist_ok=True)
    for index, scene in enumerate(random_clip(seed=11, size=(256, 192), num_frames=8, num_shapes=2)):
        scene.image.save(clip_dir / f"frame_{index:03d}.png", optimize=True)


if __name__ == "__main__":
    main()
