"""The project's own word-level tokenizer for tiny models.

Built with the ``tokenizers`` library (WordLevel over lower-cased words and punctuation) and wrapped
as a ``PreTrainedTokenizerFast`` so tiny and real models share one tokenizer interface and the same
``save_pretrained`` / ``from_pretrained`` files in the model directory.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eos>")

#: Words the project's prompts and answers use; extra texts add to it.
BASE_VOCABULARY = (
    "audio sound speech voice speaker caller machine what is the emotion of this ? . , : answer "
    "normal abnormal anomaly yes no neutral calm happy sad angry fearful fear disgust disgusted surprised "
    "surprise describe event events it a an in there noise silence music dog bark siren engine drilling "
    "jackhammer children playing street air conditioner car horn gun shot and or not sounds"
)

_WORD = re.compile(r"\w+|[^\w\s]")


def words_of(texts: Iterable[str]) -> list[str]:
    """The distinct lower-cased words/punctuation in ``texts``, sorted (the vocabulary order is stable)."""
    found = set()
    for text in texts:
        found.update(_WORD.findall(text.lower()))
    return sorted(found)


def build_word_tokenizer(texts: Iterable[str] = ()):
    """A ``PreTrainedTokenizerFast`` whose vocabulary covers BASE_VOCABULARY and ``texts``.

    Ids: 0 <pad>, 1 <unk>, 2 <bos>, 3 <eos>, then the words in sorted order.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for w in words_of([BASE_VOCABULARY, *texts]):
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins words with spaces, tidies punctuation
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>", eos_token="<eos>"
    )
