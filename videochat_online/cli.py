"""The `videochat-online` command.

    videochat-online chat --model PATH_OR_HUB_ID [--image IMG ...] "question"
    videochat-online convert ORIGINAL_DIR OUT_DIR

A user error (bad checkpoint, unreadable image) prints one line `error: ...` and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys

from .errors import VideoChatOnlineError


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="checkpoint directory (this project's or the original "
                        "InternVL layout) or a hub id")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    parser.add_argument("--dtype", default=None, choices=["bf16", "fp16", "fp32"],
                        help="default: bf16 on a GPU, fp32 on the CPU")
    parser.add_argument("--attn", default=None, choices=["sdpa", "flash_attention_2", "eager"],
                        help="attention implementation (default: flash_attention_2 when installed on a GPU, else sdpa)")


def _engine(args):
    import torch

    from .chat import ChatEngine

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = args.dtype or ("bf16" if device.startswith("cuda") else "fp32")
    return ChatEngine.from_pretrained(args.model, device=device, dtype=dtype, attn_implementation=args.attn,
                                      system_message=getattr(args, "system", None))


def cmd_chat(args) -> int:
    from .conversation import images_message
    from .data.image import load_image

    images = [load_image(p) for p in args.image]
    engine = _engine(args)
    tokens, per_image = engine.encode_images(images) if images else (None, [])
    interactive = args.question is None
    history: list[tuple[str, str]] = []
    while True:
        if not interactive:
            if history:
                return 0
            question = args.question
        else:
            try:
                question = input("you> ").strip()
            except EOFError:
                return 0
            if not question:
                continue
        # The images go into the first user message; later turns see them again through the history.
        message = images_message(per_image, question) if images and not history else question
        reply = engine.ask(message, tokens, history, max_new_tokens=args.max_new_tokens)
        print(f"model> {reply.text}" if interactive else reply.text, flush=True)
        history.append((message, reply.text))


def cmd_convert(args) -> int:
    from .model import load_pretrained, save_pretrained

    model, tokenizer = load_pretrained(args.src, dtype=args.dtype)
    out = save_pretrained(model, tokenizer, args.out)
    print(f"wrote {out} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="videochat-online", description="Online video understanding.")
    sub = parser.add_subparsers(dest="command", required=True)

    chat = sub.add_parser("chat", help="ask about images (or plain text); interactive without a question")
    _add_model_args(chat)
    chat.add_argument("question", nargs="?", help="the question; omit it to chat turn by turn on stdin")
    chat.add_argument("--image", action="append", default=[], help="an image file (repeat for several)")
    chat.add_argument("--system", default=None, help="system message (default: the model's)")
    chat.add_argument("--max-new-tokens", type=int, default=256)
    chat.set_defaults(func=cmd_chat)

    convert = sub.add_parser("convert", help="rewrite a checkpoint (e.g. the original layout) in this project's layout")
    convert.add_argument("src")
    convert.add_argument("out")
    convert.add_argument("--dtype", default=None, choices=["bf16", "fp16", "fp32"], help="default: the source's")
    convert.set_defaults(func=cmd_convert)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # keep the output to answers and our own messages
    hf_logging.disable_progress_bar()
    try:
        return args.func(args)
    except VideoChatOnlineError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
