"""Write a tiny word-level Hugging Face tokenizer for benchmark clients (AIPerf, GuideLLM) that
need one but cannot download one here: one token per word of ``disagg serve``'s synthetic output
text, so a client counting the reply's tokens gets exactly the emulated output length.

Run with an environment that has ``tokenizers`` and ``transformers`` (a benchmark client's):
``python benchmarks/word_tokenizer.py DIR [WORDS.json]``; without ``WORDS.json`` (a JSON list of
the words) the words come from ``disagg`` (then installed in that environment too).
docs/serve.md shows the measured AIPerf run (benchmarks/aiperf_vs_summary.py).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast


def write_tokenizer(out_dir: Path, words: Sequence[str]) -> None:
    """Save the tokenizer (``tokenizer.json`` + config) of ``words`` into ``out_dir``."""
    vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
    fast.save_pretrained(str(out_dir))


def served_words(argv: list[str]) -> list[str]:
    """The synthetic output's words: from the JSON file ``argv[2]`` if given, else disagg's."""
    if len(argv) > 2:
        return list(json.loads(Path(argv[2]).read_text(encoding="utf-8")))
    from disagg.experiments.serve.protocol import WORDS
    return list(WORDS)


if __name__ == "__main__":
    write_tokenizer(Path(sys.argv[1]), served_words(sys.argv))
