"""Quiet, offline defaults for Rasa and TensorFlow, applied before either is imported."""

from __future__ import annotations

import logging
import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# No telemetry: the machines that run calls have no route to the internet.
os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")

_configured = False


def _ignore_library_warnings() -> None:
    """Library deprecation chatter (TensorFlow, pkg_resources, pyparsing, Rasa's own
    notices) is not for the people running waihu."""
    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", message=".*Slot auto-fill has been removed.*")
    warnings.filterwarnings("ignore", message=".*deprecated.*")
    # Rasa's recipe validator looks for the ResponseSelector class itself, not a subclass:
    # waihu's FaqResponseSelector (bot/conversation/nlu_components.py) is one.
    warnings.filterwarnings("ignore", message=".*does not include a response selector component.*")
    # Same for RulePolicy: CachedRulePolicy (bot/conversation/policies.py) is one, and
    # handles the default intents (restart, back) as RulePolicy does.
    warnings.filterwarnings("ignore", message="'RulePolicy' is not included in the model's policy configuration.*")
    # Rasa adds the retrieval intent `faq` implicitly for domain/faq.yml's utter_faq/*
    # answers, then counts core.yml's declaration of it as a duplicate. Only that one.
    warnings.filterwarnings(
        "ignore", message="The following duplicated intents have been found across multiple domain files: faq$"
    )


_ignore_library_warnings()


def quiet_rasa() -> None:
    """Keep Rasa/TensorFlow/jieba chatter out of CLI output and call logs."""
    global _configured
    _ignore_library_warnings()  # Rasa resets the filters when it is imported
    if _configured:
        return
    _configured = True
    import structlog

    # Rasa logs through structlog at debug level by default; only warnings and up.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    for name in ("rasa", "tensorflow", "absl", "jieba", "apscheduler", "sanic", "matplotlib"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import jieba

    jieba.setLogLevel(logging.ERROR)
