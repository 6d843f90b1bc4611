"""The authors' public release: where its files are, their checksums, and fetching them.

Tramer, Behrmann, Carlini, Papernot and Jacobsen released their invariance examples, the
human labels and the aligned neighbours of their l-inf attack in the repository
``ftramer/Excessive-Invariance`` (MIT licence). Every file the package reads is listed in
:data:`RELEASE_FILES` with its size and SHA256 at commit :data:`RELEASE_COMMIT`; a file
that does not match is never read.

Where the files are looked up (same order as MNIST, :func:`simulations.data.mnist.data_root`):
the ``published_dir`` argument (``--published-dir``), then ``$INVARIANCE_TRADEOFFS_DATA``,
then the per-user cache. Under that root, the *release folder* is the first of
``excessive-invariance/``, ``Excessive-Invariance/`` or the root itself that holds a
release file. Inside it each file may sit at its path in the authors' repository
(``invariance_examples/linf/automated_eps03.npy``, ``linf/all_nns.npy``) or, for the
examples, without the ``invariance_examples/`` prefix (the layout of a hand-made copy:
``excessive-invariance/linf/automated_eps03.npy``). Both layouts may be mixed.

Fetching (:func:`fetch_release`) downloads missing files with :mod:`pooch` from
:func:`release_url` (the ``url`` argument, then ``$INVARIANCE_TRADEOFFS_RELEASE_URL``, then
the authors' repository at the pinned commit), by default only into the cache directory.
pooch writes each download to a temporary name in the destination folder, checks its
SHA256 and only then renames it, so an interrupted or corrupted download leaves nothing a
later run would read.

Example
-------
>>> from invariance_tradeoffs.simulations.data.release import RELEASE_FILES
>>> RELEASE_FILES["invariance_examples/indexs.npy"].size
928
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from invariance_tradeoffs.simulations.data.mnist import ENV_VAR, data_root, quiet_pooch

__all__ = [
    "CITATION",
    "DEFAULT_RELEASE_URL",
    "EXAMPLES_PREFIX",
    "LICENCE",
    "RELEASE_COMMIT",
    "RELEASE_FILES",
    "RELEASE_REPOSITORY",
    "RELEASE_URL_ENV",
    "FetchReport",
    "ReleaseFile",
    "ReleaseFolder",
    "fetch_release",
    "find_release",
    "release_url",
    "verify_release_file",
]

RELEASE_REPOSITORY = "ftramer/Excessive-Invariance"
RELEASE_COMMIT = "780cab97b95f3a2a50c8b2cd14f2256ce8062c41"
DEFAULT_RELEASE_URL = (
    f"https://raw.githubusercontent.com/{RELEASE_REPOSITORY}/{RELEASE_COMMIT}/"
)
RELEASE_URL_ENV = "INVARIANCE_TRADEOFFS_RELEASE_URL"
#: Folder of the examples in the authors' repository (optional in a local copy).
EXAMPLES_PREFIX = "invariance_examples/"

LICENCE = (
    "The invariance examples, human labels and aligned neighbours are by Florian Tramer, "
    "Jens Behrmann, Nicholas Carlini, Nicolas Papernot and Joern-Henrik Jacobsen, released "
    f"under the MIT licence at https://github.com/{RELEASE_REPOSITORY}."
)
CITATION = """\
@inproceedings{tramer2020fundamental,
  title     = {Fundamental Tradeoffs between Invariance and Sensitivity to Adversarial
               Perturbations},
  author    = {Tram{\\`e}r, Florian and Behrmann, Jens and Carlini, Nicholas and
               Papernot, Nicolas and Jacobsen, J{\\"o}rn-Henrik},
  booktitle = {International Conference on Machine Learning (ICML)},
  year      = {2020}
}"""


class ReleaseFile(NamedTuple):
    """Size in bytes and SHA256 of one file of the release."""

    size: int
    sha256: str


#: Path in the authors' repository -> size and SHA256 at :data:`RELEASE_COMMIT`.
RELEASE_FILES: dict[str, ReleaseFile] = {
    "invariance_examples/indexs.npy": ReleaseFile(
        928, "a6bd76c3327259475ff8d4e48a4c49cb1fd84df90bd651c45312486b3903968d"),
    "invariance_examples/linf/automated_eps03.npy": ReleaseFile(
        313728, "3f1dad7705a272bee7ff6186e241b591a4bba88f7f3a94c686954ba7f78bb986"),
    "invariance_examples/linf/automated_eps03_labels.npy": ReleaseFile(
        928, "79c93e7ab230591861ea74996ba6c95942290ed9e209e83f0b45b6b0c468ad18"),
    "invariance_examples/linf/automated_eps04.npy": ReleaseFile(
        78528, "751cbe4a5a2b85255e6e38a12e9eca690b2a4d54dc8e9e0d9dd6a582aec37978"),
    "invariance_examples/linf/automated_eps04_labels.npy": ReleaseFile(
        928, "bb28481ffe49bf13a77a06f43e32895e6270739119e1fc2e1e232aa02bc11316"),
    "invariance_examples/linf/manual_eps04.npy": ReleaseFile(
        39328, "d3e40f37cda8dffb29a08cf8edd56ebd5838e302468a1f7bdc77f58ee662dd5f"),
    "invariance_examples/linf/manual_eps04_labels.npy": ReleaseFile(
        528, "c953a34663c9c8aeda12a2f1231a6c6ba035a3f9687ac10abcebfb5660390550"),
    "invariance_examples/linf/manual_indexs.npy": ReleaseFile(
        528, "f92394039cbd784ec8da5adcd653f63c81cf805c474b5fc43a7357e4afc882cc"),
    "invariance_examples/l0/automated.npy": ReleaseFile(
        78528, "02eb24c04a8b7a26c397fa02e4ae90d43c9e0818eb9f6dcd007953d5279c6d8b"),
    "invariance_examples/l0/automated_labels.npy": ReleaseFile(
        928, "8e4387f2a9e89678911071838dbf82a59788f49a07784b8960a3310c640a30ec"),
    "linf/all_nns.npy": ReleaseFile(
        705728, "9ab1697e7db46f5650317fdd41582f1e4484ac4a87f27ac58404a3a696a671bf"),
    "linf/all_grids_nns.npy": ReleaseFile(
        21728, "926f2460b066a2a0023b51735698ad492f143b9ad6cefe904812737085eafd38"),
    "linf/all_y_nns.npy": ReleaseFile(
        1028, "7ff21b9d3d56da46ffc0032b9aeb2767684b547d899bf7e1a0340c63d5717a4c"),
}

#: Sub-folders of a data root that may hold the release (first match wins).
_FOLDER_NAMES = ("excessive-invariance", "Excessive-Invariance")
_HOW_TO_GET = (
    f"run `tradeoffs mnist download` to fetch it, or point the package at a copy with "
    f"--published-dir DIR or {ENV_VAR}=DIR"
)

# (resolved path, mtime_ns, size) of files whose SHA256 matched, checked once per process.
_VERIFIED: set[tuple[str, int, int]] = set()


def release_url(url: str | None = None) -> str:
    """Base URL the release is fetched from: ``url``, ``$INVARIANCE_TRADEOFFS_RELEASE_URL``
    or the authors' repository at the pinned commit; always ends with ``/``."""
    if url is not None and not isinstance(url, str):
        raise TypeError(f"url must be a string, got {type(url).__name__}")
    base = url or os.environ.get(RELEASE_URL_ENV) or DEFAULT_RELEASE_URL
    if not base.startswith(("http://", "https://", "ftp://")):
        raise ValueError(f"release URL must start with http://, https:// or ftp://, got "
                         f"{base!r} (for a local copy use --published-dir instead)")
    return base if base.endswith("/") else base + "/"


def _variants(relpath: str) -> tuple[str, ...]:
    """Where ``relpath`` may sit inside a release folder (the authors' path first)."""
    if relpath.startswith(EXAMPLES_PREFIX):
        return relpath, relpath[len(EXAMPLES_PREFIX):]
    return (relpath,)


@dataclass(frozen=True)
class ReleaseFolder:
    """A folder holding (some of) the release, and where that folder came from.

    Attributes
    ----------
    path : Path
        The release folder (e.g. ``<root>/excessive-invariance``).
    origin : str
        ``"published_dir argument (--published-dir)"``, ``"$INVARIANCE_TRADEOFFS_DATA"`` or
        ``"cache directory"``.
    present : dict of str to Path
        Release path -> file found for it (not yet verified).
    """

    path: Path
    origin: str
    present: dict[str, Path] = field(default_factory=dict)

    @property
    def missing(self) -> list[str]:
        """Release paths with no file in this folder."""
        return [p for p in RELEASE_FILES if p not in self.present]

    @property
    def examples_dirs(self) -> list[Path]:
        """Folders that may hold example sets: ``invariance_examples/`` and the folder."""
        return [d for d in (self.path / EXAMPLES_PREFIX.rstrip("/"), self.path) if d.is_dir()]

    def file(self, relpath: str, *, verify: bool = True) -> Path:
        """The verified file for release path ``relpath``.

        Raises
        ------
        FileNotFoundError
            The file is missing (the message says how to fetch it).
        ValueError
            Its size or SHA256 differs from :data:`RELEASE_FILES` (the message names it).
        """
        if relpath not in RELEASE_FILES:
            raise ValueError(f"{relpath!r} is not a file of the release; known: "
                             f"{', '.join(RELEASE_FILES)}")
        path = self.present.get(relpath)
        if path is None:
            raise FileNotFoundError(
                f"release file {relpath} not found in {self.path} (from the {self.origin}); "
                f"{_HOW_TO_GET}")
        if verify:
            verify_release_file(path, relpath)
        return path


def _scan(folder: Path) -> dict[str, Path]:
    present = {}
    for relpath in RELEASE_FILES:
        for variant in _variants(relpath):
            if (folder / variant).is_file():
                present[relpath] = folder / variant
                break
    return present


def find_release(published_dir: str | os.PathLike | None = None) -> ReleaseFolder:
    """The release folder under ``published_dir`` (or the environment, or the cache).

    Never fails for a missing folder: the result may hold no file (then
    :attr:`ReleaseFolder.present` is empty and the path is where a fetch would put it).
    A folder holding no release file but other labelled sets (``<stem>_labels.npy``, in
    it or one folder below, e.g. a ``tradeoffs study`` export) is returned as the release
    folder, with ``present`` empty. A ``published_dir`` that exists but is not a folder
    raises ``NotADirectoryError``.
    """
    root, origin = data_root(published_dir)
    origin = origin.replace("data_dir argument (--data-dir)",
                            "published_dir argument (--published-dir)")
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"published_dir (--published-dir) {root} is not a folder")
    candidates = [root / name for name in _FOLDER_NAMES] + [root]
    if root.name == EXAMPLES_PREFIX.rstrip("/"):  # pointed at invariance_examples/ itself
        candidates.insert(0, root.parent)
    for folder in candidates:
        present = _scan(folder) if folder.is_dir() else {}
        if present:
            return ReleaseFolder(folder, origin, present)
    for folder in candidates:
        if folder.is_dir() and (any(folder.glob("*_labels.npy"))
                                or any(folder.glob("*/*_labels.npy"))):
            return ReleaseFolder(folder, origin, {})
    return ReleaseFolder(root / _FOLDER_NAMES[0], origin, {})


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_release_file(path: str | os.PathLike, relpath: str) -> None:
    """Check ``path`` against the size and SHA256 of release file ``relpath``.

    Checked once per process for each (path, modification time, size).

    Raises
    ------
    ValueError
        Naming the file, the expected and the actual checksum.
    """
    path = Path(path)
    expected = RELEASE_FILES[relpath]
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key in _VERIFIED:
        return
    if stat.st_size != expected.size:
        raise ValueError(
            f"release file {path} is corrupted or truncated: {stat.st_size} bytes, expected "
            f"{expected.size} ({relpath} at {RELEASE_REPOSITORY}@{RELEASE_COMMIT[:7]}); "
            "delete it and run `tradeoffs mnist download`")
    digest = _sha256(path)
    if digest != expected.sha256:
        raise ValueError(
            f"release file {path} is corrupted: SHA256 {digest}, expected {expected.sha256} "
            f"({relpath} at {RELEASE_REPOSITORY}@{RELEASE_COMMIT[:7]}); delete it and run "
            "`tradeoffs mnist download`")
    _VERIFIED.add(key)


@dataclass
class FetchReport:
    """What :func:`fetch_release` did.

    Attributes
    ----------
    folder : Path
        The release folder the files are in.
    present : list of str
        Release paths already present and verified (not downloaded again).
    fetched : list of str
        Release paths downloaded and verified in this call.
    failed : dict of str to str
        Release path -> one-line reason (URL, HTTP status or checksum mismatch).
    """

    folder: Path
    present: list[str] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every requested file is now present and verified."""
        return not self.failed


def _download(url: str, dest: Path, expected: ReleaseFile, progress: bool) -> None:
    """Download ``url`` to ``dest`` through pooch: temporary file, SHA256 check, rename."""
    import pooch

    downloader = (pooch.HTTPDownloader(progressbar=progress, timeout=60)
                  if url.startswith("http") else pooch.FTPDownloader(progressbar=progress))
    with quiet_pooch():
        pooch.retrieve(url, known_hash=f"sha256:{expected.sha256}", fname=dest.name,
                       path=dest.parent, downloader=downloader)


def fetch_release(
    published_dir: str | os.PathLike | None = None,
    *,
    url: str | None = None,
    files: list[str] | tuple[str, ...] | None = None,
    download: bool | None = None,
    progress: bool = False,
) -> FetchReport:
    """Make sure the release files are present and verified, downloading missing ones.

    Parameters
    ----------
    published_dir : path, optional
        Root of the data (as ``--published-dir``); default: the environment variable,
        then the cache directory.
    url : str, optional
        Base URL (:func:`release_url`).
    files : sequence of str, optional
        Release paths to make sure of (default: all of :data:`RELEASE_FILES`).
    download : bool, optional
        Download missing files. Default: only when the root is the cache directory.
        ``False`` only verifies what is present and reports the rest as failed.
    progress : bool
        Show a progress bar per download.

    Returns
    -------
    FetchReport
        Files present, fetched and failed (with reasons). A file in the cache that fails
        its checksum is deleted and downloaded again; one in a folder of the user's is
        reported, never deleted.
    """
    wanted = list(RELEASE_FILES) if files is None else list(files)
    unknown = [f for f in wanted if f not in RELEASE_FILES]
    if unknown:
        raise ValueError(f"files must be release paths, unknown: {unknown}")
    base = release_url(url)
    rel = find_release(published_dir)
    if download is None:
        download = rel.origin == "cache directory"
    report = FetchReport(rel.path)
    for relpath in wanted:
        path = rel.present.get(relpath)
        if path is not None:
            try:
                verify_release_file(path, relpath)
                report.present.append(relpath)
                continue
            except ValueError as exc:
                if rel.origin != "cache directory":
                    report.failed[relpath] = str(exc)
                    continue
                path.unlink()  # ours to replace
        if not download:
            report.failed[relpath] = (f"missing from {rel.path} (from the {rel.origin}); "
                                      f"{_HOW_TO_GET}")
            continue
        dest = rel.path / relpath
        try:
            _download(base + relpath, dest, RELEASE_FILES[relpath], progress)
            verify_release_file(dest, relpath)
        except Exception as exc:  # network, HTTP status or checksum: reported per file
            report.failed[relpath] = f"download of {base + relpath} failed: {_reason(exc)}"
            continue
        report.fetched.append(relpath)
    return report


def _reason(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:300] + "..."
    return f"{type(exc).__name__}: {text}"
