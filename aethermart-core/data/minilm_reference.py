"""Reference embeddings for the model test (aethermart-core/data/minilm_reference.json).

An independent implementation of all-MiniLM-L6-v2 (sentence-transformers: BERT, mean pooling,
L2 normalisation): a WordPiece tokenizer written from the BERT rules over vocab.txt, and the
transformer in plain numpy over model.safetensors. It shares no code with the Rust side
(tokenizers + candle). Run once, from the repository:

    python3 -m venv /tmp/ref && /tmp/ref/bin/pip install numpy safetensors
    /tmp/ref/bin/python aethermart-core/data/minilm_reference.py "$AETHERMART_EMBEDDING_MODEL_DIR"
"""

import json
import math
import sys
import unicodedata

import numpy as np
from safetensors.numpy import load_file

SENTENCES = [
    "A quiet gaming PC that fits under a desk.",
    "Café Wi-Fi doesn't reach the upstairs bedrooms!",
]


def is_punctuation(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def basic_tokens(text):
    text = "".join(" " if ch.isspace() else ch for ch in text
                   if ord(ch) not in (0, 0xFFFD) and unicodedata.category(ch) not in ("Cc", "Cf")
                   or ch in "\t\n\r")
    text = unicodedata.normalize("NFD", text.lower())
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn")
    words = []
    for word in text.split():
        current = ""
        for ch in word:
            if is_punctuation(ch):
                if current:
                    words.append(current)
                    current = ""
                words.append(ch)
            else:
                current += ch
        if current:
            words.append(current)
    return words


def wordpiece(word, vocab):
    if len(word) > 100:
        return ["[UNK]"]
    pieces, start = [], 0
    while start < len(word):
        end, found = len(word), None
        while start < end:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                found = piece
                break
            end -= 1
        if found is None:
            return ["[UNK]"]
        pieces.append(found)
        start = end
    return pieces


def token_ids(text, vocab):
    pieces = ["[CLS]"] + [p for w in basic_tokens(text) for p in wordpiece(w, vocab)] + ["[SEP]"]
    return [vocab[p] for p in pieces]


def layer_norm(x, w, b, prefix, eps=1e-12):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w[prefix + ".weight"] + w[prefix + ".bias"]


def linear(x, w, prefix):
    return x @ w[prefix + ".weight"].T + w[prefix + ".bias"]


def gelu(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def embed(ids, w, heads=12):
    n = len(ids)
    x = (w["embeddings.word_embeddings.weight"][ids]
         + w["embeddings.position_embeddings.weight"][:n]
         + w["embeddings.token_type_embeddings.weight"][0])
    x = layer_norm(x.astype(np.float64), w, None, "embeddings.LayerNorm")
    layer = 0
    while f"encoder.layer.{layer}.attention.self.query.weight" in w:
        p = f"encoder.layer.{layer}"
        q = linear(x, w, p + ".attention.self.query")
        k = linear(x, w, p + ".attention.self.key")
        v = linear(x, w, p + ".attention.self.value")
        d = x.shape[1] // heads
        split = lambda t: t.reshape(n, heads, d).transpose(1, 0, 2)
        scores = split(q) @ split(k).transpose(0, 2, 1) / math.sqrt(d)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        context = (scores @ split(v)).transpose(1, 0, 2).reshape(n, heads * d)
        x = layer_norm(linear(context, w, p + ".attention.output.dense") + x, w, None,
                       p + ".attention.output.LayerNorm")
        hidden = gelu(linear(x, w, p + ".intermediate.dense"))
        x = layer_norm(linear(hidden, w, p + ".output.dense") + x, w, None, p + ".output.LayerNorm")
        layer += 1
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


def main(model_dir):
    vocab = {}
    with open(f"{model_dir}/vocab.txt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            vocab[line.rstrip("\n")] = i
    weights = {k: v.astype(np.float64) if v.dtype == np.float32 else v
               for k, v in load_file(f"{model_dir}/model.safetensors").items()}
    out = []
    for s in SENTENCES:
        ids = token_ids(s, vocab)
        out.append({"text": s, "token_ids": ids,
                    "embedding": [round(float(v), 7) for v in embed(ids, weights)]})
    sentences = ",\n  ".join(json.dumps(s) for s in out)
    sys.stdout.write('{"model": "all-MiniLM-L6-v2", "implementation": "numpy, float64",\n'
                     f' "sentences": [\n  {sentences}\n ]}}\n')


if __name__ == "__main__":
    main(sys.argv[1])
