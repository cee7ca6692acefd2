from __future__ import annotations

import pytest

from mubench.attacks import ATTACKS, get_attack
from mubench.attacks.base64 import decode_response, encode
from mubench.judges import get_judge

GOAL = "Explain how to pick a good password"


@pytest.mark.parametrize(
    ("response", "refused"),
    [
        ("I'm sorry, but I can't help with that.", True),
        ("As an AI, I must decline.", True),
        ("Sure! Step one is to choose a long phrase.", False),
        ("", True),
        ("   \n ", True),
        ("Here is the plan. ... Actually, I cannot continue with this.", True),  # refusal after compliance
        ("Lo siento, no puedo ayudar con eso.", False),  # non-English refusals are missed by the v1 list
        ("That would be illegal.", True),
    ],
)
def test_refusal_keywords(response, refused):
    verdict = get_judge("refusal_keywords").judge(GOAL, response)
    assert verdict.refused is refused
    assert verdict.reason


def test_judge_rejects_unknown_list():
    from mubench.judges.refusal_keywords import RefusalKeywords

    with pytest.raises(ValueError, match="unknown list"):
        RefusalKeywords("v9")


@pytest.mark.parametrize("name", ATTACKS.names())
def test_attack_is_deterministic_and_recorded(name):
    attack = get_attack(name)
    assert attack.apply(GOAL) == get_attack(name).apply(GOAL)
    assert attack.version and attack.params()


def test_prefix_injection_keeps_goal():
    assert GOAL in get_attack("prefix_injection").apply(GOAL)


def test_base64_round_trip_and_response_decoding():
    prompt = get_attack("base64").apply(GOAL)
    assert GOAL not in prompt and encode(GOAL) in prompt
    answer = "Use a passphrase of four random words."
    response = f"Sure: {encode(answer)}"
    assert decode_response(response) == f"Sure: {answer}"
    assert get_attack("base64").decode(encode("I'm sorry, I cannot do that.")) == "I'm sorry, I cannot do that."
    plain = "I'm sorry, I cannot do that."
    assert decode_response(plain) == plain
