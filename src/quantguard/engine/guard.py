"""The wrapper around one guarded function, and its per-call flow.

Hot path (every call): the metadata signature built from a few attribute
reads, one dict lookup for the cached plan, and one counter that also decides
sampling.  When the plan is quiet and the call is not sampled, the original is
called directly.  Everything else — re-entrancy, binding arguments, reporting
cached violations, policy, data checks, shadow references — happens on the
slow path, only for calls that need it.

The wrapper is a ``wrapt.FunctionWrapper`` (so ``__wrapped__``,
introspection, ``isinstance`` and descriptor binding behave like the original)
whose ``__call__`` is generated for its contract: the signature tuple is
spelled out for that function's parameters and the per-guard state is bound
as closure variables, which is what keeps the added cost near a bare wrapt
pass-through.  A hand-written closure cannot read the parameters inline: with
one reader call or branch per key parameter it measured 8-11% slower
(``benchmarks/README.md``).
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import wrapt

from quantguard.contracts.base import Contract, KeyParam
from quantguard.engine.calls import Binder, CallRecord, tensor_meta
from quantguard.engine.policy import PROCEED, register_guard_code
from quantguard.errors import QuantGuardError
from quantguard.reentrancy import is_suppressed

if TYPE_CHECKING:  # pragma: no cover
    from quantguard.checks.base import Finding
    from quantguard.engine.runtime import Runtime

__all__ = ["DispatchGuard", "Guard", "GuardState", "Plan", "make_dispatch_guard", "make_guard", "guard_of"]

_MAX_PLANS = 4096
_NEVER = sys.maxsize


class Plan:
    """The cached verdict for one metadata signature of one target.

    ``hot`` means nothing to report, nothing to wrap and no inspection budget
    left: a call with this signature that is not sampled goes straight to the
    original.
    """

    __slots__ = ("hot", "budget", "findings", "blocked", "around", "identity")

    def __init__(
        self,
        findings: tuple[Finding, ...],
        blocked: Finding | None,
        around: tuple[Any, ...],
        budget: int,
        identity: tuple[tuple[int, Any], ...],
    ) -> None:
        self.findings = findings
        self.blocked = blocked
        self.around = around
        self.budget = budget
        self.identity = identity
        self.hot = self.quiet and budget <= 0

    @property
    def quiet(self) -> bool:
        return not self.findings and self.blocked is None and not self.around


class GuardState:
    """Per-target state shared by the wrapper and its bound variants."""

    __slots__ = (
        "contract",
        "runtime",
        "binder",
        "plans",
        "hot",
        "calls",
        "next_sample",
        "sampler",
        "memo",
        "plan_checks",
        "data_checks",
        "around_checks",
        "key_params",
        "_identity_refs",
        "pending_error",
        "disabled_checks",
        "retired",
        "compiled_id",
        "__weakref__",
    )

    def __init__(
        self,
        contract: Contract,
        original: Any,
        runtime: Runtime,
        disabled_checks: frozenset[str] = frozenset(),
        binder: Binder | None = None,
    ) -> None:
        from quantguard.checks import get_check  # the package: importing it registers the built-in checks
        from quantguard.engine.compiled import register_state
        from quantguard.engine.custom_ops import install_static_scan_lookup

        install_static_scan_lookup()

        self.contract = contract
        self.runtime = runtime
        self.binder = binder if binder is not None else Binder(original, contract.params, contract.signature_of)
        self.plans: dict[Any, Plan] = {}
        #: Signatures whose plan is hot; the generated ``__call__`` holds this set, so it is never replaced.
        self.hot: set[Any] = set()
        #: Guarded calls so far; the call's index is this count after its own increment (see ``_FAST_PATH``).
        self.calls = 0
        self.disabled_checks = disabled_checks
        checks = [get_check(name) for name in contract.checks if name not in disabled_checks]
        self.plan_checks = tuple(c for c in checks if c.phase == "plan")
        self.data_checks = tuple(c for c in checks if c.phase == "data")
        self.around_checks = tuple(c for c in checks if c.phase == "around")
        self.key_params = contract.key_params
        self._identity_refs: dict[int, Any] = {}
        self.pending_error: QuantGuardError | None = None
        #: Set by ``disable()``: a guard something still holds becomes a plain pass-through.
        self.retired = False
        self.next_sample: int = _NEVER
        #: Per-target memory checks may keep between calls (e.g. weights already verified).
        self.memo: dict[str, Any] = {}
        #: Index compiled graphs use to reach this state from their observer op (see ``engine.compiled``).
        self.compiled_id = register_state(self)
        self.configure()

    def data_check(self, name: str) -> Any:
        """This target's data check called ``name`` (None when the contract has none, or it is disabled)."""
        return next((check for check in self.data_checks if check.name == name), None)

    # -- configuration -------------------------------------------------------------------
    @property
    def inspectable(self) -> bool:
        return bool(self.data_checks) and self.runtime.inspection_enabled

    def configure(self) -> None:
        """(Re)read sampling settings and forget cached verdicts (they depend on config)."""
        self.sampler = self.runtime.sampler
        self.plans.clear()
        self.hot.clear()
        self.schedule(self.calls)

    def schedule(self, index: int) -> None:
        """Pick the call index of the next sampled call after ``index``.

        While a CUDA graph is captured (on any thread) every call must take
        the slow path, so the fast path stays closed until the capture ends.
        """
        gap = self.sampler.next_gap() if self.inspectable else _NEVER
        if self.runtime.graphs.capturing:
            self.runtime.graphs.defer_schedule(self, index + gap)
            return
        self.next_sample = index + gap

    def calls_so_far(self) -> int:
        """Guarded calls made so far."""
        return self.calls

    # -- plans ---------------------------------------------------------------------------
    def generic_key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        """The signature for arguments the generated fast key could not read (odd types)."""
        binder = self.binder
        values: list[Any] = ["generic"]
        for param in self.key_params:
            position = binder.position(param.name)
            value = args[position] if 0 <= position < len(args) else kwargs.get(param.name, binder.default(param.name))
            values.append(id(value) if param.kind == "identity" and hasattr(value, "shape") else tensor_meta(value))
        return tuple(values)

    def plan_for(self, key: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Plan:
        """Run the plan-phase checks for a new signature and cache the verdict."""
        findings: list[Finding] = []
        blocked = None
        identity: tuple[tuple[int, Any], ...] = ()
        try:
            record = CallRecord(self, args, kwargs, layer=self.runtime.current_layer())
            identity = self._identity_metadata(record)
            if has_empty_tensor(record.arguments):
                # an MoE expert that got no tokens: a valid call with nothing to check
                plan = Plan((), None, self.around_checks, 0, identity)
                self.plans[key] = plan
                if plan.hot:
                    self.hot.add(key)
                return plan
            for check in self.plan_checks:
                try:
                    if not check.applies(record):
                        continue
                    for finding in check.check(record):
                        if finding.check == "blocked":
                            blocked = finding
                        else:
                            findings.append(finding)
                except Exception as exc:
                    self.internal_error(check.name, exc)
        except Exception as exc:
            self.internal_error("plan", exc)
        budget = self.sampler.first if self.inspectable else 0
        plan = Plan(tuple(findings), blocked, self.around_checks, budget, identity)
        if len(self.plans) >= _MAX_PLANS:
            self.plans.clear()
            self.hot.clear()
        self.plans[key] = plan
        if plan.hot:
            self.hot.add(key)
        return plan

    def _identity_metadata(self, record: CallRecord) -> tuple[tuple[int, Any], ...]:
        """Metadata of identity-keyed tensors (re-verified on inspected calls); tracks their lifetime."""
        result = []
        for param in self.key_params:
            value = record.get(param.name) if param.kind == "identity" else None
            if value is None or not hasattr(value, "shape"):
                continue
            result.append((id(value), tensor_meta(value)))
            self._track(value)
        return tuple(result)

    def _track(self, value: Any) -> None:
        """Forget plans keyed by this object's id when it dies, so a reused id is never trusted."""
        identity = id(value)
        if identity in self._identity_refs:
            return
        state_ref = weakref.ref(self)

        def forget(_: Any, identity: int = identity) -> None:
            state = state_ref()
            if state is not None:
                state._identity_refs.pop(identity, None)
                state._drop_plans(lambda key, plan: identity in key)

        try:
            self._identity_refs[identity] = weakref.ref(value, forget)
        except TypeError:
            pass

    def _drop_plans(self, condition: Callable[[Any, Plan], bool]) -> None:
        for key, plan in list(self.plans.items()):
            if condition(key, plan):
                self.plans.pop(key, None)
                self.hot.discard(key)

    def retire(self) -> None:
        """quantguard was disabled: no more checks, events or sampling from this guard."""
        self.retired = True
        self.next_sample = _NEVER
        self.plans.clear()
        self.hot.clear()

    def cool_down(self) -> None:
        """Send every call through the slow path (a deferred error must be raised by the next call)."""
        self.hot.clear()
        for plan in self.plans.values():
            plan.hot = False

    def _identity_changed(self, plan: Plan, record: CallRecord) -> bool:
        by_id = {id(value): value for value in record.arguments.values()}
        return any(identity in by_id and tensor_meta(by_id[identity]) != meta for identity, meta in plan.identity)

    # -- slow path -----------------------------------------------------------------------
    def call(
        self,
        wrapped: Callable[..., Any],
        key: Any,
        plan: Plan | None,
        index: int,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """The slow path: plan verdicts, policy, findings, and (if admitted) the data checks.

        A call being recorded into a CUDA graph is not sampled (every replay
        runs it; the snapshot kernel recorded after it samples on the device)
        and reads no tensor data; a deferred ``mode="raise"`` error waits for
        the first call after the capture.
        """
        if self.retired or is_suppressed():
            return wrapped(*args, **kwargs)
        runtime = self.runtime
        captured = bool(runtime.graphs.capturing) and self._graph_capture_path()
        try:
            if self.pending_error is not None and not captured:
                error, self.pending_error = self.pending_error, None
                raise error
            if key is None:
                key = self.generic_key(args, kwargs)
            plan = self.plans.get(key) if plan is None else plan
            if plan is None:
                plan = self.plan_for(key, args, kwargs)
            budgeted = plan.budget > 0
            inspect = False if captured else self._admit(plan, key, index)
            record = CallRecord(self, args, kwargs, layer=runtime.current_layer())
            record.index = index
            if inspect and plan.identity and self._identity_changed(plan, record):
                self._drop_plans(lambda k, p: p is plan)
                plan = self.plan_for(key, args, kwargs)
            if plan.blocked is not None:
                outcome = runtime.policy.on_blocked(self, record, plan.blocked, wrapped)
                if outcome is not PROCEED:
                    return outcome
            for finding in plan.findings:
                runtime.reporter.report(self, record, finding)
            admitted = inspect
            if inspect or (runtime.provenance.live and not captured):
                inspect = runtime.should_inspect(self, record, inspect)
            light = admitted and inspect and self._light(key, record, budgeted)
            if inspect:
                runtime.reporter.stats.add_sampled(self.contract.target)
            session = runtime.begin_inspection(self, record) if inspect and not light else None
        except QuantGuardError:
            raise
        except Exception as exc:
            self.internal_error("graph_capture" if captured else "call", exc)
            return wrapped(*args, **kwargs)
        result = self._invoke(wrapped, plan, record, args, kwargs)
        if captured:
            self.record_into_graph(record, result)
        if light:
            session = self._light_sample(key, record, result)
        if session is not None:
            try:
                session.finish(result)
            except QuantGuardError:
                raise
            except Exception as exc:
                self.internal_error("inspection", exc)
        return result

    def _light(self, key: Any, record: CallRecord, budgeted: bool) -> bool:
        """Whether a sampled call is judged from one device snapshot instead of every data check
        (:mod:`quantguard.engine.eager_snapshots`); a signature's first calls are always thorough."""
        snapshots = self.runtime.snapshots
        if budgeted:
            snapshots.note_thorough(self, record)
            return False
        return snapshots.wanted(self, key, record)

    def _light_sample(self, key: Any, record: CallRecord, result: Any) -> Any:
        """Enqueue the light sample; a call the snapshot cannot cover gets the thorough checks (after the fact)."""
        try:
            if self.runtime.snapshots.sample(self, key, record, result):
                return None
            return self.runtime.begin_inspection(self, record, before_call=False)
        except QuantGuardError:
            raise
        except Exception as exc:
            self.internal_error("eager_snapshot", exc)
            return None

    def _graph_capture_path(self) -> bool:
        """Whether this call is being recorded into a CUDA graph (errors fail open: treated as not)."""
        try:
            return self.runtime.graphs.in_capture()
        except Exception as exc:
            self.internal_error("graph_capture", exc)
            return False

    def record_into_graph(self, record: CallRecord, result: Any) -> None:
        if has_empty_tensor(record.arguments):
            return
        try:
            self.runtime.graphs.captured(self, record, result)
        except Exception as exc:
            self.internal_error("graph_capture", exc)

    def _admit(self, plan: Plan, key: Any, index: int) -> bool:
        """Whether this call is inspected: the signature's first calls, then the sampler's picks."""
        if plan.budget > 0:
            plan.budget -= 1
            plan.hot = plan.quiet and plan.budget <= 0
            if plan.hot:
                self.hot.add(key)
            return True
        if index >= self.next_sample:
            self.schedule(index)
            return self.sampler.admit()
        return False

    def observe(self, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
        """A call that already ran (in a compiled graph): count it, judge it, report it.

        The same plan verdicts, sampling and data checks as :meth:`call`; what
        needs the moment before the kernel (around-phase checks, checks that
        snapshot inputs in ``prepare``, rerouting) cannot apply.  A blocked
        kernel is reported, and raises under ``on_block`` raise/reroute.
        """
        self.calls = index = self.calls + 1
        if self.retired or is_suppressed():
            return
        runtime = self.runtime
        try:
            key = self.generic_key(args, kwargs)
            plan = self.plans.get(key)
            if plan is None:
                plan = self.plan_for(key, args, kwargs)
            captured = bool(runtime.graphs.capturing) and self._graph_capture_path()
            budgeted = plan.budget > 0
            inspect = False if captured else self._admit(plan, key, index)
            record = CallRecord(self, args, kwargs, layer=runtime.current_layer())
            record.index = index
            if plan.blocked is not None:
                runtime.policy.after_the_fact(self, record, plan.blocked)
            for finding in plan.findings:
                runtime.reporter.report(self, record, finding)
            if captured:
                self.record_into_graph(record, result)
                return
            admitted = inspect
            if inspect or runtime.provenance.live:
                inspect = runtime.should_inspect(self, record, inspect)
            if inspect:
                runtime.reporter.stats.add_sampled(self.contract.target)
            if admitted and inspect and self._light(key, record, budgeted):
                session = self._light_sample(key, record, result)
            else:
                session = runtime.begin_inspection(self, record, before_call=False) if inspect else None
            if session is not None:
                session.finish(result)
        except QuantGuardError:
            raise
        except Exception as exc:
            self.internal_error("compiled", exc)

    def _invoke(
        self, wrapped: Callable[..., Any], plan: Plan, record: CallRecord, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if not plan.around:
            return wrapped(*args, **kwargs)

        def report(finding: Finding) -> None:
            self.runtime.reporter.report(self, record, finding)

        def chain(check: Any, inner: Callable[[], Any]) -> Callable[[], Any]:
            def run() -> Any:
                reached = False

                def proceed() -> Any:
                    nonlocal reached
                    reached = True
                    return inner()

                try:
                    return check.around(record, proceed, report)
                except QuantGuardError:
                    raise
                except BaseException as exc:
                    if reached:  # the call's own outcome (or the check's deliberate conversion of it)
                        raise
                    self.internal_error(check.name, exc)  # a failure of the check itself: fail open
                    return inner()

            return run

        proceed: Callable[[], Any] = lambda: wrapped(*args, **kwargs)  # noqa: E731
        for check in reversed(plan.around):
            proceed = chain(check, proceed)
        return proceed()

    def internal_error(self, check: str, exc: BaseException) -> None:
        try:
            self.runtime.reporter.internal_error(self.contract.target, check, exc)
        except Exception:
            pass


def _resolve_qualified(module: str, qualified_name: str) -> Any:
    """Unpickling a guard: the object ``module.qualified_name`` names now."""
    import importlib

    value: Any = importlib.import_module(module)
    for part in qualified_name.split("."):
        value = getattr(value, part)
    return value


def has_empty_tensor(arguments: dict[str, Any]) -> bool:
    """A tensor argument with no elements (M = 0 rows): nothing to inspect in this call."""
    for value in arguments.values():
        numel = getattr(value, "numel", None)
        if numel is not None and hasattr(value, "shape"):
            try:
                if numel() == 0:
                    return True
            except Exception:
                continue
    return False


class Guard(wrapt.FunctionWrapper):
    """A guarded function.  Subclassed per guard with a generated ``__call__``."""

    def __init__(self, wrapped: Any, state: GuardState) -> None:
        super().__init__(wrapped, _bound_wrapper)
        self._self_state = state

    @property
    def quantguard_state(self) -> GuardState:
        return self._self_state

    def __reduce_ex__(self, protocol: Any) -> Any:
        """A pickled guard unpickles to what its name resolves to then: the plain function, or a
        guard where quantguard is enabled (``functools.partial`` of it and ``copy.deepcopy`` work too)."""
        wrapped = self.__wrapped__
        module, name = getattr(wrapped, "__module__", None), getattr(wrapped, "__qualname__", None)
        if module and name and "<locals>" not in name:
            return (_resolve_qualified, (module, name))
        return wrapped.__reduce_ex__(protocol)

    def __deepcopy__(self, memo: Any) -> Guard:
        return self  # a function: copies share it, as copy.deepcopy does for plain functions

    def __copy__(self) -> Guard:
        return self

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        """The guard's own class, not the wrapped function's (wrapt's default).

        TorchDynamo decides how to trace a callable by its class: reported as a
        plain function, the guard would be inlined as the original (unobserved)
        and its guards would fail to install; as itself, Dynamo traces the
        generated ``__call__``, whose compiled branch puts an observer op in
        the graph (``quantguard.engine.compiled``).
        """
        return type(self)


class DispatchGuard:
    """A guard living at an op's dispatch (``custom_ops.DispatchHook``), not at a module attribute.

    The module attribute keeps AITER's own wrapper; ``__wrapped__`` names it so
    the runtime recognises aliases of it.
    """

    __slots__ = ("__wrapped__", "_state", "hook", "kernel", "implementation")

    def __init__(self, wrapped: Any, state: GuardState, hook: Any, kernel: Any, implementation: Any) -> None:
        self.__wrapped__ = wrapped
        self._state = state
        self.hook = hook
        self.kernel = kernel
        #: the Python function the op was made from, where one exists (read by static scans)
        self.implementation = implementation

    @property
    def quantguard_state(self) -> GuardState:
        return self._state


def _bound_wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Path for a guard reached through descriptor binding (a function stored on a class).

    wrapt hands us the bound original; the guard's ``__call__`` takes the plain
    function's arguments, so the bound ``self`` is put back in front.
    """
    function = getattr(wrapped, "__func__", None)
    guard = _GUARDS_BY_ORIGINAL.get(id(function if function is not None else wrapped))
    if guard is None:
        return wrapped(*args, **kwargs)
    if function is not None:
        args = (wrapped.__self__, *args)
    return type(guard).__call__(guard, *args, **kwargs)


_GUARDS_BY_ORIGINAL: weakref.WeakValueDictionary[int, Guard] = weakref.WeakValueDictionary()


def guard_of(function: Any) -> Guard | None:
    """The live guard wrapping ``function``, if any."""
    return _GUARDS_BY_ORIGINAL.get(id(function))


#: The per-call flow both kinds of guard share: the metadata key, the call counter, the fast-path test.
#: The counter is a plain int: reading it does not advance it, and its read-add-store has no call or
#: backward jump in between, the only places where CPython hands the GIL to another thread, so
#: concurrent calls are all counted (``tests/engine/test_runtime_behaviour.py``, 8 threads).
_FAST_PATH = """        try:
{reads}
            key = ({key})
            state.calls = index = state.calls + 1
            fast = key in hot and index < state.next_sample{provenance_test}
        except Exception:
            fast, key = False, None
            state.calls = index = state.calls + 1
"""

_CALL_TEMPLATE = """
def make(state, wrapped, hot, provenance, is_compiling, observe_traced, compiled_id{defaults}):
    def __call__(self, *args, **kwargs):
        if is_compiling():  # traced by Dynamo: the original, then an observer node (engine.compiled)
            result = wrapped(*args, **kwargs)
            observe_traced(compiled_id, args, kwargs, result)
            return result
{fast_path}        if fast:
            return wrapped(*args, **kwargs)
        return state.call(wrapped, key, None, index, args, kwargs)
    return __call__
"""

#: The same flow as a dispatcher kernel: the op's own kernel is reached by redispatching below BackendSelect.
_KERNEL_TEMPLATE = """
def make(state, redispatch, after, partial, hot, provenance{defaults}):
    def kernel(keyset, *args, **kwargs):
        keyset = keyset & after
{fast_path}        if fast:
            return redispatch(keyset, *args, **kwargs)
        return state.call(partial(redispatch, keyset), key, None, index, args, kwargs)
    return kernel
"""


def _key_expression(index: int, param: KeyParam) -> str:
    v = f"v{index}"
    if param.kind == "tensor":
        return f"{v}.shape, {v}.dtype"
    if param.kind == "strided":
        return f"{v}.shape, {v}.dtype, {v}.stride()"
    if param.kind == "identity":
        return f"id({v})"
    if param.kind == "optional":
        return f"None if {v} is None else ({v}.shape, {v}.dtype)"
    return v  # value


def _reads(state: GuardState) -> tuple[list[str], list[str], list[Any]]:
    """Source lines reading each key parameter, fast when required ones come positionally."""
    binder = state.binder
    lines, names, defaults = [], [], []
    required = [
        (i, p, binder.position(p.name))
        for i, p in enumerate(state.key_params)
        if binder.position(p.name) >= 0 and p.name not in binder.defaults
    ]
    optional = [
        (i, p, binder.position(p.name))
        for i, p in enumerate(state.key_params)
        if (i, p, binder.position(p.name)) not in required
    ]
    # the required positional parameters, by position; an op's leading dummy tensor sits before them
    leading = sorted(
        (binder.position(name), name)
        for name in binder.names
        if name not in binder.defaults and binder.position(name) >= 0
    )
    by_name = {p.name: i for i, p in enumerate(state.key_params)}
    lines.append("            n = len(args)")
    if leading and [position for position, _ in leading] == list(range(leading[0][0], leading[-1][0] + 1)):
        # the common call: exactly the required parameters, positionally (one unpack, no index checks)
        slots = ["_"] * leading[0][0] + [f"v{by_name[name]}" if name in by_name else "_" for _, name in leading]
        lines.append(f"            if n == {len(slots)}:")
        lines.append(f"                {', '.join(slots)}{',' if len(slots) == 1 else ''} = args")
        lines.append("            else:")
        lines += [
            f"                v{i} = args[{position}] if n > {position} else kwargs[{p.name!r}]"
            for i, p, position in required
        ] or ["                pass"]
    else:
        lines += [
            f"            v{i} = args[{position}] if n > {position} else kwargs[{p.name!r}]"
            for i, p, position in required
        ]
    for i, p, position in optional:
        default_name = f"D{i}"
        names.append(default_name)
        defaults.append(binder.default(p.name))
        lookup = f"(kwargs.get({p.name!r}, {default_name}) if kwargs else {default_name})"
        if position >= 0:
            lines.append(f"            v{i} = args[{position}] if n > {position} else {lookup}")
        else:
            lines.append(f"            v{i} = {lookup}")
    return lines, names, defaults


def _generate(template: str, state: GuardState, watches_provenance: bool, *leading: Any) -> Callable[..., Any]:
    lines, default_names, defaults = _reads(state)
    keys = [_key_expression(i, p) for i, p in enumerate(state.key_params)]
    key = ", ".join(keys) + ("," if len(keys) == 1 else "") if keys else ""
    fast_path = _FAST_PATH.format(
        reads="\n".join(lines) if lines else "            pass",
        key=key,
        provenance_test=" and not provenance.live" if watches_provenance else "",
    )
    source = template.format(defaults="".join(f", {name}" for name in default_names), fast_path=fast_path)
    namespace: dict[str, Any] = {"__name__": __name__}
    exec(compile(source, f"<quantguard guard {state.contract.target}>", "exec"), namespace)
    entry = namespace["make"](*leading, *defaults)
    register_guard_code(entry.__code__, state.contract.target)
    return entry


def make_guard(original: Any, state: GuardState, watches_provenance: bool) -> Guard:
    """A guard subclass with a ``__call__`` generated for this contract, wrapping ``original``."""
    from torch.compiler import is_compiling

    from quantguard.engine.compiled import observe_traced, observer_op

    observer_op()  # defined before any trace reaches it: tracing must find it ready
    function = getattr(original, "__func__", original)
    call = _generate(
        _CALL_TEMPLATE,
        state,
        watches_provenance,
        state,
        original,
        state.hot,
        state.runtime.provenance,
        is_compiling,
        observe_traced,
        state.compiled_id,
    )
    cls = type(f"Guard[{state.contract.name}]", (Guard,), {"__call__": call, "__module__": __name__})
    guard = cls(original, state)
    _GUARDS_BY_ORIGINAL[id(function)] = guard
    return guard


def make_dispatch_guard(original: Any, op: Any, state: GuardState, watches_provenance: bool) -> DispatchGuard:
    """Guard ``op`` at its dispatch: every call of it, from any caller, runs the contract's checks."""
    import functools

    from quantguard.engine.custom_ops import DispatchHook, after_backend_select, op_implementation

    kernel = _generate(
        _KERNEL_TEMPLATE,
        state,
        watches_provenance,
        state,
        op.redispatch,
        after_backend_select(),
        functools.partial,
        state.hot,
        state.runtime.provenance,
    )
    return DispatchGuard(original, state, DispatchHook(op, kernel), kernel, op_implementation(op))
