"""Rules: policy as data (YAML), validated with line numbers, evaluated per piece of content.

``parse_rules``/``load_rules`` turn a rule file into a :class:`RuleSet`; ``evaluate``
applies it to a :class:`Context` and returns a :class:`Verdict`; :class:`RuleSets`
stores versions per tenant and counts hits; ``replay`` tries rules on recent events.
"""

from safehold.rules.context import Context
from safehold.rules.evaluate import Verdict, evaluate
from safehold.rules.language import RulesError, load_rules, parse_duration, parse_rules
from safehold.rules.model import ActionSpec, Rule, RuleSet
from safehold.rules.replay import ReplayReport, replay
from safehold.rules.store import DEFAULT_RULES, RuleHitInfo, RuleSets, StoredRules

__all__ = [
    "DEFAULT_RULES",
    "ActionSpec",
    "Context",
    "ReplayReport",
    "Rule",
    "RuleHitInfo",
    "RuleSet",
    "RuleSets",
    "RulesError",
    "StoredRules",
    "Verdict",
    "evaluate",
    "load_rules",
    "parse_duration",
    "parse_rules",
    "replay",
]
