"""Hugging Face Space entry point: the Sa2VA Gradio demo (`sa2va-hf demo`); set SA2VA_MODEL to a checkpoint."""

import os

from sa2va_hf.demo import main


if __name__ == "__main__":
    main(["--host", "0.0.0.0", *(["--model", os.environ["SA2VA_MODEL"]] if "SA2VA_MODEL" in os.environ else [])])
