"""Which rules exist, and the config that names them.

A rule is a module of this package exposing `RULE`; its settings model (`RULE.Settings`) is
its [rules.NAME] table. Everything that needs the list of rules (the engine, the config's
[rules] tables and `digests.immediate`, the CLI's `--rule`, `explain`) asks here, so adding a
rule is adding one module.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Iterable
from functools import cache
from types import ModuleType

from monitor import config as config_module
from monitor.config import Config, RuleSettings
from rules.base import Rule

__all__ = [
    "discover",
    "get_rule",
    "load_config",
    "parse_config",
    "registered_rules",
    "rule_names",
    "rule_tables",
]


def discover(package: ModuleType | str) -> tuple[Rule, ...]:
    """The rules a package holds: every module of it that exposes `RULE`, by rule name."""
    if isinstance(package, str):
        package = importlib.import_module(package)
    found: dict[str, Rule] = {}
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        module = importlib.import_module(info.name)
        rule = getattr(module, "RULE", None)
        if rule is None:
            continue
        if rule.name in found:
            raise RuntimeError(f"two rules are named {rule.name!r} (in {info.name})")
        found[rule.name] = rule
    return tuple(found[name] for name in sorted(found))


@cache
def registered_rules() -> tuple[Rule, ...]:
    """The rules of the `rules` package, found once."""
    return discover(__name__.rpartition(".")[0])


def rule_names() -> tuple[str, ...]:
    return tuple(rule.name for rule in registered_rules())


def get_rule(name: str) -> Rule:
    for rule in registered_rules():
        if rule.name == name:
            return rule
    raise LookupError(f"no rule named {name!r} (rules: {', '.join(rule_names())})")


def rule_tables(rules: Iterable[Rule] | None = None) -> dict[str, type[RuleSettings]]:
    """Rule name -> settings model: the [rules.NAME] tables a config may hold."""
    return {rule.name: rule.Settings for rule in (registered_rules() if rules is None else rules)}


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate a config file for the registered rules (see monitor.config)."""
    return config_module.load_config(path, rules=rule_tables())


def parse_config(text: str, path: str | os.PathLike[str]) -> Config:
    """Validate TOML text for the registered rules, as if read from `path`."""
    return config_module.parse_config(text, path, rules=rule_tables())
