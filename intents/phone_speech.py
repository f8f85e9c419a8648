"""What a callee's reply looks like after the phone line and the ASR, as text.

Hand-written training examples are clean; real replies start with 喂/你好/嗯, carry
fillers and particles, repeat or lose a character, come back with homophones
(微信 → 为信, 机器人 → 鸡器人, 保险 → 保线) and use dialect words (啥子, 莫得, 咋整).
`variants_of` makes channel-like variants of a labelled example; the intent classifier
trains on them next to the hand-written examples. A change never touches a negation
word, so "我不加微信" stays a refusal.

Pure text functions, deterministic for a given random generator.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from functools import lru_cache

# Said before the content of a reply; they never carry the intent themselves.
GREETINGS: tuple[str, ...] = (
    "喂",
    "喂 你好",
    "你好",
    "您好",
    "喂喂",
    "你好你好",
    "哎 你好",
    "喂 您好",
    "喂 喂 你好",
    "哎",
    "诶 你好",
)
FILLERS: tuple[str, ...] = ("嗯", "啊", "呃", "那个", "就是", "嗯嗯", "哦", "额", "这个", "嗯 那个", "哎呀", "唉")
# Echoes of what the robot just said, before the callee's own answer.
ECHOES: tuple[str, ...] = (
    "企业微信啊",
    "加微信是吧",
    "意外险啊",
    "保险啊",
    "免费的啊",
    "福利是吧",
    "顾问啊",
    "哦 送保险啊",
    "你说的那个福利",
)
PARTICLES: tuple[str, ...] = ("啊", "吧", "哈", "呢", "哦", "嘛", "呀", "撒", "噻")

# Words whose every character is kept as it is: negation and refusal cues flip the meaning.
NEGATION_CHARS = frozenset("不没别莫冇未无非甭免算勿")

# ASR slips seen on phone lines for the words that matter in this call.
KNOWN_SLIPS: dict[str, tuple[str, ...]] = {
    "微信": ("为信", "威信", "维信", "微心", "薇信"),
    "企业微信": ("企业为信", "企业威信", "起业微信", "企业维信"),
    "机器人": ("鸡器人", "机器仁", "机器银", "机七人", "几器人"),
    "保险": ("保线", "报险", "宝险", "保鲜"),
    "顾问": ("顾文", "故问", "顾闻"),
    "真人": ("真仁", "正人", "珍人"),
    "人工": ("人共", "仁工", "人公"),
    "投诉": ("投素", "头诉"),
    "理赔": ("理配", "里赔"),
    "免费": ("免废", "面费"),
    "扣费": ("扣废", "口费"),
    "电话": ("电化", "店话"),
    "号码": ("号马", "好码"),
    "考虑": ("考滤", "靠虑"),
    "等待期": ("等待其", "等代期"),
    "意外险": ("意外线", "一外险"),
    "打错": ("大错", "打措"),
    "开会": ("开汇", "开回"),
}

# Mandarin words and the dialect or colloquial words callers use for them.
DIALECT: dict[str, tuple[str, ...]] = {
    "什么": ("啥", "啥子", "么子", "咩"),
    "没有": ("没得", "莫得", "冇", "木有"),
    "怎么": ("咋", "咋个", "啷个", "点样"),
    "怎么办": ("咋整", "咋办", "咋个办"),
    "知道": ("晓得", "知得"),
    "可以": ("要得", "中", "行", "得行"),
    "行不行": ("中不中", "得不得行", "要得不"),
    "不要": ("不要得", "唔要"),
    "现在": ("这会儿", "而家", "这阵子"),
    "多少": ("好多", "几多"),
    "我": ("俺", "额"),
    "这个": ("这", "嗰个", "这个嘛"),
    "那个": ("嗰个", "那"),
    "是不是": ("系唔系", "是不"),
    "孩子": ("娃儿", "伢", "细路仔"),
    "不知道": ("不晓得", "唔知"),
    "干什么": ("干啥", "干啥子", "做么子"),
    "说": ("讲", "港"),
}

_HAN = re.compile(r"[\u4e00-\u9fff]")


@lru_cache(maxsize=1)
def _homophone_table() -> dict[str, tuple[str, ...]]:
    """Toned pinyin → the common characters (GB2312 level 1) that sound like it."""
    from pypinyin import Style, lazy_pinyin

    table: dict[str, list[str]] = {}
    for high in range(0xB0, 0xD8):
        for low in range(0xA1, 0xFF):
            try:
                char = bytes((high, low)).decode("gb2312")
            except UnicodeDecodeError:
                continue
            [sound] = lazy_pinyin(char, style=Style.TONE3, neutral_tone_with_five=True)
            table.setdefault(sound, []).append(char)
    return {sound: tuple(chars) for sound, chars in table.items()}


def homophones(char: str) -> tuple[str, ...]:
    """Common characters an ASR may write for `char` (same syllable and tone), not `char` itself."""
    from pypinyin import Style, lazy_pinyin

    if not _HAN.fullmatch(char):
        return ()
    [sound] = lazy_pinyin(char, style=Style.TONE3, neutral_tone_with_five=True)
    return tuple(c for c in _homophone_table().get(sound, ()) if c != char)


# ---- single changes, each (text, rng) → text or None when it does not apply --------------


def add_greeting(text: str, rng: random.Random) -> str | None:
    return f"{rng.choice(GREETINGS)}{rng.choice([' ', '，', ' ', ''])}{text}"


def add_filler(text: str, rng: random.Random) -> str | None:
    return f"{rng.choice(FILLERS)}{rng.choice([' ', '，', ''])}{text}"


def add_echo(text: str, rng: random.Random) -> str | None:
    return f"{rng.choice(ECHOES)}{rng.choice([' ', '，'])}{text}"


def add_particle(text: str, rng: random.Random) -> str | None:
    if text[-1:] in PARTICLES:
        return None
    return text + rng.choice(PARTICLES)


def repeat_head(text: str, rng: random.Random) -> str | None:
    """不不用 / 我我我 / 可以可以: a stutter on the first character or the whole short reply."""
    if not _HAN.match(text[:1]):
        return None
    if len(text) <= 3 and rng.random() < 0.5:
        return text + rng.choice(["", " "]) + text
    return text[0] * rng.choice([2, 2, 3]) + text[1:]


def drop_char(text: str, rng: random.Random) -> str | None:
    """A character lost on the line; never a negation, never in a short reply."""
    hans = [i for i, c in enumerate(text) if _HAN.match(c) and c not in NEGATION_CHARS]
    if len(hans) < 5:
        return None
    i = rng.choice(hans)
    return text[:i] + text[i + 1 :]


def homophone(text: str, rng: random.Random) -> str | None:
    """One character replaced by a same-sounding one (known slips first)."""
    slips = [word for word in KNOWN_SLIPS if word in text]
    if slips and rng.random() < 0.6:
        word = rng.choice(slips)
        return text.replace(word, rng.choice(KNOWN_SLIPS[word]), 1)
    spots = [i for i, c in enumerate(text) if _HAN.match(c) and c not in NEGATION_CHARS]
    if len(spots) < 3:
        return None
    i = rng.choice(spots)
    options = homophones(text[i])
    if not options:
        return None
    return text[:i] + rng.choice(options) + text[i + 1 :]


def dialect(text: str, rng: random.Random) -> str | None:
    words = [w for w in DIALECT if w in text]
    if not words:
        return None
    word = max(rng.sample(words, min(2, len(words))), key=len)  # prefer the longer match
    return text.replace(word, rng.choice(DIALECT[word]), 1)


def respace(text: str, rng: random.Random) -> str | None:
    """ASR punctuation differs: spaces or commas between clauses, or none at all."""
    if " " in text or "，" in text:
        return re.sub(r"[ ，,]+", rng.choice(["", "，", " "]), text)
    hans = [i for i, c in enumerate(text) if _HAN.match(c)]
    if len(hans) < 6:
        return None
    i = rng.choice(hans[2:-2])
    return text[:i] + rng.choice(["，", " "]) + text[i:]


CHANGES = (add_greeting, add_filler, add_echo, add_particle, repeat_head, drop_char, homophone, dialect, respace)
# How often each change is picked (greetings, fillers and homophones are the most common on real calls).
WEIGHTS: dict[Callable[[str, random.Random], str | None], int] = dict(zip(CHANGES, (3, 3, 1, 1, 1, 1, 3, 2, 1)))


# Replies that are not answers to the robot's pitch: echoing the pitch before them is unnatural.
NO_ECHO_INTENTS = frozenset(
    {
        "greet",
        "not_heard",
        "goodbye",
        "wrong_person",
        "busy",
        "callback_request",
        "stop_calling",
        "hostile",
        "ask_identity",
        "ask_number_source",
        "ask_is_robot",
        "request_human",
    }
)
DEFAULT_SEED = "waihu-1"


def variants_of(text: str, intent: str, n: int, seed: str = DEFAULT_SEED) -> list[str]:
    """`n` channel-like variants of one labelled example; the same for the same seed."""
    rng = random.Random(f"{seed}|{intent}|{text}")
    changes = [c for c in CHANGES if not (intent in NO_ECHO_INTENTS and c is add_echo)]
    return augment(text, rng, n, changes=changes)


def augment(
    text: str,
    rng: random.Random,
    n: int,
    max_changes: int = 2,
    changes: Sequence[Callable[[str, random.Random], str | None]] = CHANGES,
) -> list[str]:
    """Up to `n` distinct channel-like variants of `text` (the text itself excluded)."""
    variants: list[str] = []
    seen = {text}
    weights = [WEIGHTS.get(c, 1) for c in changes]
    for _ in range(n * 4):
        if len(variants) >= n:
            break
        out = text
        for _ in range(rng.randint(1, max_changes)):
            change = rng.choices(changes, weights=weights)[0]
            out = change(out, rng) or out
        out = out.strip()
        if out not in seen:
            seen.add(out)
            variants.append(out)
    return variants
