"""DAPO dynamic sampling: the group filter, batch surgery, the refill loop (on a scripted stand-in for TRL's
scoring, fast) and one real GRPO step on a tiny Qwen2.5-VL (slow) where only informative groups reach the loss."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
from trl.trainer.utils import split_pixel_values_by_grid, unsplit_pixel_values_by_grid

from medix_r1.train.dynamic_sampling import (
    DynamicSamplingConfig,
    DynamicSamplingExhausted,
    DynamicSamplingMixin,
    check_batch_layout,
    concat_rows,
    group_keep_mask,
    select_rows,
)

CFG = DynamicSamplingConfig()


# --------------------------------------------------------------------------------------------- the filter
@pytest.mark.parametrize("rewards, expected", [
    ([0.0, 0.0, 0.0, 0.0], False),          # all wrong: mean <= 0.01 and all equal
    ([1.0, 1.0, 1.0, 1.0], False),          # all right
    ([0.5, 0.5, 0.5, 0.5], False),          # all equal in the middle: no advantage
    ([1.0, 0.0, 0.0, 0.0], True),
    ([0.0, 0.01, 0.0, 0.02], True),         # mean 0.0075 <= 0.01 ... but see the next case
    ([0.995, 0.99, 1.0, 0.99], False),      # mean >= 0.99
    ([float("nan")] * 4, False),            # nothing could be scored
    ([float("nan"), 1.0, 0.0, float("nan")], True),   # unscored completions are left out of mean and spread
    ([float("nan"), 1.0, float("nan"), float("nan")], False),  # one scored completion: no spread
])
def test_group_keep_mask(rewards, expected):
    cfg = DynamicSamplingConfig(min_mean=0.005)  # so the 0.0075 group passes the mean test
    assert group_keep_mask(torch.tensor(rewards), 4, cfg).tolist() == [expected]


def test_group_keep_mask_thresholds_and_equal_flag():
    r = torch.tensor([0.0, 0.01, 0.5, 0.5, 1.0, 0.99, 0.0, 1.0])  # means 0.005, 0.5 (equal), 0.995, 0.5
    assert group_keep_mask(r, 2, CFG).tolist() == [False, False, False, True]
    assert group_keep_mask(r, 2, DynamicSamplingConfig(min_mean=0.0)).tolist() == [True, False, False, True]
    assert group_keep_mask(r, 2, DynamicSamplingConfig(drop_equal=False)).tolist() == [False, True, False, True]
    with pytest.raises(ValueError, match="groups of 4"):
        group_keep_mask(torch.zeros(6), 4, CFG)
    with pytest.raises(ValueError, match="min_mean"):
        DynamicSamplingConfig(min_mean=0.9, max_mean=0.1)


def test_batch_layout_check_names_the_settings():
    check_batch_layout(4, 80, 5)
    with pytest.raises(ValueError, match=r"per_device_train_batch_size x steps_per_generation = 4 x 1 = 4"):
        check_batch_layout(4, 1, 5)


# --------------------------------------------------------------------------------------------- batch surgery
PAD = 0


def _scored_batch(prompt_ids: list[int], prompt_len: list[int], comp_len: list[int]) -> dict:
    """A TRL-like scored batch: row i's prompt tokens are ``100*p + k`` (left-padded), completion tokens
    ``1000*p + k`` (right-padded), ``mm_token_type_ids`` marks the prompt's first real token, and every
    per-row field can be traced back to its prompt id ``p``."""
    n = len(prompt_ids)
    P, C = max(prompt_len), max(comp_len)
    pi = torch.full((n, P), PAD)
    pm = torch.zeros((n, P), dtype=torch.long)
    ci = torch.full((n, C), PAD)
    cm = torch.zeros((n, C), dtype=torch.long)
    mm = torch.zeros((n, P + C), dtype=torch.long)
    for r, (p, lp, lc) in enumerate(zip(prompt_ids, prompt_len, comp_len)):
        pi[r, P - lp:] = torch.arange(lp) + 100 * p + 1
        pm[r, P - lp:] = 1
        mm[r, P - lp] = 1
        ci[r, :lc] = torch.arange(lc) + 1000 * p + 1
        cm[r, :lc] = 1
    return {"prompt_ids": pi, "prompt_mask": pm, "completion_ids": ci, "completion_mask": cm,
            "mm_token_type_ids": mm, "advantages": torch.tensor(prompt_ids, dtype=torch.float),
            "old_per_token_logps": cm.float() * torch.tensor(prompt_ids, dtype=torch.float)[:, None],
            # Qwen-VL layout: flat patches, one grid row per image
            "pixel_values": torch.cat([torch.full((lp, 3), float(p)) for p, lp in zip(prompt_ids, prompt_len)]),
            "image_grid_thw": torch.tensor([[1, 1, lp] for lp in prompt_len]),
            "num_images": [1] * n, "num_items_in_batch": cm.sum()}


def _check_rows(batch: dict, expected_ids: list[int]) -> None:
    assert batch["advantages"].tolist() == expected_ids
    batch = split_pixel_values_by_grid(batch)
    for r, p in enumerate(expected_ids):
        prompt = batch["prompt_ids"][r][batch["prompt_mask"][r].bool()]
        assert prompt.tolist() == list(range(100 * p + 1, 100 * p + 1 + len(prompt)))
        assert batch["prompt_mask"][r].tolist() == sorted(batch["prompt_mask"][r].tolist())  # left padding
        comp = batch["completion_ids"][r][batch["completion_mask"][r].bool()]
        assert comp.tolist() == list(range(1000 * p + 1, 1000 * p + 1 + len(comp)))
        assert batch["completion_mask"][r].tolist() == sorted(batch["completion_mask"][r].tolist(), reverse=True)
        P = batch["prompt_ids"].shape[1]
        first_real = int(batch["prompt_mask"][r].argmax())
        assert batch["mm_token_type_ids"][r].nonzero().flatten().tolist() == [first_real]
        assert batch["mm_token_type_ids"].shape[1] == P + batch["completion_ids"].shape[1]
        assert (batch["old_per_token_logps"][r] == p * batch["completion_mask"][r]).all()
        assert (batch["pixel_values"][r] == p).all()


def test_select_and_concat_repad_prompts_left_and_completions_right():
    a = split_pixel_values_by_grid(_scored_batch([1, 1, 2, 2], prompt_len=[3, 3, 5, 5], comp_len=[2, 4, 1, 3]))
    b = split_pixel_values_by_grid(_scored_batch([7, 7], prompt_len=[8, 8], comp_len=[6, 2]))
    merged = unsplit_pixel_values_by_grid(
        concat_rows([select_rows(a, [2, 3]), select_rows(b, [0, 1]), select_rows(a, [0])], pad_token_id=PAD))
    assert "num_items_in_batch" not in merged  # a batch-wide scalar: the caller recomputes it
    assert merged["prompt_ids"].shape == (5, 8) and merged["completion_ids"].shape == (5, 6)
    _check_rows(merged, [2, 2, 7, 7, 1])
    assert merged["num_images"] == [1] * 5
    with pytest.raises(ValueError, match="different fields"):
        concat_rows([select_rows(a, [0]), {k: v for k, v in select_rows(b, [0]).items() if k != "pixel_values"}],
                    pad_token_id=PAD)


def test_select_rows_rejects_fields_it_cannot_split():
    a = _scored_batch([1, 2], prompt_len=[2, 2], comp_len=[1, 1])  # unsplit: pixel rows are patches, not rows
    with pytest.raises(ValueError, match="pixel_values"):
        select_rows(a, [0])


# --------------------------------------------------------------------------------------------- refill loop
class _ScriptedScoring:
    """Stands in for TRL's GRPOTrainer: 'generates' a batch whose rewards a script decides per prompt."""

    def __init__(self, dataset: list[dict], rewards: dict[int, list[float]], per_device: int, g: int):
        self.train_dataset = dataset
        self.script = rewards
        self.num_generations = g
        self.args = SimpleNamespace(per_device_train_batch_size=per_device, steps_per_generation=1, seed=0)
        self.accelerator = SimpleNamespace(process_index=0, num_processes=1, device="cpu", gather=lambda t: t)
        self.state = SimpleNamespace(global_step=0)
        self.model = SimpleNamespace(training=True)
        self.reward_weights = torch.tensor([1.0])
        self._tokenizer = SimpleNamespace(pad_token_id=PAD)
        self._metrics = {"train": defaultdict(list)}
        self.rounds_seen: list[list[int]] = []

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = [self.script[row["pid"]][j % self.num_generations] for j, row in enumerate(inputs)]
        return torch.tensor(rewards)[:, None]

    def _generate_and_score_completions(self, inputs):
        pids = [row["pid"] for row in inputs]
        self.rounds_seen.append(pids[:: self.num_generations])
        self._calculate_rewards(inputs, None, None, None)
        return _scored_batch(pids, prompt_len=[2 + p for p in pids], comp_len=[1 + (j % 3) for j in range(len(pids))])


class _Trainer(DynamicSamplingMixin, _ScriptedScoring):
    _medix_counts = None


INFORMATIVE = [1.0, 0.0, 1.0, 0.0]
ALL_WRONG = [0.0, 0.0, 0.0, 0.0]


def _trainer(script: dict[int, list[float]], per_device=8, **cfg) -> _Trainer:
    t = _Trainer([{"pid": p} for p in sorted(script)], script, per_device=per_device, g=4)
    t.dynamic_sampling = DynamicSamplingConfig(**cfg)
    return t


def _first_batch(t: _Trainer, pids: list[int]) -> list[dict]:
    return [{"pid": p} for p in pids for _ in range(t.num_generations)]


def test_refill_keeps_only_informative_groups_and_logs_the_dropped_fraction():
    script = {p: (INFORMATIVE if p in (3, 5) else ALL_WRONG) for p in range(8)}
    t = _trainer(script)
    out = t._generate_and_score_completions(_first_batch(t, [0, 3]))
    kept = out["advantages"].tolist()
    assert sorted(set(kept)) == [3.0, 5.0] and len(kept) == 8   # two whole informative groups
    _check_rows(out, [int(p) for p in kept])
    assert out["num_items_in_batch"].item() == out["completion_mask"].sum().item()
    seen = [p for r in t.rounds_seen for p in r]
    assert len(t.rounds_seen) > 1 and 5 in seen
    m, c = t._metrics["train"], t._medix_counts
    n_seen = len(seen)
    assert c["dynamic_sampling/groups_seen"] == n_seen and c["dynamic_sampling/groups_dropped"] == n_seen - 2
    assert m["dynamic_sampling/rounds"] == [float(len(t.rounds_seen))]
    assert c["dynamic_sampling/groups_filled_with_dropped"] == 0


def test_full_first_round_generates_once():
    t = _trainer({p: INFORMATIVE for p in range(4)})
    out = t._generate_and_score_completions(_first_batch(t, [0, 1]))
    assert len(t.rounds_seen) == 1 and out["advantages"].tolist() == [0.0] * 4 + [1.0] * 4
    assert t._medix_counts["dynamic_sampling/groups_dropped"] == 0
    assert t._medix_counts["dynamic_sampling/groups_seen"] == 2


def test_exhausted_fill_tops_up_with_dropped_groups():
    t = _trainer({p: ALL_WRONG for p in range(6)}, max_tries=3)
    out = t._generate_and_score_completions(_first_batch(t, [0, 1]))
    assert len(t.rounds_seen) == 3 and out["completion_ids"].shape[0] == 8
    c = t._medix_counts
    assert c["dynamic_sampling/groups_filled_with_dropped"] == 2
    assert c["dynamic_sampling/groups_dropped"] == c["dynamic_sampling/groups_seen"] == 6


def test_exhausted_error_says_what_to_change():
    t = _trainer({p: ALL_WRONG for p in range(6)}, max_tries=2, on_exhausted="error")
    with pytest.raises(DynamicSamplingExhausted, match="max_tries"):
        t._generate_and_score_completions(_first_batch(t, [0, 1]))


def test_eval_mode_and_disabled_pass_through():
    t = _trainer({p: ALL_WRONG for p in range(4)})
    t.model.training = False
    out = t._generate_and_score_completions(_first_batch(t, [0, 1]))
    assert out["completion_ids"].shape[0] == 8 and "dynamic_sampling/rounds" not in t._metrics["train"]
    t.model.training, t.dynamic_sampling = True, None
    t._generate_and_score_completions(_first_batch(t, [0, 1]))
    assert len(t.rounds_seen) == 2 and not t._metrics["train"] and not t._medix_counts


def test_min_mean_is_the_same_for_text_only_rows_and_custom_weights():
    # Issue 10 item 6: the filter used the weighted nansum, so a text-only row (no modality) or weights that
    # do not sum to 1 shifted every group's mean against min_mean / max_mean.
    nan = float("nan")
    # columns: accuracy (weight 3), modality (weight 1); a perfect text-only group and a perfect image group
    t = _trainer({0: INFORMATIVE, 1: INFORMATIVE})
    t.reward_weights = torch.tensor([3.0, 1.0])
    t.reward_func_names = ["accuracy_llm", "modality"]
    t._medix_last_rewards = torch.tensor([[1.0, nan]] * 4 + [[1.0, 1.0]] * 4)
    totals = t._local_total_rewards(8)
    assert totals.tolist() == [1.0] * 8  # both at the top of the scale: max_mean drops both alike
    assert group_keep_mask(totals, 4, CFG).tolist() == [False, False]


def test_refill_stream_covers_the_dataset_without_repeats_within_an_epoch():
    t = _trainer({p: ALL_WRONG for p in range(8)})
    stream = t._refill_batches()
    prompts = [row["pid"] for _ in range(4) for row in next(stream)[::4]]
    assert sorted(prompts) == list(range(8))
