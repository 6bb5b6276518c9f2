"""Complaint text understanding: category, urgency, emotion, location and phone (jieba + rules.toml).

Importing this package is cheap: jieba and the dictionary are loaded only by ``Classifier.load()``
(or ``await load_classifier_async()`` inside the bot, which does it off the event loop).
"""

from intents.classifier import Classification, Classifier, Location, load_classifier_async
from intents.rules import DEFAULT_RULES_PATH, RULES_ENV_VAR, RulesError

__all__ = [
    "DEFAULT_RULES_PATH",
    "RULES_ENV_VAR",
    "Classification",
    "Classifier",
    "Location",
    "RulesError",
    "load_classifier_async",
]
