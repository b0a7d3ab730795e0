"""CLIP ViT-B/32 text tower: float32 vs the official float16 conversion, on CPU.

Builds a *random* ``CLIPTextModelWithProjection`` of the real ViT-B/32 text size (12 layers,
width 512, 8 heads, MLP 2048, 77 positions, 49,408 tokens, projection 512, quick-GELU; no
pretrained weights are available offline), copies it, converts the copy with
:func:`semtalk.features.official.clip_text.convert_to_openai_half` (what the official
``clip.model.convert_weights`` does), and compares the 512-d ``text_embeds`` of a few token
sequences shaped like the official window sentences (BOS, 4-40 random word tokens, EOS).

Usage: ``python benchmarks/clip_fp16.py [--seed N] [--sentences N]``.

Measured on the project machine (2 CPU cores, torch 2.13.0+cpu, transformers 5.x, seed 0,
8 sentences): float16 runs natively on CPU (no autocast needed).

    embedding norm (fp32)  = 23.6 (mean)
    max |fp32 - fp16|      = 5.2e-03
    min cosine(fp32, fp16) = 0.999999
    fp32 forward           = 0.17 s for 8 sentences
    fp16 forward           = 0.67 s for 8 sentences (CPU half matmuls are ~4x slower)

So the half-precision rounding of the official GPU run moves each embedding by about 2e-4 of
its norm; float32 is the better default on CPU, float16 the closer match to the official GPU
numbers.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from semtalk.features.official.clip_text import convert_to_openai_half


def build_model(seed: int) -> torch.nn.Module:
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    config = CLIPTextConfig(vocab_size=49408, hidden_size=512, intermediate_size=2048,
                            num_hidden_layers=12, num_attention_heads=8,
                            max_position_embeddings=77, projection_dim=512,
                            hidden_act="quick_gelu", bos_token_id=49406, eos_token_id=49407,
                            pad_token_id=49407)
    torch.manual_seed(seed)
    return CLIPTextModelWithProjection(config).eval()


def token_batch(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(4, 41, (count,), generator=generator)
    ids = torch.full((count, int(lengths.max()) + 2), 49407, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, length in enumerate(lengths.tolist()):
        ids[row, 0] = 49406
        ids[row, 1:length + 1] = torch.randint(0, 49406, (length,), generator=generator)
        mask[row, :length + 2] = 1
    return ids, mask


def timed(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor,
                                                                                     float]:
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask)  # warm-up
        start = time.perf_counter()
        out = model(input_ids=ids, attention_mask=mask).text_embeds.float()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sentences", type=int, default=8)
    args = parser.parse_args()
    full = build_model(args.seed)
    half = convert_to_openai_half(copy.deepcopy(full))
    ids, mask = token_batch(args.sentences, args.seed)
    ref, t32 = timed(full, ids, mask)
    try:
        low, t16 = timed(half, ids, mask)
    except RuntimeError as exc:  # a torch build without CPU half kernels
        print(f"float16 on CPU failed: {exc}")
        return
    cosine = torch.nn.functional.cosine_similarity(ref, low, dim=-1)
    print(f"embedding norm (fp32) mean = {ref.norm(dim=-1).mean():.3f}")
    print(f"max |fp32 - fp16|          = {(ref - low).abs().max():.3e}")
    print(f"min cosine(fp32, fp16)     = {cosine.min():.7f}")
    print(f"fp32 forward               = {t32:.3f} s for {args.sentences} sentences")
    print(f"fp16 forward               = {t16:.3f} s for {args.sentences} sentences")


if __name__ == "__main__":
    main()
