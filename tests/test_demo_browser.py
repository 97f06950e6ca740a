"""The Gradio demo in a real headless Chromium: start it on 127.0.0.1, upload the sample image, ask, and see the
streamed answer and the mask overlay appear."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from sa2va_hf.demo import answer_html, region_masks


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def demo_python() -> str | None:
    """A Python with the `demo` extra: `$SA2VA_DEMO_PYTHON` (its own environment, see README), else this one if it
    has Gradio."""
    if os.environ.get("SA2VA_DEMO_PYTHON"):
        return os.environ["SA2VA_DEMO_PYTHON"]
    try:
        import gradio  # noqa: F401
    except ImportError:
        return None
    return sys.executable


SAMPLE_IMAGE = Path(__file__).resolve().parents[1] / "src" / "sa2va_hf" / "assets" / "sample_image.png"


def test_answer_html_colours_each_phrase_like_its_mask():
    rendered = answer_html("<p> a dog </p> [SEG] and <p> a cat </p> [SEG] <x>", 2)
    assert 'style="color: rgb(255, 64, 64)">[a dog]</b>' in rendered
    assert 'style="color: rgb(64, 160, 255)">[a cat]</b>' in rendered
    assert "&lt;x&gt;" in rendered


def test_drawn_layers_become_region_masks():
    import numpy as np
    from PIL import Image

    empty, stroke = Image.new("RGBA", (8, 6)), Image.new("RGBA", (8, 6))
    stroke.putpixel((2, 3), (255, 0, 0, 255))
    masks = region_masks({"background": Image.new("RGB", (8, 6)), "layers": [empty, stroke]})
    assert masks.shape == (1, 6, 8) and masks[0, 3, 2] and masks.sum() == 1
    assert region_masks({"layers": [empty]}) is None and region_masks(None) is None
    assert np.asarray(masks).dtype == bool


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)")
def test_demo_answers_and_overlays_in_a_real_browser(tmp_path):
    python = demo_python()
    if python is None:
        pytest.skip("no Python with the demo extra: set SA2VA_DEMO_PYTHON (README, Demo)")
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", GRADIO_TEMP_DIR=str(tmp_path))
    command = [python, "-m", "sa2va_hf.cli", "demo", "--port", str(port), "--max-new-tokens", "8"]
    # The server writes to a file: an unread pipe fills up and blocks the server in the middle of an answer.
    log_path = tmp_path / "demo.log"
    log = log_path.open("w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"

    def server_log() -> str:
        return log_path.read_text()[-3000:]

    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    pytest.fail(f"the demo did not start:\n{server_log()}")
                time.sleep(1)
        with sync_playwright() as playwright:
            # Containers give /dev/shm a few MB, too little for Chromium's renderer: it would crash the page silently.
            args = ["--no-sandbox", "--disable-dev-shm-usage"]
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
            page = browser.new_page()
            page.goto(url)
            # The image editor drops a file given before its canvas exists (a slow machine asked without an image and
            # got no overlay); ask once the image has replaced the editor's "Upload an image" placeholder.
            editor = page.locator("#sa2va-image")
            editor.locator("canvas").first.wait_for(timeout=60_000)
            editor.locator("input[type=file]").first.set_input_files(str(SAMPLE_IMAGE))
            editor.get_by_text("Upload an image").wait_for(state="hidden", timeout=60_000)
            page.locator("#sa2va-question textarea").fill("Please segment the blue square.")
            page.locator("#sa2va-ask").click()
            try:
                page.wait_for_selector("#sa2va-overlay img", timeout=120_000)
            except PlaywrightTimeoutError:
                pytest.fail(f"no overlay; the page says:\n{page.inner_text('body')[-2000:]}\nserver:\n{server_log()}")
            page.wait_for_selector("#sa2va-answer", timeout=30_000)
            answer = page.locator("#sa2va-answer").inner_text()
            chat = page.locator("#sa2va-chat").inner_text()
            overlay_src = page.locator("#sa2va-overlay img").first.get_attribute("src")
            browser.close()
        assert answer.strip() and overlay_src
        assert "Please segment the blue square." in chat
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
