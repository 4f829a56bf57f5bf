"""Generation: answers end at the template's stop token; images flow through the engine."""

import numpy as np
import pytest
import torch
from PIL import Image

from videochat_online.chat import ChatEngine
from videochat_online.model import load_pretrained


@pytest.fixture
def engine(tiny_dir):
    model, tokenizer = load_pretrained(tiny_dir("native", "phi3"))
    return ChatEngine(model, tokenizer, system_message="Be brief.")


def test_generation_stops_at_end_token(engine):
    free = engine.ask("Tell me about the video.", max_new_tokens=12)
    assert len(free.token_ids) == 12  # the random model does not say <|end|> by itself
    end = engine.stop_token_ids[0]
    assert engine.tokenizer.convert_ids_to_tokens(end) == "<|end|>"
    assert end not in free.token_ids
    # Make <|end|> the model's choice at step k: swap its output row with that of the token chosen there.
    k = next(i for i, t in enumerate(free.token_ids) if i >= 2 and t not in free.token_ids[:i])
    head = engine.model.language_model.lm_head.weight
    with torch.no_grad():
        head[[end, free.token_ids[k]]] = head[[free.token_ids[k], end]]
    stopped = engine.ask("Tell me about the video.", max_new_tokens=12)
    assert stopped.token_ids == free.token_ids[:k]
    assert stopped.text == engine.tokenizer.decode(free.token_ids[:k], skip_special_tokens=True).strip()


def test_ask_images_end_to_end(engine):
    rng = np.random.RandomState(0)
    images = [Image.fromarray((rng.rand(120, 260, 3) * 255).astype("uint8")) for _ in range(2)]
    tokens, per_image = engine.encode_images(images)
    tiles = 3  # 260x120 on 224px tiles: a 2x1 grid + a thumbnail
    assert per_image == [tiles * 64, tiles * 64] and tokens.shape == (2 * tiles * 64, 128)
    reply = engine.ask_images(images, "Compare the images.", max_new_tokens=5)
    assert reply.prompt.startswith("<|system|>\nBe brief.<|end|><|user|>\nImage-1: <img><IMG_CONTEXT>")
    assert reply.prompt.count("<IMG_CONTEXT>") == 2 * tiles * 64
    assert 1 <= len(reply.token_ids) <= 5
    # Deterministic greedy decoding: the same question gives the same answer.
    assert engine.ask_images(images, "Compare the images.", max_new_tokens=5).token_ids == reply.token_ids


def test_a_replys_likelihood_is_the_sum_of_its_tokens_log_probabilities(engine):
    from videochat_online.model.modeling import PrefixCache

    prompt = engine.tokenizer("<|user|>\nWhich colour?\nOptions:\n(A) red\n(B) green<|end|>\n<|assistant|>\n",
                              return_tensors="pt").input_ids
    replies = [engine.tokenizer(r, add_special_tokens=False).input_ids for r in ("(A) red", "(B) green", "(B) red")]
    expected = []
    with torch.inference_mode():
        for ids in replies:  # one forward over prompt + reply: the log-probability of each reply token given the rest
            logits = engine.model.language_model(input_ids=torch.cat([prompt, torch.tensor([ids])], 1)).logits[0]
            logp = torch.log_softmax(logits.float(), -1)
            expected.append(sum(float(logp[prompt.shape[1] - 1 + i, t]) for i, t in enumerate(ids)))
        alone = engine.model.score(prompt, None, replies)
        cache = PrefixCache()
        shared = [engine.model.score(prompt, None, replies, cache) for _ in range(2)]  # the second reuses the prompt
    assert alone == pytest.approx(expected, abs=1e-4)
    assert shared[0] == pytest.approx(expected, abs=1e-4) and shared[1] == pytest.approx(expected, abs=1e-4)
    assert cache.reused == prompt.shape[1] - 1  # the prompt came from the cache the second time


def test_choose_answers_with_the_most_likely_reply(engine):
    prompt = "<|user|>\nWhich colour?<|end|>\n<|assistant|>\n"
    replies = ["(A) red", "(B) green", "(C) blue"]
    ids = engine.tokenizer(prompt, return_tensors="pt").input_ids
    stop = engine.stop_token_ids[0]
    with torch.inference_mode():
        scores = engine.model.score(ids, None, [engine.tokenizer(r, add_special_tokens=False).input_ids + [stop]
                                                for r in replies])
    reply = engine.choose(prompt, None, replies)
    assert reply.text == replies[scores.index(max(scores))] and reply.prompt == prompt
    with pytest.raises(ValueError, match="at least one reply"):
        engine.choose(prompt, None, [])
