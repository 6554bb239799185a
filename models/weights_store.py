"""Published backbone weights as keras.applications knows them, and a cache folder the caller names (no JAX).

Nothing here downloads unless asked (`fetch`): `resolve` only finds a file that `fetch` or `add` put in the cache,
checked against the hash Keras's own source lists for it (keras/src/applications/resnet.py: WEIGHTS_HASHES, an MD5,
and BASE_WEIGHTS_PATH). A download streams into a temporary name beside the final one and is renamed only after its
hash matched, so a cut connection never leaves a file under the final name.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterator

CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class PublishedWeights:
    """One file keras.applications loads: its file name, where Keras downloads it from, the MD5 Keras checks."""

    backbone: str
    source: str  # what `--init BACKBONE=SOURCE` calls it
    file_name: str
    url: str
    md5: str
    scaling: str  # the input range the weights were trained on: "symmetric" = [-1, 1]

    @property
    def key(self) -> str:
        return f"{self.backbone}:{self.source}"


_KERAS_APPS = "https://storage.googleapis.com/tensorflow/keras-applications/"
# scaling: the models.cuts.INPUT_AFFINE name of the application's preprocess_input. MobileNetV2's files (one per
# input size, no hash in Keras's source) are not listed.
PUBLISHED: dict[str, PublishedWeights] = {w.key: w for w in (
    # ResNet50V2(include_top=False, weights="imagenet"); keras.applications.resnet_v2.preprocess_input: x/127.5 - 1
    PublishedWeights("resnet50v2", "imagenet", "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
                     _KERAS_APPS + "resnet/resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
                     "fac2f116257151a9d068a22e544a4917", "symmetric"),
    # keras/src/applications/xception.py: WEIGHTS_PATH_NO_TOP and its file_hash; preprocess_input mode "tf"
    PublishedWeights("xception", "imagenet", "xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
                     _KERAS_APPS + "xception/xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
                     "b0042744bf5b25fce3cb969f33bebb97", "symmetric"),
    # keras/src/applications/densenet.py: DENSENET121_WEIGHT_PATH_NO_TOP and its file_hash; mode "torch"
    PublishedWeights("densenet121", "imagenet", "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
                     _KERAS_APPS + "densenet/densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
                     "30ee3e1110167f948a6b9946edeeb738", "torch"),
    # keras/src/applications/efficientnet.py: BASE_WEIGHTS_PATH + "efficientnetb0_notop.h5", WEIGHTS_HASHES["b0"][1];
    # it scales inside (preprocess_input does nothing) and, with these weights, Keras adds `rescaling_1`
    PublishedWeights("efficientnetb0", "imagenet", "efficientnetb0_notop.h5",
                     "https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5",
                     "50bc09e76180e00e4465e1a485ddc09d", "pixels"),
)}


class WeightsError(ValueError):
    """A weights file that is absent, damaged or cannot be fetched: the message is one line saying what to do."""


def published(backbone: str, source: str) -> PublishedWeights:
    key = f"{backbone}:{source}"
    if key not in PUBLISHED:
        raise WeightsError(f"no published {source!r} weights for {backbone!r}; known: {', '.join(PUBLISHED)}")
    return PUBLISHED[key]


def file_digests(path: str | os.PathLike) -> dict[str, str]:
    """{'md5': ..., 'sha256': ...} of a file, read once."""
    md5, sha = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            md5.update(chunk)
            sha.update(chunk)
    return {"md5": md5.hexdigest(), "sha256": sha.hexdigest()}


def fetch_command(weights: PublishedWeights) -> str:
    return f"fusion-sweep weights fetch {weights.backbone}"


def add_command(weights: PublishedWeights) -> str:
    return f"fusion-sweep weights add PATH --as {weights.key}"


def resolve(backbone: str, source: str, cache_dir: str | os.PathLike, *, check_hash: bool = True) -> Path:
    """The cached file of a published source; WeightsError naming the file and both ways to get it when absent,
    or when its hash is not the one Keras lists."""
    weights = published(backbone, source)
    path = Path(cache_dir) / weights.file_name
    if not path.is_file():
        raise WeightsError(f"the {source} weights of {backbone} are {weights.file_name}, not in {Path(cache_dir)}: "
                           f"download it with `{fetch_command(weights)}`, or register a copy you have with "
                           f"`{add_command(weights)}` (nothing is downloaded implicitly)")
    if check_hash:
        md5 = file_digests(path)["md5"]
        if md5 != weights.md5:
            raise WeightsError(f"{path} has MD5 {md5}, not the {weights.md5} Keras lists for it (damaged or another "
                               f"file): remove it and run `{fetch_command(weights)}` or `{add_command(weights)}`")
    return path


def add(path: str | os.PathLike, key: str, cache_dir: str | os.PathLike) -> Path:
    """Copy a file the user has into the cache as `key` (`resnet50v2:imagenet`) after checking its hash."""
    backbone, _, source = key.partition(":")
    weights = published(backbone, source)
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"{path} is not a file")
    md5 = file_digests(path)["md5"]
    if md5 != weights.md5:
        raise WeightsError(f"{path} has MD5 {md5}, but Keras lists {weights.md5} for {weights.file_name} "
                           f"({key}); it is another file or a damaged copy")
    target = Path(cache_dir) / weights.file_name
    with _temporary_beside(target) as tmp:
        shutil.copyfile(path, tmp)
        os.replace(tmp, target)
    return target


def fetch(backbone: str, cache_dir: str | os.PathLike, *, source: str = "imagenet", url: str | None = None,
          timeout: float = 30.0, progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Download a published file (from `url`, default the address Keras uses) into the cache, atomically; its MD5
    must be the one Keras lists. WeightsError (one line) when the server cannot be reached, the connection breaks
    or the hash differs; nothing is left under the final name then."""
    weights = published(backbone, source)
    url = url or weights.url
    target = Path(cache_dir) / weights.file_name
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    md5 = hashlib.md5()
    with _temporary_beside(target) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                total = response.headers.get("Content-Length")
                total = int(total) if total and total.isdigit() else None
                done = 0
                for chunk in _chunks(response):
                    out.write(chunk)
                    md5.update(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
            if total is not None and done != total:
                raise WeightsError(f"download of {url} broke off after {done} of {total} bytes; run the command again")
        except (urllib.error.URLError, OSError, ValueError) as err:
            if isinstance(err, WeightsError):
                raise
            reason = getattr(err, "reason", None) or err
            raise WeightsError(f"cannot download {url}: {reason} (no network? register a copy with "
                               f"`{add_command(weights)}`)") from None
        if md5.hexdigest() != weights.md5:
            raise WeightsError(f"{url} gave a file with MD5 {md5.hexdigest()}, not the {weights.md5} Keras lists for "
                               f"{weights.file_name}; nothing was saved")
        os.replace(tmp, target)
    return target


def _chunks(response) -> Iterator[bytes]:
    while True:
        try:
            chunk = response.read(CHUNK)
        except Exception as err:  # http.client.IncompleteRead and friends: the server went away half-way
            raise OSError(f"connection broke off ({type(err).__name__})") from None
        if not chunk:
            return
        yield chunk


class _temporary_beside:
    """A temporary file name in the target's folder (same file system: the rename is atomic), removed on exit
    unless it was renamed into place."""

    def __init__(self, target: Path):
        self.target = Path(target)

    def __enter__(self) -> str:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.target.name}.", suffix=".part", dir=self.target.parent)
        os.close(fd)
        return self.tmp

    def __exit__(self, *exc) -> None:
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)


def listing(cache_dir: str | os.PathLike) -> list[dict]:
    """Every file in the cache: name, size, sha256, md5, and which published source it is (if its hash says so)."""
    cache_dir = Path(cache_dir)
    by_md5 = {w.md5: w.key for w in PUBLISHED.values()}
    rows = []
    if cache_dir.is_dir():
        for path in sorted(p for p in cache_dir.iterdir() if p.is_file() and not p.name.startswith(".")):
            digests = file_digests(path)
            rows.append({"file": path.name, "bytes": path.stat().st_size, **digests,
                         "registered_as": by_md5.get(digests["md5"], "")})
    return rows


class TextProgress:
    """A one-line progress bar on a stream (percent and MiB), redrawn in place; `end()` closes an unfinished one."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.open = False

    def __call__(self, done: int, total: int | None) -> None:
        if total:
            filled = int(30 * done / total)
            self.stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {100 * done / total:5.1f}% "
                              f"{done / 2**20:.1f}/{total / 2**20:.1f} MiB")
        else:
            self.stream.write(f"\r{done / 2**20:.1f} MiB")
        self.open = True
        if total and done >= total:
            self.end()
        self.stream.flush()

    def end(self) -> None:
        if self.open:
            self.stream.write("\n")
            self.open = False
