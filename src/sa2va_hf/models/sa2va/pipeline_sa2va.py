"""`pipeline(model=<Sa2VA checkpoint>, trust_remote_code=True)`: ask about an image or a video, get text and masks."""

import os

from transformers import Pipeline


VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".gif")


class Sa2VAPipeline(Pipeline):
    r"""
    Answers a question about an image or a video with Sa2VA and returns a mask per frame for every `[SEG]`.

    Example:

    ```python
    >>> from transformers import pipeline

    >>> sa2va = pipeline(model="org/Sa2VA-InternVL3-2B", trust_remote_code=True)
    >>> sa2va("cat.jpg", text="<image>Please segment the cat.")
    {'text': 'Sure, [SEG].<|im_end|>', 'masks': [array of shape (1, H, W)]}
    >>> sa2va({"video": "clip.mp4"}, text="<image>Please segment the dog.")   # a video: file, folder or frames
    >>> sa2va(["a.jpg", "b.jpg"], text="<image>Please segment the car.")       # a batch: one result per input
    ```

    Inputs: an image (`PIL.Image.Image`, a `(H, W, 3)` uint8 array or a file path), a video file or folder of frames
    (a path), or a dict `{"image": ...}` / `{"video": ...}` (a video also as a list of frames), optionally with its own
    `"text"`; a list of these is a batch. Keyword arguments: `text` (the question), `max_new_tokens`,
    `key_frame_indices` (videos), and any other `generate` argument.

    Returns: per input, `{"text": str, "masks": list[np.ndarray]}`, masks bool `(num_frames, H, W)` at the input's
    own size, one per `[SEG]` in order (see `Sa2VAForConditionalGeneration.predict_forward`).
    """

    _load_processor = True
    _load_image_processor = False
    _load_tokenizer = False
    _load_feature_extractor = False

    def _sanitize_parameters(self, text: str | None = None, **generate_kwargs):
        preprocess_params = {} if text is None else {"text": text}
        return preprocess_params, generate_kwargs, {}

    def preprocess(self, inputs, text: str | None = None) -> dict:
        if isinstance(inputs, dict):
            unknown = set(inputs) - {"image", "video", "text"}
            if unknown or ("image" in inputs) == ("video" in inputs):
                raise ValueError(
                    f"A dict input needs exactly one of 'image' or 'video' (and optionally 'text'); got keys "
                    f"{sorted(inputs)}."
                )
            media = {key: value for key, value in inputs.items() if key in ("image", "video")}
            text = inputs.get("text", text)
        elif isinstance(inputs, str | os.PathLike) and (
            os.path.isdir(inputs) or str(inputs).lower().endswith(VIDEO_SUFFIXES)
        ):
            media = {"video": inputs}
        else:
            media = {"image": inputs}
        if text is None:
            raise ValueError("Pass the question as `text=`, e.g. text='<image>Please segment the cat.'")
        return {**media, "text": text}

    def _forward(self, model_inputs: dict, **generate_kwargs) -> dict:
        return self.model.predict_forward(**model_inputs, processor=self.processor, **generate_kwargs)

    def postprocess(self, model_outputs: dict) -> dict:
        return {"text": model_outputs["prediction"], "masks": model_outputs["prediction_masks"]}


__all__ = ["Sa2VAPipeline"]
