"""Audio prompts: script lines rendered by a TTS provider to cached 8 kHz telephone WAV."""

from telephony.prompts.renderer import (
    LONG_PROMPT_SECONDS,
    PromptRenderer,
    PromptTemplateError,
    RenderedPrompt,
    RenderedSegment,
    split_template,
)
from telephony.prompts.tts import EspeakNgProvider, TtsError, TtsProvider, TtsUnavailableError

__all__ = [
    "LONG_PROMPT_SECONDS",
    "PromptRenderer",
    "PromptTemplateError",
    "RenderedPrompt",
    "RenderedSegment",
    "split_template",
    "EspeakNgProvider",
    "TtsError",
    "TtsProvider",
    "TtsUnavailableError",
]
