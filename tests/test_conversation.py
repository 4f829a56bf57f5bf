import pytest

from videochat_online.conversation import FrameSlot, build_prompt, get_template, images_message
from videochat_online.errors import InputError


def ctx(n):
    return "<IMG_CONTEXT>" * n


def test_phi3_prompt_is_pinned():
    frames = [FrameSlot(index=0, timestamp=0.0, num_tokens=3), FrameSlot(index=7, timestamp=3.5, num_tokens=2),
              FrameSlot(index=12, timestamp=6.04, num_tokens=1)]
    prompt = build_prompt(get_template("phi3-chat"), "Watch carefully.", [("Who is there?", "A man.")],
                          frames, "Question at 6.5s: What is he holding?")
    assert prompt == (
        "<|system|>\nWatch carefully.<|end|>"
        "<|user|>\nWho is there?<|end|><|assistant|>\nA man.<|end|>"
        "<|user|>\n"
        f"Frame1 at 0.0s: <img>{ctx(3)}</img>\n"
        f"Frame8 at 3.5s: <img>{ctx(2)}</img>\n"
        f"Frame13 at 6.0s: <img>{ctx(1)}</img>\n"
        "Question at 6.5s: What is he holding?<|end|><|assistant|>\n"
    )
    assert get_template("phi3-chat").stop_token == "<|end|>"


def test_chatml_prompt_is_pinned():
    prompt = build_prompt(get_template("internvl2_5"), "Sys.", [], [FrameSlot(1, 0.5, 2)], "Q?")
    assert prompt == (f"<|im_start|>system\nSys.<|im_end|>\n<|im_start|>user\nFrame2 at 0.5s: <img>{ctx(2)}</img>\n"
                      "Q?<|im_end|>\n<|im_start|>assistant\n")
    assert get_template("internvl2_5").stop_token == "<|im_end|>"


def test_no_frames_leaves_the_question_alone():
    assert build_prompt(get_template("phi3-chat"), "", [], [], "Hi") == "<|system|>\n<|end|><|user|>\nHi<|end|><|assistant|>\n"


def test_images_message_forms():
    assert images_message([2], "What?") == f"<img>{ctx(2)}</img>\nWhat?"
    assert images_message([1, 2], "Compare.") == f"Image-1: <img>{ctx(1)}</img>\nImage-2: <img>{ctx(2)}</img>\nCompare."
    assert images_message([1, 3], "<image> vs <image>") == f"<img>{ctx(1)}</img> vs <img>{ctx(3)}</img>"
    with pytest.raises(InputError, match="1 <image> placeholders but 2 images"):
        images_message([1, 1], "<image> only one")


def test_unknown_template():
    with pytest.raises(ValueError, match="unknown conversation template 'vicuna'"):
        get_template("vicuna")


def test_a_compact_prompt_expands_to_the_exact_prompt():
    from videochat_online.conversation import compact_prompt, expand_prompt

    prompt = ("<|user|>\nFrame1 at 0.0s: <img>" + "<IMG_CONTEXT>" * 64 + "</img>\nFrame9 at 4.0s: <img>"
              + "<IMG_CONTEXT>" * 4 + "</img>\nQ?<|end|><|assistant|>\n")
    compact = compact_prompt(prompt)
    assert compact == ("<|user|>\nFrame1 at 0.0s: <img><IMG_CONTEXT>*64</img>\nFrame9 at 4.0s: "
                       "<img><IMG_CONTEXT>*4</img>\nQ?<|end|><|assistant|>\n")
    assert expand_prompt(compact) == prompt
