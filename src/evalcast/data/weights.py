"""Per-token weightings, frozen when the expert set is built (``docs/methods.md`` §1).

Weights never depend on the checkpoint being scored: a weighting that moved with the model would change
the metric's definition along training and break every fit over checkpoints. Each weighting is one
float32 value per scored (solution) token.

==============  =====================================================================
name            weight of solution token t of trajectory i
==============  =====================================================================
``token``       1 (token-micro average; the headline metrics)
``traj``        1 / T_i (every trajectory counts the same: the two-level mean)
``rarity``      −log f(y_t), f the add-one-smoothed unigram frequency of the token id
``rare``        1 when f(y_t) is in the lowest ``rare_quantile`` of scored positions
``answer``      1 on tokens of the final-answer span, else 0
``late``        ramp t / T_i (later steps weigh more)
``ref_entropy`` entropy of a fixed reference model at t (with a reference only)
``forking``     1 when the reference entropy is in the top 20% ("forking tokens")
``ref_nll``     NLL of the expert token under the reference (hard tokens)
==============  =====================================================================
"""

from __future__ import annotations

import numpy as np

BASE_WEIGHTINGS: tuple[str, ...] = ("token", "traj", "rarity", "rare", "answer", "late")
REFERENCE_WEIGHTINGS: tuple[str, ...] = ("ref_entropy", "forking", "ref_nll")
DEFAULT_WEIGHTING = "token"


def base_weights(targets: np.ndarray, seq_of_token: np.ndarray, pos_in_seq: np.ndarray, seq_len: np.ndarray,
                 answer_mask: np.ndarray, counts: np.ndarray, rare_quantile: float = 0.2) -> dict[str, np.ndarray]:
    """The checkpoint-independent weightings for every scored token.

    targets: expert token id per scored token; seq_of_token: its trajectory index; pos_in_seq: its
    0-based position among that trajectory's scored tokens; seq_len: scored tokens per trajectory;
    answer_mask: answer-span flag per scored token; counts: unigram counts over the vocabulary.
    """
    freq = (counts + 1.0) / (counts.sum() + len(counts))
    surprisal = -np.log(freq[targets])
    total = seq_len[seq_of_token].astype(np.float64)
    threshold = np.quantile(freq[targets], rare_quantile) if len(targets) else 0.0
    return {
        "token": np.ones(len(targets), np.float32),
        "traj": (1.0 / total).astype(np.float32),
        "rarity": surprisal.astype(np.float32),
        "rare": (freq[targets] <= threshold).astype(np.float32),
        "answer": answer_mask.astype(np.float32),
        "late": ((pos_in_seq + 1) / total).astype(np.float32),
    }


def reference_weights(ref_entropy: np.ndarray, ref_nll: np.ndarray,
                      forking_quantile: float = 0.8) -> dict[str, np.ndarray]:
    """Weightings from a fixed reference model's per-token entropy and NLL."""
    threshold = np.quantile(ref_entropy, forking_quantile) if len(ref_entropy) else 0.0
    return {
        "ref_entropy": ref_entropy.astype(np.float32),
        "forking": (ref_entropy >= threshold).astype(np.float32),
        "ref_nll": ref_nll.astype(np.float32),
    }
