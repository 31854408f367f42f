"""Sentiment: a small lexicon scorer, loaded once (ADK load step), applied per call."""
import re

from Algorithmia import ADK

WORD = re.compile(r"[a-z']+")


def load():
    positive = {"good", "great", "excellent", "love", "happy", "wonderful", "nice", "best",
                "fantastic", "amazing", "like", "enjoy", "delightful", "superb", "glad"}
    negative = {"bad", "terrible", "awful", "hate", "sad", "worst", "poor", "horrible",
                "disappointing", "angry", "boring", "ugly", "broken", "dislike", "slow"}
    return {"positive": positive, "negative": negative}


def score(text, lexicon):
    words = WORD.findall(text.lower())
    pos = sum(w in lexicon["positive"] for w in words)
    neg = sum(w in lexicon["negative"] for w in words)
    total = pos + neg
    return {"sentiment": 0.0 if not total else round((pos - neg) / total, 4),
            "positive": pos, "negative": neg}


def apply(input, lexicon):
    if isinstance(input, list):
        return [score(str(t), lexicon) for t in input]
    if isinstance(input, dict):
        return score(str(input.get("document", "")), lexicon)
    return score(str(input), lexicon)


algorithm = ADK(apply, load)
algorithm.init("I love this, it is great")
