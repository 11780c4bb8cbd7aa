"""Offline byte-level tokenizer of the text decoder: ids 0..255 are the UTF-8 bytes, 256 <pad>, 257 <bos>,
258 <eos> (259 = TRMConfig.text_vocab_size default). Built with `tokenizers` (a byte-level BPE model with no
merges) and wrapped in `PreTrainedTokenizerFast`, so it saves as tokenizer.json and loads with AutoTokenizer
without remote code or any download."""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

PAD_TOKEN, BOS_TOKEN, EOS_TOKEN = "<pad>", "<bos>", "<eos>"
BYTE_VOCAB_SIZE = 256
VOCAB_SIZE = BYTE_VOCAB_SIZE + 3


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (the ByteLevel alphabet of `tokenizers`)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, map(chr, chars)))


def build_byte_tokenizer() -> PreTrainedTokenizerFast:
    """The byte-level tokenizer: token id == byte value for 0..255, then <pad>, <bos>, <eos>."""
    vocab = {char: byte for byte, char in bytes_to_unicode().items()}
    vocab.update({PAD_TOKEN: 256, BOS_TOKEN: 257, EOS_TOKEN: 258})
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([PAD_TOKEN, BOS_TOKEN, EOS_TOKEN])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD_TOKEN, bos_token=BOS_TOKEN, eos_token=EOS_TOKEN, model_max_length=1_000_000
    )
