"""Where ``import aiter`` comes from during a validation: the installed AITER or ``quantguard.sim``.

Shared by the validations so they all answer the same questions the same way:
which arch (``get_gfx`` on a real AITER, ``--gfx`` on the simulator), whether
the build is CK-free, and a one-line description for the report header.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from quantguard.validate._usage import UsageError

__all__ = ["AiterEnvironment", "EnvironmentProblem", "SIM_ARCHS", "aiter_environment"]

#: Archs the simulator models.
SIM_ARCHS = ("gfx942", "gfx950")


class EnvironmentProblem(UsageError):
    """AITER (or the simulator) cannot be set up as asked; the validation exits with code 2."""


@dataclass(frozen=True)
class AiterEnvironment:
    arch: str
    ck_free: bool
    description: str
    simulated: bool


def describe_sim(arch: str, ck_free: bool, faults: Sequence[str], scope: str = "installed for the run") -> str:
    return (
        f"quantguard.sim {arch}, {scope} (CK-free: {'yes' if ck_free else 'no'}; faults: {', '.join(faults) or 'none'})"
    )


@contextmanager
def aiter_environment(
    sim: bool,
    arch: str | None = None,
    ck_free: bool = False,
    faults: Sequence[str] = (),
    device: torch.device | str = "cpu",
    atom: bool = False,
) -> Iterator[AiterEnvironment]:
    """Make ``import aiter`` work for the block: the simulator when ``sim``, else the installed AITER.

    ``arch``, ``ck_free`` and ``faults`` configure the simulator; asking for
    them without ``sim`` is an error (a real AITER's arch and build are facts).
    """
    if sim:
        import quantguard.sim as simulator

        chosen = arch or SIM_ARCHS[0]
        try:
            simulator.install(arch=chosen, ck_free=ck_free, faults=tuple(faults), device=device, atom=atom)
        except (ValueError, RuntimeError) as exc:
            raise EnvironmentProblem(f"cannot install the simulator: {exc}") from exc
        try:
            yield AiterEnvironment(chosen, ck_free, describe_sim(chosen, ck_free, faults), True)
        finally:
            simulator.uninstall()
        return
    if arch or ck_free or faults:
        raise EnvironmentProblem("--gfx, --ck-free and --fault configure the simulator; add --sim")
    try:
        import aiter
    except ImportError as exc:
        raise EnvironmentProblem(
            f"AITER is not importable ({exc}); install AITER on a ROCm machine, or pass --sim to run on the simulator"
        ) from exc
    from quantguard.hardware import detect_platform

    platform = detect_platform()
    if platform.arch is None:
        raise EnvironmentProblem(f"cannot tell the GPU arch: {platform.arch_source}")
    yield AiterEnvironment(
        platform.arch,
        platform.ck_free,
        f"{aiter.__file__} (CK-free: {'yes' if platform.ck_free else 'no'}, from {platform.ck_free_source})",
        False,
    )
