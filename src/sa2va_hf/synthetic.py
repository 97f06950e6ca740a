"""Synthetic "shapes" scenes: coloured circles, squares and triangles with exact masks, as images or short clips.

They make the bundled sample image and clip, and the grounding task the embedded default model learns.
"""

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw


COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (235, 200, 30)}
SHAPES = ("circle", "square", "triangle")
BACKGROUNDS = ((245, 245, 240), (200, 200, 200), (230, 235, 245))


@dataclass(frozen=True)
class ShapeSpec:
    """One shape: its colour and kind, centre `(x, y)` and radius in pixels."""

    colour: str
    shape: str
    center: tuple[float, float]
    radius: float

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"

    def draw(self, draw: ImageDraw.ImageDraw, fill) -> None:
        x, y, r = *self.center, self.radius
        if self.shape == "circle":
            draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
        elif self.shape == "square":
            draw.rectangle((x - r, y - r, x + r, y + r), fill=fill)
        else:
            draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=fill)


@dataclass
class Scene:
    """A rendered scene: the RGB image and one bool mask `(height, width)` per shape (later shapes on top)."""

    image: Image.Image
    shapes: list[ShapeSpec]
    masks: list[np.ndarray]


def render_scene(shapes: list[ShapeSpec], size: tuple[int, int], background: tuple[int, int, int]) -> Scene:
    """Draw `shapes` in order on a `size` = `(width, height)` canvas; masks account for occlusion."""
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    masks = []
    for spec in shapes:
        layer = Image.new("L", size, 0)
        spec.draw(ImageDraw.Draw(layer), 255)
        mask = np.asarray(layer) > 0
        masks = [m & ~mask for m in masks]
        masks.append(mask)
        spec.draw(draw, COLOURS[spec.colour])
    return Scene(image=image, shapes=list(shapes), masks=masks)


def random_shapes(rng: np.random.Generator, size: tuple[int, int], num_shapes: int) -> list[ShapeSpec]:
    """`num_shapes` shapes with distinct (colour, shape) names, placed at random inside the canvas."""
    width, height = size
    names = [(c, s) for c in COLOURS for s in SHAPES]
    chosen = rng.choice(len(names), size=num_shapes, replace=False)
    specs = []
    for index in chosen:
        radius = rng.uniform(0.08, 0.18) * min(width, height)
        center = (rng.uniform(radius, width - radius), rng.uniform(radius, height - radius))
        specs.append(ShapeSpec(*names[index], center=center, radius=radius))
    return specs


def random_scene(seed: int, size: tuple[int, int] = (320, 240), num_shapes: int = 3) -> Scene:
    """A seeded random scene of `num_shapes` shapes on a plain light or grey background."""
    rng = np.random.default_rng(seed)
    background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    return render_scene(random_shapes(rng, size, num_shapes), size, background)


def drifting_scenes(
    rng: np.random.Generator,
    shapes: list[ShapeSpec],
    size: tuple[int, int],
    background: tuple[int, int, int],
    num_frames: int,
    max_speed: float,
) -> list[Scene]:
    """`num_frames` scenes of `shapes` drifting in straight lines (at most `max_speed` of the canvas per frame on each
    axis, drawn from `rng`), bouncing off the borders."""
    width, height = size
    velocities = rng.uniform(-max_speed, max_speed, size=(len(shapes), 2)) * np.array([width, height])
    frames = []
    for _ in range(num_frames):
        frames.append(render_scene(shapes, size, background))
        moved = []
        for spec, velocity in zip(shapes, velocities):
            x, y = spec.center[0] + velocity[0], spec.center[1] + velocity[1]
            r = spec.radius
            if not r <= x <= width - r:
                velocity[0] = -velocity[0]
                x = min(max(x, r), width - r)
            if not r <= y <= height - r:
                velocity[1] = -velocity[1]
                y = min(max(y, r), height - r)
            moved.append(ShapeSpec(spec.colour, spec.shape, (x, y), r))
        shapes = moved
    return frames


def random_clip(
    seed: int, size: tuple[int, int] = (320, 240), num_frames: int = 8, num_shapes: int = 3
) -> list[Scene]:
    """A seeded clip: the shapes of one scene drift in straight lines, bouncing off the borders."""
    rng = np.random.default_rng(seed)
    background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    shapes = random_shapes(rng, size, num_shapes)
    return drifting_scenes(rng, shapes, size, background, num_frames, max_speed=0.03)


__all__ = ["COLOURS", "SHAPES", "Scene", "ShapeSpec", "drifting_scenes", "random_clip", "random_scene", "render_scene"]
