#!/usr/bin/env bash
# HF Trainer with evalcast on N processes (GPUs, or CPU with gloo). evalcast needs no extra setting:
# EvalcastCallback.on_save runs on every rank, each rank scores its shard, rank 0 writes <output_dir>/evalcast.
set -euo pipefail
NPROC=${NPROC:-2}
OMP_NUM_THREADS=1 torchrun --nproc_per_node "$NPROC" examples/hf_trainer.py --out "${OUT:-runs/hf-ddp}" "$@"
