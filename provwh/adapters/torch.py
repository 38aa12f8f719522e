"""PyTorch capture: ``@flowcept_torch`` for ``nn.Module`` classes, and epoch/batch loops.

Each ``forward`` call of a decorated module is a task (``subtype="parent_forward"``,
``activity_id`` = the class name) whose ``used`` / ``generated`` describe tensors by shape,
dtype and device rather than by value: tensors are too big to store and their values are
rarely what provenance questions ask about. Child modules can be captured too
(``subtype="child_forward"``, parent = the parent's forward task) through PyTorch's own forward
hooks, installed only while a capture runs so that an idle model pays one check per call.

The model's profile (parameter counts, module list) goes into the workflow record once per
controller, under ``custom_metadata.model_profiles[<class name>]``: keyed because a workflow
may train several models (GAN, teacher/student) and workflow updates merge one level deep.

This module imports torch; ``import provwh`` does not import it.
"""

from __future__ import annotations

import functools
import inspect
import sys
import weakref
from collections.abc import Callable, Iterator, Sized
from time import time
from typing import Any

import torch
from torch import nn

from provwh.capture import context
from provwh.capture.args import make_binder, make_output_mapper
from provwh.capture.loops import FlowceptLightweightLoop, FlowceptLoop
from provwh.core.ids import current_task_id, current_workflow_id, new_task_id
from provwh.core.model import task_record
from provwh.core.text import error_text

__all__ = [
    "FlowceptBatchLoop",
    "FlowceptEpochLoop",
    "describe",
    "flowcept_torch",
    "model_profile",
]

_active = context.active_controller
_current_task = current_task_id
_current_workflow = current_workflow_id.get
_new_id = new_task_id
_map_output = make_output_mapper(None)

# Options a decorated class's constructor accepts (and hides from the class's own __init__).
_CTOR_OPTIONS = ("get_profile", "custom_metadata", "children", "telemetry", "capture_enabled")
_MAX_ITEMS = 32  # elements of a list/tuple/dict described before "..." (keeps records small)
_MAX_DEPTH = 4
_MAX_PROFILE_MODULES = 500


# -- describing values --------------------------------------------------------------------------
def describe(value: Any, _depth: int = 0) -> Any:
    """A JSON-friendly stand-in for a forward argument or result: tensors become
    ``{"shape", "dtype", "device"}``, containers are described item by item, modules by class
    name, other values stay as they are (the batch writer handles what JSON cannot hold)."""
    if isinstance(value, torch.Tensor):
        return {
            "shape": list(value.shape),
            "dtype": str(value.dtype).removeprefix("torch."),
            "device": str(value.device),
        }
    if isinstance(value, nn.Module):
        return f"<{type(value).__name__}>"
    if _depth >= _MAX_DEPTH:
        return value
    if isinstance(value, (list, tuple)):
        out = [describe(v, _depth + 1) for v in value[:_MAX_ITEMS]]
        if len(value) > _MAX_ITEMS:
            out.append(f"... {len(value) - _MAX_ITEMS} more")
        return out
    if isinstance(value, dict):
        out_d = {}
        for i, (k, v) in enumerate(value.items()):
            if i == _MAX_ITEMS:
                out_d["..."] = f"{len(value) - _MAX_ITEMS} more"
                break
            out_d[k] = describe(v, _depth + 1)
        return out_d
    return value


def _describe_used(used: dict[str, Any]) -> dict[str, Any]:
    return {k: describe(v) for k, v in used.items()}


# -- model profile -------------------------------------------------------------------------------
def model_profile(model: nn.Module) -> dict[str, Any]:
    """Parameter counts and the module list (path, class, parameters) of ``model``."""
    n_params = n_trainable = n_bytes = 0
    dtypes: set[str] = set()
    for p in model.parameters():
        k = p.numel()
        n_params += k
        n_bytes += k * p.element_size()
        dtypes.add(str(p.dtype).removeprefix("torch."))
        if p.requires_grad:
            n_trainable += k
    modules = []
    n_modules = 0
    for path, module in model.named_modules():
        n_modules += 1
        if len(modules) < _MAX_PROFILE_MODULES:
            modules.append(
                {
                    "path": path,
                    "type": type(module).__name__,
                    "n_params": sum(p.numel() for p in module.parameters()),
                }
            )
    profile = {
        "class": type(model).__name__,
        "n_params": n_params,
        "n_trainable_params": n_trainable,
        "param_bytes": n_bytes,
        "param_dtypes": sorted(dtypes),
        "n_modules": n_modules,
        "modules": modules,
    }
    if n_modules > len(modules):
        profile["modules_truncated"] = n_modules - len(modules)
    return profile


# Per controller: {"keys": model -> key in model_profiles, "profiles": key -> profile}.
_profiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _put_profile(ctl: Any, model: nn.Module) -> None:
    state = _profiled.get(ctl)
    if state is None:
        state = _profiled[ctl] = {"keys": weakref.WeakKeyDictionary(), "profiles": {}}
    if model in state["keys"]:
        return
    profiles = state["profiles"]
    name = type(model).__name__
    key, n = name, 1
    while key in profiles:  # a second model of the same class: Net_2, Net_3...
        n += 1
        key = f"{name}_{n}"
    state["keys"][model] = key
    profiles[key] = model_profile(model)
    # Workflow updates merge one level deep: send every profile so far, not just this one.
    ctl.update_workflow(custom_metadata={"model_profiles": dict(profiles)})


# -- options and state of decorated models ------------------------------------------------------
class _Options:
    __slots__ = ("get_profile", "custom_metadata", "children", "telemetry", "capture_enabled")

    def __init__(
        self,
        get_profile: bool = True,
        custom_metadata: dict | None = None,
        children: bool | str = False,
        telemetry: bool | None = None,
        capture_enabled: bool = True,
    ) -> None:
        if children not in (False, True, "all"):
            raise ValueError(f"children must be False, True or 'all', not {children!r}")
        self.get_profile = bool(get_profile)
        self.custom_metadata = dict(custom_metadata) if custom_metadata else None
        self.children = children
        self.telemetry = telemetry
        self.capture_enabled = bool(capture_enabled)

    def updated(self, overrides: dict[str, Any]) -> _Options:
        values = {name: getattr(self, name) for name in self.__slots__}
        values.update(overrides)
        return _Options(**values)


_instance_options: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_hooked: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> hook handles


def _options_of(model: nn.Module) -> _Options:
    opts = _instance_options.get(model)
    return opts if opts is not None else type(model).__provwh_torch__


def _telemetry_of(ctl: Any, opts: _Options) -> Any:
    if opts.telemetry is None:
        return ctl.telemetry
    return ctl.forced_telemetry if opts.telemetry else None


def _base_record(ctl: Any, activity_id: str, subtype: str, used: dict) -> dict:
    wf = _current_workflow() or ctl.current_workflow_id
    rec = task_record(_new_id(), wf, ctl.campaign_id, activity_id, used)
    rec["subtype"] = subtype
    parent = _current_task.get()
    if parent is not None:
        rec["parent_task_id"] = parent
    return rec


def _finish(ctl: Any, rec: dict, tel: Any, result: Any, exc: BaseException | None) -> None:
    rec["ended_at"] = time()
    if exc is None:
        rec["status"] = "FINISHED"
        generated = _map_output(describe(result))
        if generated is not None:
            rec["generated"] = generated
    else:
        rec["status"] = "ERROR"
        rec["stderr"] = error_text(exc)
    if tel is not None:
        rec["telemetry_at_end"] = tel.snapshot()
    ctl.batch_buffer.put(rec)


# -- child modules: forward hooks ----------------------------------------------------------------
def _child_modules(model: nn.Module, which: bool | str) -> Iterator[tuple[str, nn.Module]]:
    pairs = model.named_modules() if which == "all" else model.named_children()
    for path, module in pairs:
        # The model itself, and decorated modules (they record their own forward), are skipped.
        if module is model or hasattr(type(module), "__provwh_torch__"):
            continue
        yield path, module


def _install_child_hooks(model: nn.Module, opts: _Options) -> None:
    handles = []
    for path, module in _child_modules(model, opts.children):
        pre, post = _child_hooks(path, opts)
        handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(module.register_forward_hook(post, always_call=True))
    _hooked[model] = handles


def _remove_child_hooks(model: nn.Module) -> None:
    for handle in _hooked.pop(model, ()):
        handle.remove()


def _child_hooks(path: str, opts: _Options) -> tuple[Callable, Callable]:
    """A pre/post hook pair for one child: the pre hook opens the task, the post hook (always
    called, also when forward raises) closes it. A stack allows re-entrant calls."""
    stack: list[tuple[Any, dict, Any, Any, Any]] = []
    metadata = {**(opts.custom_metadata or {}), "module_path": path}
    binders: dict[type, Callable] = {}

    def pre(module: nn.Module, args: tuple, kwargs: dict) -> None:
        ctl = _active()
        if ctl is None or not ctl.capturing:
            stack.append((None, {}, None, None, None))
            return
        cls = type(module)
        bind = binders.get(cls)
        if bind is None:
            bind = binders[cls] = make_binder(cls.forward)
        used = _describe_used(bind((module, *args), kwargs))
        rec = _base_record(ctl, cls.__name__, "child_forward", used)
        rec["custom_metadata"] = metadata
        tel = _telemetry_of(ctl, opts)
        if tel is not None:
            rec["telemetry_at_start"] = tel.snapshot()
        rec["started_at"] = time()
        # The post hook runs on success and on error alike; an exception being handled now
        # (forward called inside an ``except`` block) must not read as this call's error.
        handled = sys.exc_info()[1]
        stack.append((ctl, rec, tel, _current_task.set(rec["task_id"]), handled))

    def post(module: nn.Module, args: tuple, result: Any) -> None:
        if not stack:
            return
        ctl, rec, tel, token, handled = stack.pop()
        if ctl is None:
            return
        try:
            _current_task.reset(token)
        except ValueError:  # reset from another context: leave the variable as it is
            pass
        exc = sys.exc_info()[1]
        _finish(ctl, rec, tel, result, exc if exc is not handled else None)

    return pre, post


# -- the decorator -------------------------------------------------------------------------------
def _wrap_forward(cls: type) -> None:
    forward = cls.forward
    if getattr(forward, "__provwh_torch_wrapper__", False):
        return  # inherited from a decorated class: wrapping again would record each call twice
    bind = make_binder(forward)

    @functools.wraps(forward)
    def wrapped_forward(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
        ctl = _active()
        if ctl is None or not ctl.capturing:
            if _hooked and self in _hooked:  # capture ended: hooks go, the model runs bare
                _remove_child_hooks(self)
            return forward(self, *args, **kwargs)
        opts = _options_of(self)
        if not opts.capture_enabled:
            return forward(self, *args, **kwargs)
        if opts.get_profile:
            _put_profile(ctl, self)
        if opts.children and self not in _hooked:
            _install_child_hooks(self, opts)
        used = _describe_used(bind((self, *args), kwargs))
        rec = _base_record(ctl, type(self).__name__, "parent_forward", used)
        if opts.custom_metadata:
            rec["custom_metadata"] = opts.custom_metadata
        tel = _telemetry_of(ctl, opts)
        if tel is not None:
            rec["telemetry_at_start"] = tel.snapshot()
        token = _current_task.set(rec["task_id"])
        rec["started_at"] = time()
        try:
            result = forward(self, *args, **kwargs)
        except BaseException as exc:
            _current_task.reset(token)
            _finish(ctl, rec, tel, None, exc)
            raise
        _current_task.reset(token)
        _finish(ctl, rec, tel, result, None)
        return result

    wrapped_forward.__provwh_torch_wrapper__ = True
    cls.forward = wrapped_forward


def _wrap_init(cls: type) -> None:
    init = cls.__init__
    if getattr(init, "__provwh_torch_wrapper__", False):
        return
    try:
        own = set(inspect.signature(init).parameters)
    except (TypeError, ValueError):
        own = set()
    ours = tuple(name for name in _CTOR_OPTIONS if name not in own)

    @functools.wraps(init)
    def wrapped_init(self: nn.Module, *args: Any, **kwargs: Any) -> None:
        overrides = {name: kwargs.pop(name) for name in ours if name in kwargs}
        init(self, *args, **kwargs)
        if overrides:
            _instance_options[self] = type(self).__provwh_torch__.updated(overrides)

    wrapped_init.__provwh_torch_wrapper__ = True
    cls.__init__ = wrapped_init


def flowcept_torch(
    cls: type | None = None,
    *,
    children: bool | str = False,
    get_profile: bool = True,
    custom_metadata: dict | None = None,
    telemetry: bool | None = None,
) -> Any:
    """Capture each ``forward`` call of an ``nn.Module`` class as a task.

    Usable bare (``@flowcept_torch``) or with options: ``children`` (``True``: direct child
    modules are tasks too; ``"all"``: every descendant), ``get_profile`` (model profile in the
    workflow record), ``custom_metadata`` (added to every forward task), ``telemetry``
    (``None``: as ``telemetry_capture.enabled`` says; ``True`` / ``False``: always / never).
    The same names, plus ``capture_enabled``, are accepted by the class's constructor for one
    instance (unless its ``__init__`` declares them itself). The class is modified in place,
    so it pickles and subclasses as before.
    """
    if cls is None:
        return lambda c: flowcept_torch(
            c,
            children=children,
            get_profile=get_profile,
            custom_metadata=custom_metadata,
            telemetry=telemetry,
        )
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f"@flowcept_torch decorates nn.Module classes, not {cls!r}")
    already = "__provwh_torch__" in cls.__dict__
    cls.__provwh_torch__ = _Options(get_profile, custom_metadata, children, telemetry)
    if not already:
        _wrap_forward(cls)
        _wrap_init(cls)
    return cls


# -- epoch and batch loops -----------------------------------------------------------------------
class _LinkedLoop:
    """A ``FlowceptLoop`` whose current iteration is the running task while its body runs, so
    tasks inside (a nested loop, a model's forward) record it as their parent."""

    loop_name = "loop"
    default_item_name = "item"

    def __init__(
        self,
        items: Any,
        item_name: str | None = None,
        lightweight: bool = False,
        parent_task_id: str | None = None,
        items_length: int = 0,
        capture_enabled: bool = True,
        *,
        whole_loop: bool = False,
    ) -> None:
        if isinstance(items, int) and not isinstance(items, bool):
            items = range(items)
        ctl = _active()
        self._items = items
        self.capturing = bool(capture_enabled and ctl is not None and ctl.capturing)
        self._current: list[Any] = [None]
        if not self.capturing:
            self._loop = None
            return
        if items_length:
            length = int(items_length)
        elif isinstance(items, Sized):
            length = len(items)
        else:  # FlowceptLoop would materialize an iterator without a length: do it here
            items = self._items = list(items)
            length = len(items)
        loop_cls = FlowceptLightweightLoop if lightweight else FlowceptLoop
        self._loop = loop_cls(
            self._described(iter(items)),
            loop_name=self.loop_name,
            item_name=item_name or self.default_item_name,
            parent_task_id=parent_task_id,
            items_length=length,
            whole_loop=whole_loop,
        )

    def _described(self, real: Iterator) -> Iterator:
        current = self._current
        for item in real:
            current[0] = item
            yield describe(item)

    def __len__(self) -> int:
        if self._loop is not None:
            return len(self._loop)
        return len(self._items)

    def __iter__(self) -> Iterator:
        if self._loop is None:
            return iter(self._items)
        return self._iterate()

    def _iterate(self) -> Iterator:
        loop, current = self._loop, self._current
        token = None
        try:
            for _ in loop:
                tid = loop.get_current_iteration_id()
                if token is None:
                    token = _current_task.set(tid)
                else:
                    _current_task.set(tid)
                yield current[0]
        finally:
            if token is not None:
                try:
                    _current_task.reset(token)
                except ValueError:  # closed from another context
                    pass

    def end_iter(self, generated_value: dict) -> None:
        """Attach the values produced by the current iteration (its ``generated``)."""
        if self._loop is not None:
            self._loop.end_iter(generated_value)

    def get_current_iteration_id(self) -> str | None:
        return self._loop.get_current_iteration_id() if self._loop is not None else None

    @property
    def whole_loop_task_id(self) -> str | None:
        return self._loop.whole_loop_task_id if self._loop is not None else None


class FlowceptEpochLoop(_LinkedLoop):
    """Epochs: one ``epochs_iteration`` task per epoch (``used={"epoch": ..., "i": ...}``,
    sharing a ``group_id``); pass an int or an iterable of epochs. ``whole_loop=True`` adds
    an ``epochs`` task, parent of the iterations."""

    loop_name = "epochs"
    default_item_name = "epoch"


class FlowceptBatchLoop(_LinkedLoop):
    """Batches (e.g. a ``DataLoader``): one ``batches_iteration`` task per batch, child of the
    current epoch, with the batch described by shape and dtype (``whole_loop=True``: with a
    ``batches`` task between them and the epoch)."""

    loop_name = "batches"
    default_item_name = "batch"
