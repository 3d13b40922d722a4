"""Write a tiny word-level Hugging Face tokenizer for benchmark clients (AIPerf, GuideLLM) that
need one but cannot download one here: one token per word of ``disagg serve``'s synthetic output
text, so a client counting the reply's tokens gets exactly the emulated output length.

Run with an environment that has ``tokenizers`` and ``transformers`` (a benchmark client's):
``python benchmarks/word_tokenizer.py DIR``. docs/serve.md shows the measured AIPerf run.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from disagg.experiments.serve.protocol import WORDS


def write_tokenizer(out_dir: Path) -> None:
    """Save the tokenizer (``tokenizer.json`` + config) into ``out_dir``."""
    vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
    fast.save_pretrained(str(out_dir))


if __name__ == "__main__":
    write_tokenizer(Path(sys.argv[1]))
