"""Training throughput: tokens per second and peak memory of SFT steps on random weights.

    python benchmarks/train_throughput.py [--size 4b|tiny] [--frames 32] [--text-tokens 512] [--steps 10]

`4b` (the default on a GPU) is the published architecture, `tiny` the test model; each step is one video of
`--frames` frames in the pyramid arrangement plus text, under the published recipe's switches.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from videochat_online.conversation import FrameSlot, frames_text, get_template
from videochat_online.model import VideoChatOnlineModel
from videochat_online.tools.make_tiny import published_4b_config, tiny_config
from videochat_online.model.tiny_tokenizer import train_tokenizer
from videochat_online.train.sampling import pyramid_grid_sizes


def main() -> None:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=["4b", "tiny"], default="4b" if cuda else "tiny")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--text-tokens", type=int, default=512)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()

    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    tokenizer = train_tokenizer()
    config = published_4b_config(tokenizer) if args.size == "4b" else tiny_config("phi3", tokenizer)
    config.image_token_id = tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    torch.manual_seed(0)
    with torch.device(device):
        model = VideoChatOnlineModel(config).to(dtype)
    model.vision_model.requires_grad_(False)
    # activation_checkpointing_enable in newer transformers, gradient_checkpointing_enable (its alias) in 5.17
    model.gradient_checkpointing_enable({"use_reentrant": False})
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    g = config.grid_size
    sizes = pyramid_grid_sizes(args.frames, (g, g // 2, g // 4))
    video = frames_text([FrameSlot(i, i * 1.0, s * s) for i, s in enumerate(sizes)])
    prompt = get_template(config.template).render("", [], video + "\nWhat happens?")
    ids = tokenizer(prompt).input_ids
    ids = ids + torch.randint(20, len(tokenizer), (args.text_tokens,)).tolist()
    input_ids = torch.tensor([ids], device=device)
    labels = input_ids.clone()
    labels[:, : -args.text_tokens] = -100
    pixels = torch.randn(args.frames, 3, config.tile_size, config.tile_size, device=device, dtype=dtype)
    grid_sizes = torch.tensor(sizes)

    def step():
        loss = model(input_ids, labels=labels, pixel_values=pixels, grid_sizes=grid_sizes).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    for _ in range(args.warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step().item()
    if cuda:
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / args.steps
    tokens = input_ids.shape[1]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    name = torch.cuda.get_device_name() if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"model: {args.size} ({total / 1e6:,.1f}M parameters, {trainable / 1e6:,.1f}M trained), {dtype}, {name}")
    print(f"sample: {args.frames} frames ({sum(s * s for s in sizes)} visual tokens) + {args.text_tokens} text tokens"
          f" = {tokens} tokens")
    print(f"step: {seconds * 1000:.1f} ms, {tokens / seconds:,.0f} tokens/s, loss {loss:.3f}")
    if cuda:
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    else:
        print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
