"""``Sandbox``: the library's front door for running one program safely."""

from __future__ import annotations

import io
import re
import threading
import tokenize
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from cellblock.sandbox.errors import SourceDecodeError
from cellblock.sandbox.files import FileCaps, FileSpec, collect_patterns, input_files
from cellblock.sandbox.image import Progress, build_image, inspect_image
from cellblock.sandbox.interface import (
    Backend,
    ExecutionResult,
    Limits,
    OutputCallback,
    RunRequest,
    WheelPayload,
)

if TYPE_CHECKING:
    from cellblock.sandbox.pool import Pool


# PEP 263: a comment-only line among the first two that declares the encoding
_COOKIE = re.compile(r"^([ \t\f]*#.*?)(coding[:=])([ \t]*[-\w.]+)", re.ASCII)


def decode_source(code: str | bytes, *, name: str = "<program>") -> str:
    """Source text from bytes, honouring a PEP 263 coding cookie and a UTF-8 BOM.

    The text that comes out is what every later step sees: the analyzers get it as UTF-8 bytes
    and the sandbox compiles it as text. A coding cookie left in it would make a tool that reads
    bytes decode it differently (``coding: utf-7`` turns ``+ACM-`` into ``#``, hiding code from
    the assessment), so every cookie is neutralised once the text is decoded.
    """
    if isinstance(code, str):
        text = code
    else:
        try:
            encoding, _ = tokenize.detect_encoding(io.BytesIO(code).readline)
            text = code.decode(encoding)
        except (SyntaxError, LookupError, UnicodeDecodeError) as exc:
            raise SourceDecodeError(
                f"{name} is not valid source text ({exc}); save it as UTF-8 or declare its "
                "encoding with a `# -*- coding: ... -*-` line"
            ) from exc
    text = text.removeprefix("\ufeff")
    lines = text.split("\n", 2)
    for i in range(min(2, len(lines))):
        lines[i] = _COOKIE.sub(r"\1decoded-from\3", lines[i])
    return "\n".join(lines)


def default_backend(*, auto_build: bool = True, progress: Progress | None = None) -> Backend:
    """The Docker backend, building the sandbox image first when it is absent or stale."""
    from cellblock.sandbox.docker import DockerBackend, connect

    client = connect()
    if auto_build:
        info = inspect_image(client)
        if not (info.present and info.current):
            build_image(client, progress=progress)
    return DockerBackend(client=client)


def _profile_backend(image: str, progress: Progress | None) -> Backend:
    """A backend on a built-in image profile's image, built first when absent or stale."""
    from cellblock.sandbox.docker import DockerBackend, connect
    from cellblock.sandbox.profiles import build_profile_image, find_profile, inspect_profile_image

    profile = find_profile(image)
    client = connect()
    info = inspect_profile_image(client, profile)
    if not (info.present and info.current):
        info = build_profile_image(client, profile, progress=progress)
    return DockerBackend(client=client, image=info.tag)


class Sandbox:
    """Runs programs in fresh, hardened, single-use sandboxes.

    >>> with Sandbox() as sb:
    ...     result = sb.run("print(6 * 7)")
    ...     result.stdout
    '42\\n'

    With ``pool_size > 0`` cells are started ahead of time, so a run only hands over the code;
    each cell still serves exactly one program.
    """

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        backend: Backend | None = None,
        pool_size: int = 0,
        pool: Pool | None = None,
        auto_build: bool = True,
        reap: bool = True,
        progress: Progress | None = None,
        image: str | None = None,
    ) -> None:
        self.limits = limits or Limits()
        owns_backend = backend is None
        if backend is None and image is not None and image != "base":
            backend = _profile_backend(image, progress)  # an image profile such as "data"
        self.backend = backend or default_backend(auto_build=auto_build, progress=progress)
        self._owns_backend = owns_backend
        if reap:
            self.backend.reap()  # containers left by a caller that crashed
        self._pool = pool
        self._owns_pool = False
        if pool is None and pool_size > 0:
            from cellblock.sandbox.pool import Pool

            self._pool = Pool(self.backend, size=pool_size)
            self._owns_pool = True
        if self._pool is not None:
            self._pool.warm(self.limits)
        self._closed = False
        self._lock = threading.Lock()

    def run(
        self,
        code: str | bytes,
        stdin: bytes | str | None = None,
        timeout: float | None = None,
        *,
        limits: Limits | None = None,
        packages: Sequence[str] | None = None,
        files: FileSpec | None = None,
        collect: Iterable[str] | str | None = None,
        file_caps: FileCaps | None = None,
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
    ) -> ExecutionResult:
        """Run ``code`` once in a fresh sandbox and say exactly what happened.

        ``packages`` (pure-Python requirement specifiers) are resolved on the host, scanned and
        refused on a known vulnerability or an unreachable scan service
        (:class:`~cellblock.packages.PackageRefusedError`), then unpacked in the sandbox; a
        policy's finer rules apply through :class:`cellblock.Pipeline`. ``files`` (name -> bytes
        or local path, or local paths) are placed in the working directory first; files matching
        ``collect`` (glob patterns) come back as ``result.artifacts``. ``on_stdout`` and
        ``on_stderr`` receive the output as text chunks while it is produced (see
        :data:`~cellblock.sandbox.interface.OutputCallback`); the result still holds all of it.
        """
        if self._closed:
            raise RuntimeError("this Sandbox is closed")
        chosen = limits or self.limits
        if timeout is not None:
            chosen = chosen.replace(timeout_s=timeout)
        data = stdin.encode() if isinstance(stdin, str) else stdin
        wheels = self._wheels(packages) if packages else ()
        caps = file_caps or FileCaps()
        request = RunRequest(
            code=decode_source(code),
            limits=chosen,
            stdin=data,
            wheels=wheels,
            files=input_files(files, caps),
            collect=collect_patterns(collect),
            file_caps=caps,
            on_stdout=on_stdout,
            on_stderr=on_stderr,
        )
        if self._pool is not None:
            return self._pool.run(request)
        return self.backend.run(request)

    def _wheels(self, packages: Sequence[str]) -> tuple[WheelPayload, ...]:
        from cellblock.packages import (
            PackageRules,
            PipAuditScanner,
            PipResolver,
            ResolutionError,
            check,
            refusal,
        )

        resolution = PipResolver().resolve(list(packages))
        binary = [d.filename for d in resolution.distributions if not d.pure]
        if binary:
            raise ResolutionError(
                f"{', '.join(binary)} has compiled code, which per-run packages cannot load; "
                "use an image profile with it instead"
            )
        scan = PipAuditScanner().scan(resolution.distributions)
        refused = refusal(check(resolution, scan, PackageRules(allowed=True)))
        if refused is not None:
            raise refused
        return tuple(
            WheelPayload(d.filename, d.sha256, d.path.read_bytes())
            for d in resolution.distributions
        )

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._pool is not None and self._owns_pool:
            self._pool.close()
        if self._owns_backend:
            self.backend.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
