"""The enabled state: configuration, applied contracts, and the services guards share.

One :class:`Runtime` exists while quantguard is enabled.  It applies every
contract through one path (:meth:`Runtime._apply`) and removes them through
one path (:meth:`Runtime.unapply_all`), patches modules that are imported
later through import watches, and owns the reporter, sampler, provenance
store, shadow executor and platform facts that guards use.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Iterable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from quantguard import events
from quantguard.config import Config
from quantguard.contracts import Contract, resets_platform, split_target, target_matches
from quantguard.engine import importhooks
from quantguard.engine.aliases import Binding, find_aliases, rebind
from quantguard.engine.calls import Binder
from quantguard.engine.custom_ops import OpBinding, find_custom_op, op_parameters
from quantguard.engine.guard import Guard, GuardState, has_empty_tensor, make_dispatch_guard, make_guard
from quantguard.engine.layers import current_layer
from quantguard.engine.policy import PolicyHandler
from quantguard.engine.provenance import ProvenanceStore
from quantguard.engine.reporter import Reporter
from quantguard.engine.sampling import Sampler
from quantguard.hardware import Platform, detect_platform

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.engine.calls import CallRecord
    from quantguard.engine.inspection import InspectionSession

__all__ = ["Runtime", "Applied"]

#: Modules whose globals never hold user-visible aliases worth rebinding.
_ALIAS_SCAN_SKIP = ("quantguard.engine", "quantguard.checks", "quantguard.contracts", "wrapt", "structlog")


class Applied:
    """What became of one contract: patched (with its bindings), pending import, missing, filtered."""

    __slots__ = ("contract", "status", "reason", "guard", "state", "bindings", "mismatch")

    def __init__(self, contract: Contract, status: str, reason: str = "") -> None:
        self.contract = contract
        self.status = status
        self.reason = reason
        self.guard: Guard | None = None
        self.state: GuardState | None = None
        self.bindings: list[Binding] = []
        self.mismatch: list[str] = []


def _resolve_parent(module: ModuleType, attribute: str, resolve_class: Any = None) -> tuple[Any, str]:
    """The object holding the target attribute; ``resolve_class`` maps each class on the way to the
    class that really gets instantiated (ATOM main's ``FusedMoE`` is a lazy wrapper around it)."""
    parent: Any = module
    parts = attribute.split(".")
    for part in parts[:-1]:
        parent = getattr(parent, part)
        if resolve_class is not None and isinstance(parent, type):
            parent = resolve_class(parent)
    return parent, parts[-1]


def _raw(parent: Any, name: str) -> Any:
    if isinstance(parent, (type, ModuleType)):
        namespace = vars(parent)
        if name in namespace:
            return namespace[name]
    return getattr(parent, name)


class Runtime:
    def __init__(self, config: Config, contracts: Iterable[Contract]) -> None:
        self.config = config
        self.sampler = Sampler(config.sample_rate, config.sample_first, config.max_samples_per_second, config.seed)
        self.reporter = Reporter(config)
        self.provenance = ProvenanceStore()
        self.policy = PolicyHandler(self)
        self.inspection_enabled = True
        self.contracts: dict[str, Contract] = {}
        for contract in contracts:
            self.contracts[contract.target] = contract
        self.applied: dict[str, Applied] = {}
        self.layer_hooks: list[Any] = []
        self._executor: Any = None
        self._platform: Platform | None = None
        self._watched: set[str] = set()
        self._reported_packages: set[str] = set()
        self._scanned: set[int] = set()
        #: Ops guarded at their dispatch ("aiter::name" -> Applied); one hook per op, whatever wrapper led to it.
        self._hooked_ops: dict[str, Applied] = {}
        self._lock = threading.RLock()
        self._calls_at_fork: dict[str, int] = {}
        self.extensions: list[Any] = []
        from quantguard.engine.eager_snapshots import EagerSnapshots
        from quantguard.engine.graphs import GraphMonitor

        self.graphs = GraphMonitor(self)
        self.snapshots = EagerSnapshots(self)

    # -- shared services -----------------------------------------------------------------
    @property
    def executor(self) -> Any:
        if self._executor is None:
            from quantguard.shadow.executor import Executor

            self._executor = Executor(self.config.shadow_queue_size, self.reporter.stats.add_dropped)
        return self._executor

    @property
    def platform(self) -> Platform:
        if self._platform is None:
            self._platform = detect_platform(self.config.gfx, self.config.ck_free)
        return self._platform

    current_layer = staticmethod(current_layer)

    # -- inspection ----------------------------------------------------------------------
    def should_inspect(self, state: GuardState, record: CallRecord, inspect: bool) -> bool:
        """Final say on inspecting a call: follow provenance, skip capture and tracing."""
        from quantguard.engine.inspection import inspection_blocked

        if not inspect and self.provenance.live and "scale_provenance" in state.contract.checks:
            view = record.view
            inspect = view is not None and any(
                self.provenance.lookup(tensor) is not None for tensor in view.provenance_inputs()
            )
        if inspect and (inspection_blocked(record) is not None or has_empty_tensor(record.arguments)):
            return False
        return inspect

    def begin_inspection(
        self, state: GuardState, record: CallRecord, before_call: bool = True
    ) -> InspectionSession | None:
        """Start the data checks of an inspected call; ``before_call=False`` when it already ran."""
        from quantguard.checks.base import DataCheck
        from quantguard.engine.inspection import InspectionSession

        checks = []
        for check in state.data_checks:
            if not before_call and type(check).prepare is not DataCheck.prepare:
                continue  # it needs the inputs as they were before the kernel
            try:
                if check.applies(record):
                    checks.append(check)
            except Exception as exc:
                state.internal_error(check.name, exc)
        return InspectionSession(self, state, record, checks) if checks else None

    # -- applying contracts --------------------------------------------------------------
    def wanted(self, contract: Contract) -> bool:
        return target_matches(contract.target, self.config.targets) and not target_matches(
            contract.target, self.config.disabled_targets
        )

    def apply_all(self) -> None:
        with self._lock:
            patched_now: list[Applied] = []
            for contract in list(self.contracts.values()):
                if contract.target in self.applied and self.applied[contract.target].status == "patched":
                    continue
                applied = self._apply(contract)
                if applied.status == "patched":
                    patched_now.append(applied)
            self._rebind_aliases(patched_now)
            for applied in patched_now:
                self._announce(applied)
            for extension in self.extensions:
                extension.on_applied(self, patched_now, True)
            self._install_graph_hooks()

    def _install_graph_hooks(self) -> None:
        """Hook CUDA graph capture and replay where graphs can exist (a CUDA device, graph checks on)."""
        torch = sys.modules.get("torch")
        if not self.config.graph_checks or torch is None:
            return
        try:
            if torch.cuda.is_available():
                self.graphs.install()
        except Exception as exc:
            self.reporter.internal_error("torch.cuda.CUDAGraph", "graph_hooks", exc)

    def add_contract(self, contract: Contract) -> None:
        with self._lock:
            self.contracts[contract.target] = contract
            applied = self._apply(contract)
            if applied.status == "patched":
                self._rebind_aliases([applied])
                self._announce(applied)

    def _watch(self, module_name: str) -> None:
        if module_name not in self._watched:
            self._watched.add(module_name)
            importhooks.watch(module_name, self._on_import)

    def _on_import(self, module: ModuleType) -> None:
        """A watched module was (re)imported: apply its contracts (no alias scan needed: it is new)."""
        try:
            with self._lock:
                if resets_platform(module.__name__):
                    self._platform = None
                patched_now = []
                for contract in list(self.contracts.values()):
                    if contract.module != module.__name__:
                        continue
                    previous = self.applied.get(contract.target)
                    if (
                        previous is not None
                        and previous.status == "patched"
                        and previous.guard is not None
                        and previous.bindings
                        and previous.bindings[0].owner is module
                    ):
                        continue
                    applied = self._apply(contract)
                    if applied.status == "patched":
                        patched_now.append(applied)
                for applied in patched_now:
                    self._announce(applied)
                for extension in self.extensions:
                    extension.on_applied(self, patched_now, False)
        except Exception as exc:  # never break the user's import
            self.reporter.internal_error(module.__name__, "import_hook", exc)

    def _apply(self, contract: Contract) -> Applied:
        """Patch one contract's target now, or watch for its module; never raises (fail open)."""
        try:
            return self._apply_contract(contract)
        except Exception as exc:
            self.reporter.internal_error(contract.target, "patch", exc)
            applied = Applied(contract, "missing", f"quantguard could not patch it ({type(exc).__name__}: {exc})")
            self.applied[contract.target] = applied
            return applied

    def _apply_contract(self, contract: Contract) -> Applied:
        """Patch one contract's target now, or watch for its module; record what happened."""
        if not self.wanted(contract):
            applied = Applied(contract, "filtered", "excluded by QUANTGUARD_TARGETS / DISABLED_TARGETS")
            self.applied[contract.target] = applied
            return applied
        module_name, attribute = split_target(contract.target)
        self._watch(module_name)
        module = sys.modules.get(module_name)
        if module is None:
            applied = Applied(contract, "pending", f"module {module_name} not imported yet")
            self.applied[contract.target] = applied
            self._report_missing_package(module_name)
            return applied
        try:
            parent, name = _resolve_parent(module, attribute, contract.options.get("resolve_class"))
            raw = _raw(parent, name)
        except AttributeError as exc:
            applied = Applied(contract, "missing", f"{module_name} has no attribute {attribute!r} ({exc})")
            self.applied[contract.target] = applied
            events.emit(events.TARGET_MISSING, "warning", target=contract.target, reason=applied.reason)
            return applied
        function = raw.__func__ if isinstance(raw, staticmethod) else raw
        if isinstance(function, Guard):
            applied = Applied(contract, "alias", "already guarded under another contract")
            self.applied[contract.target] = applied
            return applied
        owner = self._applied_for(function)
        if owner is not None:
            binding = rebind(parent, name, raw, owner.guard)
            if binding is not None:
                owner.bindings.append(binding)
            applied = Applied(contract, "alias", f"same function as {owner.contract.target} (wrapped once)")
            self.applied[contract.target] = applied
            return applied
        if not callable(function):
            applied = Applied(contract, "missing", f"{contract.target} is not callable ({type(function).__name__})")
            self.applied[contract.target] = applied
            events.emit(events.TARGET_MISSING, "warning", target=contract.target, reason=applied.reason)
            return applied
        from quantguard.contracts.drift import compare_signature

        op = find_custom_op(function, contract.op, public_name=contract.name)
        parameters = op_parameters(op, contract.params) if op is not None else None
        binder = Binder(function, contract.params, contract.signature_of, parameters)
        mismatch, disabled = compare_signature(contract, function, binder.as_signature())
        state = GuardState(contract, function, self, disabled_checks=frozenset(disabled), binder=binder)
        watches_provenance = "scale_provenance" in contract.checks
        applied = Applied(contract, "patched")
        if op is not None:
            self._release_op(op)
            guard: Any = make_dispatch_guard(function, op, state, watches_provenance)
            binding: Any = OpBinding(module, guard)
            self._hooked_ops[op._schema.name] = applied
        else:
            guard = make_guard(function, state, watches_provenance)
            binding = rebind(parent, name, raw, guard)
        if binding is None:
            applied.status, applied.reason = "missing", f"cannot set {contract.target}"
            self.applied[contract.target] = applied
            events.emit(events.TARGET_MISSING, "warning", target=contract.target, reason=applied.reason)
            return applied
        applied.guard, applied.state, applied.bindings = guard, state, [binding]
        applied.mismatch = mismatch
        self.applied[contract.target] = applied
        if mismatch:
            events.emit(
                events.TARGET_MISMATCH,
                "warning",
                target=contract.target,
                differences=mismatch,
                disabled_checks=sorted(disabled),
            )
        return applied

    def _release_op(self, op: Any) -> None:
        """Take down an earlier hook on this op (its module was re-imported: a new wrapper, the same op)."""
        previous = self._hooked_ops.pop(op._schema.name, None)
        if previous is None:
            return
        for binding in previous.bindings:
            binding.restore()
        previous.bindings = []
        if previous.state is not None:
            previous.state.retire()

    def _applied_for(self, function: Any) -> Applied | None:
        """The patched contract already wrapping this exact function object, if any."""
        for applied in self.applied.values():
            if applied.guard is not None and applied.guard.__wrapped__ is function and applied.bindings:
                return applied
        return None

    def _report_missing_package(self, module_name: str) -> None:
        package = module_name.split(".")[0]
        if package in self._reported_packages or package in sys.modules:
            return
        try:
            found = importlib.util.find_spec(package) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            self._reported_packages.add(package)
            waiting = sum(1 for c in self.contracts.values() if c.target.split(".")[0] == package)
            events.emit(
                events.TARGET_MISSING,
                "info",
                target=package,
                reason=f"package {package!r} is not installed; {waiting} target(s) will be "
                "guarded if it is imported later",
            )

    def _rebind_aliases(self, applied_list: list[Applied]) -> None:
        originals = {}
        # a dispatch guard sees every call of its op, whichever name or partial led there: nothing to rebind
        applied_list = [a for a in applied_list if isinstance(a.guard, Guard)]
        for applied in applied_list:
            original = applied.guard.__wrapped__
            originals[id(original)] = original
        if not originals:
            return
        by_original = {id(a.guard.__wrapped__): a for a in applied_list}
        for owner, name, held in find_aliases(originals, _ALIAS_SCAN_SKIP):
            inner = held.__func__ if isinstance(held, (staticmethod, classmethod)) else held
            applied = by_original[id(inner)]
            binding = rebind(owner, name, held, applied.guard)
            if binding is not None:
                applied.bindings.append(binding)

    def _announce(self, applied: Applied) -> None:
        aliases = len(applied.bindings) - 1
        contract = applied.contract
        events.emit(
            events.PATCHED,
            "info",
            target=contract.target,
            aliases=aliases,
            alias_names=[b.where for b in applied.bindings[1:]][:32],
            backend=contract.backend,
            kind=contract.kind,
            parameters_from=applied.state.binder.source,
            dispatch=getattr(getattr(applied.guard, "hook", None), "where", None),
            checks=[c for c in contract.checks if c not in applied.state.disabled_checks],
        )
        self._static_scan(applied)

    def _static_scan(self, applied: Applied) -> None:
        from quantguard.checks import get_check

        contract = applied.contract
        for name in contract.checks:
            check = get_check(name)
            if check.phase != "scan" or name in applied.state.disabled_checks:
                continue
            try:
                scanned = getattr(applied.guard, "implementation", None) or applied.guard.__wrapped__
                for function, finding, where in check.scan(scanned, contract):
                    if id(function) in self._scanned:
                        continue
                    self._scanned.add(id(function))
                    self.reporter.violation(contract.target, finding, where, {"backend": contract.backend})
            except Exception as exc:
                self.reporter.internal_error(contract.target, name, exc)

    def unapply_all(self) -> int:
        restored = 0
        with self._lock:
            guards = {id(a.guard): a.guard for a in self.applied.values() if isinstance(a.guard, Guard)}
            for applied in reversed(list(self.applied.values())):
                for binding in reversed(applied.bindings):
                    try:
                        restored += binding.restore()
                    except Exception as exc:
                        self.reporter.internal_error(applied.contract.target, "unpatch", exc)
                applied.bindings = []
                if applied.state is not None:
                    applied.state.retire()
            restored += self._unbind_guards(guards)
            self._hooked_ops.clear()
            for module_name in self._watched:
                importhooks.unwatch(module_name, self._on_import)
            self._watched.clear()
            for extension in self.extensions:
                extension.on_unapplied(self)
            self.applied.clear()
            self.graphs.uninstall()
        return restored

    def _unbind_guards(self, guards: dict[int, Any]) -> int:
        """Put originals back where code imported after ``enable()`` bound a guard itself.

        ``from aiter import gemm_a8w8_blockscale`` executed while quantguard was
        enabled (ATOM imported after ``enable()``, ``aiter/__init__`` re-exporting a
        patched submodule) binds the guard, not the original; no binding of ours
        recorded it, so it is found by one scan of ``sys.modules`` instead.
        """
        if not guards:
            return 0
        restored = 0
        try:
            for owner, name, held in find_aliases(guards, _ALIAS_SCAN_SKIP):
                guard = held.__func__ if isinstance(held, staticmethod) else held
                original = guard.__wrapped__
                try:
                    setattr(owner, name, staticmethod(original) if isinstance(held, staticmethod) else original)
                    restored += 1
                except (AttributeError, TypeError):
                    continue
        except Exception as exc:
            self.reporter.internal_error("quantguard", "unpatch", exc)
        return restored

    # -- lifecycle -----------------------------------------------------------------------
    def reconfigure(self, config: Config) -> None:
        with self._lock:
            self.config = config
            self.reporter.reconfigure(config)
            self.sampler = Sampler(config.sample_rate, config.sample_first, config.max_samples_per_second, config.seed)
            self._platform = None
            if self._executor is not None:
                self._executor.capacity = config.shadow_queue_size
            for target, applied in list(self.applied.items()):
                if applied.status == "patched" and not self.wanted(applied.contract):
                    for binding in reversed(applied.bindings):
                        binding.restore()
                    del self.applied[target]
            for applied in self.applied.values():
                if applied.state is not None:
                    applied.state.configure()
            self.apply_all()

    def call_counts(self) -> dict[str, int]:
        """Guarded calls per target made by this process (a forked child counts from its fork, like its stats)."""
        inherited = self._calls_at_fork
        return {
            target: applied.state.calls_so_far() - inherited.get(target, 0)
            for target, applied in self.applied.items()
            if applied.state is not None
        }

    def summary(self) -> dict[str, Any]:
        if self._executor is not None:
            self._executor.flush()
        self.reporter.flush()
        summary = self.reporter.stats.snapshot(self.call_counts())
        summary["graphs"] = self.graphs.summary()
        summary["eager_snapshots"] = self.snapshots.summary()
        return summary

    def emit_summary(self) -> dict[str, Any]:
        summary = self.summary()
        events.emit(events.SUMMARY, "info", **summary)
        return summary

    def after_fork(self) -> None:
        self._lock = threading.RLock()
        # The guards' call counters live on in the child; its stats start empty: so do its call counts,
        # or per-process summaries summed by a report would count the parent's calls twice.
        self._calls_at_fork = {}
        self._calls_at_fork = self.call_counts()
        self.reporter.after_fork()
        self.sampler.after_fork()
        self.provenance.after_fork()
        self.snapshots.after_fork()
        if self._executor is not None:
            self._executor.after_fork()
