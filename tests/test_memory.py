"""Pyramid Memory Bank, hand-worked: every expected eviction below is worked out in the comments.

Frames are constant grids, so a frame's mean feature is the vector it was built from and the
cosine similarities of neighbours can be read off the vectors.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from videochat_online.memory import MemorySettings, PyramidMemoryBank, SlidingWindowMemory, UniformMemory
from videochat_online.memory.pyramid import most_redundant
from videochat_online.memory.uniform import uniform_positions
from videochat_online.settings import SettingsError

UNIT = {  # 2-d directions: cos(E, NE) = 0.707, cos(E, N) = 0, cos(E, E2) = 1
    "E": (1.0, 0.0), "E2": (2.0, 0.0), "NE": (1.0, 1.0), "N": (0.0, 1.0), "NNE": (1.0, 3.0), "W": (-1.0, 0.0),
}


def grid(direction, size=4):
    """A constant [2, size, size] grid pointing in `direction`."""
    x, y = UNIT[direction] if isinstance(direction, str) else direction
    return torch.tensor([x, y]).view(2, 1, 1).expand(2, size, size).clone()


def held(bank):
    return [(f.index, f.level) for f in bank.frames()]


def level_order(bank, level):
    return [f.index for f in bank.levels[level]]


def test_direct_insertion_evicts_earlier_frame_of_most_similar_pair():
    bank = PyramidMemoryBank(capacities=(3,), grid_sizes=(4,), sample_intervals=(1,))
    for i, d in enumerate(["E", "NE", "N"]):
        bank.add(grid(d), i)
    # full: pairs (0,1): cos(E,NE)=.707, (1,2): cos(NE,N)=.707 -> equal, the first pair wins -> evict 0
    bank.add(grid("W"), 3)
    assert level_order(bank, 0) == [1, 2, 3]
    # pairs (1,2): .707, (2,3): cos(N,W)=0 -> evict 1
    bank.add(grid("E"), 4)
    assert level_order(bank, 0) == [2, 3, 4]
    # pairs (2,3): cos(N,W)=0, (3,4): cos(W,E)=-1 -> evict 2
    bank.add(grid("N"), 5)
    assert level_order(bank, 0) == [3, 4, 5]


def test_similarity_uses_direction_not_magnitude():
    bank = PyramidMemoryBank(capacities=(3,), grid_sizes=(4,), sample_intervals=(1,))
    for i, d in enumerate(["N", "E", "E2"]):
        bank.add(grid(d), i)
    # pairs (0,1): 0, (1,2): cos(E,E2)=1 -> evict 1, although frames 1 and 2 differ in magnitude
    bank.add(grid("N"), 3)
    assert level_order(bank, 0) == [0, 2, 3]


def test_most_redundant_takes_the_first_of_equal_maxima():
    frames = [type("F", (), {"mean": torch.tensor(v)})() for v in ([1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 1.0])]
    # cos: (0,1)=.707, (1,2)=.707, (2,3)=.707 -> position 0
    assert most_redundant(frames) == 0
    assert most_redundant(frames[:1]) == 0


def test_frames_enter_levels_by_sample_interval_and_are_pooled():
    bank = PyramidMemoryBank(capacities=(20, 20, 20), grid_sizes=(4, 2, 1), sample_intervals=(8, 4, 1))
    features = {i: torch.randn(2, 4, 4) for i in range(17)}
    for i, f in features.items():
        bank.add(f, i)
    levels = {f.index: f.level for f in bank.frames()}
    assert [i for i, lv in levels.items() if lv == 0] == [0, 8, 16]
    assert [i for i, lv in levels.items() if lv == 1] == [4, 12]
    assert len([i for i, lv in levels.items() if lv == 2]) == 12
    by_index = {f.index: f for f in bank.frames()}
    assert torch.equal(by_index[0].grid, features[0])  # level 0 keeps the full grid
    assert torch.allclose(by_index[4].grid, F.adaptive_avg_pool2d(features[4], 2))
    assert torch.allclose(by_index[5].grid[:, 0, 0], features[5].mean(dim=(1, 2)))
    # tokens: row-major [h*w, C]
    assert by_index[4].tokens.shape == (4, 2) and torch.equal(by_index[4].tokens[1], by_index[4].grid[:, 0, 1])
    assert bank.frames() == sorted(bank.frames(), key=lambda f: f.index)


def test_cascade_is_one_level_deep_and_keeps_per_level_insertion_order():
    bank = PyramidMemoryBank(capacities=(2, 2), grid_sizes=(4, 2), sample_intervals=(2, 1))
    g0 = torch.randn(2, 4, 4)
    bank.add(g0, 0)             # L0 [0]
    bank.add(grid("E"), 1)      # L1 [1]
    bank.add(grid("N"), 2)      # L0 [0, 2]
    bank.add(grid("NE"), 3)     # L1 [1, 3]
    bank.add(grid("W"), 4)      # L0 full: one pair (0,2) -> evict 0, cascade it into L1;
    #                             L1 full: one pair (1,3) -> evict 1, dropped (one level deep); L1 [3, 0]
    assert level_order(bank, 0) == [2, 4] and level_order(bank, 1) == [3, 0]
    assert held(bank) == [(0, 1), (2, 0), (3, 1), (4, 0)]
    moved = bank.levels[1][1]
    expected = F.interpolate(g0[None], size=(2, 2), mode="bilinear", align_corners=False)[0]
    assert torch.equal(moved.grid, expected)
    # L1 is ordered by entry, not by index: frame 5 evicts 3 (the earlier entry of the only pair), not 0
    bank.add(grid("E"), 5)
    assert level_order(bank, 1) == [0, 5]


def test_cascade_evicts_by_similarity_in_the_next_level():
    bank = PyramidMemoryBank(capacities=(1, 3), grid_sizes=(4, 4), sample_intervals=(4, 1))
    bank.add(grid("W"), 0)      # L0 [0]
    for i, d in zip((1, 2, 3), ("E", "NE", "N")):
        bank.add(grid(d), i)    # L1 [1, 2, 3]
    bank.add(grid("E"), 4)      # L0 full (one frame) -> evict 0 -> cascade into L1:
    #                             pairs (1,2): .707, (2,3): .707 -> evict 1, dropped; L1 [2, 3, 0]
    assert level_order(bank, 0) == [4] and level_order(bank, 1) == [2, 3, 0]
    bank.add(grid("NNE"), 5)    # direct into L1: pairs (2,3): cos(NE,N)=.707, (3,0): cos(N,W)=0 -> evict 2
    assert level_order(bank, 1) == [3, 0, 5]


def test_full_cascade_option_lets_evictions_fall_through_every_level():
    def run(full):
        bank = PyramidMemoryBank(capacities=(1, 1, 1), grid_sizes=(4, 2, 1), sample_intervals=(4, 2, 1),
                                 full_cascade=full)
        for i in range(5):
            bank.add(torch.randn(2, 4, 4), i)
        return bank

    # 0->L0, 1->L2, 2->L1, 3->L2 (evicts 1: last level, dropped), 4->L0 (evicts 0 -> L1, which evicts 2)
    one = run(False)
    assert held(one) == [(0, 1), (3, 2), (4, 0)]  # 2 is dropped
    full = run(True)
    assert held(full) == [(0, 1), (2, 2), (4, 0)]  # 2 falls into L2, evicting 3


def test_capacity_zero_stores_nothing_and_capacity_one_keeps_the_newest():
    bank = PyramidMemoryBank(capacities=(0, 2), grid_sizes=(4, 2), sample_intervals=(2, 1))
    for i in range(6):
        bank.add(torch.randn(2, 4, 4), i)
    # even frames go to L0, which stores nothing; L1 holds the last two odd frames (one pair each time)
    assert held(bank) == [(3, 1), (5, 1)]
    bank = PyramidMemoryBank(capacities=(1, 0), grid_sizes=(4, 2), sample_intervals=(1, 1))
    for i in range(4):
        bank.add(torch.randn(2, 4, 4), i)
    assert held(bank) == [(3, 0)]  # each eviction cascades into a level that stores nothing
    assert bank.num_tokens == 16 and bank.max_tokens == 16


def test_published_defaults_hold_832_tokens():
    bank = MemorySettings().build(16)  # the published model's grid: levels 16, 8, 4
    assert bank.max_tokens == 2 * 256 + 2 * 64 + 12 * 16 == 832
    torch.manual_seed(0)
    for i in range(200):
        bank.add(torch.randn(8, 16, 16), i)
    assert [len(level) for level in bank.levels] == [2, 2, 12]
    assert bank.num_tokens == 832
    assert sum(f.tokens.shape[0] for f in bank.frames()) == 832
    bank.reset()
    assert bank.frames() == [] and bank.num_tokens == 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="--grid-sizes 16: give one grid size per level"):
        PyramidMemoryBank(capacities=(2, 2), grid_sizes=(16,), sample_intervals=(8, 1))
    with pytest.raises(ValueError, match="--intervals 8,4,2: the last level's interval must be 1"):
        PyramidMemoryBank((2, 2, 12), (16, 8, 4), sample_intervals=(8, 4, 2))  # a frame no interval divides would have no level
    with pytest.raises(ValueError, match=r"feature grid \[C, 16, 16\], got \[8, 8, 8\]"):
        MemorySettings().build(16).add(torch.zeros(8, 8, 8), 0)


def test_window_and_uniform_memories():
    window = SlidingWindowMemory(3, grid_size=4)
    uniform = UniformMemory(4, grid_size=4)
    for i in range(10):
        window.add(torch.full((2, 4, 4), float(i)), i, timestamp=i / 2)
        uniform.add(torch.full((2, 4, 4), float(i)), i, timestamp=i / 2)
    assert [f.index for f in window.frames()] == [7, 8, 9]
    assert window.frames()[0].timestamp == 3.5 and window.frames()[0].num_tokens == 16
    # 10 frames in 4 segments of 2.5: middles at 1.25, 3.75, 6.25, 8.75
    assert [f.index for f in uniform.frames()] == [1, 3, 6, 8]
    assert uniform_positions(3, 8) == [0, 1, 2]
    assert uniform_positions(100, 4) == [math.floor(12.5 + 25 * i) for i in range(4)]


def test_the_recency_baseline_holds_its_last_frames_beside_a_window_of_its_own():
    from videochat_online.memory import RecentFramesMemory

    settings = MemorySettings("recent", window=8)
    recent, window = settings.build(4), settings.replace(mode="window").build(4)
    assert isinstance(recent, RecentFramesMemory) and recent.max_tokens == 4 * 16  # 4 frames by default
    for i in range(10):
        recent.add(torch.full((2, 4, 4), float(i)), i, timestamp=i / 2)
        window.add(torch.full((2, 4, 4), float(i)), i, timestamp=i / 2)
    assert [f.index for f in recent.frames()] == [6, 7, 8, 9] and all(f.num_tokens == 16 for f in recent.frames())
    assert len(window.frames()) == 8  # its own size, not the window's
    assert settings.to_dict() == {"mode": "recent", "recent_frames": 4}
    with pytest.raises(SettingsError, match="--recent-frames 0: must be >= 1"):
        MemorySettings("recent", recent_frames=0)
