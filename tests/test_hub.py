"""The Hub without the Hub: push to a local fake Hub and download back, load a Hub id offline, render model cards.

`FakeHub` is a small HTTP server on 127.0.0.1 that implements the endpoints `huggingface_hub` calls for
`create_repo`, `upload_folder` (without Xet: `HF_HUB_DISABLE_XET=1`), `snapshot_download` and `hf_hub_download`,
keeping everything in a temporary folder. `HF_ENDPOINT` is read when `huggingface_hub` is imported, so the clients run
in fresh processes pointed at it.
"""

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

from conftest import official_fixture
from sa2va_hf.conversion import push as push_module
from sa2va_hf.conversion.convert_official import main as convert_main
from sa2va_hf.conversion.push import BASE_VLM_NOTES, match_official_variant, push_to_hub, render_model_card
from sa2va_hf.presets import OFFICIAL_VARIANTS
from sa2va_hf.tiny import TINY_SAM2_CONFIG


TOKEN = "hf_fake_write_token"
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".npz", ".png", ".jpg", ".mp4")
GITATTRIBUTES = "".join(f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in LFS_SUFFIXES)
SERVER_LIFETIME_S = 300  # the server shuts itself down after this, whatever happens to the test
SUBPROCESS_TIMEOUT_S = 240


# --- a fake Hub ---------------------------------------------------------------------------------------------------


def git_blob_oid(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass(frozen=True)
class StoredFile:
    size: int
    sha256: str
    lfs: bool
    git_oid: str  # the git blob id: of the content for a regular file, of the pointer for an LFS file


@dataclass
class Repo:
    private: bool
    commits: list[tuple[str, dict[str, StoredFile]]] = field(default_factory=list)  # (oid, files), oldest first

    def files_at(self, revision: str) -> tuple[str, dict[str, StoredFile]] | None:
        if revision == "main":
            return self.commits[-1]
        return next((commit for commit in self.commits if commit[0] == revision), None)


class FakeHub:
    """The Hub endpoints `huggingface_hub` uses to create a repo, upload a folder and download files.

    Two servers on 127.0.0.1: the Hub (`url`) and a "CDN" on another port, where the Hub redirects downloads of LFS
    files with `X-Linked-Etag` / `X-Linked-Size` on the redirect (the client follows redirects on the same origin
    itself, so the CDN needs its own). Writes need `Authorization: Bearer TOKEN`. Files with an LFS suffix (the repo's
    `.gitattributes`) or a NUL byte in their sample go through Git LFS (batch API, PUT, verify), the others inline in
    the NDJSON commit. Both servers stop after `lifetime_s` seconds at the latest.
    """

    def __init__(self, root: Path, lifetime_s: float = SERVER_LIFETIME_S):
        self.objects = root / "objects"
        self.objects.mkdir(parents=True)
        self.repos: dict[str, Repo] = {}
        self.lock = threading.Lock()
        self.requests: list[str] = []  # "METHOD endpoint" of every request
        self.unhandled: list[str] = []
        self.create_payloads: list[dict] = []
        self.servers = [ThreadingHTTPServer(("127.0.0.1", 0), FakeHubHandler) for _ in range(2)]
        self.api, self.cdn = self.servers
        self.threads = []
        for server in self.servers:
            server.daemon_threads = True
            server.hub = self
            server.routes = CDN_ROUTES if server is self.cdn else ROUTES
            self.threads.append(threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True))
        self.watchdog = threading.Timer(lifetime_s, self.stop)
        self.watchdog.daemon = True

    def start(self) -> "FakeHub":
        for thread in self.threads:
            thread.start()
        self.watchdog.start()
        return self

    def stop(self) -> None:
        self.watchdog.cancel()
        for server, thread in zip(self.servers, self.threads):
            if thread.is_alive():
                server.shutdown()
            server.server_close()
            thread.join(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api.server_address[1]}"

    @property
    def cdn_url(self) -> str:
        return f"http://127.0.0.1:{self.cdn.server_address[1]}"

    def store(self, content: bytes) -> str:
        sha256 = hashlib.sha256(content).hexdigest()
        (self.objects / sha256).write_bytes(content)
        return sha256

    def commit(self, repo: Repo, files: dict[str, StoredFile], message: str) -> str:
        parent = repo.commits[-1][0] if repo.commits else ""
        listing = "".join(f"{path}:{file.sha256}\n" for path, file in sorted(files.items()))
        oid = hashlib.sha1(f"{parent}\n{message}\n{listing}".encode()).hexdigest()
        repo.commits.append((oid, files))
        return oid


def stored(sha256: str, size: int, lfs: bool, content: bytes | None = None) -> StoredFile:
    return StoredFile(size, sha256, lfs, git_blob_oid(lfs_pointer(sha256, size) if lfs else content))


class HubError(Exception):
    def __init__(self, status: int, code: str | None, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.headers = status, code, headers or {}


class FakeHubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def hub(self) -> FakeHub:
        return self.server.hub

    def log_message(self, format, *args):  # quiet
        pass

    # plumbing

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def send(self, status: int, body: bytes = b"", headers: dict | None = None, content_type="application/json"):
        self.send_response(status)
        for name, value in {"Content-Type": content_type, "Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status: int, payload, headers: dict | None = None, content_type="application/json"):
        self.send(status, json.dumps(payload).encode(), headers, content_type)

    def require_token(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            raise HubError(401, None, "Invalid credentials in Authorization header")

    def repo(self, repo_id: str) -> Repo:
        repo = self.hub.repos.get(repo_id)
        if repo is None or (repo.private and self.headers.get("Authorization") != f"Bearer {TOKEN}"):
            raise HubError(404, "RepoNotFound", f"Repository not found: {repo_id}")
        return repo

    def revision(self, repo: Repo, revision: str) -> tuple[str, dict[str, StoredFile]]:
        found = repo.files_at(unquote(revision))
        if found is None:
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return found

    def dispatch(self) -> None:
        path = urlsplit(self.path).path
        for method, pattern, handler in self.server.routes:
            match = re.fullmatch(pattern, path)
            if method == self.command or (method == "GET" and self.command == "HEAD"):
                if match:
                    with self.hub.lock:
                        self.hub.requests.append(f"{self.command} {handler.__name__}")
                    try:
                        handler(self, **match.groupdict())
                    except HubError as error:
                        headers = {"X-Error-Message": str(error), **error.headers}
                        if error.code:
                            headers["X-Error-Code"] = error.code
                        self.send_json(error.status, {"error": str(error)}, headers)
                    return
        with self.hub.lock:
            self.hub.unhandled.append(f"{self.command} {self.path}")
        self.read_body()
        self.send_json(404, {"error": f"fake Hub: no route for {self.command} {path}"})

    do_GET = do_HEAD = do_POST = do_PUT = dispatch

    # endpoints

    def create_repo(self):
        self.require_token()
        payload = json.loads(self.read_body())
        repo_id = f"{payload.get('organization') or 'fake-user'}/{payload['name']}"
        url = f"{self.hub.url}/{repo_id}"
        with self.hub.lock:
            self.hub.create_payloads.append(payload)
            if repo_id in self.hub.repos:
                self.send_json(409, {"error": "You already created this model repo", "url": url})
                return
            repo = self.hub.repos[repo_id] = Repo(private=payload.get("visibility") == "private")
            content = GITATTRIBUTES.encode()
            sha256 = self.hub.store(content)
            self.hub.commit(repo, {".gitattributes": stored(sha256, len(content), False, content)}, "initial commit")
        self.send_json(200, {"url": url, "name": repo_id})

    def validate_yaml(self):
        content = json.loads(self.read_body())["content"]
        match = re.match(r"---\n(.*?)\n---\n", content, re.DOTALL)
        try:
            if match:
                yaml.safe_load(match.group(1))
        except yaml.YAMLError as error:
            self.send_json(400, {"errors": [{"message": str(error)}]})
            return
        self.send_json(200, {"errors": [], "warnings": []})

    def preupload(self, repo_id, revision):
        self.require_token()
        self.revision(self.repo(repo_id), revision)
        files = []
        for item in json.loads(self.read_body())["files"]:
            sample = base64.b64decode(item["sample"])
            lfs = item["path"].endswith(LFS_SUFFIXES) or b"\0" in sample
            files.append({"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False})
        self.send_json(200, {"files": files})

    def lfs_batch(self, repo_id):
        self.require_token()
        self.repo(repo_id)
        request = json.loads(self.read_body())
        objects = []
        for item in request["objects"]:
            entry = {"oid": item["oid"], "size": item["size"]}
            if not (self.hub.objects / item["oid"]).is_file():
                entry["authenticated"] = True
                entry["actions"] = {
                    "upload": {"href": f"{self.hub.url}/lfs-upload/{item['oid']}"},
                    "verify": {"href": f"{self.hub.url}/lfs-verify/{item['oid']}"},
                }
            objects.append(entry)
        self.send_json(200, {"transfer": "basic", "objects": objects}, content_type="application/vnd.git-lfs+json")

    def lfs_upload(self, oid):
        content = self.read_body()
        if hashlib.sha256(content).hexdigest() != oid:
            raise HubError(400, None, f"LFS object does not match its oid {oid}")
        self.hub.store(content)
        self.send(200)

    def lfs_verify(self, oid):
        self.require_token()
        request = json.loads(self.read_body())
        path = self.hub.objects / oid
        if request["oid"] != oid or not path.is_file() or path.stat().st_size != request["size"]:
            raise HubError(404, None, f"LFS object {oid} was not uploaded")
        self.send_json(200, {"success": True})

    def commit(self, repo_id, revision):
        self.require_token()
        lines = [json.loads(line) for line in self.read_body().splitlines() if line.strip()]
        if self.headers.get("Content-Type") != "application/x-ndjson" or lines[0]["key"] != "header":
            raise HubError(400, None, "expected an NDJSON commit starting with its header")
        with self.hub.lock:
            repo = self.repo(repo_id)
            head, files = self.revision(repo, revision)
            if unquote(revision) != "main":
                raise HubError(400, None, "the fake Hub commits to main only")
            files = dict(files)
            for line in lines[1:]:
                value = line["value"]
                if line["key"] == "file":
                    content = base64.b64decode(value["content"])
                    files[value["path"]] = stored(self.hub.store(content), len(content), False, content)
                elif line["key"] == "lfsFile":
                    blob = self.hub.objects / value["oid"]
                    if not blob.is_file() or blob.stat().st_size != value["size"]:
                        raise HubError(400, None, f"LFS file {value['path']} was not uploaded")
                    files[value["path"]] = stored(value["oid"], value["size"], True)
                elif line["key"] == "deletedFile":
                    files.pop(value["path"])
                else:
                    raise HubError(400, None, f"the fake Hub does not do {line['key']}")
            oid = self.hub.commit(repo, files, lines[0]["value"]["summary"])
        self.send_json(200, {"success": True, "commitOid": oid, "commitUrl": f"{self.hub.url}/{repo_id}/commit/{oid}"})

    def model_info(self, repo_id, revision="main"):
        oid, files = self.revision(self.repo(repo_id), revision or "main")
        self.send_json(
            200,
            {
                "id": repo_id,
                "modelId": repo_id,
                "sha": oid,
                "private": self.hub.repos[repo_id].private,
                "lastModified": "2026-01-01T00:00:00.000Z",
                "tags": [],
                "siblings": [{"rfilename": path} for path in sorted(files)],
            },
        )

    def tree(self, repo_id, revision, folder=None):
        _, files = self.revision(self.repo(repo_id), revision)
        prefix = f"{unquote(folder).strip('/')}/" if folder else ""
        recursive = parse_qs(urlsplit(self.path).query).get("recursive", ["False"])[0].lower() == "true"
        entries, folders = [], set()
        for path, file in sorted(files.items()):
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix) :].split("/")
            for depth in range(1, len(parts)):
                if recursive or depth == 1:
                    folders.add(prefix + "/".join(parts[:depth]))
            if recursive or len(parts) == 1:
                entry = {"type": "file", "oid": file.git_oid, "size": file.size, "path": path}
                if file.lfs:
                    pointer_size = len(lfs_pointer(file.sha256, file.size))
                    entry["lfs"] = {"oid": file.sha256, "size": file.size, "pointerSize": pointer_size}
                entries.append(entry)
        if prefix and not entries and not folders:
            raise HubError(404, "EntryNotFound", f"{prefix} does not exist on main")
        folder_entries = [{"type": "directory", "oid": git_blob_oid(p.encode()), "path": p} for p in sorted(folders)]
        self.send_json(200, folder_entries + entries)

    def resolve(self, repo_id, revision, filename):
        oid, files = self.revision(self.repo(repo_id), revision)
        file = files.get(unquote(filename))
        if file is None:
            raise HubError(404, "EntryNotFound", f"{filename} does not exist", {"X-Repo-Commit": oid})
        headers = {"X-Repo-Commit": oid, "Accept-Ranges": "bytes"}
        if file.lfs:  # the Hub sends LFS files from its CDN
            headers |= {
                "Location": f"{self.hub.cdn_url}/lfs-cdn/{file.sha256}",
                "X-Linked-Etag": f'"{file.sha256}"',
                "X-Linked-Size": str(file.size),
                "ETag": f'"{file.git_oid}"',
            }
            self.send(302, b"", headers)
            return
        self.send_file(file.sha256, headers | {"ETag": f'"{file.git_oid}"'})

    def lfs_cdn(self, sha256):
        if not (self.hub.objects / sha256).is_file():
            raise HubError(404, None, "no such object")
        self.send_file(sha256, {"ETag": f'"{sha256}"', "Accept-Ranges": "bytes"})

    def send_file(self, sha256: str, headers: dict):
        content = (self.hub.objects / sha256).read_bytes()
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if match:
            start, end = int(match.group(1)), int(match.group(2) or len(content) - 1)
            headers = headers | {"Content-Range": f"bytes {start}-{end}/{len(content)}"}
            self.send(206, content[start : end + 1], headers, "application/octet-stream")
        else:
            self.send(200, content, headers, "application/octet-stream")


REPO = r"(?P<repo_id>[\w.-]+/[\w.-]+)"
ROUTES = [
    ("POST", r"/api/repos/create", FakeHubHandler.create_repo),
    ("POST", r"/api/validate-yaml", FakeHubHandler.validate_yaml),
    ("POST", rf"/api/models/{REPO}/preupload/(?P<revision>[^/]+)", FakeHubHandler.preupload),
    ("POST", rf"/api/models/{REPO}/commit/(?P<revision>[^/]+)", FakeHubHandler.commit),
    ("POST", rf"/{REPO}\.git/info/lfs/objects/batch", FakeHubHandler.lfs_batch),
    ("PUT", r"/lfs-upload/(?P<oid>[0-9a-f]{64})", FakeHubHandler.lfs_upload),
    ("POST", r"/lfs-verify/(?P<oid>[0-9a-f]{64})", FakeHubHandler.lfs_verify),
    ("GET", rf"/api/models/{REPO}(?:/revision/(?P<revision>[^/]+))?", FakeHubHandler.model_info),
    ("GET", rf"/api/models/{REPO}/tree/(?P<revision>[^/]+)(?:/(?P<folder>.+))?", FakeHubHandler.tree),
    ("GET", rf"/{REPO}/resolve/(?P<revision>[^/]+)/(?P<filename>.+)", FakeHubHandler.resolve),
]
CDN_ROUTES = [("GET", r"/lfs-cdn/(?P<sha256>[0-9a-f]{64})", FakeHubHandler.lfs_cdn)]


@pytest.fixture
def fake_hub(tmp_path):
    hub = FakeHub(tmp_path / "fake_hub").start()
    yield hub
    hub.stop()


def client_env(tmp_path: Path, endpoint: str, **extra: str) -> dict[str, str]:
    """A clean Hub client environment: this endpoint, a fresh cache, no Xet, no telemetry, no stray token, and a dead
    proxy for every host but 127.0.0.1, so that nothing can reach the real Hub."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "HUGGING_FACE_"))}
    dead_proxy = "http://127.0.0.1:9"
    return env | {
        "HTTP_PROXY": dead_proxy,
        "HTTPS_PROXY": dead_proxy,
        "ALL_PROXY": dead_proxy,
        "NO_PROXY": "127.0.0.1",
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        **extra,
    }


def run_python(code: str, *args: str, env: dict[str, str], cwd: Path | None = None) -> dict:
    """Run `code` in a fresh interpreter; return the JSON object it prints last."""
    run = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def front_matter(card: str) -> dict:
    match = re.match(r"---\n(.*?)\n---\n", card, re.DOTALL)
    assert match, card[:200]
    return yaml.safe_load(match.group(1))


def save_tiny(tiny_models, folder: Path) -> Path:
    model, processor = tiny_models("internvl")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


# --- push, download, load -----------------------------------------------------------------------------------------

PUSH_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from sa2va_hf.conversion.push import main
    print(json.dumps({"returncode": main(sys.argv[1:])}))
    """
)

# Download with `snapshot_download`, then run the usage snippet of the downloaded README as a user would (the package
# is blocked: the repository's remote code must be enough); the loaded weights are saved for comparison.
DOWNLOAD_SCRIPT = textwrap.dedent(
    """
    import json, re, sys
    sys.modules["sa2va_hf"] = None
    from pathlib import Path
    from huggingface_hub import snapshot_download
    from safetensors.torch import save_file
    repo_id, loaded_weights = sys.argv[1:]
    snapshot = Path(snapshot_download(repo_id))
    readme = (snapshot / "README.md").read_text()
    snippet = re.search(r"```python\\n(.*?)```", readme, re.DOTALL).group(1)
    namespace = {}
    exec(snippet, namespace)
    model, processor = namespace["model"], namespace["processor"]
    save_file({key: tensor.clone().contiguous() for key, tensor in model.state_dict().items()}, loaded_weights)
    print(json.dumps({
        "snapshot": str(snapshot),
        "files": sorted(str(p.relative_to(snapshot)) for p in snapshot.rglob("*") if p.is_file()),
        "model_module": type(model).__module__,
        "processor": type(processor).__name__,
        "prediction": namespace["result"]["prediction"],
    }))
    """
)


def test_push_then_download_and_load_through_a_local_hub(fake_hub, tiny_models, tmp_path):
    folder = save_tiny(tiny_models, tmp_path / "tiny")
    pushed_files = sorted(p.name for p in folder.iterdir())
    repo_id = "org/Sa2VA-tiny"

    env = client_env(tmp_path / "pusher", fake_hub.url, HF_TOKEN=TOKEN)
    args = [str(folder), repo_id, "--variant", "tiny-random-internvl"]
    assert run_python(PUSH_SCRIPT, *args, env=env) == {"returncode": 0}

    assert not fake_hub.unhandled, fake_hub.unhandled
    assert fake_hub.create_payloads == [{"name": "Sa2VA-tiny", "organization": "org", "type": "model"}]
    oid, files = fake_hub.repos[repo_id].commits[-1]
    assert sorted(files) == sorted([".gitattributes", "README.md", *pushed_files])
    assert files["model.safetensors"].lfs and not files["config.json"].lfs
    for route in ("validate_yaml", "preupload", "lfs_batch", "lfs_upload", "lfs_verify", "commit"):
        assert f"{'PUT' if route == 'lfs_upload' else 'POST'} {route}" in fake_hub.requests, route
    card = (folder / "README.md").read_text()
    assert (fake_hub.objects / files["README.md"].sha256).read_text() == card
    metadata = front_matter(card)
    assert metadata["license"] == "apache-2.0" and metadata["library_name"] == "transformers"
    assert metadata["pipeline_tag"] == "image-text-to-text" and metadata["inference"] is False
    assert {"sa2va", "segmentation", "video", "sam2", "internvl"} <= set(metadata["tags"])
    assert f'repo = "{repo_id}"' in card

    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "image.jpg")  # the snippet's image
    env = client_env(tmp_path / "user", fake_hub.url)  # no token: a public repository
    loaded = tmp_path / "loaded.safetensors"
    report = run_python(DOWNLOAD_SCRIPT, repo_id, str(loaded), env=env, cwd=tmp_path)

    assert not fake_hub.unhandled, fake_hub.unhandled
    assert report["snapshot"].endswith(f"models--org--Sa2VA-tiny/snapshots/{oid}")
    assert report["files"] == sorted(files)
    assert report["model_module"].startswith("transformers_modules"), report["model_module"]
    assert report["processor"] == "Sa2VAProcessor"
    expected, loaded = tiny_models("internvl")[0].state_dict(), load_file(loaded)
    assert sorted(loaded) == sorted(expected)
    for name, tensor in expected.items():
        torch.testing.assert_close(loaded[name], tensor, atol=0, rtol=0, msg=name)
    assert isinstance(report["prediction"], str)
    for name in pushed_files:  # byte for byte, LFS file included
        assert (Path(report["snapshot"]) / name).read_bytes() == (folder / name).read_bytes(), name


def test_push_refused_without_write_token_then_keeps_readme_and_reuses_repo(fake_hub, tiny_models, tmp_path):
    folder = save_tiny(tiny_models, tmp_path / "tiny")
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n# mine\n")
    env = client_env(tmp_path / "pusher", fake_hub.url, HF_TOKEN="hf_wrong")
    code = textwrap.dedent(
        """
        import json, os, sys
        from pathlib import Path
        from sa2va_hf.conversion.push import main, push_to_hub
        folder, token = sys.argv[1:]
        refused = main([folder, "org/mine"])  # with HF_TOKEN=hf_wrong
        first = push_to_hub(folder, "org/mine", token=token, private=True, commit_message="first")
        (Path(folder) / "extra.txt").write_text("more")
        os.environ["HF_TOKEN"] = token
        second = push_to_hub(folder, "org/mine")
        print(json.dumps({"refused": refused, "first": first, "second": second, "oid": second.oid}))
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(folder), TOKEN],
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])

    assert report["refused"] == 1 and "401" in run.stderr and "Invalid credentials" in run.stderr
    assert not fake_hub.unhandled, fake_hub.unhandled
    repo = fake_hub.repos["org/mine"]
    assert repo.private and [payload.get("visibility") for payload in fake_hub.create_payloads] == ["private", None]
    assert report["second"] == f"{fake_hub.url}/org/mine/commit/{report['oid']}" != report["first"]
    assert len(repo.commits) == 3  # .gitattributes, then the two pushes
    files = repo.commits[-1][1]
    assert (fake_hub.objects / files["README.md"].sha256).read_text().endswith("# mine\n")
    assert "extra.txt" in files


# --- offline load of a Hub id from a hand-built cache -------------------------------------------------------------

OFFLINE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.modules["sa2va_hf"] = None
    from PIL import Image
    from transformers import AutoModel, AutoProcessor
    model = AutoModel.from_pretrained("org/Sa2VA-8B", trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained("org/Sa2VA-8B", trust_remote_code=True)
    seg = processor.tokenizer.convert_tokens_to_ids("[SEG]")
    image = Image.new("RGB", (64, 48), (20, 120, 220))
    result = model.predict_forward(image=image, text="<image>Please segment the sky.", processor=processor,
                                   sequence_bias={(seg,): 6.0}, max_new_tokens=6)
    print(json.dumps({"model_module": type(model).__module__, "prediction": result["prediction"],
                      "mask_shapes": [list(mask.shape) for mask in result["prediction_masks"]]}))
    """
)


def test_hub_id_loads_offline_from_a_hand_built_cache(tiny_models, tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    storage = tmp_path / "hf_home" / "hub" / "models--org--Sa2VA-8B"
    save_tiny(tiny_models, storage / "snapshots" / commit)
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text(commit)

    # a closed port as endpoint: any request that slipped past offline mode would fail loudly
    env = client_env(tmp_path, "http://127.0.0.1:9", HF_HUB_OFFLINE="1")
    report = run_python(OFFLINE_SCRIPT, env=env)

    assert report["model_module"].startswith("transformers_modules"), report["model_module"]
    assert "[SEG]" in report["prediction"]
    assert report["mask_shapes"] and all(shape == [1, 48, 64] for shape in report["mask_shapes"])


# --- model cards --------------------------------------------------------------------------------------------------

# Reference §7.5 (the current ByteDance/Sa2VA-* cards): MME, MMBench, RefCOCO, RefCOCO+, RefCOCOg, MeViS val_u, DAVIS.
# Sa2VA-Qwen3-VL-2B has no published row.
# fmt: off
REFERENCE_SCORES = {
    "ByteDance/Sa2VA-1B":            ("1504/434", "71.9", "79.6", "73.6", "77.7", "53.4", "69.5"),
    "ByteDance/Sa2VA-4B":            ("1691/610", "81.8", "82.4", "77.6", "79.7", "55.9", "73.7"),
    "ByteDance/Sa2VA-8B":            ("1690/610", "84.4", "82.6", "78.0", "80.3", "58.9", "75.9"),
    "ByteDance/Sa2VA-26B":           ("1698/653", "85.8", "82.9", "79.3", "81.2", "61.8", "78.6"),
    "ByteDance/Sa2VA-InternVL3-2B":  ("1631/559", "79.8", "81.4", "75.7", "80.3", "53.9", "74.5"),
    "ByteDance/Sa2VA-InternVL3-8B":  ("1743/633", "83.0", "83.3", "78.9", "81.8", "56.4", "76.3"),
    "ByteDance/Sa2VA-InternVL3-14B": ("1746/724", "84.3", "83.6", "79.9", "83.6", "59.2", "76.6"),
    "ByteDance/Sa2VA-Qwen2_5-VL-3B": ("1533/572", "78.4", "79.6", "74.0", "77.1", "51.6", "73.4"),
    "ByteDance/Sa2VA-Qwen2_5-VL-7B": ("1552/676", "84.5", "82.4", "77.5", "81.5", "56.4", "79.4"),
    "ByteDance/Sa2VA-Qwen3-VL-4B":   ("1660/655", "86.3", "81.7", "77.4", "80.0", "57.1", "75.9"),
}
# fmt: on


@pytest.mark.parametrize("name", list(OFFICIAL_VARIANTS))
def test_model_card_of_every_official_variant(name):
    variant = OFFICIAL_VARIANTS[name]
    card = render_model_card(repo_id="my-org/converted", variant_name=name)
    metadata = front_matter(card)

    assert metadata["license"] == "apache-2.0"
    assert metadata["library_name"] == "transformers" and metadata["pipeline_tag"] == "image-text-to-text"
    assert metadata["inference"] is False
    assert metadata["base_model"] == [variant.hub_id, variant.base_vlm]
    assert {"sa2va", "segmentation", "video", "sam2", variant.vlm_config["model_type"]} <= set(metadata["tags"])
    assert 'repo = "my-org/converted"' in card and "predict_forward(image=image" in card
    assert f"{BASE_VLM_NOTES[variant.base_vlm][1]}; SAM 2: Apache-2.0" in card
    row = "| " + " | ".join(REFERENCE_SCORES[variant.hub_id]) + " |" if variant.hub_id in REFERENCE_SCORES else None
    assert ("## Published results" in card) == (row is not None)
    if row is not None:
        assert row in card and f"model card of\n[{variant.hub_id}]" in card
    assert yaml.safe_load(yaml.safe_dump(metadata)) == metadata


def test_model_card_options_and_errors():
    tiny = render_model_card(repo_id="me/tiny", variant_name="tiny-random-qwen3_vl")
    assert "random weights" in tiny and "## Published results" not in tiny
    assert "base_model" not in front_matter(tiny) and "qwen3_vl" in front_matter(tiny)["tags"]

    generic = render_model_card(repo_id="me/finetune", base_model="ByteDance/Sa2VA-4B", source="./my-run")
    assert front_matter(generic)["base_model"] == ["ByteDance/Sa2VA-4B"]
    assert "`./my-run`" in generic and "## Published results" not in generic

    custom = render_model_card(repo_id="me/x", variant_name="sa2va-8b", base_model=["a/b", "true"], source="c: d")
    assert front_matter(custom)["base_model"] == ["a/b", "true"]  # quoted where YAML would read another type

    with pytest.raises(ValueError, match="variant_name.*sa2va-9b.*sa2va-1b"):
        render_model_card(repo_id="me/x", variant_name="sa2va-9b")
    with pytest.raises(ValueError, match="repo_id.*namespace/name"):
        render_model_card(repo_id="no-namespace")


def test_push_checks_the_folder_before_any_request(tmp_path, caplog):
    with pytest.raises(FileNotFoundError, match="`folder`.*not a folder"):
        push_to_hub(tmp_path / "missing", "org/x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no saved model.*save_pretrained"):
        push_to_hub(tmp_path / "empty", "org/x")
    (tmp_path / "empty" / "config.json").write_text("{}")
    (tmp_path / "empty" / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="variant_name"):
        push_to_hub(tmp_path / "empty", "org/x", variant_name="nope")
    assert push_module.main([str(tmp_path / "missing"), "org/x"]) == 1
    assert "not a folder" in caplog.text


@pytest.mark.parametrize("name", list(OFFICIAL_VARIANTS))
def test_official_shapes_are_recognised(name, tmp_path):
    OFFICIAL_VARIANTS[name].config().to_json_file(tmp_path / "config.json")
    assert match_official_variant(tmp_path) == name


def test_convert_official_pushes_when_asked(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(push_module, "push_to_hub", lambda *args, **kwargs: calls.append((args, kwargs)) or "url")
    src = official_fixture("official_tiny")
    sam2_json = tmp_path / "sam2.json"
    sam2_json.write_text(json.dumps(TINY_SAM2_CONFIG))
    dst = tmp_path / "dst"
    argv = [str(src), str(dst), "--sam2-config", str(sam2_json), "--no-progress", "--push-to-hub", "me/tiny-hf"]
    assert convert_main(argv) == 0
    assert calls == [((str(dst), "me/tiny-hf"), {"variant_name": None})]
    assert (dst / "model.safetensors").is_file()
