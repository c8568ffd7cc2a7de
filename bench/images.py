"""Images/s of scorekit against a plain `transformers` loop, in the same run, alternating rounds (common.py):
CLIP image embedding, and a 1 query x 100 images text→image rerank.

No CLIP weights install offline (MODELS.md), so the model has ViT-B/32's shapes (vision 768 x 12 layers,
224 px, patch 32; text 512 x 12 layers) with random weights and the tests' tiny tokenizer: the times mean
what a real ViT-B/32 costs, the scores mean nothing. Both sides use the same folder, processor and weights, and
the scores are checked to agree.

    python bench/images.py [--images 32] [--rerank 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

import common  # noqa: F401  (puts src/ on the path, offline)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from tests.multimodal.conftest import _clip_tokenizer, draw, png_bytes  # noqa: E402

BATCH = 32  # the transformers loop's batch of images


def build_vit_b32(folder: Path) -> None:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tokenizer = _clip_tokenizer()
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
                         num_attention_heads=8, max_position_embeddings=77, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1),
        vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                           image_size=224, patch_size=32),
        projection_dim=512)
    CLIPModel(config).eval().save_pretrained(str(folder))
    CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer).save_pretrained(str(folder))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--rerank", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    runtime = common.apply_runtime()

    from transformers import AutoModel, AutoProcessor

    from scorekit import LLM
    from scorekit.media.content import Content, ImagePart

    folder = Path(tempfile.mkdtemp(prefix="vit-b32-random-"))
    build_vit_b32(folder)
    pictures = [draw(i, (320, 240)) for i in range(max(args.images, args.rerank))]
    contents = [Content((ImagePart(p, hashlib.sha256(png_bytes(p)).hexdigest()),)) for p in pictures]
    llm = LLM(str(folder), score_cache_bytes=0)  # every round computes: no output cache
    processor, model = AutoProcessor.from_pretrained(str(folder)), AutoModel.from_pretrained(str(folder)).eval()
    query = "a photo of the sea"

    def hf_image_features(images):
        out = []
        with torch.inference_mode():
            for start in range(0, len(images), BATCH):
                pixels = processor(images=images[start:start + BATCH], return_tensors="pt")
                features = model.get_image_features(**pixels)
                out.append(features if isinstance(features, torch.Tensor) else features.pooler_output)
        return torch.nn.functional.normalize(torch.cat(out), dim=-1)

    def hf_rerank():
        with torch.inference_mode():
            text = model.get_text_features(**processor(text=[query], return_tensors="pt"))
            text = torch.nn.functional.normalize(text if isinstance(text, torch.Tensor) else text.pooler_output, dim=-1)
        scores = hf_image_features(pictures[:args.rerank]) @ text[0]
        return sorted(range(len(scores)), key=lambda i: -float(scores[i])), scores

    # Agreement first: the same vectors and scores on both sides.
    ours = torch.tensor([o.outputs.embedding for o in llm.embed(contents[:args.images], use_tqdm=False)])
    embed_diff = float((ours - hf_image_features(pictures[:args.images])).abs().max())
    ranked = llm.rerank(query, contents[:args.rerank], use_tqdm=False)
    _, hf_scores = hf_rerank()
    rerank_diff = max(abs(r.relevance_score - float(hf_scores[r.index])) for r in ranked)
    print(f"max |Δ| embeddings {embed_diff:.2e}, rerank scores {rerank_diff:.2e}")

    embed = common.compare({
        "transformers loop": lambda: hf_image_features(pictures[:args.images]),
        "scorekit LLM.embed": lambda: llm.embed(contents[:args.images], use_tqdm=False),
    }, rounds=args.rounds)
    common.print_table(f"CLIP ViT-B/32 (random weights) image embedding, {args.images} images", embed,
                       "transformers loop", args.images, "images")
    rerank = common.compare({
        "transformers loop": hf_rerank,
        "scorekit LLM.rerank": lambda: llm.rerank(query, contents[:args.rerank], use_tqdm=False),
    }, rounds=args.rounds)
    common.print_table(f"1 x {args.rerank} text→image rerank", rerank, "transformers loop", args.rerank, "images")
    common.record("images", {
        "model": "CLIP with ViT-B/32 shapes, random weights (no CLIP weights install offline)",
        "embed": {"images": args.images, "median_s": embed,
                  "images_per_s": {k: args.images / v for k, v in embed.items()}, "max_abs_diff": embed_diff},
        "rerank": {"documents": args.rerank, "median_s": rerank,
                   "images_per_s": {k: args.rerank / v for k, v in rerank.items()}, "max_abs_diff": rerank_diff},
        "rounds": args.rounds, "transformers_batch": BATCH,
    }, runtime)


if __name__ == "__main__":
    main()
