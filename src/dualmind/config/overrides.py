"""A bare override of a key the config does not have (`foo=1`, `optim.lrr=1`): the project's own
message, naming the key and the nearest keys that exist, instead of Hydra's hint to append it
with `+foo=1` (which `dualmind.config.schema.validate` would then refuse as an unknown key).

Hydra reports this failure from deep inside its config loader, where only the composed config
knows which keys exist, and then prints it through a handler that turns every `Exception` into
exit code 1. So `install()` wraps the loader's step that applies overrides, and the error it
raises there, `UnknownOverride`, derives from BaseException: it passes Hydra's handler untouched,
and train.py reports it like every other config error (one line, exit 2).
`dualmind.config.schema.compose` turns it into a ConfigError.

A group option that does not exist (`recipe=nope`, `model=7b`) is the same kind of mistake;
Hydra printed a list of options and the search path over a dozen lines, with exit code 1.
`UnknownChoice` (an UnknownOverride) names the nearest options on one line instead. Every other
Hydra error (a malformed override, Hydra's own `hydra.*` keys) stays Hydra's own.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from omegaconf import DictConfig, OmegaConf

_COULD_NOT_OVERRIDE = re.compile(r"Could not override '([^']+)'")
# Config groups chosen with `group=option`; suggested too, since `reciepe=core_mini` is a bare
# unknown key to Hydra.
GROUPS = ("recipe", "model", "decoder", "data", "trainer", "strategy", "optim")


class UnknownOverride(BaseException):  # noqa: N818 - named for what happened, like KeyboardInterrupt
    """A bare `key=value` override of a key the config does not have (see the module doc for why
    this is a BaseException)."""

    def __init__(self, key: str, line: str, keys: list[str]):
        self.key, self.line = key, line
        self.nearest = nearest_keys(key, keys)
        super().__init__(unknown_override_message(key, line, self.nearest, keys))


class UnknownChoice(UnknownOverride):
    """`group=option` naming an option the group does not have (recipe=nope)."""

    def __init__(self, group: str, option: str, options: list[str]):
        self.key, self.line = group, f"{group}={option}"
        self.nearest = difflib.get_close_matches(option, options, n=1, cutoff=0.6)
        hint = f"; did you mean {self.nearest[0]}?" if self.nearest else ""
        BaseException.__init__(self, f"{self.line}: no {group} of that name{hint} "
                                     f"({group} options: {', '.join(options)})")


def unknown_override_message(key: str, line: str, nearest: list[str], keys: list[str]) -> str:
    """`override optim.lrr=1: unknown config key 'optim.lrr'; did you mean optim.lr?`; with
    nothing close, the keys that exist where it was meant to go."""
    if nearest:
        hint = f"did you mean {' or '.join(nearest)}?"
    else:
        parent = key.rpartition(".")[0]
        if parent not in keys:
            parent = ""
        here = [k for k in keys if k.rpartition(".")[0] == parent]
        hint = f"the keys of {parent or 'the config'} are: {', '.join(here)}"
    return f"override {line}: unknown config key '{key}'; {hint}"


def config_keys(cfg: DictConfig) -> list[str]:
    """Every dotted key of a composed config (Hydra's own `hydra.*` left out), groups included."""
    tree = OmegaConf.to_container(cfg, resolve=False, throw_on_missing=False)
    keys: list[str] = []

    def walk(node: Any, prefix: str) -> None:
        for k, v in node.items():
            if not prefix and k == "hydra":
                continue
            keys.append(prefix + str(k))
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")

    walk(tree, "")
    return sorted(set(keys) | set(GROUPS))


def nearest_keys(key: str, keys: list[str], n: int = 3) -> list[str]:
    """The existing keys spelt most like ``key``: among its siblings when its parent exists
    (`optim.lrr` -> `optim.lr`; a shared `optim.` prefix would make every key of optim look
    close), else among all keys (`optimm.lr` -> `optim.lr`). Only the best, and those nearly as
    good: a list of long shots helps nobody."""
    parent, _, leaf = key.rpartition(".")
    if parent == "" or parent in keys:
        pool = {k.rpartition(".")[2]: k for k in keys if k.rpartition(".")[0] == parent}
        query = leaf
    else:
        pool, query = {k: k for k in keys}, key
    scored = sorted(
        ((difflib.SequenceMatcher(None, query, name).ratio(), name) for name in pool),
        key=lambda x: (-x[0], x[1]),
    )
    if not scored or scored[0][0] < 0.6:
        return []
    best = scored[0][0]
    return [pool[name] for ratio, name in scored[:n] if ratio >= best - 0.1]


def install() -> None:
    """Wrap Hydra's override step once (a no-op for a Hydra without it: its message stays)."""
    try:
        from hydra._internal.config_loader_impl import ConfigLoaderImpl
        from hydra.errors import ConfigCompositionException
        from omegaconf.errors import ConfigAttributeError, ConfigKeyError
    except ImportError:  # pragma: no cover - another Hydra layout: keep Hydra's own message
        return
    apply = getattr(ConfigLoaderImpl, "_apply_overrides_to_config", None)
    if apply is None or getattr(apply, "_dualmind", False):
        return

    def apply_overrides(overrides: list, cfg: DictConfig) -> None:
        try:
            apply(overrides, cfg)
        except ConfigCompositionException as err:
            match = _COULD_NOT_OVERRIDE.match(str(err))
            if not match or not isinstance(err.__cause__, (ConfigAttributeError, ConfigKeyError)):
                raise
            key = match.group(1)
            if key == "hydra" or key.startswith("hydra."):
                raise  # Hydra's own settings: its message, and its documentation, apply
            line = next(
                (o.input_line for o in overrides if o.key_or_group == key and o.input_line),
                f"{key}=...",
            )
            raise UnknownOverride(key, line, config_keys(cfg)) from None

    apply_overrides._dualmind = True  # type: ignore[attr-defined]
    ConfigLoaderImpl._apply_overrides_to_config = staticmethod(apply_overrides)
    _install_choice_check()


def _install_choice_check() -> None:
    """Wrap the defaults-list step that reports a missing config (a no-op for another Hydra)."""
    try:
        from hydra._internal import defaults_list
        from hydra.errors import MissingConfigException
    except ImportError:  # pragma: no cover
        return
    report = getattr(defaults_list, "config_not_found_error", None)
    if report is None or getattr(report, "_dualmind", False):
        return

    def config_not_found_error(repo, tree) -> None:
        try:
            report(repo, tree)
        except MissingConfigException as err:
            group, _, option = (err.missing_cfg_file or "").rpartition("/")
            if not group or not err.options or group.startswith("hydra"):
                raise  # a primary config or Hydra's own groups: Hydra's message
            raise UnknownChoice(group, option, list(err.options)) from None

    config_not_found_error._dualmind = True  # type: ignore[attr-defined]
    defaults_list.config_not_found_error = config_not_found_error
