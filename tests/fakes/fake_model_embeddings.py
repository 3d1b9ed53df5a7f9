# SPDX-License-Identifier: Apache-2.0
"""The embeddings endpoint of fake_model.py (POST /v1/embeddings, OpenAI's API; Ollama, vLLM and
llama.cpp serve the same shape). Written from OpenAI's API reference, independently of chitin.

Runs in: tests only. The vectors stand in for meaning in a way a test can predict: words of one
concept group (the script's "embeddings": {"concepts": [[...], ...]}, else CONCEPTS below) share
a dimension, any other word gets one by its hash; a text's vector is its words' counts, scaled to
length 1. So "automobile" is near a note about "cars" without sharing a word with it.

The script's "embeddings" object may also hold "dimensions" (default 64), "error" ({"status",
"times", "body"} as a step's error) and "reply" ("wrong_count", "nan", "ragged", "stream") for
replies a client must refuse.
"""

import json
import math
import re
import zlib

CONCEPTS = [
    ["car", "cars", "automobile", "automobiles", "vehicle", "vehicles", "sedan", "motor"],
    ["dog", "dogs", "puppy", "puppies", "canine", "hound"],
    ["doctor", "physician", "dentist", "appointment", "clinic"],
    ["money", "budget", "invoice", "invoices", "payment", "bill", "bills", "finance"],
]
WORD = re.compile(r"[a-z0-9]+")


class EmbeddingsError(Exception):
    def __init__(self, status, message, kind="invalid_request_error"):
        super().__init__(message)
        self.status, self.kind = status, kind


def validate(body):
    """The request as OpenAI checks it: 400 with its error body otherwise."""
    if not isinstance(body, dict):
        raise EmbeddingsError(400, "We could not parse the JSON body of your request.")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise EmbeddingsError(400, "you must provide a model parameter")
    texts = body.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or \
            not all(isinstance(t, str) and t for t in texts):
        raise EmbeddingsError(400, "'input' must be a non-empty string or a list of non-empty "
                                   "strings")
    if len(texts) > 2048:
        raise EmbeddingsError(400, "'input' holds more than 2048 items")
    if body.get("encoding_format", "float") not in ("float", "base64"):
        raise EmbeddingsError(400, "'encoding_format' must be 'float' or 'base64'")
    return texts


def vector(text, settings):
    dims = int(settings.get("dimensions", 64))
    concepts = settings.get("concepts", CONCEPTS)
    group = {w: i for i, words in enumerate(concepts) for w in words}
    shared = len(concepts)
    v = [0.0] * dims
    for word in WORD.findall(text.lower()):
        if word in group:
            v[group[word]] += 1.0
        else:
            v[shared + zlib.crc32(word.encode()) % (dims - shared)] += 1.0
    norm = math.sqrt(sum(x * x for x in v)) or 1.0
    return [x / norm for x in v]


def reply(body, settings):
    """The 200 reply's JSON text (or raises EmbeddingsError)."""
    texts = validate(body)
    data = [{"object": "embedding", "index": i, "embedding": vector(t, settings)}
            for i, t in enumerate(texts)]
    broken = settings.get("reply")
    if broken == "wrong_count":
        data = data[:-1] if len(data) > 1 else data + data
    elif broken == "nan":
        data[0]["embedding"][0] = "NaN"
    elif broken == "ragged" and len(data) > 1:
        data[1]["embedding"] = data[1]["embedding"][:-1]
    else:
        data.reverse()  # each item names its text by "index": a client must not rely on order
    tokens = sum(len(WORD.findall(t.lower())) for t in texts)
    text = json.dumps({"object": "list", "data": data, "model": body["model"],
                       "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
    return text.replace('"NaN"', "NaN")
