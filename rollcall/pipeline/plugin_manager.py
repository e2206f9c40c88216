"""Building the pluggy plugin manager: built-in plugins plus installed ones.

Core built-ins (detector, recognizer, attendance) always run. Optional
plugins run only where an admin enabled them (``rollcall.store.plugin_admin``):
the built-in analyzers ``emotion`` and ``engagement`` (disabled by default)
and third-party plugins from the ``rollcall.plugins`` entry-point group.

A :class:`PluginCatalog` is built once per process (it imports the entry
points, validates every plugin and holds the instances, hence the loaded
models); :meth:`PluginCatalog.manager_for` makes a fresh pluggy manager for
each job with the plugins enabled for that job's course, so enabling or
disabling takes effect with the next job.

A third-party plugin that fails to import, implements an unknown hook or has
a hook with a bad signature is reported (``problem``) and skipped. An optional
plugin that raises during a job is caught: the error is recorded on the job's
manager (:func:`plugin_failures`), the plugin is skipped for the rest of that
job, and the other plugins' results are kept.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import logging
import threading
import traceback
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy
from pydantic import BaseModel

from rollcall import hookspecs
from rollcall.config import Config, ConfigError, validate_plugin_settings
from rollcall.types import PluginFailure, PluginInfo

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "rollcall.plugins"
CORE_PLUGINS = ("detector", "recognizer", "attendance", "report_files")
BUILTIN_ANALYZERS = ("emotion", "engagement")
NOTIFIER_PLUGINS = ("notify_email", "notify_chat")  # built-in, always on (outbox delivery)
BUILTIN_SOURCE = "built-in"


@dataclass(frozen=True, slots=True)
class FaceModels:
    """The resolved model files and the thresholds that belong to them."""

    pack_name: str
    detector_path: Path
    recognizer_path: Path
    match_threshold: float
    cluster_threshold: float

    @property
    def model_key(self) -> str:
        """Names the embedding space; embeddings from another key are never mixed in."""
        size = self.recognizer_path.stat().st_size
        return f"{self.pack_name}/{self.recognizer_path.name}#{size}"


def resolve_face_models(
    config: Config, *, progress: bool = True, allow_download: bool | None = None
) -> FaceModels:
    """Find (or download) the configured model pack; raises ``models.ModelError``.
    ``allow_download`` overrides ``[models] allow_download`` (``models check`` never downloads)."""
    from rollcall.models import get_pack, resolve_pack

    m = config.models
    models_dir = Path(m.dir).expanduser() if m.dir else None
    pack = get_pack(
        m.pack,
        models_dir=models_dir,
        match_threshold=m.match_threshold or None,
        unknown_cluster_threshold=config.recognition.unknown_cluster_threshold or None,
    )
    resolved = resolve_pack(
        pack,
        models_dir=models_dir,
        cache_dir=Path(m.cache_dir).expanduser(),
        allow_download=m.allow_download if allow_download is None else allow_download,
        download_base_url=m.download_base_url,
        progress=progress,
    )
    return FaceModels(
        pack_name=pack.name,
        detector_path=resolved.detector_path,
        recognizer_path=resolved.recognizer_path,
        match_threshold=pack.match_threshold,
        cluster_threshold=pack.unknown_cluster_threshold,
    )


#: The built-in plugins by name: where their classes live. Core code names them here
#: and loads them like any other plugin, never by importing the plugin package (an
#: import-linter contract in pyproject.toml keeps it so), the way datasette
#: registers its own built-ins. The analyzers' model wrappers live beside them.
BUILTINS: dict[str, str] = {
    "detector": "rollcall.plugins.detector:DetectorPlugin",
    "recognizer": "rollcall.plugins.recognizer:RecognizerPlugin",
    "attendance": "rollcall.plugins.attendance:AttendancePlugin",
    "report_files": "rollcall.reports.plugin:ReportFilesPlugin",
    "emotion": "rollcall.plugins.emotion:EmotionPlugin",
    "emotion.model": "rollcall.plugins.emotion:EmotionModel",
    "engagement": "rollcall.plugins.engagement:EngagementPlugin",
    "engagement.model": "rollcall.plugins.engagement:HeadPoseModel",
    "notify_email": "rollcall.plugins.notifiers.email:EmailNotifier",
    "notify_chat": "rollcall.plugins.notifiers.chat:ChatNotifier",
}


def builtin(name: str) -> Any:
    """The class of the built-in plugin ``name`` (a key of :data:`BUILTINS`)."""
    module, _, attr = BUILTINS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def builtin_plugins(config: Config, models: FaceModels) -> list[object]:
    """The core plugins, which every job runs."""
    DetectorPlugin, RecognizerPlugin, AttendancePlugin, ReportFilesPlugin = (
        builtin(n) for n in CORE_PLUGINS
    )
    a, r = config.analysis, config.recognition
    return [
        DetectorPlugin(
            models.detector_path,
            threshold=a.det_threshold,
            min_face_px=a.min_face_px,
            max_side=a.max_side,
            threads=config.models.threads,
        ),
        RecognizerPlugin(
            models.recognizer_path,
            threshold=models.match_threshold,
            min_track_samples=r.min_track_samples,
            vote_share=r.vote_share,
            threads=config.models.threads,
            margin_student=r.margin_student,
            margin_cohort=r.margin_cohort,
            review_slack=r.review_slack,
            review=r.review,
            centroid_above=r.centroid_above,
        ),
        AttendancePlugin(
            min_seconds_per_minute=config.attendance.min_seconds_per_minute,
            absent_below_pct=config.attendance.absent_below_pct,
            late_after_pct=config.attendance.late_after_pct,
            left_early_pct=config.attendance.left_early_pct,
            max_gap_s=r.max_gap_s,
        ),
        ReportFilesPlugin(),
    ]


def analyzer_plugins(config: Config) -> list[object]:
    """The built-in optional analyzers, built from their validated ``[plugins.<name>]``
    settings; their models load on first use."""
    EmotionPlugin, EmotionModel = builtin("emotion"), builtin("emotion.model")
    EngagementPlugin, HeadPoseModel = builtin("engagement"), builtin("engagement.model")
    e, g = config.plugins.emotion, config.plugins.engagement
    return [
        EmotionPlugin(EmotionModel(config.models.dir, config.models.threads), e),
        EngagementPlugin(
            HeadPoseModel(config.models.dir, mode=g.head_pose, threads=config.models.threads),
            g,
        ),
    ]


def report_manager(plugins: list[object] | None = None) -> RollcallPluginManager:
    """A manager for reading stored results back (``rollcall_report_sheets``): the
    built-in analyzers with default settings (``plugins`` to choose others); no model
    is loaded, the analyzers load theirs on first use only."""
    pm = RollcallPluginManager()
    for plugin in plugins if plugins is not None else analyzer_plugins(Config()):
        pm.register(plugin, name=plugin.name)
    return pm


def notifier_plugins() -> list[object]:
    """The built-in notifiers (email, chat); they run in the outbox, not in jobs."""
    return [builtin(name)() for name in NOTIFIER_PLUGINS]


def notifier_manager(
    *,
    db: Any = None,
    entry_points: bool = True,
    plugins: list[object] | None = None,
    config: Config | None = None,
) -> RollcallPluginManager:
    """A manager for delivering notifications: the built-in notifiers, plus the
    third-party plugins implementing ``rollcall_send_notification`` that an admin
    enabled globally (read from ``db``). Errors are not caught: the outbox retries.

    ``config`` gives third-party notifiers their ``[plugins.<name>]`` settings
    (without it, their defaults)."""
    pm = RollcallPluginManager()
    for plugin in plugins if plugins is not None else notifier_plugins():
        pm.register(plugin, name=plugin.name)
    if entry_points and db is not None:
        from rollcall.store.plugin_admin import enabled_plugins

        enabled = enabled_plugins(db, None)
        for found in discover_entry_points(set(NOTIFIER_PLUGINS), config):
            info = found.info
            if (
                found.plugin is not None
                and info.name in enabled
                and "rollcall_send_notification" in info.hooks
            ):
                pm.register(found.plugin, name=info.name)
    return pm


# ---------------------------------------------------------------- discovery


def rollcall_version() -> str:
    try:
        return importlib.metadata.version("rollcall")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def implemented_hooks(plugin: object) -> tuple[str, ...]:
    """Names of the attributes of ``plugin`` marked with ``@hookimpl``."""
    marker = f"{hookspecs.PROJECT}_impl"
    names = []
    for name in dir(plugin):
        try:
            attr = inspect.getattr_static(plugin, name)
        except AttributeError:
            continue
        func = getattr(attr, "__func__", attr)
        if hasattr(func, marker):
            names.append(name)
    return tuple(sorted(names))


def validate_plugin(plugin: object, name: str) -> str:
    """Why ``plugin`` cannot be registered ("" when it can): unknown hooks, bad signatures."""
    hooks = implemented_hooks(plugin)
    if not hooks:
        return "implements no rollcall hook (mark hook functions with @hookimpl)"
    known = {n for n in dir(hookspecs) if n.startswith("rollcall_")}
    unknown = [h for h in hooks if h not in known]
    if unknown:
        return f"unknown hook(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    try:
        pm.register(plugin, name=name)
    except (pluggy.PluginValidationError, ValueError) as exc:
        return f"bad hook implementation: {exc}"
    return ""


@dataclass(frozen=True, slots=True)
class Discovered:
    info: PluginInfo
    plugin: object | None  # None when the plugin cannot be used


def _instantiate(obj: Any) -> object:
    """An entry point names a module, an object, or a class built without arguments."""
    return obj() if inspect.isclass(obj) else obj


def settings_model_of(obj: object) -> type[BaseModel] | None:
    """The settings model a plugin declares (``settings_model``), or None; TypeError
    when it is not a pydantic model class."""
    model = getattr(obj, "settings_model", None)
    if model is None:
        return None
    if not (inspect.isclass(model) and issubclass(model, BaseModel)):
        raise TypeError(
            f"settings_model must be a subclass of rollcall.PluginSettings, got {model!r}"
        )
    return model


def load_plugin(obj: Any, name: str, config: Config) -> object:
    """The plugin an entry point names, with its validated settings as ``settings``.

    The settings (``[plugins.<name>]`` and ``ROLLCALL_PLUGINS_<NAME>_*``) are
    validated before a class is instantiated; raises ConfigError or TypeError.
    """
    settings = validate_plugin_settings(config, name, settings_model_of(obj))
    plugin = _instantiate(obj)
    if settings is not None:
        plugin.settings = settings  # type: ignore[attr-defined]
    return plugin


def discover_entry_points(
    taken: Collection[str] = (), config: Config | None = None
) -> list[Discovered]:
    """Every plugin of the ``rollcall.plugins`` entry-point group, loaded and validated.

    A plugin that declares ``settings_model`` gets its ``[plugins.<name>]``
    settings from ``config`` (default: the built-in defaults, no file).
    Nothing raises: a plugin that fails to import, has invalid settings or
    fails validation comes back with ``problem`` set and no instance, and the
    error is logged.
    """
    config = Config() if config is None else config
    found: list[Discovered] = []
    for ep in sorted(
        importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name
    ):
        dist = getattr(ep, "dist", None)
        version = dist.version if dist is not None else ""
        source = f"{dist.name} {version}" if dist is not None else f"entry point {ep.value}"
        plugin, hooks, problem = None, (), ""
        if ep.name in taken:
            problem = f"name {ep.name!r} is already taken by another plugin"
        else:
            try:
                obj = ep.load()
            except Exception as exc:  # any import-time failure of foreign code
                problem = f"cannot load {ep.value}: {type(exc).__name__}: {exc}"
            else:
                try:
                    plugin = load_plugin(obj, ep.name, config)
                    hooks = implemented_hooks(plugin)
                    problem = validate_plugin(plugin, ep.name)
                except ConfigError as exc:
                    problem = f"invalid settings: {exc}"
                except Exception as exc:  # foreign constructors, settings_model
                    problem = f"cannot load {ep.value}: {type(exc).__name__}: {exc}"
        if problem:
            log.error(
                "plugin skipped",
                extra={"plugin": ep.name, "source": source, "problem": problem},
            )
            plugin = None
        taken = {*taken, ep.name}
        info = PluginInfo(ep.name, version, source, False, hooks, problem)
        found.append(Discovered(info, plugin))
    return found


def describe_plugins(config: Config, *, entry_points: bool = True) -> list[PluginInfo]:
    """Every plugin with its version, source and hooks, without loading any model."""
    version = rollcall_version()
    infos = [
        PluginInfo(
            cls.name,
            version,
            BUILTIN_SOURCE,
            cls.name in CORE_PLUGINS or cls.name in NOTIFIER_PLUGINS,
            implemented_hooks(cls),
        )
        for cls in map(builtin, (*CORE_PLUGINS, *BUILTIN_ANALYZERS, *NOTIFIER_PLUGINS))
    ]
    if entry_points:
        infos += [d.info for d in discover_entry_points({i.name for i in infos}, config)]
    return infos


# ---------------------------------------------------------------- per-job managers


class RollcallPluginManager(pluggy.PluginManager):
    """A pluggy manager for one job; records the failures of optional plugins."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self.failures: list[PluginFailure] = []
        self.infos: dict[str, PluginInfo] = {}
        self._failed: set[str] = set()
        self._failure_lock = threading.Lock()

    def record_failure(self, plugin: str, hook: str, exc: BaseException) -> None:
        with self._failure_lock:
            self._failed.add(plugin)
            self.failures.append(
                PluginFailure(
                    plugin,
                    hook,
                    f"{type(exc).__name__}: {exc}",
                    "".join(traceback.format_exception(exc)),
                )
            )
        log.error(
            "plugin failed; skipped for the rest of this job",
            extra={"plugin": plugin, "hook": hook, "error": f"{type(exc).__name__}: {exc}"},
        )

    def has_failed(self, plugin: str) -> bool:
        return plugin in self._failed


def plugin_failures(pm: pluggy.PluginManager) -> list[PluginFailure]:
    """The failures of optional plugins during the job run with ``pm`` (empty if none)."""
    return list(getattr(pm, "failures", []))


def _guard(pm: RollcallPluginManager, plugin: str, hook: str, func: Callable) -> Callable:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if pm.has_failed(plugin):
            return None
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            pm.record_failure(plugin, hook, exc)
            return None

    guarded.__wrapped__ = func  # type: ignore[attr-defined]
    return guarded


def register_isolated(pm: RollcallPluginManager, plugin: object, name: str) -> None:
    """Register an optional plugin so that an exception in it cannot stop the job."""
    pm.register(plugin, name=name)
    for caller in pm.get_hookcallers(plugin) or []:
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin and not (impl.hookwrapper or impl.wrapper):
                impl.function = _guard(pm, name, caller.name, impl.function)


@dataclass(slots=True)
class PluginCatalog:
    """Every plugin of this process, instantiated once; makes a manager per job."""

    infos: dict[str, PluginInfo]
    core: list[object]
    optional: dict[str, object] = field(default_factory=dict)  # usable optional plugins by name

    def manager_for(self, enabled: Collection[str]) -> RollcallPluginManager:
        """A new manager with the core plugins and the usable ``enabled`` optional ones.

        Optional plugins are registered after the core ones, built-in analyzers
        first, then third-party plugins by name; pluggy calls the last
        registered first.
        """
        pm = RollcallPluginManager()
        pm.infos = dict(self.infos)
        for plugin in self.core:
            pm.register(plugin, name=plugin.name)
        for name, plugin in self.optional.items():
            if name in enabled:
                register_isolated(pm, plugin, name)
        unknown = set(enabled) - set(self.optional) - set(CORE_PLUGINS)
        for name in sorted(unknown):
            info = self.infos.get(name)
            log.warning(
                "enabled plugin not run",
                extra={"plugin": name, "reason": info.problem if info else "not installed"},
            )
        return pm


def build_catalog(
    config: Config, models: FaceModels, *, entry_points: bool = True
) -> PluginCatalog:
    """Instantiate the built-ins and load the installed plugins (never raises for those)."""
    version = rollcall_version()
    core = builtin_plugins(config, models)
    analyzers = analyzer_plugins(config)
    infos = {
        p.name: PluginInfo(
            p.name, version, BUILTIN_SOURCE, p.name in CORE_PLUGINS, implemented_hooks(p)
        )
        for p in [*core, *analyzers]
    }
    optional: dict[str, object] = {p.name: p for p in analyzers}
    if entry_points:
        for found in discover_entry_points(set(infos), config):
            infos[found.info.name] = found.info
            if found.plugin is not None:
                optional[found.info.name] = found.plugin
        for name in config.plugins.third_party_names():
            if name not in infos or infos[name].source == BUILTIN_SOURCE:
                log.warning(
                    "[plugins.<name>] table ignored: no installed plugin of that name "
                    "declares settings",
                    extra={"plugin": name, "key": f"plugins.{name}"},
                )
    return PluginCatalog(infos=infos, core=core, optional=optional)


def make_plugin_manager(
    config: Config,
    models: FaceModels,
    *,
    entry_points: bool = True,
    db: Any = None,
    course_id: str | None = None,
    enabled: Collection[str] | None = None,
) -> RollcallPluginManager:
    """A manager for one job: core plugins plus those enabled for ``course_id``.

    ``enabled`` names the optional plugins to run; when it is None they come
    from the admin settings in ``db`` (``rollcall.store.plugin_admin.enabled_plugins``),
    and without ``db`` only the core plugins run. Long-running processes
    should keep one :func:`build_catalog` and call ``manager_for`` per job.
    """
    if enabled is None:
        if db is not None:
            from rollcall.store.plugin_admin import enabled_plugins

            enabled = enabled_plugins(db, course_id)
        else:
            enabled = ()
    return build_catalog(config, models, entry_points=entry_points).manager_for(enabled)
