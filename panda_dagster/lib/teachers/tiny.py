"""Tiny random-weight twins of the teacher architectures, built offline.

The `tiny` profile exists so tests and the offline demo exercise the *real* loading and generation code:
each builder creates the genuine config class at toy sizes, a tokenizer trained offline with the
`tokenizers` library on a small built-in corpus, and the real image processor / feature extractor classes,
then `save_pretrained`s everything into `model_cache_dir()/tiny/<name>`. Runners load that folder with
the same `Auto*.from_pretrained` calls they use for Hugging Face ids. Weights are random (seeded, so the
same build gives the same model), so their captions are noise and are labelled as tiny output.

Builds are idempotent and safe under concurrency: each is written to a temporary folder next to the
target and renamed into place; a finished build carries a `.complete` marker with the builder version.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import zlib
from collections.abc import Callable
from pathlib import Path

from panda_dagster.lib.settings import model_cache_dir

TINY_PREFIX = "tiny/"  # model ids of the tiny profile look like "tiny/blip"
BUILD_VERSION = "2"  # bump when a builder changes so caches are rebuilt
_MARKER = ".complete"

# Caption-like sentences: the tokenizers' vocabulary comes from here, so decoded noise reads as words.
CORPUS = """
a man is riding a bike down a dirt road in the forest
a woman is cooking pasta in a small kitchen and talking to the camera
two people are playing tennis on a sunny day
a cartoon rabbit walks through a green field with flowers and butterflies
a red car drives along a highway at night with city lights
a person explains how to fix a flat tire step by step
a close up of a flower moving in the wind
a group of children are dancing in a living room
a dog runs on the beach while waves crash behind it
an astronaut floats inside a space station and shows the equipment
a tractor plows a field under a cloudy sky
a bird with white feathers turns its head and looks at the camera
the video shows a city street with people walking and cars passing
someone is drawing a picture with a pencil on white paper
a chef slices vegetables on a wooden cutting board
the sun sets over the mountains and the sky turns orange
a squirrel eats a nut on a tree branch
a woman reads a book aloud in sign language
people are walking in a crowded market and buying fruit
a boy throws a ball to his father in the park
first you take the screwdriver and remove the four screws from the cover
then add the flour and the sugar and mix everything together for two minutes
welcome back to my channel today we are going to make bread
in this tutorial i will show you how to edit a video
the camera pans across a large room full of old machines
a timelapse of clouds moving over a lake
a teacher writes on the board and explains the lesson
a cat jumps onto the table and knocks over a glass of water
a rider performs a jump on a bmx bike at the skate park
a big fluffy rabbit wakes up and stretches in front of his tree
"""

_SPECIAL_WORDPIECE = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _seed(name: str) -> int:
    return zlib.crc32(f"panda-tiny-{name}".encode())


def _corpus_words() -> list[str]:
    seen: dict[str, None] = {}
    for word in CORPUS.split():
        seen.setdefault(word, None)
    return list(seen)


def _wordpiece_vocab(extra_specials: list[str] = ()) -> dict[str, int]:
    """BERT-style vocab: specials, single characters (so any ASCII text encodes) and corpus words."""
    import string

    tokens = list(_SPECIAL_WORDPIECE) + list(extra_specials)
    chars = string.ascii_lowercase + string.digits + string.punctuation
    tokens += list(chars) + [f"##{c}" for c in string.ascii_lowercase + string.digits]
    tokens += [w for w in _corpus_words() if w not in tokens]
    return {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}


def _byte_level_bpe(vocab_size: int, special_tokens: list[str]):
    """A byte-level BPE tokenizer (GPT-2/Qwen/Whisper style) trained on the built-in corpus."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = [line for line in CORPUS.strip().splitlines() if line]
    tok.train_from_iterator(lines * 4, trainer=trainer)
    return tok


def _fast_tokenizer(tok, **special):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tok, **special)


# ---- builders: each writes a complete from_pretrained-able folder into `out` -----------------------

def _build_blip(out: Path) -> None:
    from transformers import BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor, BlipProcessor

    vocab = _wordpiece_vocab(["[DEC]"])
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=True, bos_token="[DEC]", model_max_length=64)
    image_processor = BlipImageProcessor(size={"height": 32, "width": 32})
    processor = BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)
    config = BlipConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8),
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=64, encoder_hidden_size=32,
                         bos_token_id=vocab["[DEC]"], sep_token_id=vocab["[SEP]"], pad_token_id=vocab["[PAD]"],
                         eos_token_id=vocab["[SEP]"]),
        projection_dim=32,
    )
    model = BlipForConditionalGeneration(config)
    model.save_pretrained(out)
    processor.save_pretrained(out)


def _set_generation_ids(model, bos: int, eos: int, pad: int) -> None:
    """Generation needs the special ids of our offline tokenizer, not the config class defaults."""
    model.generation_config.bos_token_id = bos
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = pad


def _build_git(out: Path) -> None:
    from transformers import BertTokenizer, CLIPImageProcessor, GitConfig, GitForCausalLM, GitProcessor

    vocab = _wordpiece_vocab()
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=True, model_max_length=64)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor = GitProcessor(image_processor=image_processor, tokenizer=tokenizer)
    config = GitConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8, projection_dim=32),
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=128, bos_token_id=vocab["[CLS]"], eos_token_id=vocab["[SEP]"],
        pad_token_id=vocab["[PAD]"], num_image_with_embedding=None,
    )
    model = GitForCausalLM(config)
    _set_generation_ids(model, bos=vocab["[CLS]"], eos=vocab["[SEP]"], pad=vocab["[PAD]"])
    model.save_pretrained(out)
    processor.save_pretrained(out)


def _build_blip2(out: Path) -> None:
    """BLIP-2 twin (ViT + Q-Former + OPT decoder), the large profile's key-frame captioner."""
    from transformers import Blip2Config, Blip2ForConditionalGeneration, Blip2Processor, BlipImageProcessor

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<image>"]
    tok = _byte_level_bpe(700, specials)
    tokenizer = _fast_tokenizer(tok, bos_token="</s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
                                model_max_length=128)
    tokenizer.image_token = "<image>"
    ids = {t: tok.token_to_id(t) for t in specials}
    num_query_tokens = 4
    processor = Blip2Processor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}),
                               tokenizer=tokenizer, num_query_tokens=num_query_tokens)
    config = Blip2Config(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8),
        qformer_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                            encoder_hidden_size=32, vocab_size=tok.get_vocab_size(), max_position_embeddings=64),
        text_config=dict(model_type="opt", vocab_size=tok.get_vocab_size(), hidden_size=32, ffn_dim=64,
                         num_hidden_layers=2, num_attention_heads=4, word_embed_proj_dim=32,
                         max_position_embeddings=128, bos_token_id=ids["</s>"], eos_token_id=ids["</s>"],
                         pad_token_id=ids["<pad>"]),
        num_query_tokens=num_query_tokens, image_token_index=ids["<image>"],
    )
    model = Blip2ForConditionalGeneration(config)
    _set_generation_ids(model, bos=ids["</s>"], eos=ids["</s>"], pad=ids["<pad>"])
    model.save_pretrained(out)
    processor.save_pretrained(out)


CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['content'] is string %}{% set text = message['content'] %}"
    "{% else %}{% set text = message['content'] | selectattr('type', 'equalto', 'text') | map(attribute='text') | join('') %}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + text + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _build_qwen2(out: Path) -> None:
    """Instruction LLM twin of Qwen2.5-*-Instruct (ChatML template, `<|im_end|>` ends a turn)."""
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = _byte_level_bpe(700, specials)
    tokenizer = _fast_tokenizer(tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", model_max_length=2048)
    tokenizer.chat_template = CHATML_TEMPLATE
    ids = {t: tok.token_to_id(t) for t in specials}
    config = Qwen2Config(
        vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=True,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=ids["<|endoftext|>"], eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"],
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _build_smolvlm(out: Path) -> None:
    """Video-LLM twin of SmolVLM2 (Idefics3-style vision encoder + pixel shuffle + Llama text model)."""
    from transformers import (
        GenerationConfig,
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
        SmolVLMImageProcessor,
        SmolVLMProcessor,
        SmolVLMVideoProcessor,
    )

    rows_cols = [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
    specials = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<image>", "<fake_token_around_image>",
                "<global-img>", "<video>", *rows_cols]
    tok = _byte_level_bpe(800, specials)
    tokenizer = _fast_tokenizer(tok, eos_token="<end_of_utterance>", pad_token="<|endoftext|>",
                                bos_token="<|im_start|>", model_max_length=4096)
    ids = {t: tok.token_to_id(t) for t in specials}
    image_size, patch_size, scale_factor = 32, 8, 2
    image_seq_len = (image_size // patch_size) ** 2 // scale_factor**2
    image_processor = SmolVLMImageProcessor(
        size={"longest_edge": image_size}, max_image_size={"longest_edge": image_size}, do_image_splitting=False,
    )
    video_processor = SmolVLMVideoProcessor(
        size={"longest_edge": image_size}, max_image_size={"longest_edge": image_size},
    )
    processor = SmolVLMProcessor(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
        image_seq_len=image_seq_len, chat_template=_smolvlm_chat_template(),
    )
    config = SmolVLMConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=image_size, patch_size=patch_size),
        text_config=dict(model_type="llama", vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=4096, pad_token_id=ids["<|endoftext|>"],
                         bos_token_id=ids["<|im_start|>"], eos_token_id=ids["<end_of_utterance>"]),
        scale_factor=scale_factor, image_token_id=ids["<image>"], pad_token_id=ids["<|endoftext|>"],
    )
    model = SmolVLMForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        bos_token_id=ids["<|im_start|>"], eos_token_id=ids["<end_of_utterance>"], pad_token_id=ids["<|endoftext|>"],
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)


def _smolvlm_chat_template() -> str:
    # Same rendering as SmolVLM2's released template: "User:<image>text<end_of_utterance>\nAssistant:".
    return (
        "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
        "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
        "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
        "{% elif line['type'] == 'image' %}{{ '<image>' }}{% elif line['type'] == 'video' %}{{ '<video>' }}{% endif %}"
        "{% endfor %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
    )


TINY_BUILDERS: dict[str, Callable[[Path], None]] = {
    "blip": _build_blip,
    "git": _build_git,
    "blip2": _build_blip2,
    "smolvlm": _build_smolvlm,
    "qwen2": _build_qwen2,
}


def tiny_builders() -> dict[str, Callable[[Path], None]]:
    """The builders above plus those a teacher kind brings (`TeacherKind.tiny_builders`)."""
    from panda_dagster.lib.teachers.kinds import teacher_kinds

    builders = dict(TINY_BUILDERS)
    for kind in teacher_kinds().values():
        builders.update(kind.tiny_builders)
    return builders


def is_tiny_model_id(model_id: str) -> bool:
    return model_id.startswith(TINY_PREFIX)


def tiny_model_dir(name: str, cache_dir: Path | None = None) -> Path:
    return (cache_dir or model_cache_dir()) / "tiny" / name


def ensure_tiny_model(model_id: str, cache_dir: Path | None = None) -> Path:
    """Build (once) the tiny model `tiny/<name>` and return its `from_pretrained` folder."""
    name = model_id.removeprefix(TINY_PREFIX)
    builders = tiny_builders()
    if name not in builders:
        raise KeyError(f"no tiny builder for {model_id!r}; known: {sorted(TINY_PREFIX + n for n in builders)}")
    target = tiny_model_dir(name, cache_dir)
    if _is_complete(target):
        return target
    # Threads of one process build one at a time (transformers' lazy imports are not thread-safe);
    # processes are kept apart by building into a private temp dir and renaming it into place.
    with _BUILD_LOCK:
        if _is_complete(target):
            return target
        return _build(name, target)


_BUILD_LOCK = threading.Lock()


def _is_complete(target: Path) -> bool:
    marker = target / _MARKER
    try:
        return marker.read_text().strip() == BUILD_VERSION
    except OSError:
        return False


def _build(name: str, target: Path) -> Path:
    from panda_dagster.lib.torch_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    import torch

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=target.parent))
    try:
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(_seed(name))
            tiny_builders()[name](tmp)
        (tmp / _MARKER).write_text(BUILD_VERSION)
        if target.exists():
            # A stale build (older BUILD_VERSION) or one that another process just finished.
            if _is_complete(target):
                return target
            stale = target.with_name(f".{name}.stale.{os.getpid()}")
            os.replace(target, stale)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            # Lost the race to a concurrent builder whose result is identical (same seed, same code).
            if not _is_complete(target):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
