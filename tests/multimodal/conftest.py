"""Tiny randomly initialised two-tower models (CLIP, SigLIP, Siglip2), saved as Hugging Face folders with their
processor and tokenizer files, built offline from configs here; and images drawn with Pillow.

No CLIP or SigLIP weights install offline (MODELS.md), so correctness is shown on these: scorekit and
`transformers` load the same folder, and the tests compare scorekit's scores with transformers' own processor +
get_text_features / get_image_features + cosine.

The tokenizers are small BPE vocabularies built in code (letters, a few merges, the model family's special
tokens); they tokenise like the real ones in kind (CLIP: lower-cased, `</w>` word ends, BOS/EOS; SigLIP: `▁`
word starts, EOS, pad to 64) but not in vocabulary.

Fixtures (session scope; other helpers' tests use them too):
  clip_dir, siglip_dir, siglip2_dir  -> pathlib.Path of a saved model folder
  draw_image(seed, size=(w, h))      -> a PIL RGB image of shapes and colours, the same for the same seed
"""

from __future__ import annotations

import io
import random
import string

import pytest

TEXT_LAYERS = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
VISION_LAYERS = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
PROJECTION_DIM = 24


def _clip_tokenizer():
    """CLIP's tokenizer class on a tiny vocabulary: every letter alone and word-final (`a`, `a</w>`), digits,
    a few merges, and CLIP's special tokens (`<|startoftext|>` is BOS, `<|endoftext|>` EOS and pad)."""
    from transformers import CLIPTokenizer

    symbols = list(string.ascii_lowercase + string.digits + ".,!?'-")
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for s in symbols:
        vocab.setdefault(s, len(vocab))
    for s in symbols:
        vocab.setdefault(s + "</w>", len(vocab))
    merges = [("t", "h"), ("th", "e</w>"), ("a", "t</w>"), ("c", "at</w>"), ("o", "f</w>"), ("s", "n")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def _siglip_tokenizer():
    """Siglip2's tokenizer class (Gemma BPE, lower-cased) on a tiny vocabulary. SigLIP's own SentencePiece
    tokenizer would need the sentencepiece package; the processor only asks for a tokenizer."""
    from transformers import Siglip2Tokenizer

    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4}
    for s in string.ascii_lowercase + string.digits + ".,!?'-▁":
        vocab.setdefault(s, len(vocab))
    for i in range(256):  # byte fallback: any character tokenises
        vocab.setdefault(f"<0x{i:02X}>", len(vocab))
    merges = [("▁", "a"), ("▁", "t"), ("h", "e"), ("▁t", "he"), ("c", "a"), ("ca", "t")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    return Siglip2Tokenizer(vocab=vocab, merges=merges, model_max_length=64)


def _save(folder, model, processor):
    model.save_pretrained(str(folder))
    processor.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory):
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tokenizer = _clip_tokenizer()
    torch.manual_seed(11)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), max_position_embeddings=77, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1, **TEXT_LAYERS),
        vision_config=dict(image_size=32, patch_size=8, **VISION_LAYERS),
        projection_dim=PROJECTION_DIM)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return _save(tmp_path_factory.mktemp("tiny-clip"), CLIPModel(config).eval(),
                 CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer))


@pytest.fixture(scope="session")
def siglip_dir(tmp_path_factory):
    import torch
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipProcessor

    tokenizer = _siglip_tokenizer()
    torch.manual_seed(12)
    config = SiglipConfig(
        text_config=dict(vocab_size=len(tokenizer), max_position_embeddings=64, pad_token_id=0, eos_token_id=1,
                         projection_size=TEXT_LAYERS["hidden_size"], **TEXT_LAYERS),
        vision_config=dict(image_size=32, patch_size=8, **VISION_LAYERS))
    image_processor = SiglipImageProcessor(size={"height": 32, "width": 32})
    return _save(tmp_path_factory.mktemp("tiny-siglip"), SiglipModel(config).eval(),
                 SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer))


@pytest.fixture(scope="session")
def siglip2_dir(tmp_path_factory):
    import torch
    from transformers import Siglip2Config, Siglip2ImageProcessor, Siglip2Model, Siglip2Processor

    tokenizer = _siglip_tokenizer()
    torch.manual_seed(13)
    config = Siglip2Config(
        text_config=dict(vocab_size=len(tokenizer), max_position_embeddings=64, pad_token_id=0, eos_token_id=1,
                         projection_size=TEXT_LAYERS["hidden_size"], **TEXT_LAYERS),
        vision_config=dict(num_patches=256, patch_size=16, **VISION_LAYERS))
    # Siglip2Processor imposes patch_size 16 and max_num_patches 256 over its image processor's settings.
    image_processor = Siglip2ImageProcessor(patch_size=16, max_num_patches=256)
    return _save(tmp_path_factory.mktemp("tiny-siglip2"), Siglip2Model(config).eval(),
                 Siglip2Processor(image_processor=image_processor, tokenizer=tokenizer))


def draw(seed: int, size: tuple[int, int] = (48, 40)):
    """A PIL RGB image: a coloured background with a few rectangles and ellipses, fixed by `seed`."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    colour = lambda: tuple(rng.randrange(256) for _ in range(3))  # noqa: E731
    image = Image.new("RGB", size, colour())
    pen = ImageDraw.Draw(image)
    w, h = size
    for _ in range(4):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        box = [x0, y0, min(w, x0 + rng.randrange(4, w)), min(h, y0 + rng.randrange(4, h))]
        (pen.rectangle if rng.random() < 0.5 else pen.ellipse)(box, fill=colour())
    return image


def png_bytes(image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="session")
def draw_image():
    return draw
