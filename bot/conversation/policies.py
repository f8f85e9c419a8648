"""waihu's Rasa policies (named by module path in dialogs/config.yml).

`CachedRulePolicy`: Rasa's RulePolicy with its rule lookup memoised. RulePolicy checks
every rule against the conversation's states on every prediction (about 2.7 ms with the
script's rules, five predictions a turn: half the turn). A scripted call visits few
distinct state sequences, and the answer depends only on the trained lookup and those
states, so a loaded policy keeps the answer per state sequence (bounded LRU). Training
and its contradiction checks run Rasa's code unchanged: the cache exists only on a
policy loaded for inference, whose lookup no longer changes.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

from rasa.core.policies.rule_policy import RulePolicy
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.core.generator import State

CACHE_SIZE = 20_000


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.POLICY_WITHOUT_END_TO_END_SUPPORT, is_trainable=True)
class CachedRulePolicy(RulePolicy):
    """RulePolicy whose rule lookup is memoised once the trained policy is loaded."""

    _possible_keys_cache: OrderedDict[tuple[int, str], frozenset[str]] | None = None

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> CachedRulePolicy:
        policy = super().load(config, model_storage, resource, execution_context, **kwargs)
        policy._possible_keys_cache = OrderedDict()
        return policy  # type: ignore[return-value]

    def _get_possible_keys(self, lookup: dict[str, str], states: list[State]) -> set[str]:
        cache = self._possible_keys_cache
        if cache is None:
            return super()._get_possible_keys(lookup, states)
        key = (id(lookup), json.dumps(states, sort_keys=True, default=list))
        found = cache.get(key)
        if found is None:
            found = frozenset(super()._get_possible_keys(lookup, states))
            cache[key] = found
            if len(cache) > CACHE_SIZE:
                cache.popitem(last=False)
        else:
            cache.move_to_end(key)
        return found  # type: ignore[return-value]
