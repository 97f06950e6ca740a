"""The "shapes" grounding task, generated in code: the data the embedded default model (`tiny-shapes`) learns from.

Scenes hold two to four coloured circles, squares and triangles on a plain light or grey background, at any size from
64 to 512 px per side. A sample is one of:

- referring: "Please segment the {colour} {shape}." → "Sure, [SEG]." (a turn per shape, a mask each);
- absent: a colour and shape that is not in the scene → "There is no {colour} {shape} in the image.";
- grounded caption (GCG): "Please describe the image with a mask for each shape." → "<p> red circle </p> [SEG], ...",
  shapes listed left to right;
- video: a short clip of drifting shapes, referring questions, a mask per frame.
"""

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..models.sa2va.configuration_sa2va import Sa2VAConfig
from ..models.sa2va.image_processing_sa2va import Sa2VAImageProcessor
from ..models.sa2va.modeling_sa2va import Sa2VAForConditionalGeneration
from ..models.sa2va.processing_sa2va import Sa2VAProcessor
from ..synthetic import COLOURS, SHAPES, Scene, drifting_scenes, random_shapes, render_scene
from ..tiny import TINY_SAM2_CONFIG, build_tiny_processor, tiny_vlm_config
from .samples import validate_sample


REFER_QUESTION = "Please segment the {name}."
REFER_ANSWER = "Sure, [SEG]."
# Curriculum answers that name the shape right after [SEG], in either word order: to predict the next word, the state
# at [SEG] must hold both the colour and the shape. A tiny LLM trained from scratch otherwise gives every [SEG] the
# same state (the token after it is always "."), and SAM-2 never learns to tell the queries apart.
PRIMING_ANSWERS = ("Sure, [SEG] {colour} {shape}.", "Sure, [SEG] {shape} {colour}.")
ABSENT_ANSWER = "There is no {name} in the image."
GCG_QUESTION = "Please describe the image with a mask for each shape."
GCG_PHRASE = "<p> {name} </p> [SEG]"
IMAGE_SIDES = (64, 512)
SHAPE_NAMES = tuple(f"{colour} {shape}" for colour in COLOURS for shape in SHAPES)  # what a question can ask
VIDEO_SIDES = (64, 256)


def random_background(rng: np.random.Generator) -> tuple[int, int, int]:
    """A plain light (slightly tinted) or grey background colour."""
    if rng.random() < 0.5:
        grey = int(rng.integers(150, 236))
        return (grey, grey, grey)
    return tuple(int(v) for v in rng.integers(215, 256, size=3))


# Area of a shape of radius r, per unit r² (a triangle spans 2r by 2r).
SHAPE_AREA = {"circle": np.pi, "square": 4.0, "triangle": 2.0}
MIN_VISIBLE = 0.6


def visible_scene(rng: np.random.Generator, size: tuple[int, int], num_shapes: int, background) -> Scene:
    """A random scene where every shape keeps at least `MIN_VISIBLE` of its area in view (not hidden by another)."""
    while True:
        scene = render_scene(random_shapes(rng, size, num_shapes), size, background)
        if all(m.sum() >= MIN_VISIBLE * SHAPE_AREA[s.shape] * s.radius**2 for s, m in zip(scene.shapes, scene.masks)):
            return scene


def random_size(rng: np.random.Generator, sides: tuple[int, int]) -> tuple[int, int]:
    """`(width, height)`, each side uniform in `sides` (any aspect ratio)."""
    return int(rng.integers(sides[0], sides[1] + 1)), int(rng.integers(sides[0], sides[1] + 1))


def moving_clip(rng: np.random.Generator, size: tuple[int, int], num_frames: int, num_shapes: int) -> list[Scene]:
    """A clip on a random background whose shapes drift in straight lines, bouncing off the borders."""
    background = random_background(rng)
    shapes = random_shapes(rng, size, num_shapes)
    return drifting_scenes(rng, shapes, size, background, num_frames, max_speed=0.04)


@dataclass
class ShapesTaskMix:
    """Shares of each kind of sample (the rest are single-image referring samples)."""

    video: float = 0.2
    absent: float = 0.1
    gcg: float = 0.1


class ShapesDataset(torch.utils.data.Dataset):
    """`num_samples` seeded samples of the shapes task, in the training sample format of [`Sa2VADataCollator`].

    Args:
        num_samples (`int`): length of the dataset.
        seed (`int`): sample `i` is drawn from `np.random.default_rng((seed, i))`; a different seed gives a held-out set.
        mix ([`ShapesTaskMix`], *optional*): shares of video, absent-object and grounded-caption samples.
        video_frames (`tuple[int, int]`, *optional*, defaults to `(2, 8)`): frames per training clip (inclusive).
        priming (`bool`, *optional*, defaults to `False`): answer referring questions with `PRIMING_ANSWERS` (the
            first stage of the training curriculum) instead of `REFER_ANSWER`.
    """

    def __init__(
        self,
        num_samples: int,
        seed: int = 0,
        mix: ShapesTaskMix | None = None,
        video_frames: tuple[int, int] = (2, 8),
        priming: bool = False,
    ):
        self.num_samples = num_samples
        self.seed = seed
        self.mix = mix or ShapesTaskMix()
        self.video_frames = video_frames
        self.priming = priming

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples")
        return validate_sample(self._draw(index), index)

    def _draw(self, index: int) -> dict:
        rng = np.random.default_rng((self.seed, index))
        kind = rng.random()
        num_shapes = int(rng.integers(2, 5))
        if kind < self.mix.video:
            num_frames = int(rng.integers(self.video_frames[0], self.video_frames[1] + 1))
            scenes = moving_clip(rng, random_size(rng, VIDEO_SIDES), num_frames, num_shapes)
            return referring_sample(rng, scenes, self.priming)
        scene = visible_scene(rng, random_size(rng, IMAGE_SIDES), num_shapes, random_background(rng))
        kind -= self.mix.video
        if kind < self.mix.absent:
            return absent_sample(rng, scene)
        if kind < self.mix.absent + self.mix.gcg:
            return gcg_sample(scene)
        return referring_sample(rng, [scene], self.priming)


def _media(scenes: list[Scene]) -> dict:
    if len(scenes) == 1:
        return {"image": scenes[0].image}
    return {"frames": [scene.image for scene in scenes]}


def referring_sample(rng: np.random.Generator, scenes: list[Scene], priming: bool = False) -> dict:
    """One turn per shape of the scene (or clip), in random order, each answered with `[SEG]`: every shape a scene
    holds is a mask target, and the decoder learns from queries that differ only in the colour or the shape."""
    shapes = scenes[0].shapes
    asked = rng.permutation(len(shapes))
    conversation = []
    for turn, index in enumerate(asked):
        spec = shapes[index]
        question = REFER_QUESTION.format(name=spec.name)
        answer = REFER_ANSWER
        if priming:
            answer = PRIMING_ANSWERS[int(rng.integers(2))].format(colour=spec.colour, shape=spec.shape)
        conversation += [
            {"role": "user", "content": ("<image>" if turn == 0 else "") + question},
            {"role": "assistant", "content": answer},
        ]
    masks = np.stack([np.stack([scene.masks[index] for scene in scenes]) for index in asked])
    return {**_media(scenes), "conversation": conversation, "masks": masks}


def absent_sample(rng: np.random.Generator, scene: Scene) -> dict:
    """A question about a colour and shape the scene does not have."""
    present = {spec.name for spec in scene.shapes}
    absent = [name for name in SHAPE_NAMES if name not in present]
    name = absent[int(rng.integers(len(absent)))]
    conversation = [
        {"role": "user", "content": "<image>" + REFER_QUESTION.format(name=name)},
        {"role": "assistant", "content": ABSENT_ANSWER.format(name=name)},
    ]
    height, width = scene.masks[0].shape
    return {"image": scene.image, "conversation": conversation, "masks": np.zeros((0, 1, height, width), dtype=bool)}


def gcg_sample(scene: Scene) -> dict:
    """A grounded caption naming every shape left to right, each followed by its `[SEG]`."""
    order = sorted(range(len(scene.shapes)), key=lambda i: scene.shapes[i].center[0])
    caption = ", ".join(GCG_PHRASE.format(name=scene.shapes[i].name) for i in order) + "."
    conversation = [
        {"role": "user", "content": "<image>" + GCG_QUESTION},
        {"role": "assistant", "content": caption},
    ]
    masks = np.stack([scene.masks[i][None] for i in order])
    return {"image": scene.image, "conversation": conversation, "masks": masks}


# The shapes model: InternVL layout, a 4-layer 128-wide LLM, a 2-layer ViT on one 224-px tile (64 image tokens per
# image or frame), and a small SAM-2 on 192-px inputs (48x48 mask logits). Up to 8 frames are all key frames.
SHAPES_SAM_IMAGE_SIZE = 192
SHAPES_NUM_KEY_FRAMES = 8
# Targets stay at SAM-2's input size for the mask losses (4 x 4 points per logit cell, `Sa2VAConfig.mask_target_size`).
# Resized to the 48 x 48 logit grid (official), every target edge moves to a cell border: the same recipe then held
# shapes of a unique colour at IoU 0.75 (the grid's own best is 0.96); with them at 192 px, 0.92.
SHAPES_MASK_TARGET_SIZE = SHAPES_SAM_IMAGE_SIZE
OBJECT_SCORE = 10.0  # SAM-2's object-score logit, fixed: "the object is there" for every [SEG] (see below)


def shapes_sam2_config() -> dict:
    """The tiny SAM-2 (every hiera-large module) on `SHAPES_SAM_IMAGE_SIZE`-px inputs, a little wider than the test one."""
    config = copy.deepcopy(TINY_SAM2_CONFIG)
    size = SHAPES_SAM_IMAGE_SIZE
    config["image_size"] = size
    config["prompt_encoder_config"]["image_size"] = size
    config["memory_attention_rope_feat_sizes"] = [size // 16, size // 16]  # memory attention runs on the 1/16 grid
    vision = config["vision_config"]
    vision["backbone_feature_sizes"] = [[size // 4, size // 4], [size // 8, size // 8], [size // 16, size // 16]]
    vision["backbone_config"].update(image_size=[size, size], hidden_size=16, embed_dim_per_stage=[16, 32, 64, 128])
    vision["backbone_channel_list"] = [128, 64, 32, 16]
    return config


def build_shapes_model(seed: int = 0) -> tuple[Sa2VAForConditionalGeneration, Sa2VAProcessor]:
    """The untrained shapes model (seeded) and its processor."""
    processor = build_tiny_processor("internvl")
    processor.image_processor = Sa2VAImageProcessor(
        vlm_family="internvl", tile_size=224, max_tiles=1, sam_image_size=SHAPES_SAM_IMAGE_SIZE
    )
    tokenizer = processor.tokenizer
    token_ids = {token: tokenizer.convert_tokens_to_ids(token) for token in tokenizer.get_added_vocab()}
    vlm_config = tiny_vlm_config("internvl", len(tokenizer), token_ids)
    vlm_config["text_config"].update(
        hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2
    )
    vlm_config["vision_config"].update(hidden_size=64, intermediate_size=128, num_hidden_layers=2)
    config = Sa2VAConfig(
        vlm_config=vlm_config,
        sam2_config=shapes_sam2_config(),
        seg_token_id=token_ids["[SEG]"],
        num_key_frames=SHAPES_NUM_KEY_FRAMES,
        key_frame_strategy="uniform",
        mask_target_size=SHAPES_MASK_TARGET_SIZE,
    )
    torch.manual_seed(seed)
    model = Sa2VAForConditionalGeneration(config)
    # SAM-2 keeps the best of its three masks by its predicted IoU, a head the mask losses never train. Trained from
    # scratch, that head would pick masks at random; zeroed, it scores them all alike and the first is always taken.
    iou_head = model.sam2.mask_decoder.iou_prediction_head.proj_out
    torch.nn.init.zeros_(iou_head.weight)
    torch.nn.init.zeros_(iou_head.bias)
    # SAM-2 replaces the mask of a prompt whose object score is <= 0 by a constant (NO_OBJ_SCORE), which passes no
    # gradient; the mask losses never train that score either. From scratch, a random score silenced about a third of
    # the prompts for the whole run (held-out IoU stayed near 0); a fixed positive score keeps every mask learning.
    object_head = model.sam2.mask_decoder.pred_obj_score_head.proj_out
    torch.nn.init.zeros_(object_head.weight)
    torch.nn.init.constant_(object_head.bias, OBJECT_SCORE)
    return model, processor


def name_map(scene: Scene, grid_size: int) -> torch.FloatTensor:
    """What covers each cell of a `grid_size` x `grid_size` grid laid over the scene (squashed to a square, as SAM-2
    sees it).

    Returns:
        `torch.FloatTensor` of shape `(len(SHAPE_NAMES) + 1, grid_size, grid_size)`: the share of the cell's pixels
        that each name covers (channel `1 + SHAPE_NAMES.index(name)`) or the background (channel 0).
    """
    labels = np.zeros(scene.masks[0].shape, dtype=np.int64)
    for spec, mask in zip(scene.shapes, scene.masks):
        labels[mask] = SHAPE_NAMES.index(spec.name) + 1
    one_hot = F.one_hot(torch.from_numpy(labels), len(SHAPE_NAMES) + 1).permute(2, 0, 1).float()
    return F.interpolate(one_hot[None], size=(grid_size, grid_size), mode="area")[0]


def pretrain_sam2(
    model: Sa2VAForConditionalGeneration,
    processor: Sa2VAProcessor,
    steps: int,
    learning_rate: float = 1e-3,
    batch_size: int = 8,
    seed: int = 2,
    name_loss_weight: float = 1.0,
    show_progress: bool = True,
) -> dict:
    """First stage of the shapes recipe: SAM-2 (`model.sam2`, in place) learns to segment shapes named by a learned
    prompt per name, a stand-in for the `[SEG]` states that is dropped afterwards.

    Real Sa2VA starts from a pre-trained SAM-2. From scratch, the `[SEG]` prompts and SAM-2 have to agree at the
    same time: SAM-2 cannot use prompts that do not differ yet, and a random SAM-2 sends the LLM no useful gradient,
    so the projected `[SEG]` states stayed almost equal (spread ~3% of their norm) and held-out IoU near 0.1. With
    free per-name prompts SAM-2 learns on its own; the LLM then learns to reach it.

    The mask losses alone teach SAM-2's image encoder colour but not shape: a linear probe on its features told
    circles, squares and triangles apart at chance, and a query for one of two shapes of the same colour got both
    (IoU 0.4). So a second, auxiliary loss asks a 1x1 convolution on the coarsest image embedding (the one the mask
    decoder attends to) which name covers each cell ([`name_map`]); the convolution is dropped with the prompts.

    Each step draws `batch_size` images of 64-512 px (2-4 shapes, every shape a target) from `seed`; mask loss, sampled
    points and weights are those of [`Sa2VAForConditionalGeneration.forward`], plus `name_loss_weight` times the
    cross-entropy of the names; AdamW, one-cycle rate, clip norm 1.

    Returns:
        `dict` with the mean `mask_bce_loss`, `mask_dice_loss` and `name_loss` over the first and the last 50 steps.
    """
    from tqdm.auto import tqdm

    config, sam2 = model.config, model.sam2
    prompts = torch.nn.Embedding(len(SHAPE_NAMES), config.seg_hidden_size)
    name_head = torch.nn.Conv2d(sam2.config.vision_config.fpn_hidden_size, len(SHAPE_NAMES) + 1, kernel_size=1)
    parameters = [*sam2.parameters(), *prompts.parameters(), *name_head.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=learning_rate, total_steps=steps, pct_start=0.05)
    rng = np.random.default_rng(seed)
    losses = []
    sam2.train()
    for _ in tqdm(range(steps), desc="SAM-2 on shapes", disable=not show_progress):
        scenes = [
            visible_scene(rng, random_size(rng, IMAGE_SIDES), int(rng.integers(2, 5)), random_background(rng))
            for _ in range(batch_size)
        ]
        names = [SHAPE_NAMES.index(spec.name) for scene in scenes for spec in scene.shapes]
        frames = [i for i, scene in enumerate(scenes) for _ in scene.shapes]
        embeddings = sam2.image_embeddings(processor.image_processor.sam_view([scene.image for scene in scenes]))
        logits = sam2.segment_images(
            prompts(torch.tensor(names)), frame_indices=torch.tensor(frames), image_embeddings=embeddings
        ).pred_masks[:, 0]
        bce, dice = model.mask_loss_terms(logits, [torch.from_numpy(np.stack(scene.masks)) for scene in scenes])
        grid_size = embeddings[-1].shape[-1]
        name_loss = F.cross_entropy(
            name_head(embeddings[-1]), torch.stack([name_map(scene, grid_size) for scene in scenes])
        )
        loss = config.mask_loss_weight * bce + config.dice_loss_weight * dice + name_loss_weight * name_loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        schedule.step()
        losses.append((bce.item(), dice.item(), name_loss.item()))

    def mean(window: list) -> dict:
        values = np.mean(window, axis=0) if window else [float("nan")] * 3
        return {key: round(float(v), 4) for key, v in zip(("mask_bce_loss", "mask_dice_loss", "name_loss"), values)}

    return {
        "steps": steps,
        "learning_rate": learning_rate,
        "name_loss_weight": name_loss_weight,
        "first": mean(losses[:50]),
        "last": mean(losses[-50:]),
    }


def mask_iou(prediction: np.ndarray, target: np.ndarray) -> float:
    """IoU of two bool masks of the same shape (1.0 when both are empty)."""
    union = np.logical_or(prediction, target).sum()
    return float(np.logical_and(prediction, target).sum() / union) if union else 1.0


def evaluate_shapes(
    model: Sa2VAForConditionalGeneration,
    processor: Sa2VAProcessor,
    seed: int = 1234,
    num_images: int = 100,
    num_clips: int = 20,
    num_absent: int = 20,
    num_captions: int = 20,
    clip_frames: int = 8,
    show_progress: bool = True,
    max_new_tokens: int = 128,
) -> dict:
    """Held-out scores of a shapes model, on scenes drawn from `seed` (use one the model was not trained on).

    Returns:
        `dict` with `image_iou` (mean mask IoU over referring questions on images of 64-512 px), `clip_iou` (mean over
        clips of the per-frame mean IoU, J-style, on `clip_frames`-frame clips), `answer_format` (share of referring
        answers that are exactly "Sure, [SEG]." with one mask), `absent_accuracy` (share of absent-shape questions
        answered "There is no ..." without a mask), `caption_accuracy` (share of grounded captions naming every shape
        left to right) and `caption_iou` (mean IoU of their masks, 0 for a missing one), plus the counts.
    """
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    stop = processor.tokenizer.eos_token
    image_ious, clip_ious, formats, absent_hits, caption_hits, caption_ious = [], [], [], [], [], []

    def answer(result: dict) -> str:
        return result["prediction"].removesuffix(stop).strip()

    progress = tqdm(total=num_images + num_clips + num_absent + num_captions, disable=not show_progress)
    for _ in range(num_images):
        scene = visible_scene(rng, random_size(rng, IMAGE_SIDES), int(rng.integers(2, 5)), random_background(rng))
        index = int(rng.integers(len(scene.shapes)))
        question = "<image>" + REFER_QUESTION.format(name=scene.shapes[index].name)
        result = model.predict_forward(
            image=scene.image, text=question, processor=processor, max_new_tokens=max_new_tokens
        )
        masks = result["prediction_masks"]
        formats.append(answer(result) == REFER_ANSWER and len(masks) == 1)
        image_ious.append(mask_iou(masks[0][0], scene.masks[index]) if masks else 0.0)
        progress.update()
    for _ in range(num_clips):
        scenes = moving_clip(rng, random_size(rng, VIDEO_SIDES), clip_frames, int(rng.integers(2, 5)))
        index = int(rng.integers(len(scenes[0].shapes)))
        question = "<image>" + REFER_QUESTION.format(name=scenes[0].shapes[index].name)
        result = model.predict_forward(
            video=[s.image for s in scenes], text=question, processor=processor, max_new_tokens=max_new_tokens
        )
        masks = result["prediction_masks"]
        formats.append(answer(result) == REFER_ANSWER and len(masks) == 1)
        frame_ious = [mask_iou(masks[0][f], s.masks[index]) if masks else 0.0 for f, s in enumerate(scenes)]
        clip_ious.append(float(np.mean(frame_ious)))
        progress.update()
    for _ in range(num_absent):
        scene = visible_scene(rng, random_size(rng, IMAGE_SIDES), int(rng.integers(2, 5)), random_background(rng))
        sample = absent_sample(rng, scene)
        result = model.predict_forward(
            image=scene.image,
            text=sample["conversation"][0]["content"],
            processor=processor,
            max_new_tokens=max_new_tokens,
        )
        absent_hits.append(answer(result) == sample["conversation"][1]["content"] and not result["prediction_masks"])
        progress.update()
    for _ in range(num_captions):
        scene = visible_scene(rng, random_size(rng, IMAGE_SIDES), int(rng.integers(2, 5)), random_background(rng))
        sample = gcg_sample(scene)
        result = model.predict_forward(
            image=scene.image, text="<image>" + GCG_QUESTION, processor=processor, max_new_tokens=max_new_tokens
        )
        caption_hits.append(answer(result) == sample["conversation"][1]["content"])
        predicted = result["prediction_masks"]
        caption_ious.append(
            float(np.mean([mask_iou(predicted[i][0], sample["masks"][i, 0]) if i < len(predicted) else 0.0
                           for i in range(len(sample["masks"]))]))
        )  # fmt: skip
        progress.update()
    progress.close()

    def mean(values: list) -> float:
        return round(float(np.mean(values)), 4) if values else float("nan")

    return {
        "image_iou": mean(image_ious),
        "clip_iou": mean(clip_ious),
        "answer_format": mean(formats),
        "absent_accuracy": mean(absent_hits),
        "caption_accuracy": mean(caption_hits),
        "caption_iou": mean(caption_ious),
        "counts": {"images": num_images, "clips": num_clips, "absent": num_absent, "captions": num_captions},
        "seed": seed,
    }


__all__ = [
    "evaluate_shapes",
    "ABSENT_ANSWER",
    "GCG_QUESTION",
    "PRIMING_ANSWERS",
    "REFER_ANSWER",
    "REFER_QUESTION",
    "ShapesDataset",
    "build_shapes_model",
    "ShapesTaskMix",
    "mask_iou",
    "name_map",
    "pretrain_sam2",
    "SHAPE_NAMES",
    "moving_clip",
]
